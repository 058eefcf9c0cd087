import * as crypto from "node:crypto"
import * as Fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { isDeepStrictEqual, TextDecoder, TextEncoder } from "node:util"
import { FileSystem } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Effect, Either } from "effect"
import { isMap, isScalar, type Pair, parseDocument, Scalar, stringify } from "yaml"
import { ApplyFailed, UsageError } from "../domain/AutotuneError.js"

/** The top-level config.yaml keys `--apply` owns, in the order missing ones are appended (SPEC F-3). */
export const OWNED_KEYS = ["model", "kv_bits_override", "max_context_override", "max_concurrency_override"] as const

/** One of the owned top-level keys of the provider's config.yaml (SPEC F-3). */
export type OwnedKey = typeof OWNED_KEYS[number]

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
  readonly kv_bits_override: 4 | 8 | null
  readonly max_context_override: number | null
  readonly max_concurrency_override: number | null
}

/** What to apply, where (SPEC F-3). `nowMs`: wall clock in ms since the epoch; names the backup (whole seconds). */
export interface ApplyRequest {
  readonly configPath: string
  readonly values: OwnedValues
  readonly nowMs: number
}

/**
 * A finished apply (SPEC F-3). `configPath` as requested; `backupPath`: the
 * absolute path of the backup of the original bytes, next to the real file
 * (symlinks resolved); `changed`: the owned keys whose value changed, was
 * added or was removed, in OWNED_KEYS order (empty when the file already held
 * these values; it is still backed up and rewritten, byte-identical).
 */
export interface ApplyResult {
  readonly configPath: string
  readonly backupPath: string
  readonly changed: ReadonlyArray<OwnedKey>
}

/** The edited text of a config and the owned keys whose value it changes (see `editConfigText`). */
export interface ConfigEdit {
  readonly text: string
  readonly changed: ReadonlyArray<OwnedKey>
}

/** `~/.config/macprovider/config.yaml` (SPEC F-3), from `os.homedir()`. */
export const defaultConfigPath = (): string => path.join(os.homedir(), ".config", "macprovider", "config.yaml")

/** Backup names tried per second before giving up (`.bak-<s>-0` … `-999`). */
const MAX_BACKUPS_PER_SECOND = 1000

// ---------------------------------------------------------------------------
// Pure part: text edit + verification

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
    if (isScalar(pair.key) && typeof pair.key.value === "string" && (OWNED_KEYS as ReadonlyArray<string>).includes(pair.key.value)) {
      found.set(pair.key.value as OwnedKey, pair)
    }
  }

  const splices: Array<Splice> = []
  const appended: Array<string> = []
  const changed: Array<OwnedKey> = []
  for (const key of OWNED_KEYS) {
    const want = values[key]
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
  const problem = verify(text, before, values)
  return problem === null ? Either.right({ text, changed }) : Either.left(problem)
}

/** Null when `text` parses and holds exactly `values` plus `before`'s other keys; else what is wrong. */
const verify = (text: string, before: Record<string, unknown>, values: OwnedValues): string | null => {
  const doc = parseDocument(text)
  if (doc.errors.length > 0) return `the edited file would not parse: ${firstError(doc.errors)}`
  if (!isMap(doc.contents)) return "the edited file would not be a mapping"
  let after: Record<string, unknown>
  try {
    after = doc.toJS() as Record<string, unknown>
  } catch (e) {
    return `the edited file would not load: ${e instanceof Error ? e.message : String(e)}`
  }
  for (const key of OWNED_KEYS) {
    const want = values[key]
    if (want === null ? Object.hasOwn(after, key) : !isDeepStrictEqual(after[key], want)) {
      return `the edited file would read ${key} as ${JSON.stringify(after[key])}, not ${JSON.stringify(want)}`
    }
  }
  const others = (o: Record<string, unknown>) => Object.keys(o).filter((k) => !(OWNED_KEYS as ReadonlyArray<string>).includes(k))
  const [was, now] = [others(before), others(after)]
  for (const key of new Set([...was, ...now])) {
    if (!Object.hasOwn(before, key) || !Object.hasOwn(after, key) || !isDeepStrictEqual(before[key], after[key])) {
      return `the edit would change the non-owned key ${JSON.stringify(key)}`
    }
  }
  return null
}

