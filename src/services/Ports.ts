import * as net from "node:net"
import { Effect } from "effect"

/** A free loopback TCP port (bind port 0, read it, close). */
export const freePort: Effect.Effect<number> = Effect.async<number>((resume) => {
  const srv = net.createServer()
  srv.listen(0, "127.0.0.1", () => {
    const port = (srv.address() as net.AddressInfo).port
    srv.close(() => resume(Effect.succeed(port)))
  })
})

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export const portOpen = (port: number): Effect.Effect<boolean> =>
  Effect.async<boolean>((resume) => {
    const s = net.connect(port, "127.0.0.1")
    s.once("connect", () => (s.destroy(), resume(Effect.succeed(true))))
    s.once("error", () => resume(Effect.succeed(false)))
  })
