import { assert, describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { parse } from "yaml"
import { editSwapText, swapCommand } from "../../src/domain/LlamaSwapYaml.js"
import { presetValuesOf } from "../../src/domain/PresetIni.js"

const recipe = presetValuesOf("/m/a.gguf", ["--ctx-size", "602", "--parallel", "1", "--cache-type-k", "q8_0", "--cache-type-v", "q8_0", "--flash-attn", "on", "--threads", "1"])
const edit = (source: string, values = recipe, name = "a") => Either.getOrThrow(editSwapText(source, name, values))
/** Why entry "a" of `source` cannot take `values` ("" when it can). */
const leftOf = (source: string, values = recipe) => {
  const r = editSwapText(source, "a", values)
  return Either.isLeft(r) ? r.left : ""
}
/** A recipe with the KV type left to the build: `parallel` slots, one thread, a 602-token context. */
const f16 = (parallel: number) => presetValuesOf("/m/a.gguf", ["--ctx-size", "602", "--parallel", `${parallel}`, "--threads", "1"])

describe("llama-swap config editor (SPEC F-4)", () => {
  it("F-4 a one-line cmd: owned flags set in place (any spelling), missing ones added at its end, every other byte kept", () => {
    const src = [
      "# my llama-swap",
      "healthCheckTimeout: 60",
      "macros: &m",
      "  ls: /opt/llama-server",
      "models:",
      "  a:   # the recipe's entry",
      "    cmd: ${ls} --port ${PORT} -m /m/a.gguf -c 4096 --jinja -t 8  # trailing",
      "    ttl: 300",
      "  other:",
      "    cmd: /opt/llama-server --port ${PORT} -m /m/o.gguf -c 100",
      ""
    ].join("\n")
    const out = edit(src)
    expect(out.text).toBe(src.replace(
      "-m /m/a.gguf -c 4096 --jinja -t 8  # trailing",
      "-m /m/a.gguf -c 602 --jinja -t 1 --parallel 1 --cache-type-k q8_0 --cache-type-v q8_0 --flash-attn on  # trailing"
    ))
    assert.deepStrictEqual(out.changed, ["ctx-size", "parallel", "cache-type-k", "cache-type-v", "flash-attn", "threads"])
    assert.deepStrictEqual(edit(out.text).changed, [])
  })

  it("F-4 a block cmd, one flag per line with \\ continuations: a removed flag takes its line, a repeat goes, the style stays", () => {
    // The lines the edit leaves alone: the entry, the block header, the executable and two flags.
    const kept = ["models:", "  \"a\":", "    cmd: |", "      /opt/llama-server \\", "        --port ${PORT} \\", "        --model /m/a.gguf \\"]
    const src = [
      ...kept,
      "        --cache-type-k q4_0 \\",
      "        --ctx-size 100 \\",
      "        --ctx-size 200 \\",
      "        --flash-attn on",
      "    proxy: http://127.0.0.1:${PORT}",
      ""
    ].join("\n")
    const out = edit(src, f16(2))
    const cmd = (parse(out.text) as { models: { a: { cmd: string; proxy: string } } }).models.a
    expect(cmd.proxy).toBe("http://127.0.0.1:${PORT}")
    expect(out.text).toBe([
      ...kept,
      "        --ctx-size 602 --parallel 2 --threads 1",
      "    proxy: http://127.0.0.1:${PORT}",
      ""
    ].join("\n"))
    // What it reads back: the recipe, nothing else of the cmd changed.
    const words = Either.getOrThrow(swapCommand(out.text, "a", "/m/a.gguf", 4000))
    expect(words).toEqual(["/opt/llama-server", "--port", "4000", "--model", "/m/a.gguf", "--ctx-size", "602", "--parallel", "2", "--threads", "1"])
  })

  it("F-4 the entry is found by name, else by the model its cmd serves; no entry, no models:, or an unwritable value is refused", () => {
    const src = "models:\n  big:\n    cmd: llama-server --port ${PORT} --model /m/a.gguf\n"
    expect(edit(src).text).toBe("models:\n  big:\n    cmd: llama-server --port ${PORT} --model /m/a.gguf --ctx-size 602 --parallel 1 --cache-type-k q8_0 --cache-type-v q8_0 --flash-attn on --threads 1\n")
    expect(leftOf("models:\n  b:\n    cmd: llama-server -m /m/b.gguf\n")).toContain('has no model entry "a"')
    expect(leftOf("[a]\nmodel = x\n")).not.toBe("")
    expect(leftOf("servers: {}\n")).toContain("no `models:` mapping")
    expect(leftOf(src, { ...recipe, model: "/m/my model.gguf" })).toContain("cannot be written into a cmd")
    // A wrapper's own flags are not llama-server's: taskset's -c stays, the server's -c is set.
    const wrapped = "models:\n  a:\n    cmd: taskset -c 0-3 /opt/llama-server --port ${PORT} -m /m/a.gguf -c 4096\n"
    expect(edit(wrapped).text).toContain("cmd: taskset -c 0-3 /opt/llama-server --port ${PORT} -m /m/a.gguf -c 602 --parallel 1")
    // A container whose llama-server this tool cannot see: refused, not guessed.
    expect(leftOf("models:\n  a:\n    cmd: docker run -m 16g -p ${PORT}:8080 ghcr.io/ggml-org/llama.cpp:server -m /models/a.gguf\n")).toContain("names no llama-server executable")
  })

  it("F-6 swapCommand: macros and ${PORT} substituted, folded lines and continuations handled", () => {
    const src = "macros:\n  ls: /opt/llama-server\nmodels:\n  a:\n    cmd: >\n      ${ls} --port ${PORT} \\\n      -m /m/a.gguf --alias mine\n"
    expect(Either.getOrThrow(swapCommand(src, "a", "/m/a.gguf", 4321))).toEqual(["/opt/llama-server", "--port", "4321", "-m", "/m/a.gguf", "--alias", "mine"])
  })

  it("F-4 as llama-swap reads a cmd: comment lines are not flags, a flag first on its line keeps the line's indentation, per-model macros count", () => {
    const src = [
      "models:",
      "  a:",
      "    macros:",
      "      srv: /opt/llama-server --port ${PORT}",
      "    cmd: |",
      "      ${srv}",
      "      # -c 8192 was too much",
      "      -m /m/a.gguf -c 4096",
      "      -fa on --jinja",
      ""
    ].join("\n")
    const out = edit(src, f16(1))
    expect(out.text).toBe(src.replace("-c 4096", "-c 602 --parallel 1 --threads 1").replace("      -fa on --jinja", "      --jinja")
      .replace("-c 602 --parallel 1 --threads 1\n      --jinja", "-c 602\n      --jinja --parallel 1 --threads 1"))
    expect(Either.getOrThrow(swapCommand(out.text, "a", "/m/a.gguf", 9))).toEqual(
      ["/opt/llama-server", "--port", "9", "-m", "/m/a.gguf", "-c", "602", "--jinja", "--parallel", "1", "--threads", "1"]
    )
  })

  it("F-4 what cannot be edited word by word is refused, not guessed: --flag=value, quoted words, an owned flag inside a macro, a same-named entry serving another model", () => {
    expect(leftOf("models:\n  a:\n    cmd: /opt/llama-server -m /m/a.gguf --ctx-size=4096\n")).toContain("does not accept")
    expect(leftOf("models:\n  a:\n    cmd: /opt/llama-server -m /m/a.gguf --alias 'my a'\n")).toContain("quoted or escaped word")
    expect(leftOf("macros:\n  big: -c 8192 -np 4\nmodels:\n  a:\n    cmd: /opt/llama-server -m /m/a.gguf ${big}\n")).toContain("through the macro")
    expect(leftOf("models:\n  a:\n    cmd: /opt/llama-server -m /other/a.gguf\n")).toContain("serves /other/a.gguf")
    expect(leftOf("models:\n  a:\n    cmd: /opt/llama-server -m /m/a.gguf\n  b:\n    cmd: /opt/llama-server -m /m/a.gguf\n")).toContain("all serve")
  })
})

describe("issue 17 part 3: batch sizes in a llama-swap cmd", () => {
  it("F-4 an operator's -b/-ub stay, in the cmd or in a macro, unless the recipe searched them; then they are set in place", () => {
    const src = "macros:\n  common: -ngl 99 -b 4096\nmodels:\n  a:\n    cmd: llama-server ${common} -m /m/a.gguf -ub 1024 -c 100\n"
    // Not searched: nothing about the batch sizes changes, and the macro holding -b is no obstacle.
    expect(edit(src, f16(1)).text).toBe(
      "macros:\n  common: -ngl 99 -b 4096\nmodels:\n  a:\n    cmd: llama-server ${common} -m /m/a.gguf -ub 1024 -c 602 --parallel 1 --threads 1\n"
    )
    assert.ok(Either.isRight(swapCommand(src, "a", "/m/a.gguf", 9000)))
    // Searched: -b set in a macro cannot be edited in place, and says so — also when only -ub was searched, since
    // llama.cpp clamps the micro-batch to the batch (the recipe's is the build's, measured with it).
    expect(leftOf(src, presetValuesOf("/m/a.gguf", ["--ctx-size", "602", "--batch-size", "512"]))).toContain("sets -b through the macro")
    const tuned = presetValuesOf("/m/a.gguf", ["--ctx-size", "602", "--ubatch-size", "128"])
    expect(leftOf(src, tuned)).toContain("sets -b through the macro")
    // In the cmd itself: -ub set in place, the operator's -b removed (the build's 2048, as measured).
    const plain = "models:\n  a:\n    cmd: llama-server -m /m/a.gguf -b 256 -ub 1024 -c 100\n"
    expect(edit(plain, tuned).text).toBe("models:\n  a:\n    cmd: llama-server -m /m/a.gguf -ub 128 -c 602\n")
  })
})