// ---------------------------------------------------------------------------
// Effectful part: backup, temp file, rename

const isReason = (reason: string) => (e: PlatformError) => e._tag === "SystemError" && e.reason === reason

/**
 * Writes the recommendation into the provider's config.yaml (SPEC F-3).
 *
 * Order, each step only after the previous one succeeded:
 * 1. resolve symlinks (the real file is edited, a symlink to it stays), stat
 *    and read it; decode as UTF-8 (a BOM is kept);
 * 2. compute the new text and verify it (`editConfigText`);
 * 3. back up the original bytes to `<name>.bak-<unix seconds of nowMs>-<n>` in
 *    the same directory, exclusive create (`wx`), n = 0, 1, … on EEXIST, so an
 *    existing backup is never overwritten; fsync'd; same permission bits;
 * 4. write the new text to `.<name>.tmp-<pid>-<random>` in the same directory,
 *    set the original's permission bits, fsync, close, rename over the
 *    original, fsync the directory (best effort).
 *
 * Fails with ApplyFailed, naming the path and the step: the file is missing
 * ("pass --config-path"), unreadable, not UTF-8, not valid YAML, not a block
 * mapping at the top level, or verification failed (steps 1–2: nothing is
 * written); the backup could not be written (a partial backup is removed);
 * the temp file could not be written, synced or renamed. On a failure or an
 * interruption before the rename, the temp file is removed and the original
 * file is byte-identical; the backup made in step 3 stays (it is a copy of
 * the original, harmless). The rename is the commit point and is
 * uninterruptible. Callers honour SPEC H-4 by not starting this after a
 * SIGINT/SIGTERM.
 */
export const applyRecommendation = (req: ApplyRequest): Effect.Effect<ApplyResult, ApplyFailed, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const failed = (what: string) => (e: PlatformError) => new ApplyFailed({ message: `${what}: ${e.message}` })

    // 1. read
    const target = yield* fs.realPath(req.configPath).pipe(Effect.mapError((e) =>
      isReason("NotFound")(e)
        ? new ApplyFailed({
          message: `config file ${req.configPath} does not exist; pass --config-path with the provider's config.yaml`
        })
        : failed(`cannot read config file ${req.configPath}`)(e)
    ))
    const info = yield* fs.stat(target).pipe(Effect.mapError(failed(`cannot stat config file ${target}`)))
    if (info.type !== "File") {
      return yield* new ApplyFailed({ message: `config file ${target} is not a regular file (${info.type})` })
    }
    const original = yield* fs.readFile(target).pipe(Effect.mapError(failed(`cannot read config file ${target}`)))
    const source = yield* Effect.try({
      try: () => new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(original),
      catch: () => new ApplyFailed({ message: `config file ${target} is not valid UTF-8; nothing was written` })
    })

    // 2. compute + verify
    const edit = yield* Either.match(editConfigText(source, req.values), {
      onLeft: (why) => Effect.fail(new ApplyFailed({ message: `cannot apply to ${target}: ${why}; nothing was written` })),
      onRight: Effect.succeed
    })
    const mode = info.mode & 0o7777
    const dir = path.dirname(target)
    const name = path.basename(target)

    // 3. backup
    const backupPath = yield* backup(fs, dir, name, Math.floor(req.nowMs / 1000), original, mode)

    // 4. temp file, rename
    const tmp = path.join(dir, `.${name}.tmp-${process.pid}-${crypto.randomBytes(6).toString("hex")}`)
    const unchanged = `${target} is unchanged (backup at ${backupPath})`
    const bytes = new TextEncoder().encode(edit.text)
    yield* Effect.scoped(Effect.gen(function*() {
      const file = yield* fs.open(tmp, { flag: "wx", mode: 0o600 })
      yield* file.writeAll(bytes)
      yield* fs.chmod(tmp, mode)
      yield* file.sync
    })).pipe(
      Effect.mapError(failed(`cannot write temp file ${tmp}; ${unchanged}`)),
      Effect.zipRight(Effect.uninterruptible(fs.rename(tmp, target)).pipe(
        Effect.mapError(failed(`cannot rename ${tmp} over ${target}; ${unchanged}`))
      )),
      Effect.onError(() => fs.remove(tmp).pipe(Effect.ignore))
    )
    yield* Effect.scoped(Effect.flatMap(fs.open(dir, { flag: "r" }), (d) => d.sync)).pipe(Effect.ignore)
    return { configPath: req.configPath, backupPath, changed: edit.changed }
  })

