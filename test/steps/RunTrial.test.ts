/**
 * A trial's own decisions before any measurement: the memory-estimate gate
 * (issue: llama-server, item 4: a cell estimated above the limit never reaches
 * the provider's start; with the estimate off it always does), and a provider
 * that answered ready, then exited (SPEC E-4, D-2).
 */
import { HttpClient, HttpClientResponse } from "@effect/platform"
import { Clock, Effect, Layer, Ref } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { ProviderStartFailed } from "../../src/domain/AutotuneError.js"
import { Knobs } from "../../src/domain/Knobs.js"
import { notesOf } from "../../src/domain/Verdict.js"
import { embedded } from "../../src/providers/Embedded.js"
import { CandidateProvider, serverWithoutProcess, type StubEvent } from "../../src/services/CandidateProvider.js"
import type { ProcessExit } from "../../src/domain/RunningServer.js"
import { runTrial, type TrialSettings } from "../../src/steps/RunTrial.js"
import { preWarm } from "../../src/steps/PreWarm.js"
import { CpuMeter } from "../../src/services/CpuMeter.js"
import { tinyModelPath } from "../support/models.js"

const settings = (estimate: boolean, memoryLimitGiB = 0.01): TrialSettings => ({
  adapter: embedded(null), targetContext: 256, maxTokens: 8, replyTokens: 8, gateTtftMs: 60_000, requestTimeoutMs: 120_000,
  readyTimeoutMs: 60_000, logDir: Os.tmpdir(), estimate, memoryLimitGiB, maxBackgroundCores: null
})

/** How far the trials' clock moves at each read, ms: each phase boundary read is its own instant (`stepping`). */
const STEP_MS = 1_000

/**
 * A clock that moves STEP_MS forward at every read of the time (sleeps are the real clock's): the trial's
 * phase times are then counts of its reads, the same on any machine.
 */
const stepping = (): Clock.Clock => {
  const real = Clock.make()
  let now = Date.parse("2026-12-07T00:00:00.000Z")
  const next = () => (now += STEP_MS)
  return {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: next,
    currentTimeMillis: Effect.sync(next),
    unsafeCurrentTimeNanos: () => BigInt(next()) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => BigInt(next()) * 1_000_000n),
    sleep: (d) => real.sleep(d)
  }
}

/**
 * Runs one trial of the tiny model (or `model`) on a stepping clock with a provider whose start only counts
 * and fails; `spawnedAt`: the clock's time (ms) when the start was asked for, null if it never was.
 */
const trial = (estimate: boolean, maxBatch: number | null = null, memoryLimitGiB = 0.01, model = tinyModelPath()) =>
  Effect.runPromise(Effect.gen(function*() {
    const journal = yield* Ref.make<ReadonlyArray<StubEvent>>([])
    const spawnedAt = yield* Ref.make<number | null>(null)
    const provider = CandidateProvider.Stub(
      (o) =>
        Clock.currentTimeMillis.pipe(
          Effect.flatMap((t) => Ref.set(spawnedAt, t)),
          Effect.zipRight(Effect.fail(new ProviderStartFailed({ model: o.spec.model, message: "stub: not started", exitCode: null, stderrTail: "" })))
        ),
      journal
    )
    const noHttp = Layer.succeed(HttpClient.HttpClient, HttpClient.make(() => Effect.die("no request expected")))
    const outcome = yield* runTrial(
      settings(estimate, memoryLimitGiB),
      { id: "tiny", model, rank: 1, paramCount: 15e6, ggufFile: true, fileBytes: null },
      new Knobs({ kvBits: null, maxContext: null, maxBatch, threads: null }),
      1,
      null
    ).pipe(Effect.provide(Layer.mergeAll(provider, noHttp, CpuMeter.Stub(() => 0))), Effect.withClock(stepping()))
    const starts = (yield* Ref.get(journal)).flatMap((e) => (e._tag === "Start" ? [e.options.spec.knobs.maxBatch] : []))
    return { outcome, starts, spawnedAt: yield* Ref.get(spawnedAt) }
  }))

