/**
 * Starts one provider by hand for the throughput comparison (figure 3): the
 * embedded provider (`node bin/autotune.js serve`) or llama.cpp's
 * `llama-server`, on a free loopback port, output to a log file, in its own
 * process group (guarded while it runs: a Ctrl-C of the bench kills it,
 * bench/GroupGuard.ts); ready when its readiness URL answers 200.
 */
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import { guardGroup } from "./GroupGuard.js"
import { autotuneBin, llamaServerPath } from "./Tools.js"
import { ownNodeEnv } from "../src/services/CandidateProvider.js"

/** The two providers compared. */
export type ServerKind = "embedded" | "llama-server"

/** A started, ready server. `stop()` SIGTERMs its group, SIGKILLs after 10 s, and resolves once it exited. */
export interface Server {
  readonly kind: ServerKind
  readonly baseUrl: string
  /** Spawn → ready, ms (client-side). */
  readonly readyMs: number
  readonly stop: () => Promise<void>
}

/**
 * What to start: same model, threads, f16 KV (no KV flags), one slot, `contextTokens` per slot;
 * flash attention as the build decides (`auto`: on, on CPU) unless `flashAttn` says on or off.
 */
export interface ServerSpec {
  readonly kind: ServerKind
  readonly model: string
  readonly threads: number
  readonly contextTokens: number
  readonly logPath: string
  readonly flashAttn?: boolean
  /** Environment added to the bench's for the server (`AUTOTUNE_THREADPOOL=off`: figure 8's per-graph row). */
  readonly env?: Readonly<Record<string, string>>
}

/** A free loopback TCP port. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once("error", reject)
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port
      srv.close(() => resolve(port))
    })
  })

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** `--flash-attn on|off` when the spec sets it (both servers spell it so). */
const fa = (s: ServerSpec): Array<string> => (s.flashAttn === undefined ? [] : ["--flash-attn", s.flashAttn ? "on" : "off"])

/** The command lines of figure 3: the issue's `serve --threads T --max-context C` and `llama-server -t T -c C -np 1`. */
export const serverArgv = (s: ServerSpec, port: number): { readonly command: string; readonly args: Array<string> } =>
  s.kind === "embedded"
    ? {
      command: process.execPath,
      args: [autotuneBin, "serve", "--model", s.model, "--port", `${port}`, "--threads", `${s.threads}`, "--max-context", `${s.contextTokens}`, ...fa(s)]
    }
    : {
      command: llamaServerPath(),
      args: ["-m", s.model, "--host", "127.0.0.1", "--port", `${port}`, "-t", `${s.threads}`, "-c", `${s.contextTokens}`, "-np", "1", ...fa(s)]
    }

/** Starts a server and waits (≤ `readyTimeoutMs`) until it is ready; throws with the log path if it exits or times out. */
export const startServer = async (s: ServerSpec, readyTimeoutMs = 120_000): Promise<Server> => {
  const port = await freePort()
  const { args, command } = serverArgv(s, port)
  const fd = fs.openSync(s.logPath, "a")
  fs.writeSync(fd, `$ ${command} ${args.join(" ")}\n`)
  // A Ctrl-C of the bench (its group, not this detached one) or another exit of it takes the server along.
  const guard = guardGroup()
  const t0 = Date.now()
  let child: ChildProcess.ChildProcess
  try {
    // The embedded provider as the tuner starts it (without what only TLS needs: ownNodeEnv).
    const env = s.kind === "embedded" ? ownNodeEnv(process.env) : process.env
    child = ChildProcess.spawn(command, args, { stdio: ["ignore", fd, fd], detached: true, env: { ...env, ...s.env } })
  } catch (e) {
    // Thrown rather than emitted (an argument Node refuses): nothing started, nothing to guard.
    guard.release()
    throw e
  } finally {
    fs.closeSync(fd)
  }
  if (child.pid !== undefined) guard.watch(child.pid)
  // A failed spawn (ENOENT, EACCES) emits 'error' and no 'exit': without a listener it would crash the bench.
  let spawnError: Error | null = null
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve())
    child.once("error", (e) => {
      spawnError = e
      if (child.pid === undefined) resolve()
    })
  })
  let gone = false
  void exited.then(() => {
    gone = true
    guard.release()
  })
  const stop = async () => {
    if (gone || child.pid === undefined) return
    guard.kill("SIGTERM")
    const timer = setTimeout(() => guard.kill("SIGKILL"), 10_000)
    await exited
    clearTimeout(timer)
  }
  const baseUrl = `http://127.0.0.1:${port}`
  const readyUrl = `${baseUrl}${s.kind === "llama-server" ? "/health" : "/v1/models"}`
  while (Date.now() - t0 < readyTimeoutMs) {
    if (spawnError !== null) {
      await stop()
      throw new Error(`${s.kind} could not be started (${command}): ${(spawnError as Error).message}`)
    }
    if (gone) throw new Error(`${s.kind} exited while starting; see ${s.logPath}`)
    const ok = await fetch(readyUrl, { signal: AbortSignal.timeout(2000) }).then((r) => r.status === 200, () => false)
    if (ok) return { kind: s.kind, baseUrl, readyMs: Date.now() - t0, stop }
    await sleep(50)
  }
  await stop()
  throw new Error(`${s.kind} not ready after ${readyTimeoutMs} ms; see ${s.logPath}`)
}