/** Step 3 of `applyRecommendation`: the first free `<name>.bak-<seconds>-<n>`, written and fsync'd. */
const backup = (
  fs: FileSystem.FileSystem,
  dir: string,
  name: string,
  seconds: number,
  original: Uint8Array,
  mode: number
): Effect.Effect<string, ApplyFailed> =>
  Effect.gen(function*() {
    for (let n = 0; n < MAX_BACKUPS_PER_SECOND; n++) {
      const p = path.join(dir, `${name}.bak-${seconds}-${n}`)
      const made = yield* Effect.scoped(Effect.gen(function*() {
        const file = yield* fs.open(p, { flag: "wx", mode }).pipe(
          Effect.map((f) => f as FileSystem.File | null),
          Effect.catchIf(isReason("AlreadyExists"), () => Effect.succeed(null))
        )
        if (file === null) return false
        yield* file.writeAll(original).pipe(
          Effect.zipRight(file.sync),
          Effect.onError(() => fs.remove(p).pipe(Effect.ignore))
        )
        return true
      })).pipe(Effect.mapError((e) => new ApplyFailed({ message: `cannot write backup ${p}: ${e.message}; nothing was changed` })))
      if (made) return p
    }
    return yield* new ApplyFailed({
      message: `cannot back up ${path.join(dir, name)}: ${name}.bak-${seconds}-0 … -${MAX_BACKUPS_PER_SECOND - 1} all exist`
    })
  })

/**
 * The config file `--apply` will edit (SPEC F-3): `--config-path`, else the
 * macprovider default. Checked before anything runs, so an hours-long tune does
 * not end in a config that cannot be written: it must be an existing regular
 * file that the editor can edit as it stands (valid YAML, a top-level
 * mapping, nothing that would be broken by a change of the owned keys), in a
 * directory this process can write (backup and temp file go there). The apply
 * checks again at the end, in case the file changed meanwhile. Fails with
 * UsageError naming `--config-path` and the parser's reason.
 */
export const checkApplyTarget = (configPath: string | null): Effect.Effect<string, UsageError> => {
  const file = path.resolve(configPath ?? defaultConfigPath())
  const bad = (why: string) => Effect.fail(new UsageError({ flag: "config-path", message: `--apply: ${why}` }))
  if (Fs.statSync(file, { throwIfNoEntry: false })?.isFile() !== true) {
    return bad(`no provider config at ${file}${configPath === null ? " (the default); pass --config-path <file>" : ""}`)
  }
  try {
    Fs.accessSync(path.dirname(Fs.realpathSync(file)), Fs.constants.W_OK)
  } catch {
    return bad(`cannot write in the directory of ${file} (its backup and the new file go there)`)
  }
  let source: string
  try {
    source = new TextDecoder("utf-8", { fatal: true }).decode(Fs.readFileSync(file))
  } catch (e) {
    return bad(`cannot read ${file} as UTF-8 text: ${e instanceof Error ? e.message : String(e)}`)
  }
  // Trial edits setting and removing every owned key: the editor refuses what it cannot edit byte-exactly.
  for (const values of [
    { model: "autotune-check", kv_bits_override: 8 as const, max_context_override: 4096, max_concurrency_override: 1 },
    { model: "autotune-check", kv_bits_override: null, max_context_override: null, max_concurrency_override: null }
  ]) {
    const trial = editConfigText(source, values)
    if (trial._tag === "Left") return bad(`${file} cannot be edited: ${trial.left}`)
  }
  return Effect.succeed(file)
}
