/**
 * Candidate providers as scoped resources (SPEC E-3, E-4): each start spawns
 * the provider (through the process seam, `Exec`) on a free loopback port with
 * its output in a per-start log file, waits until it is ready, and stops its
 * whole process group when the caller's Scope closes.
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Clock, Data, Duration, Effect, identity, Layer, Option, Ref, Schedule, type Scope } from "effect"
import { fileURLToPath } from "node:url"
import { ProviderStartFailed } from "../domain/AutotuneError.js"
import { exitText, type ProcessExit, type RunningServer } from "../domain/RunningServer.js"
import type { LaunchSpec } from "../domain/LaunchSpec.js"
import { groupResidentBytesFromPs, groupResidentSampler } from "../system/GroupMemory.js"
import { freePort } from "../system/Ports.js"
import { Exec, stopProcess } from "./Exec.js"

/**
 * How long a stopping candidate gets after SIGTERM before SIGKILL (STYLE: bound
 * every wait; at most 10 s). A candidate holds no state worth a clean exit, and
 * llama-server finishes the prefill chunk a gate cut abandoned before it exits:
 * measured up to 10 s for the 1.1B model (bench), all of it tune time. The
 * operator's own provider keeps its longer grace (steps/Drain.ts DRAIN_GRACE).
 */
export const STOP_GRACE = Duration.seconds(3)

/**
 * The grace of a candidate whose trial the gate has decided (`RunningServer.decided`):
 * what it does after the cut is never measured, so it is not waited for (issue 14: the
 * bench's llama-server tune spent ~22 s in stops, most of it 1.1B prefills a gate cut
 * abandoned). Long enough for a provider that does honour SIGTERM at once (an idle
 * llama-server, alone or under bin/provider-shim.mjs, had its whole group gone 15–25 ms
 * after SIGTERM, 2026-12-07); the SIGKILL after it is expected, so not announced (an
 * embedded provider finishing a prefill chunk and disposing its model often takes
 * longer). Was 0.5 s: each gated-out candidate then cost 0.3 s more between trials.
 */
export const DECIDED_STOP_GRACE = Duration.millis(200)

/**
 * How often readiness is asked while a candidate starts (SPEC E-4, E-5): each ask is a refused
 * connection or a 503 until it is ready, ~1 ms of the tuner's time; what is lost is half of it on
 * average per start (issue 14: 0.05 s of an embedded start of ~0.6 s at the former 100 ms).
 */
export const READY_POLL = Duration.millis(25)

/**
 * How long a candidate must stay alive after its first 200 to have started (SPEC E-4: "still alive
 * after that answer"): a process that dies as it answers (fixtures/fake-provider.mjs models-then-die,
 * 5 ms after, through the launch shim) is a start failure with its exit code and output tail; a death
 * later than this is the pre-warm's provider death (G-1), infeasible all the same. Checked after the
 * fact (`RunningServer.exitedAfterReady`, when the pre-warm's first request fails), not waited for:
 * a wait was 0.2 s of every start (issue 14).
 */
export const ALIVE_AFTER_READY = Duration.millis(200)

/** The start's failure of a provider that answered ready, then exited (SPEC E-4): here, or found later by RunTrial. */
export const answeredThenExited = (x: ProcessExit): string => `provider answered /v1/models then exited (${exitText(x)})`

/** Bytes of the log file read for an output tail (SPEC E-4): enough for llama.cpp's error line above its exit chatter. */
const TAIL_BYTES = 8192

/** The last `TAIL_BYTES` of a file, as text, never failing. */
export const fileTail = (file: string): Effect.Effect<string> =>
  Effect.sync(() => {
    try {
      const fd = fs.openSync(file, "r")
      try {
        const size = fs.fstatSync(fd).size
        const len = Math.min(size, TAIL_BYTES)
        const buf = Buffer.alloc(len)
        fs.readSync(fd, buf, 0, len, size - len)
        return buf.toString("utf8").trim().split("\n").slice(-40).join("\n")
      } finally {
        fs.closeSync(fd)
      }
    } catch {
      return ""
    }
  })

