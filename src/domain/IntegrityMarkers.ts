/**
 * Classification of pre-warm failures (SPEC D-2): integrity failures abort the
 * whole run, everything else only makes that candidate infeasible.
 */

/** How a pre-warm failure counts (SPEC D-2). */
export type FailureKind = "integrity" | "transient"

/**
 * One integrity marker: a case-insensitive substring of a real error line, and
 * where that line comes from. Markers are whole phrases, never single words:
 * "corrupted" alone would also match the transient "cache index invalid or
 * corrupted; rebuild cache" (SPEC D-2), and "failed to load model" alone is
 * also what llama.cpp prints when a buffer allocation (memory) fails.
 */
export interface IntegrityMarker {
  readonly phrase: string
  readonly source: string
}

/**
 * The integrity markers (SPEC D-2), each anchored to an error string seen from
 * a real loader. Checked against the failure reason and the provider's output
 * tail together.
 */
export const INTEGRITY_MARKERS: ReadonlyArray<IntegrityMarker> = [
  {
    phrase: "invalid gguf magic",
    source: "node-llama-cpp InvalidGgufMagicError: `Invalid GGUF magic. Expected \"GGUF\" but got …` (seen from `autotune serve`); also this tool's own header check (gguf/ModelInfo.ts)"
  },
  {
    phrase: "invalid magic characters",
    source: "llama.cpp ggml/src/gguf.cpp gguf_init_from_reader: `invalid magic characters: 'XXXX', expected 'GGUF'` (seen from llama-server)"
  },
  {
    phrase: "data is not within the file bounds",
    source: "llama.cpp src/llama-model-loader.cpp: `tensor 'output.weight' data is not within the file bounds, model is corrupted or incomplete` (seen from llama-server and `autotune serve` on a truncated file)"
  },
  {
    phrase: "model is corrupted or incomplete",
    source: "llama.cpp src/llama-model-loader.cpp (same line as above)"
  },
  ...[
    "failed to read magic",
    "failed to read header",
    "gguFv1 is no longer supported",
    "but this software only supports up to version",
    "failed to read key-value pairs",
    "has invalid number of dimensions",
    "has invalid ggml type",
    "failed to read tensor info",
    "failed to read tensor data"
  ].map((phrase) => ({
    phrase: phrase.toLowerCase(),
    source: "llama.cpp ggml/src/gguf.cpp gguf_init_from_reader (strings in the bundled llama-server binary)"
  })),
  // Not "wrong number of tensors" nor "has wrong shape": an older llama.cpp prints them for a
  // valid newer GGUF (e.g. Llama 3.1's "expected 292, got 291"), a version mismatch, not corruption.
  ...[
    "tensors expected but",
    "has invalid data",
    "is duplicated"
  ].map((phrase) => ({
    phrase,
    source: "llama.cpp src/llama-model-loader.cpp (strings in the bundled llama-server binary, e.g. `corrupted model: %d tensors expected but %d found`)"
  })),
  {
    phrase: "' has offset ",
    source: "llama.cpp ggml/src/gguf.cpp: `tensor 'blk.1.attn_norm.weight' has offset 3706368, expected 3678720` (seen from llama-server on a file with a tensor shape changed)"
  },
  {
    phrase: "unsupported gguf version",
    source: "this tool's own header check (gguf/ModelInfo.ts), after llama.cpp gguf.cpp, which reads versions 2 and 3 only"
  },
  {
    phrase: "unreadable gguf header",
    source: "this tool's own header check (gguf/ModelInfo.ts): node-llama-cpp readGgufFileInfo threw"
  },
  {
    phrase: "required configuration file missing",
    source: "SPEC D-2, macprovider/MLX loader: `Required configuration file missing: tokenizer.json`"
  },
  {
    phrase: "invalid json header length",
    source: "SPEC D-2, MLX safetensors loader: `[load_safetensors] Invalid json header length`"
  },
  // SPEC-only markers: D-2 names these failure classes; no loader here emits them, so
  // the phrases are the SPEC's wording, not captured lines.
  { phrase: "checksum mismatch", source: "SPEC D-2 (wording only): checksum mismatch of downloaded weights" },
  { phrase: "hash mismatch", source: "SPEC D-2 (wording only): hash mismatch of downloaded weights" },
  { phrase: "signature mismatch", source: "SPEC D-2 (wording only): signature mismatch of downloaded weights" },
  { phrase: "signature verification failed", source: "SPEC D-2 (wording only): signature check of downloaded weights" }
]

/**
 * Classifies a pre-warm failure (SPEC D-2) from its reason and the provider's
 * output tail (stderr/stdout of the start): `integrity` when any
 * INTEGRITY_MARKERS phrase occurs (case-insensitive), else `transient` —
 * including timeouts, HTTP errors, rate limits, out-of-memory and loader lines
 * such as "cache index invalid or corrupted; rebuild cache" or "incomplete
 * metadata in API response; retry later". The exit status alone never makes a
 * failure an integrity failure: loaders exit 1 for memory and for corruption
 * alike. Returns the kind and the matched marker (null when transient).
 */
export const classifyPreWarmFailure = (
  reason: string,
  outputTail: string
): { readonly kind: FailureKind; readonly marker: IntegrityMarker | null } => {
  const text = `${reason}\n${outputTail}`.toLowerCase()
  const marker = INTEGRITY_MARKERS.find((m) => text.includes(m.phrase)) ?? null
  return { kind: marker === null ? "transient" : "integrity", marker }
}
