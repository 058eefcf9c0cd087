/**
 * ANSI styling only where a terminal shows it: @effect/cli (through @effect/printer-ansi) lays its
 * help out in bold and colour whatever the output is, so `autotune --help > file` or `| grep` got
 * escape sequences.
 */
import type { Console, Effect } from "effect"

/** Values of FORCE_COLOR that force styling, as Node's own `tty.getColorDepth` reads them (others, "0" and "false", turn it off). */
const FORCING = new Set(["", "1", "2", "3", "true"])

/**
 * Whether text written to `stream` keeps its ANSI styling: FORCE_COLOR, when set, decides first, read
 * as Node's `tty.WriteStream.getColorDepth` reads it ("", "1", "2", "3", "true" keep it; any other
 * value, "0" and "false", drops it); else NO_COLOR set and non-empty (https://no-color.org; Node's
 * console also takes an empty one), NODE_DISABLE_COLORS set, or TERM=dumb drops it; else it is kept
 * on a terminal (whatever its TERM says of colours: @effect/cli uses bold and the basic 8) and dropped
 * for a pipe or a file. bin/help-cache.js `keepsAnsi` is the same rule, for the
 * help the build kept (test/cli/PlainText.test.ts checks both on one table).
 */
export const keepsAnsi = (stream: { readonly isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean => {
  if (env.FORCE_COLOR !== undefined) return FORCING.has(env.FORCE_COLOR)
  if ((env.NO_COLOR ?? "") !== "" || env.NODE_DISABLE_COLORS !== undefined || env.TERM === "dumb") return false
  return stream.isTTY === true
}

/**
 * The styling @effect/printer-ansi writes: SGR sequences (ESC `[` parameters `m`), and nothing else,
 * so no other text is touched (JSON escapes ESC, but not C1 controls such as U+009B, which Node's
 * broader `util.stripVTControlCharacters` would also remove from a `--json` document).
 */
const SGR = /\u001b\[[0-9;]*m/g

/** `args` with the SGR sequences of every string removed; other arguments as they are. */
const plain = (args: ReadonlyArray<unknown>) => args.map((a) => (typeof a === "string" ? a.replace(SGR, "") : a))

/**
 * `base` with what it writes to stdout (`log`, `info`, `debug`) plain unless stdout keeps ANSI
 * (`keepsAnsi`), and to stderr (`error`, `warn`, `trace`) unless stderr does. Every command's
 * Console output goes through it (the help, and a command's own lines, which carry no styling);
 * not the logger (it writes through `console.unsafe`, uncoloured: RunProcess.ts), nor the
 * `--wizard` prompts (the Terminal service), nor `dir`, `table` or `group`. Console → Console.
 */
export const plainWhereNotShown = (
  base: Console.Console,
  out: { readonly isTTY?: boolean } = process.stdout,
  err: { readonly isTTY?: boolean } = process.stderr,
  env: NodeJS.ProcessEnv = process.env
): Console.Console => {
  // A method as it is where its stream keeps the styling, else writing its arguments plain.
  const through = (keep: boolean, write: (...args: ReadonlyArray<unknown>) => Effect.Effect<void>) =>
    keep ? write : (...args: ReadonlyArray<unknown>) => write(...plain(args))
  const toOut = keepsAnsi(out, env)
  const toErr = keepsAnsi(err, env)
  return {
    ...base,
    log: through(toOut, base.log),
    info: through(toOut, base.info),
    debug: through(toOut, base.debug),
    error: through(toErr, base.error),
    warn: through(toErr, base.warn),
    trace: through(toErr, base.trace)
  }
}
