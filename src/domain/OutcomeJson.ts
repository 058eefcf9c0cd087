/**
 * A trial's outcome as JSON text and back (SPEC R-2): what the ledger keeps of
 * each measurement, so a resumed run decides on exactly the figures the
 * interrupted one measured — every sample, not only the row's medians.
 */
import type { ProbeSample, TrialOutcome } from "./Trial.js"
import { Verdict, VERDICT_TAGS } from "./Verdict.js"

/** A number JSON has no form for (±Infinity, NaN), kept as text. */
interface NonFinite {
  readonly $number: string
}

const isNonFinite = (v: unknown): v is NonFinite =>
  typeof v === "object" && v !== null && Object.keys(v).length === 1 && typeof (v as NonFinite).$number === "string"

/** Re-creates a verdict (a `Data` value: equality and `$match` work on it) from its JSON fields. */
const verdictOf = (v: { readonly _tag: string }): Verdict => {
  if (!(VERDICT_TAGS as ReadonlyArray<string>).includes(v._tag)) throw new Error(`unknown verdict ${v._tag}`)
  const { _tag, ...fields } = v
  return (Verdict as unknown as Record<string, (a: object) => Verdict>)[_tag]!(fields)
}

/** `o` as JSON text: every field, verdicts by their tag and fields, ±Infinity and NaN kept. */
export const encodeOutcome = (o: TrialOutcome): string =>
  JSON.stringify(o, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? { $number: String(v) } : v))

/**
 * The outcome `encodeOutcome` wrote. Throws (SyntaxError, or Error naming an
 * unknown verdict tag) on text it did not write; the ledger then treats that
 * measurement as not recorded.
 */
export const decodeOutcome = (text: string): TrialOutcome => {
  const raw = JSON.parse(text, (_k, v) => (isNonFinite(v) ? Number(v.$number) : v)) as TrialOutcome
  return {
    ...raw,
    verdict: verdictOf(raw.verdict),
    samples: raw.samples.map((s): ProbeSample => ({
      ...s,
      failure: s.failure === null ? null : (verdictOf(s.failure) as ProbeSample["failure"])
    }))
  }
}
