import { assert, describe, it } from "@effect/vitest"
import { type Console, Effect, Exit, FiberId, Schema, Scope } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Readline from "node:readline"
import { ProviderConflict, RunLocked } from "../../src/domain/AutotuneError.js"
import { exitCodeOf, fromExit } from "../../src/domain/ExitReason.js"
import { embedded } from "../../src/providers/Embedded.js"
import { macProvider } from "../../src/providers/MacProvider.js"
import { adapterBinary } from "../../src/providers/ProviderAdapter.js"
import { acquireRunLock, dbLockPath, LockHolder, providerLockPath } from "../../src/system/RunLock.js"
import { tempDir } from "../support/cli.js"
import { repoRoot } from "../support/models.js"
import * as Os from "node:os"
import { bootId, startTicks } from "../../src/system/ProcessIdentity.js"

const decodeHolder = Schema.decodeUnknownSync(Schema.parseJson(LockHolder))
const holderOf = (lockPath: string) => decodeHolder(Fs.readFileSync(lockPath, "utf8"))
const writeHolder = (lockPath: string, pid: number) =>
  Fs.writeFileSync(lockPath, JSON.stringify({ pid, started_at: new Date().toISOString(), argv: ["node", "other"] }))

/** The pid of a process that has exited (and been reaped): a dead holder. */
const deadPid = Effect.promise(() =>
  new Promise<number>((resolve, reject) => {
    const child = ChildProcess.spawn(process.execPath, ["-e", ""], { stdio: "ignore" })
    child.on("error", reject)
    child.on("exit", () => resolve(child.pid!))
  })
)

/** A live process that is not this one (EPERM or not, it counts as alive). */
const otherLivePid = 1

/** Acquires `paths` in a scope of its own; returns the scope (close it to release) and the result. */
const acquireIn = (paths: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const exit = yield* acquireRunLock(paths).pipe(Scope.extend(scope), Effect.exit)
    return { scope, exit }
  })

/** Lines `self` writes with Console.error (stderr in the CLI). */
const stderrOf = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const console = yield* Effect.console
    const capture: Console.Console = { ...console, error: (...args) => Effect.sync(() => void lines.push(args.join(" "))) }
    const a = yield* Effect.withConsole(self, capture)
    return { a, lines }
  })

