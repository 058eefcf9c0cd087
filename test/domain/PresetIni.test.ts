import { assert, describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { editPresetText, PRESET_OWNED_KEYS, presetValuesOf } from "../../src/domain/PresetIni.js"

const recipe = presetValuesOf("/m/a.gguf", ["--ctx-size", "602", "--parallel", "1", "--cache-type-k", "q8_0", "--cache-type-v", "q8_0", "--flash-attn", "on", "--threads", "1"])
const edit = (source: string, name = "a", values = recipe) => Either.getOrThrow(editPresetText(source, name, values))

describe("llama-server router preset editor (SPEC F-4)", () => {
  it("F-4 presetValuesOf takes the recipe's launch flags; options the launch does not set are removed (null)", () => {
    assert.deepStrictEqual(presetValuesOf("/m/a.gguf", ["--ctx-size", "300", "--parallel", "2", "--threads", "4"]), {
      model: "/m/a.gguf",
      "ctx-size": "300",
      parallel: "2",
      "cache-type-k": null,
      "cache-type-v": null,
      "flash-attn": null,
      threads: "4"
    })
    // Issue 17 part 3: llama-server's throughput knobs under any of their spellings.
    const tuned = presetValuesOf("/m/a.gguf", ["--ctx-size", "300", "-ub", "64", "--batch-size", "256", "--flash-attn", "off"])
    assert.deepStrictEqual([tuned["ubatch-size"], tuned["batch-size"], tuned["flash-attn"]], ["64", "256", "off"])
  })

  it("F-4 a missing section is appended after a blank line; every other byte stays", () => {
    const src = "; my presets\nversion = 1\n\n[*]\njinja = true\n\n[other]\nmodel = /m/o.gguf\nc = 8192   ; keep\n"
    const out = edit(src)
    expect(out.text).toBe(src + "\n[a]\nmodel = /m/a.gguf\nctx-size = 602\nparallel = 1\ncache-type-k = q8_0\ncache-type-v = q8_0\nflash-attn = on\nthreads = 1\n")
    // Every owned option the recipe sets (it leaves the batch sizes to the build).
    assert.deepStrictEqual(out.changed, PRESET_OWNED_KEYS.filter((k) => k !== "ubatch-size" && k !== "batch-size"))
    // No final line break, CRLF: the file's own line break, and one is added before the section.
    expect(edit("[*]\r\njinja = true").text).toBe("[*]\r\njinja = true\r\n\r\n[a]\r\nmodel = /m/a.gguf\r\nctx-size = 602\r\nparallel = 1\r\ncache-type-k = q8_0\r\ncache-type-v = q8_0\r\nflash-attn = on\r\nthreads = 1\r\n")
    expect(edit("").text.startsWith("[a]\nmodel = /m/a.gguf\n")).toBe(true)
  })

  it("F-4 an existing section: values replaced in place under any alias (spelling, spacing and ; comment kept), duplicates and nulls removed, missing options added after its last entry", () => {
    const src = [
      "[a]",
      "m = /m/a.gguf",
      "c   =   4096   ; the operator's comment",
      "ctx-size = 100",
      "LLAMA_ARG_CACHE_TYPE_K = q4_0",
      "temp = 0.7",
      "fa = off",
      "; trailing comment",
      "",
      "[b]",
      "c = 1",
      ""
    ].join("\n")
    const out = edit(src, "a", { ...recipe, "cache-type-v": null })
    expect(out.text).toBe([
      "[a]",
      "m = /m/a.gguf",
      "c   =   602   ; the operator's comment",
      "LLAMA_ARG_CACHE_TYPE_K = q8_0",
      "temp = 0.7",
      "fa = on",
      "parallel = 1",
      "threads = 1",
      "; trailing comment",
      "",
      "[b]",
      "c = 1",
      ""
    ].join("\n"))
    // A comment after a value, `#` or `;`, spaced or not, is kept; the value before it is what is read and replaced.
    expect(edit("[a]\nc = 100 # mine\nt = 2;x\n").text).toContain("c = 602 # mine\nt = 1;x\n")
    // Applying the same recipe again changes nothing.
    const again = edit(out.text, "a", { ...recipe, "cache-type-v": null })
    expect(again.text).toBe(out.text)
    assert.deepStrictEqual(again.changed, [])
  })

  it("F-4 what cannot be written byte-exactly is refused with the reason", () => {
    const refused = (src: string, name: string, values = recipe) => Either.isLeft(editPresetText(src, name, values))
    expect(refused("[a]\nc = 1\n[a]\nc = 2\n", "a")).toBe(true) // which one would llama.cpp read?
    expect(refused("", "")).toBe(true)
    expect(refused("", "*")).toBe(true)
    expect(refused("", "a]b")).toBe(true)
    expect(refused("", "a", { ...recipe, model: "/m/x;y.gguf" })).toBe(true)
    expect(refused("", "a", { ...recipe, model: "/m/x\ny.gguf" })).toBe(true)
  })

  it("F-4 a file that is not a preset (a llama-swap YAML, JSON) is refused, not appended to", () => {
    const yaml = "models:\n  a:\n    cmd: llama-server --port ${PORT} -m /m/a.gguf\n"
    const r = editPresetText(yaml, "a", recipe)
    assert.isTrue(Either.isLeft(r))
    expect(Either.isLeft(r) ? r.left : "").toContain("line 1 is not a preset line")
    assert.isTrue(Either.isLeft(editPresetText("{\"a\": 1}\n", "a", recipe)))
  })

  it("F-4 an option [*] sets and the recipe leaves unset is written with the build's default, so the section does not inherit it", () => {
    const src = "[*]\ncache-type-k = q4_0\nfa = on\n\n[a]\nmodel = /m/a.gguf\nctk = q8_0\n"
    const f16 = presetValuesOf("/m/a.gguf", ["--ctx-size", "602", "--parallel", "1", "--threads", "1"])
    const out = edit(src, "a", f16)
    expect(out.text).toBe("[*]\ncache-type-k = q4_0\nfa = on\n\n[a]\nmodel = /m/a.gguf\nctk = f16\nctx-size = 602\nparallel = 1\nflash-attn = auto\nthreads = 1\n")
    // Lines before the first section are llama.cpp's `default` model, not inherited; an option nobody sets stays absent.
    expect(edit("cache-type-v = q8_0\n", "a", f16).text).not.toContain("cache-type-v = f16")
    expect(edit("", "a", f16).text).not.toContain("cache-type")
    // [*] threads with a recipe that leaves threads to the build: no safe default to write, so refused.
    const noThreads = presetValuesOf("/m/a.gguf", ["--ctx-size", "602", "--parallel", "1"])
    expect(Either.isLeft(editPresetText("[*]\nt = 4\n", "a", noThreads))).toBe(true)
  })

  it("F-4 what llama.cpp's preset parser cannot read is refused: a byte-order mark, an indented line", () => {
    const why = (src: string) => {
      const r = editPresetText(src, "a", recipe)
      return Either.isLeft(r) ? r.left : "(edited)"
    }
    expect(why("\uFEFF[a]\nmodel = /m/a.gguf\n")).toContain("byte-order mark")
    expect(why("[a]\n  model = /m/a.gguf\n")).toContain("line 2 is not a preset line")
    expect(why("  [a]\n")).toContain("line 1 is not a preset line")
  })

  it("F-4 the section that already serves the model is the one edited, under the operator's name; a same-named section serving another model is not repointed", () => {
    const src = "[llama3]\nmodel = /m/a.gguf\nc = 4096\n"
    const out = edit(src)
    expect(out.text.startsWith("[llama3]\nmodel = /m/a.gguf\nc = 602\n")).toBe(true)
    expect(out.text).not.toContain("[a]")
    const r = editPresetText("[a]\nmodel = /m/other.gguf\n", "a", recipe)
    expect(Either.isLeft(r) ? r.left : "").toContain("serves /m/other.gguf")
    expect(Either.isLeft(editPresetText("[x]\nmodel = /m/a.gguf\n[y]\nm = /m/a.gguf\n", "a", recipe))).toBe(true)
  })

  it("F-4 an option on several lines counts as changed (llama.cpp reads the last line of a key, and the later spelling in byte order), and ends on one line", () => {
    const src = "[a]\nmodel = /m/a.gguf\nc = 512\nctx-size = 602\nparallel = 1\ncache-type-k = q8_0\ncache-type-v = q8_0\nflash-attn = on\nthreads = 1\n"
    const out = edit(src)
    assert.deepStrictEqual(out.changed, ["ctx-size"])
    expect(out.text).toBe("[a]\nmodel = /m/a.gguf\nc = 602\nparallel = 1\ncache-type-k = q8_0\ncache-type-v = q8_0\nflash-attn = on\nthreads = 1\n")
  })
})

describe("issue 17 part 3: the batch sizes in a preset", () => {
  it("F-4 an operator's ubatch-size and batch-size stay when the recipe did not search them, and are set when it did", () => {
    const src = "[a]\nmodel = /m/a.gguf\nubatch-size = 1024\nb = 4096\n"
    const kept = editPresetText(src, "a", presetValuesOf("/m/a.gguf", ["--ctx-size", "300"]))
    assert.ok(Either.isRight(kept))
    expect(kept.right.text).toBe("[a]\nmodel = /m/a.gguf\nubatch-size = 1024\nb = 4096\nctx-size = 300\n")
    const set = editPresetText(src, "a", presetValuesOf("/m/a.gguf", ["--ctx-size", "300", "--ubatch-size", "128", "--batch-size", "512"]))
    assert.ok(Either.isRight(set))
    expect(set.right.text).toBe("[a]\nmodel = /m/a.gguf\nubatch-size = 128\nb = 512\nctx-size = 300\n")
  })
})
