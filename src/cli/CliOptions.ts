/** Numeric CLI options whose parse and range errors name the flag (exit 64, SPEC B-1). */
import { HelpDoc, Options, ValidationError } from "@effect/cli"
import { Effect } from "effect"

/**
 * Numeric options whose parse errors name the flag ("--target-context must be
 * an integer, got "lots""): @effect/cli's own `Options.integer` says only
 * "'lots' is not a integer". A ValidationError maps to exit 64 (SPEC B-1).
 */
const numeric = (name: string, what: string, parse: (s: string) => number | undefined): Options.Options<number> =>
  Options.text(name).pipe(
    Options.withPseudoName(what),
    Options.mapEffect((s) => {
      const n = parse(s.trim())
      return n === undefined
        ? Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--${name} must be ${what === "integer" ? "an integer" : "a number"}, got "${s}"`)))
        : Effect.succeed(n)
    })
  )

/**
 * An integer option (`-?[0-9]+`) within [`min`, `max`]: a value outside is a
 * ValidationError naming the flag ("--max-batch must be an integer >= 1, got
 * 0"), so every range check happens at parse time (exit 64, SPEC B-1).
 */
export const integerOption = (name: string, range: { readonly min?: number; readonly max?: number } = {}) => {
  const min = range.min ?? -Infinity
  const max = range.max ?? Infinity
  return numeric(name, "integer", (s) => (/^-?[0-9]+$/.test(s) ? Number(s) : undefined)).pipe(
    Options.mapEffect((n) =>
      n < min || n > max
        ? Effect.fail(ValidationError.invalidValue(HelpDoc.p(
          `--${name} must be an integer ${n < min ? `>= ${min}` : `<= ${max}`}, got ${n}`
        )))
        : Effect.succeed(n)
    )
  )
}

/** A finite decimal option. */
export const floatOption = (name: string) =>
  numeric(name, "number", (s) => (s !== "" && Number.isFinite(Number(s)) ? Number(s) : undefined))

/**
 * `--db-path` of the commands that read a tune's database (`report`,
 * `history`, `verify`): the SQLite file, default the same as `tune`'s.
 */
export const dbPathOption = Options.text("db-path").pipe(Options.optional,
  Options.withDescription("SQLite file for runs and trials (default <user data dir>/llm-autotune/autotune.db, as for tune)"))