describe("run lock (issue: one run at a time)", () => {
  it.scopedLive("acquire writes {pid, started_at, argv} per path; closing the scope deletes them", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const a = Path.join(dir, "runs.db.lock")
      const b = Path.join(dir, "locks", "macprovider-x.lock")
      const { exit, scope } = yield* acquireIn([a, b])
      assert.isTrue(Exit.isSuccess(exit))
      for (const p of [a, b]) {
        const h = holderOf(p)
        assert.strictEqual(h.pid, process.pid)
        assert.deepStrictEqual(h.argv, process.argv)
        assert.isFalse(Number.isNaN(Date.parse(h.started_at)))
      }
      assert.deepStrictEqual(Fs.readdirSync(Path.join(dir, "locks")), ["macprovider-x.lock"]) // no temp file left
      yield* Scope.close(scope, Exit.void)
      assert.isFalse(Fs.existsSync(a))
      assert.isFalse(Fs.existsSync(b))
    }))

  it.scopedLive("a second acquire fails with RunLocked naming the holder's pid and the path; the holder keeps its lock", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const lock = Path.join(dir, "runs.db.lock")
      const first = yield* acquireIn([lock])
      const before = Fs.readFileSync(lock, "utf8")
      const second = yield* acquireIn([lock])
      const error = yield* Effect.flip(second.exit)
      assert.instanceOf(error, RunLocked)
      assert.strictEqual(error.holderPid, process.pid)
      assert.strictEqual(error.lockPath, lock)
      assert.include(error.message, `pid ${process.pid}`)
      assert.include(error.message, lock)
      // SPEC H-2: exit_reason provider_conflict; sysexits.h EX_TEMPFAIL: exit code 75.
      assert.strictEqual(fromExit(second.exit), "provider_conflict")
      assert.strictEqual(exitCodeOf(second.exit), 75)
      yield* Scope.close(second.scope, second.exit)
      assert.strictEqual(Fs.readFileSync(lock, "utf8"), before)
      yield* Scope.close(first.scope, Exit.void)
      assert.isFalse(Fs.existsSync(lock))
    }))

  it.scopedLive("refused on the second of two paths: the first, already taken, is released with the scope", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const a = Path.join(dir, "a.lock")
      const b = Path.join(dir, "b.lock")
      writeHolder(b, otherLivePid)
      const { exit, scope } = yield* acquireIn([b, a]) // taken in sorted order: a, then b
      assert.strictEqual((yield* Effect.flip(exit)).holderPid, otherLivePid)
      assert.isTrue(Fs.existsSync(a))
      yield* Scope.close(scope, exit)
      assert.isFalse(Fs.existsSync(a))
      assert.strictEqual(holderOf(b).pid, otherLivePid)
    }))

  it.scopedLive("a stale lock (its pid is dead) is taken over and announced on stderr", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const lock = Path.join(dir, "runs.db.lock")
      const dead = yield* deadPid
      writeHolder(lock, dead)
      const { a: { exit, scope }, lines } = yield* stderrOf(acquireIn([lock]))
      assert.isTrue(Exit.isSuccess(exit))
      assert.strictEqual(holderOf(lock).pid, process.pid)
      assert.deepStrictEqual(lines, [`autotune: taking over stale lock ${lock} from pid ${dead}`])
      assert.deepStrictEqual(Fs.readdirSync(dir), ["runs.db.lock"]) // guard and temp files gone
      yield* Scope.close(scope, Exit.void)
      assert.isFalse(Fs.existsSync(lock))
    }))

  it.scopedLive("a lock whose pid now belongs to a process started at another time (reused) is stale; one from another host never is", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      // pid 1 runs, but it did not start at tick 1 (it is not the process that wrote the lock).
      const reused = Path.join(dir, "reused.lock")
      Fs.writeFileSync(reused, JSON.stringify({
        pid: 1, host: Os.hostname(), boot_id: bootId(), start_ticks: (startTicks(1) ?? 0) + 1,
        started_at: new Date().toISOString(), argv: ["node", "other"]
      }))
      const took = yield* stderrOf(acquireIn([reused]))
      assert.isTrue(Exit.isSuccess(took.a.exit))
      assert.deepStrictEqual(took.lines, [`autotune: taking over stale lock ${reused} from pid 1`])
      yield* Scope.close(took.a.scope, Exit.void)
      // Written on another host (a shared directory), with a pid that is dead here: still held.
      const elsewhere = Path.join(dir, "elsewhere.lock")
      const dead = yield* deadPid
      Fs.writeFileSync(elsewhere, JSON.stringify({
        pid: dead, host: `${Os.hostname()}-other`, boot_id: null, start_ticks: null, started_at: new Date().toISOString(), argv: []
      }))
      const refused = yield* acquireIn([elsewhere])
      assert.strictEqual((yield* Effect.flip(refused.exit)).holderPid, dead)
      yield* Scope.close(refused.scope, refused.exit)
      // What this process writes identifies it.
      const own = Path.join(dir, "own.lock")
      const mine = yield* acquireIn([own])
      assert.deepStrictEqual(
        [holderOf(own).host, holderOf(own).boot_id, holderOf(own).start_ticks],
        [Os.hostname(), bootId(), startTicks(process.pid)]
      )
      yield* Scope.close(mine.scope, Exit.void)
    }))

  for (const [name, raw] of [["empty (a crash mid-write)", ""], ["truncated JSON", `{"pid": 12`], ["pid 0", `{"pid":0,"started_at":"x","argv":[]}`]] as const) {
    it.scopedLive(`a corrupt lock file, ${name}, is taken over`, () =>
      Effect.gen(function*() {
        const dir = tempDir()
        const lock = Path.join(dir, "runs.db.lock")
        Fs.writeFileSync(lock, raw)
        const { a: { exit, scope }, lines } = yield* stderrOf(acquireIn([lock]))
        assert.isTrue(Exit.isSuccess(exit))
        assert.strictEqual(holderOf(lock).pid, process.pid)
        assert.deepStrictEqual(lines, [`autotune: taking over stale lock ${lock} from an unreadable holder`])
        yield* Scope.close(scope, Exit.void)
        assert.isFalse(Fs.existsSync(lock))
      }))
  }

  it.scopedLive("release does not delete a lock someone else holds now", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const lock = Path.join(dir, "runs.db.lock")
      const { exit, scope } = yield* acquireIn([lock])
      assert.isTrue(Exit.isSuccess(exit))
      writeHolder(lock, otherLivePid) // e.g. taken over after our pid was wrongly judged dead
      const theirs = Fs.readFileSync(lock, "utf8")
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(Fs.readFileSync(lock, "utf8"), theirs)
    }))

  it.scopedLive("a live takeover guard refuses, naming the run taking over; a stale guard is itself taken over", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const lock = Path.join(dir, "runs.db.lock")
      writeHolder(lock, yield* deadPid)
      writeHolder(`${lock}.takeover`, otherLivePid)
      const refused = yield* stderrOf(acquireIn([lock]))
      const error = yield* Effect.flip(refused.a.exit)
      assert.strictEqual(error.holderPid, otherLivePid)
      assert.strictEqual(error.lockPath, lock)

      const deadGuard = yield* deadPid
      writeHolder(`${lock}.takeover`, deadGuard)
      const { a: { exit, scope }, lines } = yield* stderrOf(acquireIn([lock]))
      assert.isTrue(Exit.isSuccess(exit))
      assert.strictEqual(holderOf(lock).pid, process.pid)
      assert.include(lines.join("\n"), `taking over stale lock ${lock}.takeover from pid ${deadGuard}`)
      assert.deepStrictEqual(Fs.readdirSync(dir), ["runs.db.lock"])
      yield* Scope.close(scope, Exit.void)
    }))

  it.scopedLive("of eight processes released at once onto one stale lock, exactly one holds it", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const lock = Path.join(dir, "runs.db.lock")
      writeHolder(lock, yield* deadPid)
      const racers = yield* Effect.acquireRelease(
        Effect.sync(() =>
          Array.from({ length: 8 }, () => {
            const child = ChildProcess.spawn(
              process.execPath,
              ["--import", "tsx", Path.join(repoRoot, "test", "support", "lockRacer.ts"), lock],
              { cwd: repoRoot, stdio: ["pipe", "pipe", "inherit"] }
            )
            const out = Readline.createInterface({ input: child.stdout })
            const line = () =>
              new Promise<string>((resolve) => {
                out.once("line", resolve)
                out.once("close", () => resolve("exited")) // a crashed racer fails the test instead of hanging it
              })
            return { child, line }
          })
        ),
        (rs) => Effect.sync(() => rs.forEach((r) => r.child.kill("SIGKILL")))
      )
      yield* Effect.promise(() => Promise.all(racers.map((r) => r.line()))) // all "ready"
      const results = racers.map((r) => r.line())
      racers.forEach((r) => r.child.stdin!.write("go\n"))
      const outcomes = yield* Effect.promise(() => Promise.all(results))
      const winners = racers.filter((_, i) => outcomes[i] === "held")
      assert.strictEqual(winners.length, 1, outcomes.join(", "))
      const winner = winners[0]!.child.pid!
      assert.strictEqual(holderOf(lock).pid, winner)
      for (const o of outcomes) if (o !== "held") assert.match(o, /^refused \d+$/)
      yield* Effect.promise(() =>
        new Promise<void>((resolve) => {
          winners[0]!.child.once("exit", () => resolve())
          racers.forEach((r) => r.child.stdin!.end())
        })
      )
      assert.isFalse(Fs.existsSync(lock))
    }), 60_000)
})

