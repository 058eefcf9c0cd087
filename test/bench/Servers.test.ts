/**
 * The bench's own servers (bench/Servers.ts, figure 3) and node-llama-cpp loops run in process groups of
 * their own, which a terminal's Ctrl-C does not reach: bench/GroupGuard.ts takes them down with the bench.
 */
import { describe, expect, it } from "@effect/vitest"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import { waitFor } from "../support/cli.js"
import { repoRoot, tinyModelPath } from "../support/models.js"

/** Runs `body` (a stand-in for bench/run.ts, TypeScript) in its own process group, as a terminal's foreground job. */
const standIn = (dir: string, body: string) => {
  const script = Path.join(dir, "bench.mts")
  Fs.writeFileSync(script, body)
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href
  const bench = ChildProcess.spawn(process.execPath, ["--import", tsx, script], { detached: true, stdio: ["ignore", "pipe", "pipe"] })
  let out = ""
  bench.stdout.on("data", (b: Buffer) => (out += b.toString()))
  bench.stderr.on("data", (b: Buffer) => (out += b.toString()))
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => bench.once("exit", (code, signal) => resolve(signal ?? code)))
  return { bench, exited, out: () => out }
}

/** The pids of the processes whose command line names `model` (a name unique to the test). */
const pidsNaming = (model: string): Array<number> =>
  ChildProcess.spawnSync("pgrep", ["-f", Path.basename(model)], { encoding: "utf8" }).stdout.trim().split("\n").filter((x) => x !== "").map(Number)

const killAll = (pids: ReadonlyArray<number>) => {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL")
    } catch { /* gone */ }
  }
}

