/**
 * The config.yaml editor of `--apply` (SPEC F-3): sets the owned top-level
 * keys of a provider config and changes no other byte. Pure: text in, text
 * out. Edits are byte splices located with `yaml`'s node ranges (eemeli/yaml,
 * chosen because it keeps comments and exposes source ranges), never a
 * re-serialisation, which would reflow spacing (STACK.md).
 */
import { isDeepStrictEqual } from "node:util"
import { Either } from "effect"
import { isMap, isScalar, type Pair, parseDocument, Scalar, stringify } from "yaml"
import type { Knobs, KvBits } from "./Knobs.js"
import { MAX_STREAM_INTERVAL_MS } from "./StreamInterval.js"

/** The top-level config.yaml keys `--apply` owns, in the order missing ones are appended (SPEC F-3). */
export const OWNED_KEYS = ["model", "kv_bits_override", "max_context_override", "max_concurrency_override"] as const

/** An owned key of the embedded provider's config (`autotune serve --config`, SPEC F-4) only: its thread count. */
export const THREADS_KEY = "threads_override"

/** An owned key of the embedded provider's config only: its flash attention (issue 14; removed when the recipe left it to `auto`). */
export const FLASH_ATTN_KEY = "flash_attn_override"

/**
 * An owned key of the embedded provider's config only: how often its streams
 * write tokens (ms, `autotune serve --stream-interval-ms`; removed for the
 * default, set only under a tight ITL objective: domain/StreamInterval.ts).
 */
export const STREAM_INTERVAL_KEY = "stream_interval_ms_override"

/** One of the owned top-level keys of a provider's config.yaml (SPEC F-3, F-4). */
export type OwnedKey = typeof OWNED_KEYS[number] | typeof THREADS_KEY | typeof FLASH_ATTN_KEY | typeof STREAM_INTERVAL_KEY

/**
 * The keys an edit of `values` owns: OWNED_KEYS, then `threads_override`,
 * `flash_attn_override` and `stream_interval_ms_override` each when `values`
 * carries it (F-4).
 */
export const ownedKeysOf = (values: OwnedValues): ReadonlyArray<OwnedKey> => [
  ...OWNED_KEYS,
  ...(values.threads_override === undefined ? [] : [THREADS_KEY] as const),
  ...(values.flash_attn_override === undefined ? [] : [FLASH_ATTN_KEY] as const),
  ...(values.stream_interval_ms_override === undefined ? [] : [STREAM_INTERVAL_KEY] as const)
]

/**
 * The values `--apply` writes (SPEC F-2 knob names = config.yaml keys, F-3).
 * `model`: the model id or path, as the provider takes it (non-empty).
 * `kv_bits_override`: KV-cache bits, or null for the provider's default.
 * `max_context_override`: tokens; `max_concurrency_override`: concurrent
 * requests; positive integers, or null for the provider's default.
 * A null REMOVES that key's line from the file (SPEC F-3 says so for a nil
 * kv-bits; the other overrides follow the same rule: absent = provider default).
 */
export interface OwnedValues {
  readonly model: string
  readonly kv_bits_override: KvBits
  readonly max_context_override: number | null
  readonly max_concurrency_override: number | null
  /**
   * Threads (the embedded provider's config only, F-4): a positive integer, or
   * null for the provider's default; absent (undefined) for a provider whose
   * config has no such key, whose edit then leaves any `threads_override` line alone.
   */
  readonly threads_override?: number | null
  /**
   * Flash attention (the embedded provider's config only, F-4): true on, false
   * off, null removes the key (`auto`); absent (undefined) leaves any
   * `flash_attn_override` line alone.
   */
  readonly flash_attn_override?: boolean | null
  /**
   * The stream interval, ms (the embedded provider's config only): an
   * integer from 0 to MAX_STREAM_INTERVAL_MS, or null removes the key (the
   * provider's default); absent (undefined) leaves any such line alone.
   */
  readonly stream_interval_ms_override?: number | null
}

/**
 * The owned values that carry a recommendation (SPEC F-3, F-4; the knob →
 * config key mapping of domain/Knobs.ts): `model` as the provider takes it,
 * kv-bits, context cap and batch; threads only with `withThreads` (the
 * embedded provider's config, F-4; macprovider's has no such key, F-3).
 */