const safeName = (model: string) => path.basename(model).replace(/\.gguf$/i, "").replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 80)

/** A readiness answer that waiting will not change (401, 403). */
class Refused extends Data.TaggedError("Refused")<{ readonly path: string; readonly status: number }> {}

/** bin/provider-shim.mjs: runs a provider and kills it when this process is gone. */
export const providerShim = fileURLToPath(new URL("../../bin/provider-shim.mjs", import.meta.url))

/**
 * The environment a candidate gets: this process's, without llama.cpp's
 * `LLAMA_ARG_*` settings and `LLAMA_API_KEY*` (llama-server reads them for any
 * flag not given, so an "unset" knob or an API key would change what is
 * measured without the trial row saying so).
 */
export const candidateEnv = (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv =>
  Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith("LLAMA_ARG_") && !k.startsWith("LLAMA_API_KEY")))

/**
 * Where the provider shim (bin/provider-shim.mjs) finds the `NODE_EXTRA_CA_CERTS` it hands back to the
 * provider it runs (`ownNodeEnv`).
 */
export const SHIM_CA_CERTS_VAR = "AUTOTUNE_PROVIDER_NODE_EXTRA_CA_CERTS"

/**
 * The environment `env` for a Node process of this project's own that opens no TLS connection (the
 * provider shim; `autotune serve`, the embedded provider, which serves loopback HTTP from a local file):
 * without `NODE_EXTRA_CA_CERTS`, which Node 20 reads and parses at every start, before any of the
 * process's code (the whole CA bundle: `node -e 0` 0.09–0.11 s with it against 0.05 s without, 6
 * interleaved pairs, 2 cores, 2026-12-08; every candidate start pays it, issue 14 part 3). The value
 * goes on as SHIM_CA_CERTS_VAR, which the shim turns back into `NODE_EXTRA_CA_CERTS` for the provider it
 * runs (a provider's own TLS is not this tool's to change); a SHIM_CA_CERTS_VAR already in `env` (this
 * tuner itself started from such an environment) is dropped, so the shim never sets what the operator did not.
 */