describe("the bench's detached children and Ctrl-C (bench/GroupGuard.ts)", () => {
  it("issue 14 Ctrl-C to the bench's group while both figure-3 servers run: the bench ends by SIGINT, once, and neither server is left", async () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "bench-servers-int-"))
    const model = Path.join(dir, `servers-${process.pid}-${Date.now()}.gguf`)
    Fs.symlinkSync(tinyModelPath(), model)
    const servers = Path.join(repoRoot, "bench", "Servers.ts")
    // Both servers at once (two guards: one Ctrl-C must still end the bench by SIGINT, not be swallowed or doubled).
    const run = standIn(
      dir,
      `import { startServer } from ${JSON.stringify(servers)}
const spec = (kind: "embedded" | "llama-server") => ({ kind, model: ${JSON.stringify(model)}, threads: 1, contextTokens: 256, logPath: ${
        JSON.stringify(dir)
      } + "/" + kind + ".log" })
const started = await Promise.all([startServer(spec("embedded")), startServer(spec("llama-server"))])
process.stdout.write("ready " + started.map((s) => s.kind).join(" ") + "\\n")
setInterval(() => {}, 1000)
`
    )
    try {
      await waitFor(() => run.out().includes("ready") || run.out().includes("Error"), 90_000)
      expect(run.out()).toContain("ready embedded llama-server")
      // The bench itself does not name the model (only in its script): every match is a server.
      expect(pidsNaming(model).length).toBeGreaterThanOrEqual(2)
      process.kill(-run.bench.pid!, "SIGINT")
      expect(await run.exited).toBe("SIGINT")
      await waitFor(() => pidsNaming(model).length === 0, 5_000)
      expect(pidsNaming(model)).toEqual([])
    } finally {
      try {
        process.kill(-run.bench.pid!, "SIGKILL")
      } catch { /* gone */ }
      killAll(pidsNaming(model))
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)

  it("issue 14 with node-llama-cpp imported in the bench first (its signal-exit listens to SIGINT too), one Ctrl-C still ends the bench by SIGINT and takes the server", async () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "bench-servers-nlc-"))
    const model = Path.join(dir, `imported-${process.pid}-${Date.now()}.gguf`)
    Fs.symlinkSync(tinyModelPath(), model)
    const servers = Path.join(repoRoot, "bench", "Servers.ts")
    const run = standIn(
      dir,
      `await import(${JSON.stringify(pathToFileURL(Path.join(repoRoot, "node_modules", "node-llama-cpp", "dist", "index.js")).href)})
const before = process.listenerCount("SIGINT")
const { startServer } = await import(${JSON.stringify(servers)})
await startServer({ kind: "llama-server", model: ${JSON.stringify(model)}, threads: 1, contextTokens: 256, logPath: ${JSON.stringify(dir)} + "/ls.log" })
process.stdout.write("ready: SIGINT listeners before " + before + "\\n")
setInterval(() => {}, 1000)
`
    )
    try {
      await waitFor(() => run.out().includes("ready") || run.out().includes("Error"), 60_000)
      // The listener that would swallow a second one's signal is there.
      expect(run.out()).toContain("ready: SIGINT listeners before 1")
      expect(pidsNaming(model).length).toBeGreaterThanOrEqual(1)
      process.kill(-run.bench.pid!, "SIGINT")
      expect(await run.exited).toBe("SIGINT")
      await waitFor(() => pidsNaming(model).length === 0, 5_000)
      expect(pidsNaming(model)).toEqual([])
    } finally {
      try {
        process.kill(-run.bench.pid!, "SIGKILL")
      } catch { /* gone */ }
      killAll(pidsNaming(model))
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 90_000)

  for (const how of ["SIGTERM", "SIGHUP", "process.exit"] as const) {
    it(`issue 14 ${how} of the bench while a server runs takes the server's group along`, async () => {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "bench-servers-end-"))
      const model = Path.join(dir, `ended-${process.pid}-${Date.now()}.gguf`)
      Fs.symlinkSync(tinyModelPath(), model)
      const servers = Path.join(repoRoot, "bench", "Servers.ts")
      const run = standIn(
        dir,
        `import { existsSync } from "node:fs"
import { startServer } from ${JSON.stringify(servers)}
await startServer({ kind: "llama-server", model: ${JSON.stringify(model)}, threads: 1, contextTokens: 256, logPath: ${JSON.stringify(dir)} + "/ls.log" })
process.stdout.write("ready\\n")
// process.exit: once the test says so (a file appears), as a bench that ends by its own exit while a server runs.
setInterval(() => ${how === "process.exit" ? `void (existsSync(${JSON.stringify(dir)} + "/go") && process.exit(3))` : "{}"}, 20)
`
      )
      try {
        await waitFor(() => run.out().includes("ready") || run.out().includes("Error"), 60_000)
        expect(run.out()).toContain("ready")
        expect(pidsNaming(model).length).toBeGreaterThanOrEqual(1)
        if (how === "process.exit") Fs.writeFileSync(Path.join(dir, "go"), "")
        else process.kill(-run.bench.pid!, how)
        expect(await run.exited).toBe(how === "process.exit" ? 3 : how)
        await waitFor(() => pidsNaming(model).length === 0, 5_000)
        expect(pidsNaming(model)).toEqual([])
      } finally {
        try {
          process.kill(-run.bench.pid!, "SIGKILL")
        } catch { /* gone */ }
        killAll(pidsNaming(model))
        Fs.rmSync(dir, { recursive: true, force: true })
      }
    }, 90_000)
  }

  it("issue 14 a server stopped by the bench releases its guard: a later Ctrl-C still ends the bench by SIGINT, with nothing left", async () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "bench-servers-stop-"))
    const model = Path.join(dir, `stopped-${process.pid}-${Date.now()}.gguf`)
    Fs.symlinkSync(tinyModelPath(), model)
    const servers = Path.join(repoRoot, "bench", "Servers.ts")
    const run = standIn(
      dir,
      `import { startServer } from ${JSON.stringify(servers)}
const listeners = () => ["SIGINT", "SIGTERM", "SIGHUP", "exit"].map((x) => process.listenerCount(x)).join(",")
const before = listeners()
const s = await startServer({ kind: "llama-server", model: ${JSON.stringify(model)}, threads: 1, contextTokens: 256, logPath: ${
        JSON.stringify(dir)
      } + "/ls.log" })
await s.stop()
process.stdout.write("stopped: listeners " + before + " before, " + listeners() + " after\\n")
setInterval(() => {}, 1000)
`
    )
    try {
      await waitFor(() => run.out().includes("stopped") || run.out().includes("Error"), 60_000)
      // No listener left behind by the stopped server's guard.
      expect(run.out()).toMatch(/stopped: listeners \S+ before, \S+ after/)
      const [, before, after] = /listeners (\S+) before, (\S+) after/.exec(run.out()) ?? []
      expect(after).toBe(before)
      expect(pidsNaming(model)).toEqual([])
      process.kill(-run.bench.pid!, "SIGINT")
      expect(await run.exited).toBe("SIGINT")
    } finally {
      try {
        process.kill(-run.bench.pid!, "SIGKILL")
      } catch { /* gone */ }
      killAll(pidsNaming(model))
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 90_000)
})
