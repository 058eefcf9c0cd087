/**
 * ANSI styling only where a terminal shows it (src/cli/PlainText.ts): @effect/cli styles its help
 * whatever the output is; the launcher's kept help follows the same rule (bin/help-cache.js).
 */
import { assert, describe, it } from "@effect/vitest"
import { Console, Effect } from "effect"
import { spawnSync } from "node:child_process"
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
  ["NO_COLOR empty (as unset, by no-color.org; Node's console reads it as set)", tty, { NO_COLOR: "" }, true],
  ["NODE_DISABLE_COLORS on a terminal", tty, { NODE_DISABLE_COLORS: "1" }, false],
  ["TERM=dumb on a terminal", tty, { TERM: "dumb" }, false],
  ["FORCE_COLOR to a pipe", pipe, { FORCE_COLOR: "1" }, true],
  ["FORCE_COLOR=3 to a pipe", pipe, { FORCE_COLOR: "3" }, true],
  ["FORCE_COLOR=true to a pipe", pipe, { FORCE_COLOR: "true" }, true],
  ["FORCE_COLOR empty to a pipe (Node forces then)", pipe, { FORCE_COLOR: "" }, true],
  ["FORCE_COLOR over NO_COLOR", pipe, { FORCE_COLOR: "1", NO_COLOR: "1" }, true],
  ["FORCE_COLOR=0 on a terminal", tty, { FORCE_COLOR: "0" }, false],
  ["FORCE_COLOR=false on a terminal", tty, { FORCE_COLOR: "false" }, false]
]

describe("ANSI styling where a terminal shows it", () => {
  it("keepsAnsi: a terminal keeps it, a pipe or NO_COLOR drops it, FORCE_COLOR keeps it; the launcher's rule is the same", () => {
    for (const [what, stream, env, keeps] of cases) {
      assert.strictEqual(keepsAnsi(stream, env), keeps, what)
      assert.strictEqual(helpCache.keepsAnsi(stream, env), keeps, `launcher: ${what}`)
    }
  })

  it.effect("plainWhereNotShown: what goes to a pipe loses its styling, what goes to a terminal keeps it, per stream; nothing else in the text is touched", () =>
    Effect.gen(function*() {
      const written: Array<[string, unknown]> = []
      const base = yield* Effect.consoleWith((c) => Effect.succeed(c))
      const record = (name: string) => (...a: ReadonlyArray<unknown>) => Effect.sync(() => void written.push([name, a[0]]))
      const recording: Console.Console = {
        ...base,
        log: record("log"),
        info: record("info"),
        debug: record("debug"),
        error: record("error"),
        warn: record("warn"),
        trace: record("trace")
      }
      const styled = "\u001b[0;1mautotune\u001b[0m"
      // A --json document whose text holds a C1 control (JSON escapes ESC, not U+009B): left as it is.
      const json = JSON.stringify({ model: "a\u009b1mb.gguf" })
      // stdout a pipe, stderr a terminal.
      const c = plainWhereNotShown(recording, pipe, tty, {})
      for (const f of [c.log, c.info, c.debug, c.error, c.warn, c.trace]) yield* f(styled)
      yield* c.log(42)
      yield* c.log(json)
      assert.deepStrictEqual(written, [
        ["log", "autotune"],
        ["info", "autotune"],
        ["debug", "autotune"],
        ["error", styled],
        ["warn", styled],
        ["trace", styled],
        ["log", 42],
        ["log", json]
      ])
    }))

  it("the build keeps the help styled whatever the builder's NO_COLOR: it drops NO_COLOR and NODE_DISABLE_COLORS, which Node would warn about beside FORCE_COLOR on stderr", () => {
    const { captureEnv } = createRequire(import.meta.url)(Path.join(repoRoot, "bin", "help-cache.js")) as {
      captureEnv: (env: NodeJS.ProcessEnv) => NodeJS.ProcessEnv
    }
    const env = captureEnv({ PATH: "/bin", NO_COLOR: "1", NODE_DISABLE_COLORS: "1", AUTOTUNE_HELP_CACHE: "on" })
    assert.deepStrictEqual(env, { PATH: "/bin", AUTOTUNE_HELP_CACHE: "off", FORCE_COLOR: "1" })
    // What the build runs in that environment writes nothing on stderr (it would not be kept); the runner's
    // own warning switches left out, so that the check below can fail.
    const { NODE_NO_WARNINGS: _w, NODE_OPTIONS: _o, ...runner } = process.env
    const r = spawnSync(process.execPath, [Path.join(repoRoot, "dist", "bin.js"), "--version"], {
      env: captureEnv({ ...runner, NO_COLOR: "1", NODE_DISABLE_COLORS: "1" }),
      encoding: "utf8"
    })
    assert.strictEqual(r.status, 0, r.stderr)
    assert.strictEqual(r.stderr, "")
    // And Node does warn when both are set: the check above could fail.
    const both = spawnSync(process.execPath, ["-e", "console.log(1)"], { env: { ...runner, NO_COLOR: "1", FORCE_COLOR: "1" }, encoding: "utf8" })
    assert.include(both.stderr, "NO_COLOR")
  }, 60_000)
})