export const ownNodeEnv = (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv => {
  const { NODE_EXTRA_CA_CERTS: caCerts, [SHIM_CA_CERTS_VAR]: _inherited, ...rest } = env
  return caCerts === undefined ? rest : { ...rest, [SHIM_CA_CERTS_VAR]: caCerts }
}

/**
 * What starting a provider needs of its adapter (providers/ProviderAdapter.ts
 * extends it): its command line, how readiness is read, and whether it
 * watches its tuner.
 */
export interface Launchable {
  /** Executable and its arguments for `spec`; `candidate: true` adds `--no-join` (SPEC E-3) where the provider has a pool to join. */
  readonly argv: (spec: LaunchSpec, candidate: boolean) => { readonly command: string; readonly args: ReadonlyArray<string> }
  /**
   * A readiness endpoint polled before `GET /v1/models` (SPEC E-4, E-5): 200
   * when the model is loaded (llama-server's `/health` answers 503 while
   * loading). Null when `/v1/models` alone decides.
   */
  readonly healthPath: string | null
  /**
   * Whether the provider stops itself when its tuner dies (the embedded
   * provider watches `$AUTOTUNE_PARENT_PID`). Others are started under
   * bin/provider-shim.mjs, which does it for them.
   */
  readonly watchesParent: boolean
  /**
   * The id the provider serves `spec`'s model under, when it serves several
   * (a llama-server router started from a preset: the section's name); absent:
   * the first model `GET /v1/models` lists.
   */
  readonly servedModelId?: (spec: LaunchSpec) => string
}

/** Start options: the adapter and launch spec, plus where logs go and how long readiness may take (ms). */
export interface StartOptions {
  readonly adapter: Launchable
  readonly spec: Omit<LaunchSpec, "port">
  readonly logDir: string
  readonly readyTimeoutMs: number
}

/**
 * Starts candidate providers as scoped resources (SPEC E-3, E-4).
 *
 * stdout and stderr go straight to the per-start log file through a file
 * descriptor (nothing is piped through this process), the child leads its own
 * process group so stop reaches its workers, and its exit is an Effect that
 * probes race against (provider death).
 */
export class CandidateProvider extends Effect.Service<CandidateProvider>()("llm-autotune/CandidateProvider", {
  effect: Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const exec = yield* Exec

    /**
     * Spawns the provider on a free loopback port with `--no-join` (where the
     * adapter has it) and waits until the adapter's health endpoint (if any, E-5)
     * and then `GET /v1/models` are 200 (asked every READY_POLL) and the process has not exited by then
     * (SPEC E-4; an exit within ALIVE_AFTER_READY after it is told by the server's `exitedAfterReady`).
     * The process group is stopped when the caller's Scope closes: SIGTERM, then
     * SIGKILL after STOP_GRACE (announced on stderr; `stopProcess`). Fails with ProviderStartFailed
     * at once when the binary cannot be spawned or the process exits while starting
     * (exit code and output tail), or after `readyTimeoutMs` without readiness.
     */
    const start = (o: StartOptions): Effect.Effect<RunningServer, ProviderStartFailed, Scope.Scope> =>
      Effect.gen(function*() {
        const cannotStart = (message: string) =>
          new ProviderStartFailed({ model: o.spec.model, message, exitCode: null, stderrTail: "" })
        const port = yield* freePort.pipe(Effect.mapError((e) => cannotStart(e.message)))
        const spec: LaunchSpec = { ...o.spec, port }
        const { args, command } = o.adapter.argv(spec, true)
        // A provider that cannot watch this process runs under the shim, which kills it if this process dies unstopped.
        const launch = o.adapter.watchesParent
          ? { command, args }
          : { command: process.execPath, args: [providerShim, command, ...args] }
        const logPath = path.join(
          o.logDir,
          `${safeName(spec.model)}-${port}-${Math.floor(Date.now() / 1000)}-${randomUUID().slice(0, 8)}.log`
        )
        const fail = (message: string, exitCode: number | null = null) =>
          Effect.flatMap(fileTail(logPath), (tail) =>
            Effect.fail(new ProviderStartFailed({ model: spec.model, message, exitCode, stderrTail: tail })))

        // Set when the gate has decided the trial (RunningServer.decided): the stop's grace is then short.
        const decided = yield* Ref.make(false)
        const child = yield* Effect.acquireRelease(
          Effect.acquireUseRelease(
            // A log that cannot be written (ENOSPC, a read-only directory) fails this start, not the run.
            Effect.try({
              try: () => {
                fs.mkdirSync(o.logDir, { recursive: true })
                const fd = fs.openSync(logPath, "a")
                try {
                  fs.writeSync(fd, `$ ${command} ${args.join(" ")}\n`)
                } catch (e) {
                  fs.closeSync(fd)
                  throw e
                }
                return fd
              },
              catch: (e) => cannotStart(`cannot write the provider's log ${logPath}: ${e instanceof Error ? e.message : String(e)}`)
            }),
            (fd) =>
              exec.spawn(launch.command, launch.args, {
                output: fd,
                ownGroup: true,
                // AUTOTUNE_PARENT_PID lets the embedded provider stop itself if this
                // process dies without running its finalizers (SIGKILL, crash).
                // AUTOTUNE_GROUP_LEADER: it leads its own group, so when the tuner is gone it may stop that
                // whole group (system/Pids.ts leadsOwnGroup; the shim and `autotune serve` do).
                // The shim or this project's launcher (the embedded provider) run on this Node: ownNodeEnv.
                env: {
                  ...(launch.command === process.execPath ? ownNodeEnv : identity)(candidateEnv(process.env)),
                  AUTOTUNE_PARENT_PID: `${process.pid}`,
                  AUTOTUNE_GROUP_LEADER: "1"
                }
              }),
            (fd) => Effect.sync(() => fs.closeSync(fd))
          ).pipe(Effect.catchTag("SpawnFailed", (e) =>
            Effect.fail(new ProviderStartFailed({
              model: spec.model,
              message: `could not start provider ${command}: ${e.message}`,
              exitCode: null,
              stderrTail: ""
            })))),
          // The whole group (L-1): a worker the provider forked goes too, even after the leader (provider or shim) exited.
          (cp) =>
            Ref.get(decided).pipe(
              Effect.flatMap((d) =>
                stopProcess(
                  { pid: cp.pid, group: true, exited: cp.hasExited, name: `provider pid ${cp.pid}`, killExpected: d },
                  d ? DECIDED_STOP_GRACE : STOP_GRACE
                )
              ),
              Effect.provideService(Exec, exec)
            )
        )
        const pid = child.pid
        const baseUrl = `http://127.0.0.1:${port}`

        // 401/403 will not change by waiting (an API key the candidate requires): fail at once, naming it.
        const get200 = (p: string) =>
          client.execute(HttpClientRequest.get(`${baseUrl}${p}`)).pipe(
            Effect.flatMap((res) =>
              res.status === 200
                ? res.json
                : res.status === 401 || res.status === 403
                ? Effect.fail(new Refused({ path: p, status: res.status }))
                : Effect.fail(new Error(`HTTP ${res.status}`))
            ),
            Effect.timeout("5 seconds")
          )
        // E-5: a provider with a health endpoint (llama-server: 503 while loading) must pass it first.
        const modelsOnce = o.adapter.healthPath === null
          ? get200("/v1/models")
          : Effect.zipRight(get200(o.adapter.healthPath), get200("/v1/models"))
        const models = yield* modelsOnce.pipe(
          Effect.retry({ while: (e) => !(e instanceof Refused), schedule: Schedule.spaced(READY_POLL) }),
          // Only a refusal ends the retries; anything else retried until ready, exit or timeout.
          Effect.catchAll((e) =>
            e instanceof Refused
              ? fail(`provider refused GET ${e.path} with HTTP ${e.status} (does it require an API key?)`)
              : fail(`provider not ready: ${e.message}`)
          ),
          Effect.raceFirst(
            child.exited.pipe(Effect.flatMap((x) =>
              fail(`provider exited while starting (${exitText(x)})`, x.code)
            ))
          ),
          Effect.timeout(`${o.readyTimeoutMs} millis`),
          Effect.catchTag("TimeoutException", () => fail(`provider not ready after ${o.readyTimeoutMs} ms`))
        )
        // E-4: a process already gone now never started; one that goes within ALIVE_AFTER_READY, before
        // answering a request, is told by `exitedAfterReady` when the pre-warm's first requests fail (by when
        // its exit was seen: a wait for it here cost every start).
        const readyAt = yield* Clock.currentTimeMillis
        const exitSeenAt = yield* Ref.make<number | null>(null)
        yield* Effect.forkScoped(Effect.flatMap(child.exited, () => Effect.flatMap(Clock.currentTimeMillis, (t) => Ref.set(exitSeenAt, t))))
        if (yield* child.hasExited) {
          const x = yield* child.exited
          return yield* fail(answeredThenExited(x), x.code)
        }
        const windowEnd = readyAt + Duration.toMillis(ALIVE_AFTER_READY)
        const exitedAfterReady = Effect.gen(function*() {
          const seen = yield* Ref.get(exitSeenAt)
          if (seen !== null) return seen <= windowEnd ? yield* child.exited : null
          const left = windowEnd - (yield* Clock.currentTimeMillis)
          // An exit seen while waiting is within the window.
          return left <= 0 ? null : Option.getOrNull(yield* Effect.timeoutOption(child.exited, Duration.millis(left)))
        })
        const data = (models as { data?: Array<{ id?: unknown }> } | null)?.data
        const wanted = o.adapter.servedModelId?.(spec)
        if (wanted !== undefined && !(data ?? []).some((m) => m.id === wanted)) {
          return yield* fail(`provider does not serve ${wanted} (GET /v1/models lists ${(data ?? []).map((m) => String(m.id)).join(", ") || "nothing"})`)
        }
        const modelId = wanted ?? (typeof data?.[0]?.id === "string" ? data[0].id : spec.model)
        // The shim that watches this process for a provider that cannot is not the provider: its memory is left out.
        const resident = groupResident(exec, pid, o.adapter.watchesParent ? [] : [pid])
        return {
          baseUrl,
          port,
          pid,
          modelId,
          logPath,
          exited: child.exited,
          outputTail: fileTail(logPath),
          decided: Ref.set(decided, true),
          residentBytes: resident.sample,
          residentBytesScanned: resident.scan,
          exitedAfterReady
        } satisfies RunningServer
      })
    return { start } as const
  }),
  dependencies: [Exec.Default]
}) {
  /**
   * A stand-in provider for tests and simulations: no process is started.
   * Each `start` is recorded in `journal` (when given) as a `Start` event with
   * its options, then answers `respond(options)`: a server (a `Stop` event is
   * recorded when the caller's Scope closes) or a ProviderStartFailed (no stop).
   */
  static readonly Stub = (
    respond: (o: StartOptions) => Effect.Effect<RunningServer, ProviderStartFailed>,
    journal?: Ref.Ref<ReadonlyArray<StubEvent>>
  ): Layer.Layer<CandidateProvider> => {
    const record = (e: StubEvent) => (journal === undefined ? Effect.void : Ref.update(journal, (es) => [...es, e]))
    return Layer.succeed(
      CandidateProvider,
      CandidateProvider.make({
        start: (o) =>
          Effect.acquireRelease(
            Effect.zipRight(record({ _tag: "Start", options: o }), respond(o)),
            () => record({ _tag: "Stop", options: o })
          )
      })
    )
  }
}