describe("exit code of a refused run (SPEC H-2, sysexits.h)", () => {
  it("RunLocked exits 75 (EX_TEMPFAIL); every other exit keeps the code of its exit_reason", () => {
    const locked = Exit.fail(new RunLocked({ holderPid: 1, lockPath: "/x.lock", message: "m" }))
    assert.strictEqual(fromExit(locked), "provider_conflict")
    assert.strictEqual(exitCodeOf(locked), 75)
    assert.strictEqual(exitCodeOf(Exit.void), 0)
    assert.strictEqual(exitCodeOf(Exit.interrupt(FiberId.none)), 130)
    assert.strictEqual(exitCodeOf(Exit.fail(new ProviderConflict({ message: "m" }))), 4)
    assert.strictEqual(exitCodeOf(Exit.die(new Error("bug"))), 1)
  })
})

describe("run lock paths", () => {
  it("the database lock sits next to the database; the provider lock is keyed by provider and resolved binary", () => {
    assert.strictEqual(dbLockPath("rel/runs.db"), Path.resolve("rel/runs.db") + ".lock")
    const fake = Path.join(repoRoot, "fixtures", "fake-provider.mjs")
    const viaRelative = providerLockPath(adapterBinary(macProvider(Path.relative(process.cwd(), fake))), "/d")
    assert.strictEqual(viaRelative, providerLockPath(adapterBinary(macProvider(fake)), "/d"))
    assert.match(viaRelative, /^\/d\/locks\/macprovider-[0-9a-f]{40}\.lock$/)
    assert.notStrictEqual(providerLockPath(adapterBinary(embedded(fake)), "/d"), viaRelative)
    assert.match(providerLockPath(adapterBinary(embedded(null)), "/d"), /^\/d\/locks\/embedded-[0-9a-f]{40}\.lock$/)
  })
})
