/**
 * node:http as Effect resources: a scoped listening server whose request
 * handlers run as fibers owned by the server's Scope, and small response helpers.
 */
import { Effect, FiberId, FiberSet, Schema, type Scope } from "effect"
import * as http from "node:http"
import { ServeFailed } from "../domain/AutotuneError.js"
import { awaitBounded } from "./AwaitBounded.js"

/** The request body could not be read (too large, or the client went away). Internal to serve. */
export class BodyReadFailed extends Schema.TaggedError<BodyReadFailed>()("BodyReadFailed", {
  status: Schema.Number,
  message: Schema.String
}) {}

/** Handles one request; it must answer (or end) `res` itself. Failures must already be handled. */
export type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => Effect.Effect<void>

/**
 * Binds `host:port` and serves `handler`, one fiber per request. A client that
 * disconnects before its response ended gets its fiber interrupted (so a
 * generation stops and frees its sequence). When the Scope closes: stop
 * accepting, destroy open connections, interrupt the remaining handler fibers.
 * Fails: ServeFailed when the port is in use, the address is not available, or
 * binding needs privileges.
 */
export const listen = (host: string, port: number, handler: Handler): Effect.Effect<http.Server, ServeFailed, Scope.Scope> =>
  Effect.gen(function*() {
    // Handler fibers: interrupted when the Scope closes (after the server, see below).
    const run = yield* FiberSet.makeRuntime<never>()
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
      const fiber = run(handler(req, res))
      res.on("close", () => {
        if (!res.writableFinished) fiber.unsafeInterruptAsFork(FiberId.none)
      })
    }
    return yield* Effect.acquireRelease(
      Effect.async<http.Server, ServeFailed>((resume) => {
        // noDelay: one small SSE write per token must not wait for Nagle's algorithm.
        const server = http.createServer({ noDelay: true, keepAlive: true }, onRequest)
        server.once("error", (e: NodeJS.ErrnoException) => {
          const why = e.code === "EADDRINUSE"
            ? `port ${port} on ${host} is already in use`
            : e.code === "EADDRNOTAVAIL"
            ? `address ${host} is not available on this machine`
            : e.code === "EACCES"
            ? `binding ${host}:${port} needs privileges`
            : `cannot listen on ${host}:${port}`
          resume(Effect.fail(new ServeFailed({ message: `${why} (${e.code ?? e.message})` })))
        })
        server.listen(port, host, () => resume(Effect.succeed(server)))
      }),
      (server) =>
        awaitBounded(() =>
          new Promise<void>((resolve) => {
            server.close(() => resolve())
            server.closeAllConnections()
          }), 5_000)
    )
  })

/** Writes a JSON response (status, `application/json`), unless the response was already started. */
export const sendJson = (res: http.ServerResponse, status: number, body: unknown): Effect.Effect<void> =>
  Effect.sync(() => {
    if (res.headersSent || res.destroyed) return
    const payload = JSON.stringify(body)
    res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) })
    res.end(payload)
  })

/**
 * Reads the whole request body as UTF-8, up to `limitBytes`.
 * Fails: BodyReadFailed 413 when larger, 400 when the client aborts mid-body.
 */
export const readBody = (req: http.IncomingMessage, limitBytes: number): Effect.Effect<string, BodyReadFailed> =>
  Effect.async<string, BodyReadFailed>((resume) => {
    const parts: Array<Buffer> = []
    let size = 0
    let done = false
    const finish = (e: Effect.Effect<string, BodyReadFailed>) => {
      if (done) return
      done = true
      resume(e)
    }
    req.on("data", (b: Buffer) => {
      size += b.length
      if (size > limitBytes) {
        finish(Effect.fail(new BodyReadFailed({ status: 413, message: `request body exceeds ${limitBytes} bytes` })))
        req.resume()
      } else parts.push(b)
    })
    req.on("end", () => finish(Effect.succeed(Buffer.concat(parts).toString("utf8"))))
    req.on("error", (e) => finish(Effect.fail(new BodyReadFailed({ status: 400, message: e.message }))))
    req.on("aborted", () => finish(Effect.fail(new BodyReadFailed({ status: 400, message: "request aborted" }))))
  })
