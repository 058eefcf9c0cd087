/**
 * ANSI styling only where a terminal shows it: @effect/cli lays its help out in bold and colour
 * whatever the output is, so `autotune --help > file` or `| grep` got escape sequences.
 */
import { Console } from "effect"
import { stripVTControlCharacters } from "node:util"

/**
 * Whether text written to `stream` keeps its ANSI styling: FORCE_COLOR set (other than "0") keeps it;
 * NO_COLOR set and non-empty (https://no-color.org), or a stream that is not a terminal (a pipe, a
 * file), drops it. bin/help-cache.js `keepsAnsi` applies the same rule to the help the build kept.
 */
export const keepsAnsi = (stream: { readonly isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean =>
  env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0" ? true : (env.NO_COLOR ?? "") === "" && stream.isTTY === true

/** `args` with every string's ANSI escape sequences removed (Node's `util.stripVTControlCharacters`). */
const plain = (args: ReadonlyArray<unknown>) => args.map((a) => (typeof a === "string" ? stripVTControlCharacters(a) : a))

/**
 * `base` with the text it writes to stdout (`log`, `info`, `debug`) plain unless stdout keeps ANSI
 * (`keepsAnsi`), and to stderr (`error`, `warn`, `trace`) unless stderr does. Console → Console.
 */
export const plainWhereNotShown = (
  base: Console.Console,
  out: { readonly isTTY?: boolean } = process.stdout,
  err: { readonly isTTY?: boolean } = process.stderr,
  env: NodeJS.ProcessEnv = process.env
): Console.Console => {
  const toOut = keepsAnsi(out, env)
  const toErr = keepsAnsi(err, env)
  return {
    ...base,
    log: (...args) => base.log(...(toOut ? args : plain(args))),
    info: (...args) => base.info(...(toOut ? args : plain(args))),
    debug: (...args) => base.debug(...(toOut ? args : plain(args))),
    error: (...args) => base.error(...(toErr ? args : plain(args))),
    warn: (...args) => base.warn(...(toErr ? args : plain(args))),
    trace: (...args) => base.trace(...(toErr ? args : plain(args)))
  }
}
