/**
 * A separate process racing for run locks (test/system/RunLock.test.ts):
 * `node --import tsx lockRacer.ts <lock path>...` prints `ready`, waits for a
 * line on stdin, acquires the locks, prints `held` or `refused <pid>`, and
 * holds what it got until stdin ends.
 */
import { Console, Effect } from "effect"
import * as Readline from "node:readline"
import { acquireRunLock } from "../../src/system/RunLock.js"

const lines = Readline.createInterface({ input: process.stdin })
const nextLine = Effect.async<void>((resume) => void lines.once("line", () => resume(Effect.void)))
const stdinEnd = Effect.async<void>((resume) => void lines.once("close", () => resume(Effect.void)))

await Console.log("ready").pipe(
  Effect.zipRight(nextLine),
  Effect.zipRight(acquireRunLock(process.argv.slice(2))),
  Effect.zipRight(Console.log("held")),
  Effect.zipRight(stdinEnd),
  Effect.catchTag("RunLocked", (e) => Console.log(`refused ${e.holderPid}`)),
  Effect.scoped,
  Effect.runPromise
)
lines.close()
