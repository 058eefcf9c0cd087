/**
 * The drain of a service job through a stand-in service manager (SPEC E-2,
 * L-2): journaled before anything stops, stopped for the run, started again
 * exactly once when the run's scope closes (on success and on failure), the
 * journal then removed; a journal left by a dead tuner is restored once, one
 * of a live tuner left alone. Foreground providers are drained for real in
 * test/Drain.e2e.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Ref, Scope, TestClock } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Exec } from "../../src/services/Exec.js"
import { ProcessTable } from "../../src/services/ProcessTable.js"
import { ServiceManager } from "../../src/services/ServiceManager.js"
import { drain, restoreJournaled } from "../../src/steps/Drain.js"
import type { Findings, PreflightOptions } from "../../src/steps/Preflight.js"
import { DrainJournal, readJournal, writeJournal } from "../../src/system/DrainJournal.js"
import { ProcessIdentity, selfIdentity } from "../../src/system/ProcessIdentity.js"
import { tempDir } from "../support/cli.js"

const jobRunning: Findings = { kind: "systemd", label: "provider.service", jobRunning: true, jobPid: null, foreground: [] }
const preflight: PreflightOptions = { serviceManager: "systemd", serviceLabel: "provider.service", providerBinary: "macprovider-cli", providerSubcommand: "serve" }

/** A service manager whose job is stopped by `stop` and running again after `start`, journaling both. */
const manager = (journal: Ref.Ref<ReadonlyArray<string>>) =>
  Layer.succeed(ServiceManager, ServiceManager.make({
    resolve: () => Effect.succeed("systemd"),
    jobState: () =>
      Effect.map(Ref.get(journal), (ls) => (ls.at(-1) === "stop provider.service" ? { _tag: "Loaded" } : { _tag: "Running", pid: null })),
    stopJob: (_, label) => Ref.update(journal, (ls) => [...ls, `stop ${label}`]),
    startJob: (_, label) => Ref.update(journal, (ls) => [...ls, `start ${label}`])
  }))