export const ownedValuesOf = (model: string, knobs: Knobs, withThreads = false): OwnedValues => ({
  model,
  kv_bits_override: knobs.kvBits,
  max_context_override: knobs.maxContext,
  max_concurrency_override: knobs.maxBatch,
  ...(withThreads ? { threads_override: knobs.threads } : {})
})

/** The edited text of a config and the owned keys whose value it changes (see `editConfigText`). */
export interface ConfigEdit {
  readonly text: string
  /** The owned keys whose value changed, was added or was removed, in the editor's key order. */
  readonly changed: ReadonlyArray<string>
}

/** A replacement of `source[start, end)` by `text`. */
interface Splice {
  readonly start: number
  readonly end: number
  readonly text: string
}

const lineStart = (src: string, i: number) => src.lastIndexOf("\n", i - 1) + 1
/** Offset just after the newline ending the line that holds offset `i` (or the end of the text). */
const lineEnd = (src: string, i: number) => {
  const j = src.indexOf("\n", i)
  return j === -1 ? src.length : j + 1
}
/** Moves `i` back over YAML white space (spaces, tabs, line breaks), not below `floor`. */
const trimBack = (src: string, i: number, floor: number) => {
  while (i > floor && /[ \t\r\n]/.test(src[i - 1]!)) i--
  return i
}
/** The line break the file uses (of its first line), LF when it has none. */
const lineBreakOf = (src: string) => {
  const j = src.indexOf("\n")
  return j > 0 && src[j - 1] === "\r" ? "\r\n" : "\n"
}

const firstError = (errors: ReadonlyArray<{ readonly message: string }>) => errors[0]!.message.trim()

/**
 * A string as a one-line YAML scalar, in the style of the scalar it replaces
 * when that is possible: double-quoted stays double-quoted (JSON escapes are
 * valid YAML), single-quoted stays single-quoted, otherwise plain when YAML
 * reads it back as the same string, else double-quoted.
 */
const stringScalar = (s: string, style: Scalar.Type | undefined): string => {
  const oneLine = !/[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufeff]/.test(s)
  if (style === Scalar.QUOTE_SINGLE && oneLine) return `'${s.replace(/'/g, "''")}'`
  if (style === Scalar.QUOTE_DOUBLE || !oneLine) return JSON.stringify(s)
  const yaml = stringify(s, { lineWidth: 0, minContentWidth: 0 }).replace(/\n$/, "")
  return yaml.includes("\n") ? JSON.stringify(s) : yaml
}

/** Checks the values before any text is computed; the reason when one is out of range. */
const invalidValues = (v: OwnedValues): string | null => {
  const posInt = (n: number | null) => n === null || (Number.isSafeInteger(n) && n > 0)
  if (typeof v.model !== "string" || v.model.length === 0) return "model must be a non-empty string"
  if (v.kv_bits_override !== null && v.kv_bits_override !== 4 && v.kv_bits_override !== 8) {
    return `kv_bits_override must be 4, 8 or null, got ${String(v.kv_bits_override)}`
  }
  if (!posInt(v.max_context_override)) return `max_context_override must be a positive integer or null, got ${v.max_context_override}`
  if (!posInt(v.max_concurrency_override)) {
    return `max_concurrency_override must be a positive integer or null, got ${v.max_concurrency_override}`
  }
  if (v.threads_override !== undefined && !posInt(v.threads_override)) {
    return `threads_override must be a positive integer or null, got ${v.threads_override}`
  }
  if (v.flash_attn_override !== undefined && v.flash_attn_override !== null && typeof v.flash_attn_override !== "boolean") {
    return `flash_attn_override must be true, false or null, got ${String(v.flash_attn_override)}`
  }
  const interval = v.stream_interval_ms_override
  if (interval !== undefined && interval !== null && !(Number.isSafeInteger(interval) && interval >= 0 && interval <= MAX_STREAM_INTERVAL_MS)) {
    return `stream_interval_ms_override must be an integer from 0 to ${MAX_STREAM_INTERVAL_MS} or null, got ${String(interval)}`
  }
  return null
}

