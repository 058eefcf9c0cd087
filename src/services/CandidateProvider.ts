import { HttpClient, HttpClientRequest } from "@effect/platform"
import * as ChildProcess from "node:child_process"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Console, Data, Deferred, Duration, Effect, Schedule, Scope } from "effect"
import { fileURLToPath } from "node:url"
import { ProviderStartFailed } from "../domain/AutotuneError.js"
import type { ProcessExit, RunningServer } from "../domain/RunningServer.js"
import type { LaunchSpec, ProviderAdapter } from "../providers/ProviderAdapter.js"
import { freePort } from "./Ports.js"

/**
 * How long a stopping candidate gets after SIGTERM before SIGKILL (STYLE: bound
 * every wait; at most 10 s). A candidate holds no state worth a clean exit, and
 * llama-server finishes the prefill chunk a gate cut abandoned before it exits:
 * measured up to 10 s for the 1.1B model (bench), all of it tune time. The
 * operator's own provider keeps its longer grace (steps/Drain.ts DRAIN_GRACE).
 */
export const STOP_GRACE = Duration.seconds(3)

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

/**
 * Signals a process group; when there is no such group, the process itself,
 * unless `leaderToo` is false (its leader has exited: its pid may be reused).
 */
const killGroup = (pid: number, signal: NodeJS.Signals, leaderToo = true) => {
  try {
    process.kill(-pid, signal)
  } catch {
    if (!leaderToo) return
    try {
      process.kill(pid, signal)
    } catch { /* already gone */ }
  }
}

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

/** Start options: the launch spec plus where logs go and how long readiness may take (ms). */
export interface StartOptions {
  readonly adapter: ProviderAdapter
  readonly spec: Omit<LaunchSpec, "port">
  readonly logDir: string
  readonly readyTimeoutMs: number
}

/**
 * Starts candidate providers as scoped resources (SPEC E-3, E-4).
 *
 * Processes are spawned with `node:child_process` directly rather than
 * @effect/platform's Command: stdout and stderr go straight to the per-start
 * log file through a file descriptor (nothing is piped through this process),
 * the child leads its own process group so stop reaches its workers, and the
 * exit event feeds a Deferred that probes race against (provider death).
 */
export class CandidateProvider extends Effect.Service<CandidateProvider>()("llm-autotune/CandidateProvider", {
  effect: Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient

    /**
     * Spawns the provider on a free loopback port with `--no-join` (where the
     * adapter has it) and waits until the adapter's health endpoint (if any, E-5)
     * and then `GET /v1/models` are 200 and the process is still alive after it (SPEC E-4).
     * The process group is stopped when the caller's Scope closes: SIGTERM, then
     * SIGKILL after STOP_GRACE (announced on stderr). Fails with ProviderStartFailed
     * at once when the binary cannot be spawned or the process exits while starting
     * (exit code and output tail), or after `readyTimeoutMs` without readiness.
     */
    const start = (o: StartOptions): Effect.Effect<RunningServer, ProviderStartFailed, Scope.Scope> =>
      Effect.gen(function*() {
        const port = yield* freePort
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
        const exited = yield* Deferred.make<ProcessExit>()
        const fail = (message: string, exitCode: number | null = null) =>
          Effect.flatMap(fileTail(logPath), (tail) =>
            Effect.fail(new ProviderStartFailed({ model: spec.model, message, exitCode, stderrTail: tail })))

        const child = yield* Effect.acquireRelease(
          Effect.async<ChildProcess.ChildProcess, ProviderStartFailed>((resume) => {
            fs.mkdirSync(o.logDir, { recursive: true })
            const fd = fs.openSync(logPath, "a")
            fs.writeSync(fd, `$ ${command} ${args.join(" ")}\n`)
            // AUTOTUNE_PARENT_PID lets the embedded provider stop itself if this
            // process dies without running its finalizers (SIGKILL, crash).
            const cp = ChildProcess.spawn(launch.command, launch.args, {
              stdio: ["ignore", fd, fd],
              detached: true,
              env: { ...candidateEnv(process.env), AUTOTUNE_PARENT_PID: `${process.pid}` }
            })
            fs.closeSync(fd)
            cp.once("error", (err) => {
              Deferred.unsafeDone(exited, Effect.succeed({ code: null, signal: null }))
              resume(Effect.fail(
                new ProviderStartFailed({
                  model: spec.model,
                  message: `could not start provider ${command}: ${err.message}`,
                  exitCode: null,
                  stderrTail: ""
                })
              ))
            })
            cp.once("exit", (code, signal) => Deferred.unsafeDone(exited, Effect.succeed({ code, signal })))
            cp.once("spawn", () => resume(Effect.succeed(cp)))
          }),
          (cp) =>
            Effect.gen(function*() {
              if (cp.pid === undefined) return
              // The leader (provider or shim) is gone: still clear its process group of anything it left.
              if (cp.exitCode !== null || cp.signalCode !== null) return killGroup(cp.pid, "SIGKILL", false)
              killGroup(cp.pid, "SIGTERM")
              // Only the waits are interruptible, so their timeouts fire (STYLE pitfall 4);
              // the release itself stays uninterruptible, so an interrupted run still
              // waits here and escalates to SIGKILL rather than leaving the process behind.
              const stopped = yield* Deferred.await(exited).pipe(Effect.interruptible, Effect.timeout(STOP_GRACE), Effect.option)
              if (stopped._tag === "None") {
                yield* Console.error(
                  `autotune: provider pid ${cp.pid} ignored SIGTERM for ${Duration.format(STOP_GRACE)}; sending SIGKILL`
                )
                killGroup(cp.pid, "SIGKILL")
                yield* Deferred.await(exited).pipe(Effect.interruptible, Effect.timeout("5 seconds"), Effect.ignore)
              }
            })
        )
        const pid = child.pid!
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
          Effect.retry({ while: (e) => !(e instanceof Refused), schedule: Schedule.spaced("100 millis") }),
          // Only a refusal ends the retries; anything else retried until ready, exit or timeout.
          Effect.catchAll((e) =>
            e instanceof Refused
              ? fail(`provider refused GET ${e.path} with HTTP ${e.status} (does it require an API key?)`)
              : fail(`provider not ready: ${e.message}`)
          ),
          Effect.raceFirst(
            Deferred.await(exited).pipe(Effect.flatMap((x) =>
              fail(`provider exited while starting (${x.signal ?? `exit code ${x.code}`})`, x.code)
            ))
          ),
          Effect.timeout(`${o.readyTimeoutMs} millis`),
          Effect.catchTag("TimeoutException", () => fail(`provider not ready after ${o.readyTimeoutMs} ms`))
        )
        // E-4: ready only if the process is still alive after answering.
        yield* Effect.sleep("200 millis")
        if (yield* Deferred.isDone(exited)) {
          const x = yield* Deferred.await(exited)
          return yield* fail(`provider answered /v1/models then exited (${x.signal ?? `exit code ${x.code}`})`, x.code)
        }
        const data = (models as { data?: Array<{ id?: unknown }> } | null)?.data
        const modelId = typeof data?.[0]?.id === "string" ? data[0].id : spec.model
        return {
          baseUrl,
          port,
          pid,
          modelId,
          logPath,
          exited: Deferred.await(exited),
          outputTail: fileTail(logPath)
        } satisfies RunningServer
      })
    return { start } as const
  })
}) {}
