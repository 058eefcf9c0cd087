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

/** A stand-in for bench/run.ts running in its own process group, as a terminal's foreground job. */
interface StandIn {
  readonly bench: ChildProcess.ChildProcess
  /** Its end: the signal that ended it, or its exit code. */
  readonly exited: Promise<NodeJS.Signals | number | null>
  /** What it wrote so far, stdout and stderr. */
  readonly out: () => string
  /** A file in its directory (the test's own, removed after). */
  readonly file: (name: string) => string
  /** The pids of the processes whose command line names its model (a name unique to the test: only servers). */
  readonly servers: () => Array<number>
  /** Sends `signal` to its process group, as a terminal does. */
  readonly signal: (signal: NodeJS.Signals) => void
}

const serversModule = JSON.stringify(Path.join(repoRoot, "bench", "Servers.ts"))

/**
 * Runs `script(model, dir)` (TypeScript: the stand-in's text, given a model path unique to the test and
 * its directory) as a stand-in bench, then `check(standIn)`; afterwards kills whatever is left of it and
 * its servers and removes the directory.
 */
const withStandIn = async (script: (model: string, dir: string) => string, check: (s: StandIn) => Promise<void>) => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "bench-guard-"))
  const model = Path.join(dir, `guarded-${process.pid}-${Date.now()}.gguf`)
  Fs.symlinkSync(tinyModelPath(), model)
  Fs.writeFileSync(Path.join(dir, "bench.mts"), script(model, dir))
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href
  const bench = ChildProcess.spawn(process.execPath, ["--import", tsx, Path.join(dir, "bench.mts")], { detached: true, stdio: ["ignore", "pipe", "pipe"] })
  let out = ""
  bench.stdout.on("data", (b: Buffer) => (out += b.toString()))
  bench.stderr.on("data", (b: Buffer) => (out += b.toString()))
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => bench.once("exit", (code, signal) => resolve(signal ?? code)))
  const servers = () =>
    ChildProcess.spawnSync("pgrep", ["-f", Path.basename(model)], { encoding: "utf8" }).stdout.trim().split("\n").filter((x) => x !== "").map(Number)
  const kill = (pid: number) => {
    try {
      process.kill(pid, "SIGKILL")
    } catch { /* gone */ }
  }
  try {
    await check({ bench, exited, out: () => out, file: (name) => Path.join(dir, name), servers, signal: (s) => process.kill(-bench.pid!, s) })
  } finally {
    kill(-bench.pid!)
    servers().forEach(kill)
    Fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** A stand-in's line starting one server of `kind` on `model`, its log in `dir`. */
const start = (kind: "embedded" | "llama-server", model: string, dir: string) =>
  `startServer({ kind: ${JSON.stringify(kind)}, model: ${JSON.stringify(model)}, threads: 1, contextTokens: 256, logPath: ${JSON.stringify(dir)} + "/${kind}.log" })`

/** Waits for `line` (or an error) in the stand-in's output and checks it came, with a server running. */
const ready = async (s: StandIn, line: string) => {
  await waitFor(() => s.out().includes(line) || s.out().includes("Error"), 90_000)
  expect(s.out()).toContain(line)
  expect(s.servers().length).toBeGreaterThanOrEqual(1)
}

/** Checks that the stand-in ended as `end` says and that none of its servers is left. */
const endedWithNoServer = async (s: StandIn, end: NodeJS.Signals | number) => {
  expect(await s.exited).toBe(end)
  await waitFor(() => s.servers().length === 0, 5_000)
  expect(s.servers()).toEqual([])
}

describe("the bench's detached children and Ctrl-C (bench/GroupGuard.ts)", () => {
  it("issue 14 Ctrl-C to the bench's group while both figure-3 servers run: the bench ends by SIGINT, once, and neither server is left", () =>
    withStandIn(
      // Both servers at once (two guards: one Ctrl-C must still end the bench by SIGINT, not be swallowed or doubled).
      (model, dir) =>
        `import { startServer } from ${serversModule}
const started = await Promise.all([${start("embedded", model, dir)}, ${start("llama-server", model, dir)}])
process.stdout.write("ready " + started.map((s) => s.kind).join(" ") + "\\n")
setInterval(() => {}, 1000)
`,
      async (s) => {
        await ready(s, "ready embedded llama-server")
        expect(s.servers().length).toBeGreaterThanOrEqual(2)
        s.signal("SIGINT")
        await endedWithNoServer(s, "SIGINT")
      }
    ), 120_000)

  it("issue 14 with node-llama-cpp imported in the bench first (its signal-exit listens to SIGINT too), one Ctrl-C still ends the bench by SIGINT and takes the server", () =>
    withStandIn(
      (model, dir) =>
        `await import(${JSON.stringify(pathToFileURL(Path.join(repoRoot, "node_modules", "node-llama-cpp", "dist", "index.js")).href)})
const before = process.listenerCount("SIGINT")
const { startServer } = await import(${serversModule})
await ${start("llama-server", model, dir)}
process.stdout.write("ready: SIGINT listeners before " + before + "\\n")
setInterval(() => {}, 1000)
`,
      async (s) => {
        // The listener that would swallow the guard's re-raise is there.
        await ready(s, "ready: SIGINT listeners before 1")
        s.signal("SIGINT")
        await endedWithNoServer(s, "SIGINT")
      }
    ), 90_000)

  for (const how of ["SIGTERM", "SIGHUP", "process.exit"] as const) {
    it(`issue 14 ${how} of the bench while a server runs takes the server's group along`, () =>
      withStandIn(
        // process.exit: once the test says so (a file appears), as a bench that ends by its own exit while a server runs.
        (model, dir) =>
          `import { existsSync } from "node:fs"
import { startServer } from ${serversModule}
await ${start("llama-server", model, dir)}
process.stdout.write("ready\\n")
setInterval(() => ${how === "process.exit" ? `void (existsSync(${JSON.stringify(dir)} + "/go") && process.exit(3))` : "{}"}, 20)
`,
        async (s) => {
          await ready(s, "ready")
          if (how === "process.exit") Fs.writeFileSync(s.file("go"), "")
          else s.signal(how)
          await endedWithNoServer(s, how === "process.exit" ? 3 : how)
        }
      ), 90_000)
  }

  it("issue 14 a server stopped by the bench releases its guard: a later Ctrl-C still ends the bench by SIGINT, with nothing left", () =>
    withStandIn(
      (model, dir) =>
        `import { startServer } from ${serversModule}
const listeners = () => ["SIGINT", "SIGTERM", "SIGHUP", "exit"].map((x) => process.listenerCount(x)).join(",")
const before = listeners()
const s = await ${start("llama-server", model, dir)}
await s.stop()
process.stdout.write("stopped: listeners " + before + " before, " + listeners() + " after\\n")
setInterval(() => {}, 1000)
`,
      async (s) => {
        await waitFor(() => s.out().includes("stopped") || s.out().includes("Error"), 60_000)
        // No listener left behind by the stopped server's guard.
        expect(s.out()).toMatch(/stopped: listeners \S+ before, \S+ after/)
        const [, before, after] = /listeners (\S+) before, (\S+) after/.exec(s.out()) ?? []
        expect(after).toBe(before)
        expect(s.servers()).toEqual([])
        s.signal("SIGINT")
        expect(await s.exited).toBe("SIGINT")
      }
    ), 90_000)
})
