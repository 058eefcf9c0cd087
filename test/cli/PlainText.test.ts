/**
 * ANSI styling only where a terminal shows it (src/cli/PlainText.ts): @effect/cli styles its help
 * whatever the output is; the launcher's kept help follows the same rule (bin/help-cache.js).
 */
import { assert, describe, it } from "@effect/vitest"
import { Console, Effect } from "effect"
import { createRequire } from "node:module"
import * as Path from "node:path"
import { keepsAnsi, plainWhereNotShown } from "../../src/cli/PlainText.js"
import { repoRoot } from "../support/models.js"

const helpCache = createRequire(import.meta.url)(Path.join(repoRoot, "bin", "help-cache.js")) as {
  keepsAnsi: (stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv) => boolean
}

const tty = { isTTY: true }
const pipe = { isTTY: false }
const cases: ReadonlyArray<readonly [string, { isTTY?: boolean }, NodeJS.ProcessEnv, boolean]> = [
  ["a terminal", tty, {}, true],
  ["a pipe or a file", pipe, {}, false],
  ["a stream that says nothing", {}, {}, false],
  ["NO_COLOR on a terminal", tty, { NO_COLOR: "1" }, false],
  ["NO_COLOR empty (unset, by no-color.org)", tty, { NO_COLOR: "" }, true],
  ["FORCE_COLOR to a pipe", pipe, { FORCE_COLOR: "1" }, true],
  ["FORCE_COLOR over NO_COLOR", pipe, { FORCE_COLOR: "1", NO_COLOR: "1" }, true],
  ["FORCE_COLOR=0 on a terminal: as unset", tty, { FORCE_COLOR: "0" }, true],
  ["FORCE_COLOR=0 to a pipe", pipe, { FORCE_COLOR: "0" }, false]
]

describe("ANSI styling where a terminal shows it", () => {
  it("keepsAnsi: a terminal keeps it, a pipe or NO_COLOR drops it, FORCE_COLOR keeps it; the launcher's rule is the same", () => {
    for (const [what, stream, env, keeps] of cases) {
      assert.strictEqual(keepsAnsi(stream, env), keeps, what)
      assert.strictEqual(helpCache.keepsAnsi(stream, env), keeps, `launcher: ${what}`)
    }
  })

  it.effect("plainWhereNotShown: what goes to a pipe loses its escape sequences, what goes to a terminal keeps them, per stream", () =>
    Effect.gen(function*() {
      const written: Array<[string, unknown]> = []
      const base = yield* Effect.consoleWith((c) => Effect.succeed(c))
      const recording: Console.Console = {
        ...base,
        log: (...a) => Effect.sync(() => void written.push(["log", a[0]])),
        error: (...a) => Effect.sync(() => void written.push(["error", a[0]]))
      }
      const styled = "\u001b[0;1mautotune\u001b[0m"
      // stdout a pipe, stderr a terminal.
      const c = plainWhereNotShown(recording, pipe, tty, {})
      yield* c.log(styled)
      yield* c.error(styled)
      yield* c.log(42)
      assert.deepStrictEqual(written, [["log", "autotune"], ["error", styled], ["log", 42]])
    }))
})
