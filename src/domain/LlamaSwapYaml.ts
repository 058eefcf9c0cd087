/**
 * The llama-swap config editor of `--apply` (SPEC F-4): sets the serving
 * flags inside one model entry's `cmd` of a llama-swap `config.yaml`
 * (`models: {<name>: {cmd: "llama-server --port ${PORT} -m … --ctx-size …"}}`)
 * and changes no other byte. Pure: text in, text out.
 *
 * The entry is located with `yaml`'s node ranges (eemeli/yaml, as the
 * config.yaml editor); inside the `cmd` string the edit is word splices on
 * the source text, so the string keeps its style (plain, quoted, `|` or `>`
 * block), its line breaks, `\` continuations, macros (`${PORT}`) and every
 * other flag. The result is parsed again and checked.
 */
import { isDeepStrictEqual } from "node:util"
import { Either } from "effect"
import { isMap, isScalar, type Pair, parseDocument, Scalar } from "yaml"
import type { ConfigEdit } from "./ConfigYaml.js"
import { PRESET_OWNED_KEYS, type PresetValues, SEARCHED_ONLY } from "./PresetIni.js"

/** Each owned option's command-line spellings (llama-server --help), keyed by its long name without dashes. */
const FLAGS: Readonly<Record<string, ReadonlyArray<string>>> = {
  model: ["--model", "-m"],
  "ctx-size": ["--ctx-size", "-c"],
  parallel: ["--parallel", "-np"],
  "cache-type-k": ["--cache-type-k", "-ctk"],
  "cache-type-v": ["--cache-type-v", "-ctv"],
  "flash-attn": ["--flash-attn", "-fa"],
  threads: ["--threads", "-t"],
  "ubatch-size": ["--ubatch-size", "-ub"],
  "batch-size": ["--batch-size", "-b"]
}

const ownedOf = (flag: string): string | null => Object.keys(FLAGS).find((k) => FLAGS[k]!.includes(flag)) ?? null

/** An owned flag in a command: its key, where the flag starts and where its value is (offsets in the source text). */
interface Occurrence {
  readonly key: string
  readonly start: number
  readonly valueStart: number
  readonly valueEnd: number
  readonly value: string
}

/**
 * A command's words with their offsets (from `from` on), as llama-swap reads a
 * cmd: a line whose text starts with `#` is a comment (dropped), a lone `\`
 * continues the line.
 */