/**
 * Edits the text of a provider config.yaml so the owned top-level keys hold
 * `values`, changing nothing else (SPEC F-3). Pure: no I/O.
 *
 * Edits are byte splices located with `yaml`'s node ranges, never a
 * re-serialisation (`doc.set` + `String(doc)` reflows spacing, STACK.md):
 * - a key whose value already equals the wanted one is left as it is;
 * - a one-line scalar value (plain, single- or double-quoted, no tag or
 *   anchor) is replaced in place, so the spacing and an inline comment after
 *   it stay; a string keeps its quoting style when it can;
 * - a null value (`model:` / `model: # c`) gets the value inserted after `:`;
 * - any other value (block scalar, collection, tagged, anchored, explicit
 *   `? key`) is rewritten as `key: value` from the key to the end of its value;
 *   comments inside the old value go, the rest of its last line stays;
 * - null removes the key: the lines from its key to the end of its value,
 *   including an inline comment; comment lines above it stay;
 * - a missing key with a value is appended at the end of the top-level
 *   mapping, with the mapping's indentation and the file's line break (LF or
 *   CRLF), after a line break if the file lacks a final one.
 * An empty or comment-only file counts as an empty mapping.
 *
 * Then the result is verified: it must parse with `yaml`, the owned keys must
 * read back exactly as `values` (absent for null) and every other top-level
 * key must have the same parsed value as before.
 *
 * Returns Left(reason) when the source does not parse (the parser's message,
 * with line and column), holds several documents, its top level is not a
 * block mapping, a value is out of range, or the verification fails.
 */
