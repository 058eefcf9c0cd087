/**
 * Test harness for `autotune serve`: spawns the real CLI (`node bin/autotune.js
 * serve …`) as a scoped child process, waits for readiness, and reads SSE.
 */
import { Effect, type Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Ports from "../../src/system/Ports.js"
import * as Path from "node:path"
import { repoRoot } from "../support/models.js"

/** How a child process ended. */
export interface ProcessExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** A spawned `autotune serve`; killed (SIGKILL) when the Scope closes if still running. */
export interface ServeProcess {
  readonly proc: ChildProcess
  readonly port: number
  readonly baseUrl: string
  /** Everything written to stderr so far. */
  readonly stderr: () => string
  /** Resolves when the process has exited. */
  readonly exited: Promise<ProcessExit>
}

/** A TCP port that was free a moment ago (bind 0, read, close). */
export const freePort = Ports.freePort.pipe(Effect.orDie)

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export const portOpen = (port: number): Promise<boolean> => Effect.runPromise(Ports.portOpen(port))

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Spawns `node bin/autotune.js serve <args> --port <port>` (or another `entry` script); `port`
 * defaults to a free one.
 * The process is SIGKILLed when the Scope closes (if it is still running).
 */
export const spawnServe = (
  args: ReadonlyArray<string>,
  port?: number,
  /** The script node runs, relative to the repository (default the `autotune` launcher). */
  entry: string = Path.join("bin", "autotune.js"),
  /** Options for node itself, before the script (e.g. `--import` a loader hook). */
  nodeOptions: ReadonlyArray<string> = [],
  /** Environment added to this process's. */
  env: Record<string, string> = {}
): Effect.Effect<ServeProcess, never, Scope.Scope> =>
  Effect.gen(function*() {
    const p = port ?? (yield* freePort)
    return yield* Effect.acquireRelease(
      Effect.sync(() => {
        const proc = spawn(process.execPath, [...nodeOptions, Path.join(repoRoot, entry), "serve", ...args, "--port", `${p}`], {
          cwd: repoRoot,
          // The launcher decides the pool size; an inherited one must not decide it for the plain entry.
          env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== "UV_THREADPOOL_SIZE")), ...env },
          stdio: ["ignore", "ignore", "pipe"]
        })
        let err = ""
        proc.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d))
        const exited = new Promise<ProcessExit>((resolve) =>
          proc.once("exit", (code, signal) => resolve({ code, signal }))
        )
        return { proc, port: p, baseUrl: `http://127.0.0.1:${p}`, stderr: () => err, exited } satisfies ServeProcess
      }),
      (s) =>
        Effect.promise(async () => {
          if (s.proc.exitCode === null && s.proc.signalCode === null) {
            s.proc.kill("SIGKILL")
            await Promise.race([s.exited, delay(5_000)])
          }
        })
    )
  })

/**
 * Polls `GET /v1/models` until 200 (ready, SPEC E-4). Dies if the process exits first
 * (with its stderr) or after `timeoutMs`.
 */
export const waitReady = (s: ServeProcess, timeoutMs = 30_000): Effect.Effect<void> =>
  Effect.promise(async () => {
    const deadline = Date.now() + timeoutMs
    let exit: ProcessExit | undefined
    void s.exited.then((e) => (exit = e))
    while (Date.now() < deadline) {
      if (exit) throw new Error(`serve exited (${JSON.stringify(exit)}) before ready:\n${s.stderr()}`)
      const ok = await fetch(`${s.baseUrl}/v1/models`).then((r) => r.ok, () => false)
      if (ok) return
      await delay(100)
    }
    throw new Error(`serve not ready after ${timeoutMs} ms:\n${s.stderr()}`)
  })

/** Spawns and waits until ready. */
export const startServe = (args: ReadonlyArray<string>, entry?: string, nodeOptions?: ReadonlyArray<string>, env?: Record<string, string>) =>
  spawnServe(args, undefined, entry, nodeOptions, env).pipe(Effect.tap(waitReady))

/** One parsed SSE `data:` payload with its arrival time (performance.now(), ms) and the index of the network read that completed it. */
export interface SseEvent {
  readonly at: number
  readonly read: number
  readonly data: string
}

/** Result of a streaming request: HTTP status and the `data:` events in arrival order. */
export interface StreamResult {
  readonly status: number
  readonly events: ReadonlyArray<SseEvent>
}

/** POSTs `body` to `/v1/chat/completions` and collects the SSE events until the stream ends. */
export const streamChat = (baseUrl: string, body: unknown): Effect.Effect<StreamResult> =>
  Effect.promise(async () => {
    const res = await fetch(`${baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...(body as object), stream: true })
    })
    const events: Array<SseEvent> = []
    const decoder = new TextDecoder()
    let buf = ""
    let read = 0
    for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
      read++
      buf += decoder.decode(part, { stream: true })
      let i: number
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const ev = buf.slice(0, i)
        buf = buf.slice(i + 2)
        for (const line of ev.split("\n")) {
          if (line.startsWith("data: ")) events.push({ at: performance.now(), read, data: line.slice(6) })
        }
      }
    }
    return { status: res.status, events }
  })

/** POSTs JSON and returns status and parsed body. */
export const postJson = (url: string, body: unknown, raw?: string) =>
  Effect.promise(async () => {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: raw ?? JSON.stringify(body)
    })
    return { status: res.status, body: (await res.json()) as any }
  })

/** GETs a URL and returns status and parsed JSON body. */
export const getJson = (url: string) =>
  Effect.promise(async () => {
    const res = await fetch(url)
    return { status: res.status, body: (await res.json()) as any }
  })
