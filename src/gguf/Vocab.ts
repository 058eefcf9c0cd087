/**
 * The tokenizer vocabulary of a synthetic model: a SentencePiece-style ("llama")
 * vocabulary of exactly `VOCAB_SIZE` tokens, shaped like Llama 2's.
 *
 * Layout by id (Llama 2's tokenizer.model puts the same things at the same ids):
 * - 0 `<unk>` (UNKNOWN), 1 `<s>` (CONTROL, bos), 2 `</s>` (CONTROL, eos);
 * - 3..258 the byte-fallback tokens `<0x00>`..`<0xFF>` (BYTE), so any text can be encoded;
 * - then NORMAL pieces, "▁"-prefixed (word-initial) ones first, with decreasing scores.
 *
 * llama.cpp's SPM tokenizer splits text into characters (spaces become "▁" and a "▁" is
 * prepended) and repeatedly merges the adjacent pair whose concatenation is a vocabulary
 * piece with the highest score (llama-vocab.cpp `llm_tokenizer_spm`). Every prefix of a
 * word-initial piece is itself a piece, and word-initial pieces outscore the others, so a
 * word of up to 3 lowercase letters ("▁abc") or a capital and 2 letters with a vowel ("▁The")
 * becomes one token and longer words split into a few 2–3 letter pieces.
 */

/** Total number of tokens (Llama 2's vocabulary size). */
export const VOCAB_SIZE = 32000

/** GGUF `tokenizer.ggml.token_type` values (llama.cpp `llama_token_type`). */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const

/** Special token ids (GGUF `tokenizer.ggml.{unknown,bos,eos}_token_id`). */
export const UNK_ID = 0
export const BOS_ID = 1
export const EOS_ID = 2

/** Parallel arrays: piece text, score, token type; all of length `VOCAB_SIZE`. */
export interface Vocab {
  readonly tokens: ReadonlyArray<string>
  readonly scores: Float32Array
  readonly types: Int32Array
}

const SPACE = "\u2581"
const lower = [..."abcdefghijklmnopqrstuvwxyz"]
const upper = [..."ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
const digits = [..."0123456789"]
const vowels = new Set([..."aeiouy"])
const punct = Array.from({ length: 0x7f - 0x21 }, (_, i) => String.fromCharCode(0x21 + i))
  .filter((c) => !/[A-Za-z0-9]/.test(c))
const pairs = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): Array<string> => a.flatMap((x) => b.map((y) => x + y))

let cached: Vocab | undefined

/** The vocabulary (built once, about 5 ms; deterministic, independent of the seed). */
export const llamaVocab = (): Vocab => {
  if (cached !== undefined) return cached
  const lower2 = pairs(lower, lower), lower3 = pairs(lower2, lower)
  const upperLower = pairs(upper, lower), digits2 = pairs(digits, digits)
  // Word-continuation pieces (no "▁").
  const plain = [SPACE, ...lower, ...upper, ...digits, ...punct, ...lower2, ...upperLower, ...digits2,
    ...lower3.filter((s) => vowels.has(s[1]!))]
  // Word-initial pieces, each group closed under prefixes of the groups before it.
  const initial = [...lower, ...upper, ...digits, ...lower2, ...upperLower, ...digits2, ...lower3,
    ...pairs(upperLower, lower).filter((s) => vowels.has(s[1]!) || vowels.has(s[2]!))].map((s) => SPACE + s)
  const room = VOCAB_SIZE - 3 - 256 - plain.length
  // The last group (capitalised 3-letter words) is cut to fit: it loses its final ~130 pieces ("▁Zy…").
  const normal = [...initial.slice(0, room), ...plain]
  const bytes = Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, "0")}>`)
  const tokens = ["<unk>", "<s>", "</s>", ...bytes, ...normal]
  if (tokens.length !== VOCAB_SIZE || new Set(tokens).size !== VOCAB_SIZE) {
    throw new Error(`synthetic vocabulary has ${tokens.length} tokens, ${new Set(tokens).size} distinct`)
  }
  const scores = new Float32Array(VOCAB_SIZE), types = new Int32Array(VOCAB_SIZE)
  types[UNK_ID] = TokenType.UNKNOWN
  types[BOS_ID] = TokenType.CONTROL
  types[EOS_ID] = TokenType.CONTROL
  for (let i = 3; i < 259; i++) types[i] = TokenType.BYTE
  for (let i = 259; i < VOCAB_SIZE; i++) {
    types[i] = TokenType.NORMAL
    scores[i] = -(i - 259) // SentencePiece log-prob-like: earlier pieces merge first
  }
  cached = { tokens, scores, types }
  return cached
}
