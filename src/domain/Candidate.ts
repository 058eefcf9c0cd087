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
}