const wordsOf = (text: string, from: number, to: number) => {
  const out: Array<{ text: string; start: number; end: number }> = []
  for (const line of text.slice(from, to).matchAll(/[^\n]*\n?/g)) {
    if (line[0] === "" || /^[ \t]*#/.test(line[0])) continue
    for (const m of line[0].matchAll(/\S+/g)) {
      if (m[0] === "\\") continue
      const start = from + line.index! + m.index!
      out.push({ text: m[0], start, end: start + m[0].length })
    }
  }
  return out
}

/** `word` with the macros put in (`${name}`, a macro's own macros too, 4 levels; unknown ones, such as PORT, stay). */
const expand = (macros: Readonly<Record<string, unknown>>, word: string) => {
  let out = word
  for (let i = 0; i < 4; i++) out = out.replace(/\$\{([A-Za-z0-9_.-]+)\}/g, (m, k: string) => (Object.hasOwn(macros, k) ? String(macros[k]) : m))
  return out
}

/** Whether one of a word's expanded words is the llama-server executable. */
const isServerWord = (macros: Readonly<Record<string, unknown>>, word: string) =>
  expand(macros, word).split(/\s+/).some((w) => /(^|\/)llama-server(\.exe)?$/.test(w))

/** A cmd read word by word: its owned flags, its other words in order, and every word. */
interface Scanned {
  readonly owned: ReadonlyArray<Occurrence>
  readonly others: ReadonlyArray<string>
  readonly words: ReadonlyArray<{ readonly text: string; readonly start: number; readonly end: number }>
}

/**
 * The owned flags of a command (`--flag value`) and its other words, in
 * order; Left(why) when the cmd cannot be edited safely word by word. Only
 * the words after the llama-server executable are its flags (a wrapper's own
 * `-c` or `-m`, as in `taskset -c 0-3 …`, is not). Refused: no word is the
 * executable (a container this tool cannot see into), a quoted or escaped
 * word among its flags, an owned flag written `--flag=value` (llama-server
 * rejects it), or a macro among its flags that itself holds an owned flag
 * (the macro's would be the one llama-server reads).
 */
const scan = (
  text: string,
  from: number,
  to: number,
  macros: Readonly<Record<string, unknown>>,
  owns: (key: string) => boolean
): Either.Either<Scanned, string> => {
  // An owned flag this edit leaves alone (a batch size the recipe did not search) is one of the cmd's other words.
  const ownedKey = (flag: string) => {
    const k = ownedOf(flag)
    return k !== null && owns(k) ? k : null
  }
  const words = wordsOf(text, from, to)
  const exe = words.findIndex((w) => isServerWord(macros, w.text))
  if (exe < 0) return Either.left("names no llama-server executable this tool can find (a container or wrapper it cannot see into)")
  const owned: Array<Occurrence> = []
  const others: Array<string> = words.slice(0, exe + 1).map((w) => w.text)
  for (let i = exe + 1; i < words.length; i++) {
    const w = words[i]!
    if (/['"\\`]/.test(w.text)) return Either.left(`has a quoted or escaped word (${w.text}) among llama-server's flags: edit it by hand`)
    const eq = w.text.startsWith("-") ? w.text.indexOf("=") : -1
    if (eq > 0 && ownedKey(w.text.slice(0, eq)) !== null) return Either.left(`writes ${w.text}, which llama-server does not accept (it takes ${w.text.slice(0, eq)} <value>)`)
    const inMacro = w.text.includes("${") ? expand(macros, w.text).split(/\s+/).find((x) => ownedKey(x) !== null) : undefined
    if (inMacro !== undefined) return Either.left(`sets ${inMacro} through the macro in ${w.text}: set it there, or in the cmd, by hand`)
    const key = ownedKey(w.text)
    if (key !== null && i + 1 < words.length) {
      const v = words[++i]!
      owned.push({ key, start: w.start, valueStart: v.start, valueEnd: v.end, value: v.text })
    } else {
      others.push(w.text)
    }
  }
  return Either.right({ owned, others, words })
}

/** Where the text of a `cmd` scalar is in the source: inside its quotes, or after a block scalar's header line. */
const contentOf = (source: string, node: Scalar): readonly [number, number] | null => {
  const [start, end] = node.range!
  switch (node.type) {
    case Scalar.PLAIN:
      return [start, end]
    case Scalar.QUOTE_DOUBLE:
    case Scalar.QUOTE_SINGLE:
      return [start + 1, source.lastIndexOf(source[start]!, end - 1)]
    case Scalar.BLOCK_LITERAL:
    case Scalar.BLOCK_FOLDED: {
      const nl = source.indexOf("\n", start)
      return nl === -1 ? null : [nl + 1, end]
    }
    default:
      return null
  }
}

/** Whether `value` can stand as one word of a command in any scalar style, read back the same. */
const writable = (value: string) => /^[^\s'"\\#$`]+$/.test(value)

/** The macros a model entry's cmd sees: the file's, with the entry's own over them (as llama-swap merges them). */
const macrosOf = (doc: ReturnType<typeof parseDocument>): (entry: string) => Record<string, unknown> => {
  const js = (isMap(doc.contents) ? doc.toJS() : {}) as { macros?: Record<string, unknown>; models?: Record<string, { macros?: Record<string, unknown> }> }
  return (entry) => ({ ...js.macros, ...js.models?.[entry]?.macros })
}

/**
 * The `cmd` of the entry that serves `model` (its `-m`/`--model`), else of
 * entry `name`: its key, scalar, text range and scan; or why there is none
 * (also when entry `name` serves another model: it is not repointed).
 */
const findEntry = (
  source: string,
  doc: ReturnType<typeof parseDocument>,
  name: string,
  model: string | null,
  owns: (key: string) => boolean
) => {
  const models = isMap(doc.contents) ? doc.contents.get("models", true) : undefined
  if (!isMap(models)) return Either.left("it has no `models:` mapping: it is not a llama-swap config")
  const keyOf = (p: Pair) => String((p.key as Scalar).value)
  const cmdOf = (pair: Pair) => (isMap(pair.value) ? pair.value.get("cmd", true) : undefined)
  const macros = macrosOf(doc)
  // Each entry's cmd read once: every entry is read to find the one serving the model, the chosen one is returned.
  const memo = new Map<Pair, ReturnType<typeof scanOnce>>()
  const scanned = (p: Pair) => memo.get(p) ?? memo.set(p, scanOnce(p)).get(p)!
  const scanOnce = (p: Pair) => {
    const cmd = cmdOf(p)
    if (!isScalar(cmd) || typeof cmd.value !== "string") return Either.left(`its model entry "${keyOf(p)}" has no cmd string`)
    const at = contentOf(source, cmd)
    if (at === null) return Either.left(`the cmd of "${keyOf(p)}" is written in a style this tool cannot edit in place`)
    if (cmd.type === Scalar.QUOTE_DOUBLE && source.slice(at[0], at[1]).includes("\\")) {
      return Either.left(`the cmd of "${keyOf(p)}" is a double-quoted string with escapes: edit it by hand`)
    }
    return scan(source, at[0], at[1], macros(keyOf(p)), owns).pipe(
      Either.map((sc) => ({ key: keyOf(p), cmd, at, scanned: sc })),
      Either.mapLeft((why) => `the cmd of "${keyOf(p)}" ${why}`)
    )
  }
  const served = (p: Pair) => Either.getOrNull(scanned(p))?.scanned.owned.find((o) => o.key === "model")?.value ?? null
  const serving = model === null ? [] : models.items.filter((p) => isScalar(p.key) && served(p) === model)
  if (serving.length > 1) return Either.left(`entries ${serving.map((p) => `"${keyOf(p)}"`).join(", ")} all serve ${model}: only one can hold the recipe`)
  const byName = models.items.find((p) => isScalar(p.key) && p.key.value === name)
  const entry = serving[0] ?? byName
  if (entry === undefined) {
    return Either.left(`it has no model entry "${name}" (nor one whose cmd serves ${model}): add one with its cmd, then apply again`)
  }
  if (serving.length === 0 && model !== null) {
    const other = served(entry)
    if (other !== null && other !== model) return Either.left(`its entry "${name}" serves ${other}, not ${model}`)
  }
  return scanned(entry)
}

/**
 * Edits a llama-swap config so the `cmd` of model entry `name` (else the
 * entry whose cmd's `-m`/`--model` is `values.model`) starts llama-server with
 * `values`, changing nothing else (SPEC F-4). Pure: no I/O.
 * - an owned flag the cmd has (any spelling, `--flag value` or
 *   `--flag=value`) gets the new value in place; a later repeat is removed;
 * - a null value removes the flag and its value (and the line, when nothing
 *   else is left on it);
 * - a missing flag is added after the cmd's last word, as ` --flag value`.
 * Then the result is parsed again: the entry's cmd must read back `values`
 * with its other words in order, and every other value of the file must be
 * as it was. Returns Left(reason) when the text is not a llama-swap config
 * (no `models:` mapping), has no such entry, a value cannot be one word of a
 * command, or the check fails.
 */
export const editSwapText = (source: string, name: string, values: PresetValues): Either.Either<ConfigEdit, string> => {
  for (const [k, v] of Object.entries(values)) {
    if (v !== null && !writable(v)) return Either.left(`the value of ${k}, ${JSON.stringify(v)}, cannot be written into a cmd`)
  }
  const doc = parseDocument(source)
  if (doc.errors.length > 0) return Either.left(`it is not valid YAML: ${doc.errors[0]!.message.trim()}`)
  // The options this edit sets or removes; one `values` leaves out (SEARCHED_ONLY) is the cmd's own, wherever it is written.
  const owns = (k: string) => values[k] !== undefined
  const found = findEntry(source, doc, name, values["model"] ?? null, owns)
  if (Either.isLeft(found)) return Either.left(found.left)
  const { at, key: entryKey, scanned: before } = found.right
  const splices: Array<{ start: number; end: number; text: string }> = []
  const lineStart = (i: number) => source.lastIndexOf("\n", i - 1) + 1
  const lineEnd = (i: number) => (source.indexOf("\n", i) === -1 ? source.length : source.indexOf("\n", i) + 1)
  const remove = (o: Occurrence) => {
    const [ls, le] = [lineStart(o.start), lineEnd(o.valueEnd)]
    const lead = /^[ \t]*$/.test(source.slice(ls, o.start))
    const rest = source.slice(ls, o.start) + source.slice(o.valueEnd, le)
    // Nothing else on the line (a block scalar's one-flag-per-line style): the whole line goes.
    if (/^[ \t]*\\?[ \t]*\r?\n?$/.test(rest) && ls >= at[0] && le <= at[1]) return splices.push({ start: ls, end: le, text: "" })
    // First on its line: the line's indentation stays, the blanks after the value go; else the blanks before the flag go.
    if (lead) {
      let end = o.valueEnd
      while (end < at[1] && /[ \t]/.test(source[end]!)) end++
      return splices.push({ start: o.start, end, text: "" })
    }
    let start = o.start
    while (start > at[0] && /[ \t]/.test(source[start - 1]!)) start--
    return splices.push({ start, end: o.valueEnd, text: "" })
  }
  const changed: Array<string> = []
  const added: Array<string> = []
  for (const k of PRESET_OWNED_KEYS) {
    const v = values[k]
    if (v === undefined) continue
    const occ = before.owned.filter((o) => o.key === k)
    if ((occ[0]?.value ?? null) !== v || occ.length > 1) changed.push(k)
    occ.forEach((o, i) => {
      if (i === 0 && v !== null) {
        if (o.value !== v) splices.push({ start: o.valueStart, end: o.valueEnd, text: v })
      } else {
        remove(o)
      }
    })
    if (occ.length === 0 && v !== null) added.push(`${FLAGS[k]![0]} ${v}`)
  }
  if (added.length > 0) {
    // After the last word that stays (a removed last line takes its words with it).
    const removed = (i: number) => splices.some((s) => s.text === "" && s.start <= i && i < s.end)
    const anchor = wordsOf(source, at[0], at[1]).filter((w) => !removed(w.start)).at(-1)
    if (anchor === undefined) return Either.left(`the cmd of "${entryKey}" is empty`)
    splices.push({ start: anchor.end, end: anchor.end, text: ` ${added.join(" ")}` })
  }
  let text = source
  for (const s of [...splices].sort((a, b) => b.start - a.start || b.end - a.end)) text = text.slice(0, s.start) + s.text + text.slice(s.end)
  // A removed last line leaves the line before it ending in a `\` continuation to nothing: that goes too.
  // Every splice lies inside the cmd, so its text now ends where it did, moved by what the splices added.
  const to = at[1] + splices.reduce((n, sp) => n + sp.text.length - (sp.end - sp.start), 0)
  const tail = /[ \t]*\\([ \t]*\r?\n[ \t]*)$/.exec(text.slice(at[0], to))
  if (tail !== null) text = text.slice(0, to - tail[0].length) + tail[1] + text.slice(to)

  // The check: parsed again, only this entry's cmd differs, and it reads back as wanted.
  const after = parseDocument(text)
  if (after.errors.length > 0) return Either.left(`the edited file would not parse: ${after.errors[0]!.message.trim()}`)
  const again = findEntry(text, after, entryKey, null, owns)
  if (Either.isLeft(again)) return Either.left(`the edited file would lose its entry: ${again.left}`)
  const now = again.right.scanned
  for (const k of PRESET_OWNED_KEYS) {
    const v = values[k]
    if (v === undefined) continue
    const got = now.owned.filter((o) => o.key === k).map((o) => o.value)
    if (!isDeepStrictEqual(got, v === null ? [] : [v])) return Either.left(`the edited cmd would hold ${k} ${JSON.stringify(got)}, not ${JSON.stringify(v)}`)
  }
  if (!isDeepStrictEqual(now.others, before.others)) return Either.left("the edit would change a word of the cmd it does not own")
  const strip = (d: ReturnType<typeof parseDocument>) => {
    const js = d.toJS() as { models: Record<string, Record<string, unknown>> }
    const { cmd: _cmd, ...rest } = js.models[entryKey] ?? {}
    return { ...js, models: { ...js.models, [entryKey]: rest } }
  }
  if (!isDeepStrictEqual(strip(doc), strip(after))) return Either.left("the edit would change a value outside the entry's cmd")
  return Either.right({ text, changed })
}

/**
 * The command an entry's `cmd` runs (F-6: what llama-swap would start),
 * as words: the file's `macros` and `${PORT}` (as `port`) substituted, `\`
 * continuations dropped, single- and double-quoted words unquoted. Left(why)
 * when the file or the entry cannot be read.
 */
export const swapCommand = (source: string, name: string, model: string, port: number): Either.Either<ReadonlyArray<string>, string> => {
  const doc = parseDocument(source)
  if (doc.errors.length > 0) return Either.left(`not valid YAML: ${doc.errors[0]!.message.trim()}`)
  // Read as an edit that sets every option a recipe always owns (a batch size in a macro is fine here).
  const found = findEntry(source, doc, name, model, (k) => !SEARCHED_ONLY.includes(k))
  if (Either.isLeft(found)) return Either.left(found.left)
  // The words as the editor read them (comment lines dropped), macros put in, then split and unquoted.
  const macros = { ...macrosOf(doc)(found.right.key), PORT: `${port}` }
  const cmd = found.right.scanned.words.map((w) => expand(macros, w.text)).join(" ")
  const words = [...cmd.matchAll(/"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g)]
    .map((m) => m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2] ?? m[3]!)
    .filter((w) => w !== "\\")
  return words.length === 0 ? Either.left("its cmd is empty") : Either.right(words)
}