export const editConfigText = (source: string, values: OwnedValues): Either.Either<ConfigEdit, string> => {
  const keys = ownedKeysOf(values)
  const bad = invalidValues(values)
  if (bad !== null) return Either.left(bad)
  const doc = parseDocument(source)
  if (doc.errors.length > 0) return Either.left(`it is not valid YAML: ${firstError(doc.errors)}`)
  const root = doc.contents
  if (root !== null && !isMap(root)) {
    return Either.left(`its top level is not a mapping (found ${isScalar(root) ? "a scalar" : "a sequence"})`)
  }
  if (root !== null && root.flow) {
    return Either.left("its top level is a flow mapping ({ … }); only a block mapping can be edited in place")
  }
  let before: Record<string, unknown>
  try {
    before = (doc.toJS() ?? {}) as Record<string, unknown>
  } catch (e) {
    return Either.left(`it does not load: ${e instanceof Error ? e.message : String(e)}`)
  }
  const eol = lineBreakOf(source)

  const found = new Map<OwnedKey, Pair>()
  for (const pair of root?.items ?? []) {
    if (isScalar(pair.key) && typeof pair.key.value === "string" && (keys as ReadonlyArray<string>).includes(pair.key.value)) {
      found.set(pair.key.value as OwnedKey, pair)
    }
  }

  const splices: Array<Splice> = []
  const appended: Array<string> = []
  const changed: Array<OwnedKey> = []
  for (const key of keys) {
    const want = values[key] ?? null
    const pair = found.get(key)
    if (pair === undefined) {
      if (want !== null) {
        appended.push(`${key}: ${typeof want === "string" ? stringScalar(want, undefined) : `${want}`}`)
        changed.push(key)
      }
      continue
    }
    if (want !== null && isDeepStrictEqual(before[key], want)) continue
    changed.push(key)
    const k = pair.key as Scalar
    const [keyStart, keyEnd] = [k.range![0], k.range![1]]
    const v = isScalar(pair.value) ? pair.value : null
    const vRange = (pair.value as { range?: [number, number, number] } | null)?.range
    // End of the item's content: its value without trailing white space, at least the key.
    const contentEnd = Math.max(keyEnd, vRange === undefined ? keyEnd : trimBack(source, vRange[1], keyEnd))
    if (want === null) {
      splices.push({ start: lineStart(source, keyStart), end: lineEnd(source, contentEnd), text: "" })
      continue
    }
    const text = typeof want === "string" ? stringScalar(want, v?.type) : `${want}`
    // Between the key and its value: `:`, white space, comments; no tag or anchor.
    const gap = vRange === undefined ? "" : source.slice(keyEnd, vRange[0]).replace(/(^|[ \t])#[^\n]*/g, "$1")
    const plainGap = /^[ \t]*:[ \t\r\n]*$/.test(gap)
    const inlineScalar = v !== null && vRange !== undefined && plainGap &&
      (v.type === Scalar.PLAIN || v.type === Scalar.QUOTE_DOUBLE || v.type === Scalar.QUOTE_SINGLE)
    if (inlineScalar && vRange[0] < vRange[1]) {
      splices.push({ start: vRange[0], end: vRange[1], text })
    } else if (inlineScalar && v.value === null && /^[ \t]*:[ \t]*$/.test(gap)) {
      // `key:` or `key: # comment`: nothing to replace, insert on the key's line.
      const at = vRange[0]
      const spaced = /[ \t]$/.test(source.slice(0, at)) ? text : ` ${text}`
      splices.push({ start: at, end: at, text: at < source.length && source[at] === "#" ? `${spaced} ` : spaced })
    } else {
      const start = lineStart(source, keyStart)
      const indent = /^[ \t]*/.exec(source.slice(start))![0]
      splices.push({ start: start + indent.length, end: contentEnd, text: `${key}: ${text}` })
    }
  }

  if (appended.length > 0) {
    const first = root?.items[0]?.key as Scalar | undefined
    const indent = first?.range == null ? "" : /^[ \t]*/.exec(source.slice(lineStart(source, first.range[0])))![0]
    let at = root?.range == null ? source.length : root.range[1]
    if (at > 0 && source[at - 1] !== "\n") at = lineEnd(source, at)
    // Right after a removed last line: append in its place (its line start), so no blank line appears.
    at = splices.find((s) => s.text === "" && s.end === at)?.start ?? at
    const lead = at > 0 && source[at - 1] !== "\n" ? eol : ""
    splices.push({ start: at, end: at, text: lead + appended.map((l) => indent + l + eol).join("") })
  }

  // Applied back to front; insertions at one offset keep their order.
  let text = source
  for (const s of [...splices].sort((a, b) => b.start - a.start || b.end - a.end)) {
    text = text.slice(0, s.start) + s.text + text.slice(s.end)
  }
  const problem = verify(text, before, values, keys)
  return problem === null ? Either.right({ text, changed }) : Either.left(problem)
}

/** Null when `text` parses and holds exactly `values` plus `before`'s other keys; else what is wrong. */
const verify = (
  text: string,
  before: Record<string, unknown>,
  values: OwnedValues,
  keys: ReadonlyArray<OwnedKey>
): string | null => {
  const doc = parseDocument(text)
  if (doc.errors.length > 0) return `the edited file would not parse: ${firstError(doc.errors)}`
  if (!isMap(doc.contents)) return "the edited file would not be a mapping"
  let after: Record<string, unknown>
  try {
    after = doc.toJS() as Record<string, unknown>
  } catch (e) {
    return `the edited file would not load: ${e instanceof Error ? e.message : String(e)}`
  }
  for (const key of keys) {
    const want = values[key] ?? null
    if (want === null ? Object.hasOwn(after, key) : !isDeepStrictEqual(after[key], want)) {
      return `the edited file would read ${key} as ${JSON.stringify(after[key])}, not ${JSON.stringify(want)}`
    }
  }
  const others = (o: Record<string, unknown>) => Object.keys(o).filter((k) => !(keys as ReadonlyArray<string>).includes(k))
  const [was, now] = [others(before), others(after)]
  for (const key of new Set([...was, ...now])) {
    if (!Object.hasOwn(before, key) || !Object.hasOwn(after, key) || !isDeepStrictEqual(before[key], after[key])) {
      return `the edit would change the non-owned key ${JSON.stringify(key)}`
    }
  }
  return null
}

/**
 * Null when `source` can take any recipe's owned values (trial edits setting
 * and removing every owned key, with `threads_override`,
 * `flash_attn_override` and `stream_interval_ms_override` when `embedded`:
 * the embedded provider's config, F-4),
 * else the editor's reason (SPEC F-3: checked before a run).
 */
export const yamlEditable = (source: string, embedded: boolean): string | null => {
  const own = (threads: number | null, flashAttn: boolean | null, interval: number | null) =>
    embedded ? { [THREADS_KEY]: threads, [FLASH_ATTN_KEY]: flashAttn, [STREAM_INTERVAL_KEY]: interval } : {}
  for (const values of [
    { model: "autotune-check", kv_bits_override: 8 as const, max_context_override: 4096, max_concurrency_override: 1, ...own(2, false, 5) },
    { model: "autotune-check", kv_bits_override: null, max_context_override: null, max_concurrency_override: null, ...own(null, null, null) }
  ]) {
    const trial = editConfigText(source, values)
    if (trial._tag === "Left") return trial.left
  }
  return null
}
