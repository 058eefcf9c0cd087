/**
 * The process seam (services/Exec.ts): `stopProcess`'s SIGTERM → grace →
 * SIGKILL under TestClock with a stand-in Exec, and `run` / `spawn` against
 * real processes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Ref, TestClock } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Exec, stopProcess } from "../../src/services/Exec.js"
import { pidAlive } from "../../src/system/Pids.js"
import { tempDir, waitFor } from "../support/cli.js"

/**
 * A stand-in Exec whose one process group (leader pid 4242) records every
 * signal in `signals`: the leader goes away on the signals in `diesOn`, its
 * worker (when `worker`) on those in `workerDiesOn`.
 */
const fakeProcess = (
  diesOn: ReadonlyArray<NodeJS.Signals>,
  worker: { readonly diesOn: ReadonlyArray<NodeJS.Signals> } | null = null
) =>
  Effect.gen(function*() {
    const signals = yield* Ref.make<ReadonlyArray<string>>([])
    const alive = yield* Ref.make(true)
    const workerAlive = yield* Ref.make(worker !== null)
    const layer = Layer.succeed(Exec, Exec.make({
      run: () => Effect.die("no command expected"),
      spawn: () => Effect.die("no spawn expected"),
      signal: (pid, signal, o) =>
        Effect.gen(function*() {
          yield* Ref.update(signals, (s) => [...s, `${o.group ? "group " : ""}${pid} ${signal}`])
          if (diesOn.includes(signal)) yield* Ref.set(alive, false)
          if (o.group && worker?.diesOn.includes(signal)) yield* Ref.set(workerAlive, false)
          return true
        }),
      alive: () => Ref.get(alive),
      groupAlive: () => Effect.zipWith(Ref.get(alive), Ref.get(workerAlive), (a, w) => a || w)
    }))
    return { signals, layer }
  })