describe("memory estimate before launch (issue: llama-server, item 4)", () => {
  it("a cell estimated above --memory-limit is infeasible as 'estimated …' and its provider is never started", async () => {
    const r = await trial(true)
    expect(r.starts).toEqual([])
    expect(r.outcome.verdict._tag).toBe("EstimatedOver")
    expect(notesOf(r.outcome.verdict)).toMatch(/^estimated \d+\.\d GiB > 0\.0 GiB available$/)
    expect(r.outcome.phases.loadMs).toBeNull()
    // The time before the decision not to start it: at least the read that ended it.
    expect(r.outcome.phases.preLoadMs).toBeGreaterThanOrEqual(STEP_MS)
    expect(r.outcome.nErr).toBe(0) // no request was sent
  })
  it("C-3 D-2 the outcome places the spawn: startedAt + preLoadMs (the pre-load check and the estimate) is the instant the start was asked for", async () => {
    const r = await trial(true, null, 1024)
    expect(r.starts).toEqual([null])
    expect(r.outcome.load?.estimatedBytes).toBeGreaterThan(0) // the estimate ran before the start
    expect(r.outcome.phases.preLoadMs).toBeGreaterThanOrEqual(STEP_MS)
    // Where the provider's phases begin (what the bench places its windows by): the read just before the
    // provider's own, one step before it; then the load clock's end one step after. (Exact: a clock read added
    // between them, a log line or a span, moves it by a step and fails here. The pre-load check and the
    // estimate read no Effect clock, so where the pre-load begins is startedAt's, not pinned here.)
    expect(r.spawnedAt).toBe(Date.parse(r.outcome.startedAt) + r.outcome.phases.preLoadMs! + STEP_MS)
    expect(r.outcome.phases.loadMs).toBe(2 * STEP_MS)
  })
  it("D-2 a corrupt GGUF never starts: no load, and the time of its pre-load check is recorded", async () => {
    const bad = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "run-trial-")), "bad.gguf")
    Fs.writeFileSync(bad, "GGUF but not really a model file")
    const r = await trial(true, null, 1024, bad)
    expect(r.starts).toEqual([])
    expect(r.outcome.verdict._tag).toBe("Integrity")
    expect(r.outcome.phases.loadMs).toBeNull()
    expect(r.outcome.phases.preLoadMs).toBeGreaterThanOrEqual(STEP_MS)
  })
  it("--no-estimate: the same cell is started whatever the limit", async () => {
    const r = await trial(false)
    expect(r.starts).toEqual([null])
    expect(r.outcome.verdict._tag).toBe("StartFailed")
    expect(notesOf(r.outcome.verdict)).toContain("stub: not started")
  })
})

/**
 * One trial against a started stand-in provider whose process exited `exit` within 200 ms of ready
 * (null: it did not; an Effect: what asking it does), whose output ends with `tail`, and whose
 * requests answer HTTP 503, all of them or (`answered` > 0) all but the first `answered`, which stream
 * one token.
 */
const diedAfterReady = (exit: ProcessExit | null | Effect.Effect<ProcessExit | null>, tail: string, answered = 0) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const provider = CandidateProvider.Stub(() =>
      Effect.succeed({
        ...serverWithoutProcess("http://127.0.0.1:9", "tiny"),
        outputTail: Effect.succeed(tail),
        exitedAfterReady: Effect.isEffect(exit) ? exit : Effect.succeed(exit)
      })
    )
    return yield* runTrial(
      settings(false),
      { id: "tiny", model: tinyModelPath(), rank: 1, paramCount: 15e6, ggufFile: true, fileBytes: null },
      new Knobs({ kvBits: null, maxContext: null, maxBatch: null, threads: null }),
      1,
      null
    ).pipe(Effect.provide(Layer.mergeAll(provider, answering(answered), CpuMeter.Stub(() => 0))))
  })))

/** An HttpClient whose first `answered` requests stream one token, and every later one answers HTTP 503. */
const answering = (answered: number) => {
  let sent = 0
  const token = `data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":1}}\n\ndata: [DONE]\n\n`
  return Layer.succeed(
    HttpClient.HttpClient,
    HttpClient.make((request) =>
      Effect.succeed(HttpClientResponse.fromWeb(
        request,
        sent++ < answered
          ? new Response(token, { status: 200, headers: { "content-type": "text/event-stream" } })
          : new Response("", { status: 503 })
      )))
  )
}

describe("a provider that answers ready, then exits (SPEC E-4, D-2)", () => {
  it("E-4 exited within 200 ms of ready, its first requests failed: the start failed, with the exit code and its output", async () => {
    const o = await diedAfterReady({ code: 1, signal: null }, "fatal: backend crashed after start")
    expect(o.verdict._tag).toBe("StartFailed")
    expect(notesOf(o.verdict)).toBe("provider answered /v1/models then exited (exit code 1): fatal: backend crashed after start")
  })
  it("E-4 still running 200 ms after ready: the pre-warm's own failure", async () => {
    const o = await diedAfterReady(null, "fatal: backend crashed after start")
    expect(o.verdict._tag).toBe("RequestFailed")
    expect(notesOf(o.verdict)).toMatch(/^pre-warm: HTTP 503/)
  })
  it("E-4 a first request answered, a later one failed: the pre-warm's own failure, and the exit is not asked", async () => {
    const o = await diedAfterReady(Effect.die("exitedAfterReady asked after an answered request"), "fatal: backend crashed", 1)
    expect(o.verdict._tag).toBe("RequestFailed")
    expect(notesOf(o.verdict)).toMatch(/^pre-warm: HTTP 503/)
  })
  it("E-4 of two first requests at once (two slots), one answered: the process served; both failed: it had not", async () => {
    const firstUse = (answered: number) =>
      Effect.runPromise(preWarm(serverWithoutProcess("http://127.0.0.1:9", "tiny"), {
        targetContext: 256, concurrent: 2, timeoutMs: 10_000, boundMs: null, gateTtftMs: 60_000, known: null, countsTokens: false, fullLength: true
      }).pipe(Effect.provide(answering(answered)), Effect.map((r) => (r._tag === "Failed" ? r.firstUse === true : "warm"))))
    expect(await firstUse(1)).toBe(false)
    expect(await firstUse(0)).toBe(true)
  })
  it("D-2 E-4 one whose output names a missing tokenizer is an integrity failure", async () => {
    const o = await diedAfterReady({ code: null, signal: "SIGABRT" }, "Required configuration file missing: tokenizer.json")
    expect(o.verdict._tag).toBe("Integrity")
    expect(notesOf(o.verdict)).toContain("provider answered /v1/models then exited (SIGABRT)")
  })
})