/** What `CandidateProvider.Stub` records: a start (with its options) and, when its scope closed, a stop. */
export type StubEvent =
  | { readonly _tag: "Start"; readonly options: StartOptions }
  | { readonly _tag: "Stop"; readonly options: StartOptions }

/**
 * Resident bytes of process group `pgid` without the pids in `except` (SPEC
 * C-3): from /proc on Linux, from `ps` elsewhere; null when neither answers.
 */
const groupResident = (
  exec: Exec,
  pgid: number,
  except: ReadonlyArray<number>
): { readonly sample: Effect.Effect<number | null>; readonly scan: Effect.Effect<number | null> } => {
  if (process.platform !== "linux") {
    const ps = exec.run("ps", ["-axo", "pid=,pgid=,rss="], { timeoutMs: 5000 }).pipe(
      Effect.map((r) => (r.code === 0 ? groupResidentBytesFromPs(r.stdout, pgid, except) : null))
    )
    return { sample: ps, scan: ps }
  }
  // Sampled every MEMORY_SAMPLE_MS while requests are timed: the members are looked for in all of /proc only now and then.
  const sampler = groupResidentSampler(pgid, except)
  return { sample: Effect.promise(sampler.sample), scan: Effect.promise(sampler.scan) }
}

/**
 * A RunningServer with no process behind it, at `baseUrl` (for `CandidateProvider.Stub`):
 * pid 0 (which `Exec.signal` never signals), it never exits and has no output.
 */
export const serverWithoutProcess = (baseUrl: string, modelId: string): RunningServer => ({
  baseUrl,
  port: Number(new URL(baseUrl).port) || 0,
  pid: 0,
  modelId,
  logPath: "/dev/null",
  exited: Effect.never,
  outputTail: Effect.succeed(""),
  decided: Effect.void,
  residentBytes: Effect.succeed(null),
  exitedAfterReady: Effect.succeed(null)
})
