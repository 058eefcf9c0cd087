/**
 * A Stage 1 candidate (SPEC A-1): what the operator named, what the provider
 * is given, and its parameter count for size ordering (SPEC A-4, F-1).
 */
export interface Candidate {
  /** As given in `--candidate-models` (or the demo ladder's file path). */
  readonly id: string
  /** What the provider's `--model` gets: a GGUF path or a model id. */
  readonly model: string
  /** 1-based position in the candidate list (F-2 `infeasible[].rank`). */
  readonly rank: number
  /** Parameter count from metadata (GGUF header) or a size token in the id; null when unknown. */
  readonly paramCount: number | null
  /** True when `model` is a local GGUF file (the embedded provider's files, or a `.gguf` path), whose header is checked before every load (SPEC D-2). */
  readonly ggufFile: boolean
  /**
   * Size of the model file in bytes when `model` is a local GGUF file, read once when
   * the candidate is resolved (recorded with each trial as `model_bytes`, so a
   * recipe can be re-checked against the file it names); null for a model id.
   */
  readonly fileBytes: number | null
}

/** Formats a parameter count: 1.1B, 130M; "size unknown" for null. */
export const formatParams = (n: number | null): string =>
  n === null ? "size unknown" : n >= 1e9 ? `${+(n / 1e9).toFixed(2)}B` : `${+(n / 1e6).toFixed(1)}M`

/** Items ordered smallest candidate first by parameter count; unknown sizes last, then by rank (SPEC A-4). */
export const bySizeAscending = <A extends { readonly candidate: Candidate }>(xs: ReadonlyArray<A>): Array<A> =>
  [...xs].sort((a, b) =>
    (a.candidate.paramCount ?? Infinity) - (b.candidate.paramCount ?? Infinity) || a.candidate.rank - b.candidate.rank
  )