describe("stopProcess: SIGTERM, the grace on the Effect clock, then SIGKILL (STYLE: bound every wait)", () => {
  it.effect("H-4 a process that ignores SIGTERM gets SIGKILL exactly when the grace is over, not before", () =>
    Effect.gen(function*() {
      const p = yield* fakeProcess(["SIGKILL"])
      const fiber = yield* stopProcess({ pid: 4242, group: true, name: "provider pid 4242" }, "3 seconds").pipe(
        Effect.provide(p.layer),
        Effect.fork
      )
      yield* TestClock.adjust("2900 millis")
      assert.deepStrictEqual(yield* Ref.get(p.signals), ["group 4242 SIGTERM"])
      yield* TestClock.adjust("200 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "killed")
      assert.deepStrictEqual(yield* Ref.get(p.signals), ["group 4242 SIGTERM", "group 4242 SIGKILL"])
    }))

  it.effect("L-1 a group whose leader exits on SIGTERM but whose worker ignores it: the group gets SIGKILL at the grace", () =>
    Effect.gen(function*() {
      const p = yield* fakeProcess(["SIGTERM"], { diesOn: ["SIGKILL"] })
      const fiber = yield* stopProcess({ pid: 4242, group: true, name: "provider pid 4242" }, "3 seconds").pipe(
        Effect.provide(p.layer),
        Effect.fork
      )
      yield* TestClock.adjust("2900 millis")
      assert.deepStrictEqual(yield* Ref.get(p.signals), ["group 4242 SIGTERM"])
      yield* TestClock.adjust("200 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "killed")
      assert.deepStrictEqual(yield* Ref.get(p.signals), ["group 4242 SIGTERM", "group 4242 SIGKILL"])
    }))

  it.effect("L-1 a group whose leader had already exited still gets SIGTERM, then SIGKILL for its worker", () =>
    Effect.gen(function*() {
      const p = yield* fakeProcess(["SIGTERM"], { diesOn: ["SIGKILL"] })
      const fiber = yield* stopProcess({ pid: 4242, group: true, exited: Effect.succeed(true), name: "provider pid 4242" }, "3 seconds").pipe(
        Effect.provide(p.layer),
        Effect.fork
      )
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual(yield* Fiber.join(fiber), "killed")
      assert.deepStrictEqual(yield* Ref.get(p.signals), ["group 4242 SIGTERM", "group 4242 SIGKILL"])
    }))

  it.effect("H-4 a process that exits on SIGTERM is never SIGKILLed", () =>
    Effect.gen(function*() {
      const p = yield* fakeProcess(["SIGTERM"])
      const fiber = yield* stopProcess({ pid: 4242, group: false, name: "provider pid 4242" }, "10 seconds").pipe(
        Effect.provide(p.layer),
        Effect.fork
      )
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* Fiber.join(fiber), "terminated")
      assert.deepStrictEqual(yield* Ref.get(p.signals), ["4242 SIGTERM"])
    }))

  it.effect("E-2 a process that survives SIGKILL is reported after 5 s more, not waited on forever", () =>
    Effect.gen(function*() {
      const p = yield* fakeProcess([])
      const fiber = yield* stopProcess({ pid: 4242, group: false, name: "provider pid 4242" }, "10 seconds").pipe(
        Effect.provide(p.layer),
        Effect.fork
      )
      yield* TestClock.adjust("14900 millis")
      assert.isNull(fiber.unsafePoll())
      yield* TestClock.adjust("200 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "survived")
    }))

  it.effect("H-4 an interrupt (a second Ctrl-C) arriving during the grace does not skip the SIGKILL", () =>
    Effect.gen(function*() {
      const p = yield* fakeProcess(["SIGKILL"])
      const fiber = yield* stopProcess({ pid: 4242, group: true, name: "provider pid 4242" }, "3 seconds").pipe(
        Effect.provide(p.layer),
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      const interrupting = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* TestClock.adjust("3 seconds")
      yield* Fiber.join(interrupting)
      assert.deepStrictEqual(yield* Ref.get(p.signals), ["group 4242 SIGTERM", "group 4242 SIGKILL"])
    }))
})

describe("Exec.run and Exec.spawn against real processes", () => {
  const exec = Exec.Default

  it.effect("run returns the exit code, stdout and stderr; a missing binary has no code and says why", () =>
    Effect.gen(function*() {
      const e = yield* Exec
      const r = yield* e.run("sh", ["-c", "echo out; echo err >&2; exit 3"], { timeoutMs: 10_000 })
      assert.deepStrictEqual(r, { code: 3, stdout: "out\n", stderr: "err\n", error: null })
      const missing = yield* e.run("/nonexistent/autotune-tool", [], { timeoutMs: 10_000 })
      assert.isNull(missing.code)
      assert.include(missing.error, "ENOENT")
    }).pipe(Effect.provide(exec)))

  it.live("run kills a command that outlasts its timeout, and one whose fiber is interrupted", () =>
    Effect.gen(function*() {
      const e = yield* Exec
      const slow = yield* e.run("sleep", ["30"], { timeoutMs: 200 })
      assert.isNull(slow.code)
      assert.strictEqual(slow.error, "timed out after 200 ms")
      const pidFile = Path.join(tempDir(), "pid")
      const fiber = yield* Effect.fork(e.run("sh", ["-c", `echo $$ > ${pidFile}; exec sleep 30`], { timeoutMs: 60_000 }))
      yield* Effect.promise(() => waitFor(() => Fs.existsSync(pidFile) && Fs.readFileSync(pidFile, "utf8").endsWith("\n")))
      const pid = Number(Fs.readFileSync(pidFile, "utf8"))
      yield* Fiber.interrupt(fiber)
      yield* Effect.promise(() => waitFor(() => !pidAlive(pid), 5000))
      assert.isFalse(pidAlive(pid))
    }).pipe(Effect.provide(exec)))

  it.live("run is bounded even when the command leaves a child holding its output open (as execFile was)", () =>
    Effect.gen(function*() {
      const e = yield* Exec
      const pidFile = Path.join(tempDir(), "pid")
      const t0 = Date.now()
      // The shell is killed at the timeout; its `sleep` keeps stdout open for 30 s more.
      const r = yield* e.run("sh", ["-c", `sleep 30 & echo $! > ${pidFile}; wait`], { timeoutMs: 300 })
      const tookMs = Date.now() - t0
      const orphan = Number(Fs.readFileSync(pidFile, "utf8"))
      try {
        process.kill(orphan, "SIGKILL")
      } catch { /* gone */ }
      assert.strictEqual(r.error, "timed out after 300 ms")
      assert.isBelow(tookMs, 15_000) // far below the 30 s the pipe stays open
      // With ownGroup, the leftover child goes with the command.
      const groupPidFile = Path.join(tempDir(), "pid")
      const g = yield* e.run("sh", ["-c", `sleep 30 & echo $! > ${groupPidFile}; wait`], { timeoutMs: 300, ownGroup: true })
      assert.strictEqual(g.error, "timed out after 300 ms")
      const left = Number(Fs.readFileSync(groupPidFile, "utf8"))
      yield* Effect.promise(() => waitFor(() => !pidAlive(left), 5000))
      assert.isFalse(pidAlive(left))
    }).pipe(Effect.provide(exec)))

  it.live("run with ownGroup puts the command in a process group of its own (a terminal's Ctrl-C does not reach it)", () =>
    Effect.gen(function*() {
      const e = yield* Exec
      // /proc/self/stat field 5 is the process group id, field 1 the pid.
      const r = yield* e.run("sh", ["-c", "cut -d' ' -f1,5 /proc/$$/stat"], { timeoutMs: 10_000, ownGroup: true })
      const [pid, pgid] = r.stdout.trim().split(" ")
      assert.strictEqual(pgid, pid)
      const shared = yield* e.run("sh", ["-c", "cut -d' ' -f5 /proc/$$/stat"], { timeoutMs: 10_000 })
      // This process's group: after "pid (comm) state ppid", comm may hold spaces.
      const self = Fs.readFileSync("/proc/self/stat", "utf8")
      const ownPgid = Number(self.slice(self.lastIndexOf(")") + 2).split(" ")[2])
      assert.strictEqual(Number(shared.stdout.trim()), ownPgid)
    }).pipe(Effect.provide(exec)))

  it.live("spawn fails with SpawnFailed at once for a missing binary; a started child's exit is observed", () =>
    Effect.gen(function*() {
      const e = yield* Exec
      const missing = yield* e.spawn("/nonexistent/autotune-provider", [], { output: "ignore", ownGroup: true }).pipe(Effect.flip)
      assert.strictEqual(missing._tag, "SpawnFailed")
      assert.include(missing.message, "ENOENT")
      const child = yield* e.spawn("sh", ["-c", "exit 7"], { output: "ignore", ownGroup: true })
      assert.deepStrictEqual(yield* child.exited, { code: 7, signal: null })
      assert.isTrue(yield* child.hasExited)
    }).pipe(Effect.provide(exec)))
})
