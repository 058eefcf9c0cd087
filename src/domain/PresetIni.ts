/**
 * The llama-server router preset editor of `--apply` (SPEC F-4): sets the
 * serving keys of one model section of a `llama-server --models-preset` INI
 * file and changes no other byte. Pure: text in, text out.
 *
 * The format, as llama.cpp's preset parser reads it (checked against the
 * `llama-server` in ../shared/llama.cpp, build de3ff81): `[name]` sections,
 * one model each (the router serves it under that name; `[*]` holds what every
 * model shares), `key = value` lines whose key is an argument's long name,
 * one of its short names or its environment variable (`ctx-size`, `c`,
 * `LLAMA_ARG_CTX_SIZE` are one option; a repeated key's last line wins, and
 * of two spellings the one later in byte order: `c = 512` then
 * `ctx-size = 1024` reads 1024), `;` and `#` comment lines, and a `;` or `#`
 * comment after a value (spaced or not). Section headers and entries start
 * at the line's first column, keys are `[A-Za-z_][A-Za-z0-9_.-]*`, a
 * byte-order mark makes the file unreadable, and lines before the first
 * section are a model of their own (`default`), not inherited: only `[*]` is.
 * No INI library on npm edits byte-exactly with llama.cpp's aliases, so the
 * edit is line splices, checked by parsing the result again.
 */
import { Either } from "effect"
import type { ConfigEdit } from "./ConfigYaml.js"

/**
 * An option a recipe sets, with every name llama.cpp's preset parser takes
 * for it (long name first: the one written for a new line). From
 * `llama-server --help`.
 */
const OPTIONS: ReadonlyArray<ReadonlyArray<string>> = [
  ["model", "m", "LLAMA_ARG_MODEL"],
  ["ctx-size", "c", "LLAMA_ARG_CTX_SIZE"],
  ["parallel", "np", "LLAMA_ARG_N_PARALLEL"],
  ["cache-type-k", "ctk", "LLAMA_ARG_CACHE_TYPE_K"],
  ["cache-type-v", "ctv", "LLAMA_ARG_CACHE_TYPE_V"],
  ["flash-attn", "fa", "LLAMA_ARG_FLASH_ATTN"],
  ["threads", "t", "LLAMA_ARG_THREADS"],
  ["ubatch-size", "ub", "LLAMA_ARG_UBATCH"],
  ["batch-size", "b", "LLAMA_ARG_BATCH"]
]

/** Owned options a recipe sets only when it searched them; when it did not, the file's value stays. */
export const SEARCHED_ONLY: ReadonlyArray<string> = ["ubatch-size", "batch-size"]

/** The options a recipe owns in its section (long names), in the order new lines are written. */
export const PRESET_OWNED_KEYS: ReadonlyArray<string> = OPTIONS.map((o) => o[0]!)

/**
 * What `llama-server --help` says each option defaults to: written in place of
 * a removed option when `[*]` (or a global line before the first section)
 * sets it, since the section would otherwise inherit that value and serve
 * something the recipe was not measured with.
 */
const BUILD_DEFAULTS: Readonly<Record<string, string>> = {
  "ctx-size": "0",
  parallel: "-1",
  "cache-type-k": "f16",
  "cache-type-v": "f16",
  "flash-attn": "auto",
  "ubatch-size": "512",
  "batch-size": "2048"
}

/** The owned option a key names (its long name), or null when the key is not one a recipe owns. */
const ownedOption = (key: string): string | null => OPTIONS.find((names) => names.includes(key.replace(/^-+/, "")))?.[0] ?? null

/**
 * What a recipe writes into its section: each owned option's value (long
 * name → value), or null to remove it (the build's default, as the recipe was
 * measured without the flag); an option not in it is left as the file has it.
 */
export type PresetValues = Readonly<Record<string, string | null>>

/**
 * The section values of a llama-server launch's arguments: `args` as the
 * adapter builds them (`--ctx-size N --parallel N …`), the model path; every
 * owned option not among them is null (removed), but the batch sizes
 * (SEARCHED_ONLY), which are left out (the file's own stay) — except the
 * batch when the micro-batch is set (llama.cpp clamps the micro-batch to it,
 * so the one it was measured with, the build's, is the recipe's).
 */
