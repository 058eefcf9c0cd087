/** Loopback ports: a free one for a candidate (SPEC E-3), and whether one is open (SPEC E-2). */
import * as net from "node:net"
import { Data, Effect } from "effect"

/** No loopback port could be had (too many open files, no loopback, …): `message` says why. */
export class NoFreePort extends Data.TaggedError("NoFreePort")<{ readonly message: string }> {}

/**
 * A free loopback TCP port (bind port 0, read it, close). Fails with NoFreePort
 * when binding fails (EMFILE, EACCES, no loopback): that candidate cannot start,
 * the run goes on.
 */
export const freePort: Effect.Effect<number, NoFreePort> = Effect.async<number, NoFreePort>((resume) => {
  const srv = net.createServer()
  srv.once("error", (e: NodeJS.ErrnoException) =>
    resume(Effect.fail(new NoFreePort({ message: `no free loopback port: ${e.code ?? e.message}` }))))
  srv.listen(0, "127.0.0.1", () => {
    const port = (srv.address() as net.AddressInfo).port
    srv.close(() => resume(Effect.succeed(port)))
  })
})

/**
 * Whether something accepts TCP connections on 127.0.0.1:`port`. A connect
 * still pending after 1 s (a listener whose backlog is full) counts as open;
 * the bound is a plain socket timer, so it holds in uninterruptible code too.
 */
export const portOpen = (port: number): Effect.Effect<boolean> =>
  Effect.async<boolean>((resume) => {
    const s = net.connect(port, "127.0.0.1")
    s.setTimeout(1000, () => (s.destroy(), resume(Effect.succeed(true))))
    s.once("connect", () => (s.destroy(), resume(Effect.succeed(true))))
    s.once("error", () => resume(Effect.succeed(false)))
  })
