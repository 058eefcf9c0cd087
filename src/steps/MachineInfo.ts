/** What the recipe was measured on (SPEC F-2 `machine`). */
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import { Machine } from "../domain/TuneDocument.js"
import { EMBEDDED_BINARY_VERSION } from "../domain/Versions.js"
import { autotuneLauncher } from "../providers/Embedded.js"
import { adapterCommand, type ProviderAdapter } from "../providers/ProviderAdapter.js"

/**
 * The provider binary's version (F-2 `machine.binary_version`): the line of
 * `<binary> --version` that says "version", else its first line (stdout, else
 * stderr, where llama.cpp tools print it; 15 s at most: a cold binary must not turn the version, and with it the recipe hash, into null), null when it does not answer. The embedded provider without
 * `--provider-bin` is this tool itself (its own version, no process).
 */
export const binaryVersion = (adapter: ProviderAdapter): Effect.Effect<string | null> => {
  const { args, command } = adapterCommand(adapter)
  if (adapter.name === "embedded" && command === process.execPath && args[0] === autotuneLauncher) {
    return Effect.succeed(EMBEDDED_BINARY_VERSION)
  }
  // The line that names the version (llama-server logs "initializing ..." first), else the first line.
  const firstLine = (s: string) => {
    const lines = s.trim().split("\n").map((l) => l.trim()).filter((l) => l !== "")
    return lines.find((l) => /version/i.test(l)) ?? lines[0] ?? null
  }
  return Effect.async<string | null>((resume) => {
    const child = ChildProcess.execFile(command, ["--version"], { timeout: 15_000 }, (_err, stdout, stderr) =>
      resume(Effect.succeed(firstLine(String(stdout)) ?? firstLine(String(stderr)))))
    return Effect.sync(() => child.kill("SIGKILL"))
  })
}

/**
 * F-2 `machine` of this computer for a provider: RAM in GiB (one decimal),
 * CPU model, OS and kernel release, and the provider binary's version
 * (binaryVersion). Never fails. Part of the recipe hash (F-2h), so stable
 * across runs on one machine and provider build.
 */
export const machineOf = (adapter: ProviderAdapter): Effect.Effect<Machine> =>
  Effect.map(binaryVersion(adapter), (binary_version) =>
    new Machine({
      ram_gb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      chip: os.cpus()[0]?.model.trim() ?? os.arch(),
      os_version: `${os.type()} ${os.release()}`,
      binary_version
    }))


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