export const presetValuesOf = (model: string, args: ReadonlyArray<string>): PresetValues => {
  // The batch sizes are the recipe's only when its Stage 2 searched them (issue 17 part 3): otherwise the
  // operator's stay as they are, as they always did (absent here: left alone).
  const values: Record<string, string | null> = Object.fromEntries(
    PRESET_OWNED_KEYS.filter((k) => !SEARCHED_ONLY.includes(k)).map((k) => [k, null])
  )
  values["model"] = model
  for (let i = 0; i < args.length; i += 2) {
    const key = ownedOption(args[i]!)
    if (key !== null && args[i + 1] !== undefined) values[key] = args[i + 1]!
  }
  // A micro-batch is clamped to the batch: one measured with the build's batch keeps it (the operator's goes).
  if (values["ubatch-size"] !== undefined && values["batch-size"] === undefined) values["batch-size"] = null
  return values
}

/** One line of a preset file, as the parser reads it. */
type Line =
  | { readonly kind: "section"; readonly name: string }
  | { readonly kind: "entry"; readonly key: string; readonly value: string; readonly valueStart: number; readonly valueEnd: number }
  | { readonly kind: "blank" }
  | { readonly kind: "other" }

const SECTION = /^\[([^\]]*)\][ \t]*(?:[;#].*)?$/
const ENTRY = /^()([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*=[ \t]*(.*?)[ \t]*$/

/** A line (without its line break) parsed; value offsets are within the line, before any `;` comment. */
const parseLine = (text: string): Line => {
  if (/^[ \t]*([;#].*)?$/.test(text)) return { kind: "blank" }
  const s = SECTION.exec(text)
  if (s !== null) return { kind: "section", name: s[1]! }
  const e = ENTRY.exec(text)
  if (e === null) return { kind: "other" }
  const raw = e[3]!
  // llama.cpp ends a value at its first `;` or `#`, spaced or not (checked: `c = 100 # x` and `t = 2;x` read 100 and 2).
  const comment = raw.search(/[;#]/)
  const value = (comment === -1 ? raw : raw.slice(0, comment)).trim()
  const valueStart = text.length - raw.length - (text.length - text.trimEnd().length)
  return { kind: "entry", key: e[2]!.trim(), value, valueStart, valueEnd: valueStart + value.length }
}

/** The file as lines with their line breaks kept, so joining them gives the bytes back. */
const splitLines = (source: string): Array<string> => source.match(/[^\n]*\n|[^\n]+$/g) ?? []

const body = (line: string) => line.replace(/\r?\n$/, "")

/**
 * The values of section `name`'s owned options as llama.cpp reads them (a
 * key's last line; of several spellings the one later in byte order), with
 * how many lines set each; null without such a section. `name` "*" reads what
 * every section inherits.
 */
const readSection = (source: string, name: string): { values: Record<string, string>; lines: Record<string, number> } | null => {
  let inside = false
  let found = false
  const bySpelling = new Map<string, { key: string; value: string }>()
  const lines: Record<string, number> = {}
  for (const line of splitLines(source)) {
    const l = parseLine(body(line))
    if (l.kind === "section") {
      inside = l.name === name
      found ||= inside
    } else if (inside && l.kind === "entry") {
      const key = ownedOption(l.key)
      if (key === null) continue
      bySpelling.set(l.key, { key, value: l.value })
      lines[key] = (lines[key] ?? 0) + 1
    }
  }
  const values: Record<string, string> = {}
  for (const spelling of [...bySpelling.keys()].sort()) values[bySpelling.get(spelling)!.key] = bySpelling.get(spelling)!.value
  return found ? { values, lines } : null
}

/**
 * The section of a preset that serves `model` (its `model` option is that
 * path), else `name`: where a recipe for `model` is written and what the
 * router serves it as. Left when several sections serve it, or the section
 * `name` serves another model (the operator's, not to be repointed).
 */
export const presetSectionFor = (source: string, name: string, model: string): Either.Either<string, string> => {
  const names = [...new Set(splitLines(source.replace(/^\uFEFF/, "")).flatMap((l) => {
    const p = parseLine(body(l))
    return p.kind === "section" && p.name !== "*" ? [p.name] : []
  }))]
  const serving = names.filter((n) => readSection(source, n)?.values["model"] === model)
  if (serving.length > 1) return Either.left(`sections ${serving.map((n) => `[${n}]`).join(", ")} all serve ${model}: only one can hold the recipe`)
  if (serving.length === 1) return Either.right(serving[0]!)
  const other = readSection(source, name)?.values["model"]
  if (other !== undefined) return Either.left(`its section [${name}] serves ${other}, not ${model}`)
  return Either.right(name)
}

/** Every non-blank line but section `name`'s header and owned entries, in order: what an edit must leave as it was. */
const untouched = (source: string, name: string): Array<string> => {
  let inside = false
  return splitLines(source).map(body).filter((text) => {
    const l = parseLine(text)
    if (l.kind === "section") inside = l.name === name
    return !(inside && (l.kind === "section" || (l.kind === "entry" && ownedOption(l.key) !== null)))
  }).filter((text) => text.trim() !== "")
}

/** Whether `value` can be written as a preset value and read back the same. */
const writable = (value: string) => value.trim() === value && value !== "" && !/[\r\n;#]/.test(value)

/**
 * Edits a llama-server preset so section `name` holds `values`, changing
 * nothing else (SPEC F-4). Pure: no I/O.
 * - an option the section has (under any of its names) gets the new value in
 *   place on its first line (its key spelling, spacing and `;` comment stay);
 *   any later line of the same option is removed (the first one wins in
 *   llama.cpp, so a stale duplicate must not linger);
 * - a null value removes every line of that option;
 * - a missing option is added after the section's last entry, as `key = value`;
 * - a missing section is appended at the end of the file, after a blank line;
 * - the file's line break (LF or CRLF) is used for new lines.
 * Then the result is parsed again: the section must read back exactly
 * `values` and every other line be as it was.
 * - an option the recipe leaves unset that every section inherits (from `[*]`
 *   or a line before the first section) is written with the build's default
 *   (BUILD_DEFAULTS) instead of removed, so the section serves what was measured;
 * - a leading byte-order mark is kept.
 * The section is the one serving `asked.model` when there is one
 * (`presetSectionFor`), else `preferred`.
 * Returns Left(reason) when the text is not a preset llama.cpp reads (a line
 * that is not a `[section]`, a `key = value` entry, a `;`/`#` comment or
 * blank — a YAML or JSON file, an indented line — or a byte-order mark), the
 * name is empty or not writable, the section occurs twice, another section
 * serves the model too or `preferred` serves another, a value cannot be
 * written (a line break, `;` or `#`, leading or trailing blanks), `[*]` sets
 * an option the recipe leaves to the build and has no default for (threads),
 * or the check fails.
 */
export const editPresetText = (source: string, preferred: string, asked: PresetValues): Either.Either<ConfigEdit, string> => {
  if (source.startsWith("\uFEFF")) return Either.left("it starts with a byte-order mark, which llama-server's preset parser cannot read")
  if (preferred === "" || preferred !== preferred.trim() || /[\]\r\n]/.test(preferred) || preferred === "*") {
    return Either.left(`${JSON.stringify(preferred)} cannot name a preset section`)
  }
  const stray = splitLines(source).findIndex((l) => parseLine(body(l)).kind === "other")
  if (stray >= 0) {
    return Either.left(
      `line ${stray + 1} is not a preset line llama-server reads ([section] or key = value from the first column, or a ; comment)`
    )
  }
  const section = asked["model"] === undefined || asked["model"] === null
    ? Either.right(preferred)
    : presetSectionFor(source, preferred, asked["model"])
  if (Either.isLeft(section)) return Either.left(section.left)
  const name = section.right
  const inherited = readSection(source, "*")?.values ?? {}
  const noDefault = Object.keys(asked).find((k) => asked[k] === null && Object.hasOwn(inherited, k) && BUILD_DEFAULTS[k] === undefined)
  if (noDefault !== undefined) {
    return Either.left(`[*] sets ${noDefault}, which the recipe leaves to the build: give [${name}] its own ${noDefault} by hand`)
  }
  const values: PresetValues = Object.fromEntries(
    Object.entries(asked).map(([k, v]) => [k, v === null && Object.hasOwn(inherited, k) ? BUILD_DEFAULTS[k] ?? null : v])
  )
  for (const [k, v] of Object.entries(values)) {
    if (v !== null && !writable(v)) return Either.left(`the value of ${k}, ${JSON.stringify(v)}, cannot be written in a preset`)
  }
  const lines = splitLines(source)
  const eol = lines[0]?.endsWith("\r\n") === true ? "\r\n" : "\n"
  const sections = lines.map((l, i) => ({ l: parseLine(body(l)), i })).filter((x) => x.l.kind === "section" && x.l.name === name)
  if (sections.length > 1) return Either.left(`it has ${sections.length} sections named [${name}]; only one can be edited`)
  const before = readSection(source, name) ?? { values: {}, lines: {} }
  // A value that differs, or one set on several lines (which one llama.cpp reads depends on spelling and order).
  const changed = PRESET_OWNED_KEYS.filter((k) =>
    values[k] !== undefined && ((values[k] ?? null) !== (before.values[k] ?? null) || (before.lines[k] ?? 0) > 1)
  )
  const wanted = PRESET_OWNED_KEYS.filter((k) => values[k] !== undefined && values[k] !== null)
  const newLines = (keys: ReadonlyArray<string>) => keys.map((k) => `${k} = ${values[k]}${eol}`)

  let out: Array<string>
  if (sections.length === 0) {
    const lead = source === "" ? "" : `${source.endsWith("\n") ? "" : eol}${/(^|\n)[ \t]*\r?\n$/.test(source) ? "" : eol}`
    out = [...lines, lead, `[${name}]${eol}`, ...newLines(wanted)]
  } else {
    const start = sections[0]!.i
    let end = lines.length
    for (let i = start + 1; i < lines.length; i++) {
      if (parseLine(body(lines[i]!)).kind === "section") {
        end = i
        break
      }
    }
    const seen = new Set<string>()
    let lastEntry = start
    const section: Array<string> = []
    for (let i = start + 1; i < end; i++) {
      const text = body(lines[i]!)
      const l = parseLine(text)
      const key = l.kind === "entry" ? ownedOption(l.key) : null
      if (l.kind === "entry" && key !== null) {
        const v = values[key]
        if (v === undefined) {
          section.push(lines[i]!)
        } else if (v !== null && !seen.has(key)) {
          section.push(text.slice(0, l.valueStart) + v + lines[i]!.slice(l.valueEnd))
        }
        seen.add(key)
      } else {
        section.push(lines[i]!)
      }
      if (l.kind === "entry") lastEntry = start + 1 + section.length - 1
    }
    // New options go after the section's last entry, before trailing comments and blank lines.
    const at = lastEntry - start
    let sectionLines = [lines[start]!, ...section]
    const missing = wanted.filter((k) => !seen.has(k))
    if (missing.length > 0 && !sectionLines[at]!.endsWith("\n")) sectionLines[at] += eol
    sectionLines = [...sectionLines.slice(0, at + 1), ...newLines(missing), ...sectionLines.slice(at + 1)]
    out = [...lines.slice(0, start), ...sectionLines, ...lines.slice(end)]
  }
  const text = out.join("")
  // The check: the section reads back as `values`, every other line as it was.
  const after = readSection(text, name)?.values ?? {}
  for (const k of PRESET_OWNED_KEYS) {
    if (values[k] !== undefined && (after[k] ?? null) !== (values[k] ?? null)) {
      return Either.left(`the edited file would read ${k} as ${JSON.stringify(after[k] ?? null)}, not ${JSON.stringify(values[k])}`)
    }
  }
  const [was, now] = [untouched(source, name), untouched(text, name)]
  if (was.length !== now.length || was.some((l, i) => l !== now[i])) return Either.left("the edit would change a line it does not own")
  return Either.right({ text, changed })
}