describe("drain of a service job (SPEC E-2, L-2)", () => {
  it.effect("E-2 a job whose process does not exit after the stop fails the drain (after DRAIN_GRACE), and the job is restored", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make<ReadonlyArray<string>>([])
      const file = Path.join(tempDir(), "runs.db.drain.json")
      const scope = yield* Scope.make()
      // The job's main process (pid 4242) never exits.
      const stuck = Layer.succeed(Exec, Exec.make({
        run: () => Effect.die("no command expected"),
        spawn: () => Effect.die("no spawn expected"),
        signal: () => Effect.succeed(true),
        alive: () => Effect.succeed(true),
        groupAlive: () => Effect.succeed(true)
      }))
      const fiber = yield* drain({ ...jobRunning, jobPid: 4242 }, { restartForeground: false, journal: file, preflight }).pipe(
        Scope.extend(scope),
        Effect.provide(Layer.mergeAll(manager(calls), ProcessTable.Stub([]), stuck)),
        Effect.either,
        Effect.fork
      )
      yield* TestClock.adjust("9 seconds")
      assert.isNull(fiber.unsafePoll())
      yield* TestClock.adjust("2 seconds")
      const r = yield* fiber.await.pipe(Effect.flatten)
      assert.isTrue(r._tag === "Left" && r.left.message.includes("the job's process pid 4242 still runs 10s after the stop"))
      yield* Scope.close(scope, Exit.void).pipe(Effect.provide(Layer.mergeAll(manager(calls), stuck)))
      assert.deepStrictEqual(yield* Ref.get(calls), ["stop provider.service", "start provider.service"])
    }))

  it.effect("L-2 a journaled foreground provider that still runs (never stopped) is not started a second time", () =>
    Effect.gen(function*() {
      const file = Path.join(tempDir(), "runs.db.drain.json")
      // This very test process stands for a provider that was journaled and never stopped.
      const self = Fs.readFileSync("/proc/self/cmdline", "utf8").split("\0").filter((a, i, all) => !(a === "" && i === all.length - 1))
      writeJournal(file, new DrainJournal({
        tuner: new ProcessIdentity({ pid: 1, start_ticks: -1 }), drained_at: "2026-12-05T00:00:00.000Z", kind: "none",
        label: "x", job: false, foreground: [{ pid: process.pid, argv: self, cwd: null, env: null }], restart_foreground: true
      }))
      const spawned = yield* Ref.make(0)
      const counting = Layer.succeed(Exec, Exec.make({
        run: () => Effect.die("no command expected"),
        spawn: () => Effect.zipRight(Ref.update(spawned, (n) => n + 1), Effect.die("must not restart a running provider")),
        signal: () => Effect.succeed(true),
        alive: () => Effect.succeed(true),
        groupAlive: () => Effect.succeed(true)
      }))
      const running = ProcessTable.Stub([{ pid: process.pid, ppid: 1, argv: self }])
      const r = yield* restoreJournaled(file).pipe(Effect.provide(Layer.mergeAll(ServiceManager.Stub("none", { _tag: "Absent" }), counting, running)))
      assert.deepStrictEqual(r, { _tag: "Restored", failed: [] })
      assert.strictEqual(yield* Ref.get(spawned), 0)
      assert.isFalse(Fs.existsSync(file))
    }))

  it.effect("L-2 a journal written on another host (a shared data directory) is never restored here, and stays", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make<ReadonlyArray<string>>([])
      const file = Path.join(tempDir(), "runs.db.drain.json")
      writeJournal(file, new DrainJournal({
        tuner: new ProcessIdentity({ pid: 4242, host: "another-host.example", boot_id: null, start_ticks: null }),
        drained_at: "2026-12-05T00:00:00.000Z", kind: "systemd", label: "provider.service", job: true, foreground: [],
        restart_foreground: false
      }))
      const r = yield* restoreJournaled(file).pipe(
        Effect.provide(Layer.mergeAll(ServiceManager.Stub("systemd", { _tag: "Loaded" }, calls), Exec.Default, ProcessTable.Stub([])))
      )
      assert.deepStrictEqual(r, { _tag: "Elsewhere", host: "another-host.example" })
      assert.deepStrictEqual(yield* Ref.get(calls), [])
      assert.isTrue(Fs.existsSync(file))
    }))

  it.effect("L-2 a drain never overwrites an earlier drain's journal: it refuses, stopping nothing", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make<ReadonlyArray<string>>([])
      const file = Path.join(tempDir(), "runs.db.drain.json")
      Fs.writeFileSync(file, "{}")
      const r = yield* Effect.scoped(drain(jobRunning, { restartForeground: false, journal: file, preflight })).pipe(
        Effect.provide(Layer.mergeAll(manager(calls), ProcessTable.Stub([]), Exec.Default)),
        Effect.either
      )
      assert.isTrue(r._tag === "Left" && r.left.message.includes("an earlier drain's journal is still there"))
      assert.deepStrictEqual(yield* Ref.get(calls), [])
      assert.strictEqual(Fs.readFileSync(file, "utf8"), "{}")
    }))

  for (const [name, ending] of [["a finished run", Exit.void], ["a failed run", Exit.fail("boom")]] as const) {
    it.effect(`E-2 L-2 the job is journaled, stopped for the run, and started again once when ${name} closes its scope; the journal goes`, () =>
      Effect.gen(function*() {
        const calls = yield* Ref.make<ReadonlyArray<string>>([])
        const file = Path.join(tempDir(), "runs.db.drain.json")
        const scope = yield* Scope.make()
        const fiber = yield* drain(jobRunning, { restartForeground: false, journal: file, preflight }).pipe(
          Scope.extend(scope),
          Effect.provide(Layer.mergeAll(manager(calls), ProcessTable.Stub([]), Exec.Default)),
          Effect.fork
        )
        yield* TestClock.adjust("1 second") // the provider must stay down for DRAIN_SETTLE
        assert.isTrue(yield* fiber.await.pipe(Effect.flatten))
        assert.deepStrictEqual(yield* Ref.get(calls), ["stop provider.service"])
        const journaled = readJournal(file)
        assert.isTrue(journaled._tag === "Some" && journaled.value !== "Unreadable" && journaled.value.job)
        yield* Scope.close(scope, ending).pipe(Effect.provide(Layer.mergeAll(manager(calls), Exec.Default)))
        assert.deepStrictEqual(yield* Ref.get(calls), ["stop provider.service", "start provider.service"])
        assert.isFalse(Fs.existsSync(file))
      }))
  }

  it.effect("E-2 a job that a supervisor brings straight back is a conflict, and what was stopped is still restored", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make<ReadonlyArray<string>>([])
      const file = Path.join(tempDir(), "runs.db.drain.json")
      const scope = yield* Scope.make()
      // Its state stays "running" whatever the stop did.
      const stubborn = ServiceManager.Stub("systemd", { _tag: "Running", pid: null }, calls)
      const fiber = yield* drain(jobRunning, { restartForeground: false, journal: file, preflight }).pipe(
        Scope.extend(scope),
        Effect.provide(Layer.mergeAll(stubborn, ProcessTable.Stub([]), Exec.Default)),
        Effect.either,
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      const r = yield* fiber.await.pipe(Effect.flatten)
      assert.isTrue(r._tag === "Left" && r.left.message.includes("running again after the drain"))
      yield* Scope.close(scope, Exit.void)
      // systemd: the start is sent anyway (a no-op for a unit that runs).
      assert.deepStrictEqual(yield* Ref.get(calls), ["stop provider.service", "start provider.service"])
    }))

  it.effect("L-2 a journal found under the database lock is restored exactly once; a failed restore stays journaled for the next try", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make<ReadonlyArray<string>>([])
      const layer = Layer.mergeAll(ServiceManager.Stub("systemd", { _tag: "Loaded" }, calls), Exec.Default, ProcessTable.Stub([]))
      const file = Path.join(tempDir(), "runs.db.drain.json")
      const journal = (tuner: ProcessIdentity) =>
        new DrainJournal({
          tuner, drained_at: "2026-12-05T00:00:00.000Z", kind: "systemd", label: "provider.service", job: true,
          foreground: [], restart_foreground: false
        })
      // A start that fails keeps the journal; the next restore tries again.
      const failing = Layer.mergeAll(
        Layer.succeed(ServiceManager, ServiceManager.make({
          resolve: () => Effect.succeed("systemd"),
          jobState: () => Effect.succeed({ _tag: "Loaded" }),
          stopJob: () => Effect.void,
          startJob: () => Effect.fail("systemctl --user start provider.service: Unit not found")
        })),
        Exec.Default,
        ProcessTable.Stub([])
      )
      writeJournal(file, journal(new ProcessIdentity({ ...selfIdentity(), start_ticks: -1 })))
      const failed = yield* restoreJournaled(file).pipe(Effect.provide(failing))
      assert.deepStrictEqual(failed, { _tag: "Restored", failed: ["systemd job provider.service: systemctl --user start provider.service: Unit not found"] })
      assert.isTrue(Fs.existsSync(file))
      assert.deepStrictEqual(yield* restoreJournaled(file).pipe(Effect.provide(layer)), { _tag: "Restored", failed: [] })
      assert.deepStrictEqual(yield* restoreJournaled(file).pipe(Effect.provide(layer)), { _tag: "None" })
      assert.deepStrictEqual(yield* Ref.get(calls), ["start provider.service"])
      assert.isFalse(Fs.existsSync(file))
    }))
})
