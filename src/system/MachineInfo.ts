/** What the recipe was measured on (SPEC F-2 `machine`), and how many cores it has. */
import * as fs from "node:fs"
import * as os from "node:os"
import { Machine } from "../domain/TuneDocument.js"

/**
 * F-2 `machine` of this computer: RAM in GiB (one decimal), CPU model, OS and
 * kernel release, and `binaryVersion`, the provider binary's version (its
 * adapter's `version`). Part of the recipe hash (F-2h), so stable across runs
 * on one machine and provider build.
 */
export const machineOf = (binaryVersion: string | null): Machine =>
  new Machine({
    ram_gb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    chip: os.cpus()[0]?.model.trim() ?? os.arch(),
    os_version: `${os.type()} ${os.release()}`,
    binary_version: binaryVersion
  })

/**
 * Physical CPU cores: the distinct (physical id, core id) pairs of
 * /proc/cpuinfo on Linux (what llama.cpp's default thread count uses, so
 * SMT siblings are not counted twice), else `os.availableParallelism()`.
 * The default `--threads-axis` (SPEC B-1 "the core count"). Never fails.
 */
export const physicalCores = (): number => {
  try {
    const cores = new Set<string>()
    for (const block of fs.readFileSync("/proc/cpuinfo", "utf8").split(/\n\s*\n/)) {
      const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.+)$`, "m").exec(block)?.[1]?.trim()
      const core = field("core id")
      if (core !== undefined) cores.add(`${field("physical id") ?? "0"}/${core}`)
    }
    // Never more than this process may use (cpusets, containers).
    if (cores.size > 0) return Math.min(cores.size, os.availableParallelism())
  } catch {
    // not Linux: fall through
  }
  return os.availableParallelism()
}
