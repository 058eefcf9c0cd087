import { Command } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Schedule, Stream } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { getLlama, type Llama, type LlamaContextOptions, readGgufFileInfo } from "node-llama-cpp"
import { afterAll } from "vitest"
import { GgmlTypeId } from "../../src/gguf/GgmlType.js"
import { chooseShape, shapeParamCount } from "../../src/gguf/LlamaShape.js"
import { readModelInfo } from "../../src/gguf/ModelInfo.js"
import { tensorPlan, writeSyntheticModel } from "../../src/gguf/SyntheticModel.js"
import { llamaVocab, VOCAB_SIZE } from "../../src/gguf/Vocab.js"
import { repoRoot, smallModelPath, tinyModelPath } from "../support/models.js"
import { freePort } from "../../src/system/Ports.js"

/** A fresh temporary directory, removed when the test's scope closes. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "synth-test-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

describe("chooseShape", () => {
  it.effect("lands within 10% of 15M, 130M and 1.1B, with head sizes a multiple of 32", () =>
    Effect.sync(() => {
      for (const params of [15e6, 130e6, 1.1e9]) {
        const shape = chooseShape(params)
        assert.isBelow(Math.abs(shapeParamCount(shape) / params - 1), 0.1, `${params}: ${JSON.stringify(shape)}`)
        assert.strictEqual(shape.headDim % 32, 0)
      }
      const tiny = chooseShape(1.1e9)
      assert.deepInclude(tiny, { nEmbd: 2048, nLayer: 22, nHead: 32, nHeadKv: 4, nFf: 5632 }) // TinyLlama-1.1B
    }))

  it.effect("covers every request from 5M to 3B within 10%", () =>
    Effect.sync(() => {
      for (let params = 5e6; params <= 3e9; params *= 1.03) {
        const shape = chooseShape(params)
        assert.isBelow(Math.abs(shapeParamCount(shape) / params - 1), 0.1, `${params}`)
        assert.strictEqual(shape.headDim % 32, 0)
        assert.strictEqual(shape.nEmbd % 32, 0)
        assert.strictEqual(shape.nFf % 32, 0)
      }
    }))

  it.effect("the tensor plan holds exactly the counted parameters; q4_0 output is Q6_K or Q8_0", () =>
    Effect.sync(() => {
      for (const params of [15e6, 60e6, 1.1e9]) {
        const shape = chooseShape(params)
        const plan = tensorPlan(shape, "q4_0")
        assert.strictEqual(plan.reduce((n, t) => n + t.dims.reduce((a, b) => a * b, 1), 0), shapeParamCount(shape))
        const output = plan.find((t) => t.name === "output.weight")!
        assert.strictEqual(output.type, shape.nEmbd % 256 === 0 ? GgmlTypeId.Q6_K : GgmlTypeId.Q8_0)
        assert.isTrue(plan.filter((t) => t.dims.length === 1).every((t) => t.type === GgmlTypeId.F32))
      }
    }))
})

describe("llamaVocab", () => {
  it.effect("is a 32000-token SentencePiece vocabulary with specials and byte fallback", () =>
    Effect.sync(() => {
      const v = llamaVocab()
      assert.strictEqual(v.tokens.length, VOCAB_SIZE)
      assert.deepStrictEqual(v.tokens.slice(0, 4), ["<unk>", "<s>", "</s>", "<0x00>"])
      assert.strictEqual(v.tokens[258], "<0xFF>")
      assert.deepStrictEqual([...v.types.slice(0, 4)], [2, 3, 3, 6])
      assert.strictEqual(new Set(v.tokens).size, VOCAB_SIZE)
    }))
})

describe("writeSyntheticModel", () => {
  it.scoped("same seed → identical bytes; different seed → different bytes; the header is sane", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const write = (name: string, seed: number) =>
        writeSyntheticModel({ params: 15e6, quant: "q4_0", seed, outPath: Path.join(dir, name) })
      const a = yield* write("a.gguf", 7), b = yield* write("b.gguf", 7), c = yield* write("c.gguf", 8)
      const [ba, bb, bc] = [a, b, c].map((r) => Fs.readFileSync(r.path))
      assert.strictEqual(ba!.length, a.bytes)
      assert.isTrue(ba!.equals(bb!))
      assert.strictEqual(ba!.length, bc!.length)
      assert.isFalse(ba!.equals(bc!))
      assert.strictEqual(ba!.toString("latin1", 0, 4), "GGUF")
      assert.strictEqual(ba!.readUInt32LE(4), 3)
      assert.deepStrictEqual(Fs.readdirSync(dir).sort(), ["a.gguf", "b.gguf", "c.gguf"]) // no temp files left
      const info = yield* readModelInfo(a.path)
      assert.deepStrictEqual(info, { paramCount: a.paramCount, contextLength: 4096, fileBytes: a.bytes, architecture: "llama" })
    }))

  it.scoped("an unsatisfiable request fails with SynthFailed and writes nothing", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const exit = yield* Effect.exit(writeSyntheticModel({ params: 1e6, quant: "q4_0", seed: 1, outPath: Path.join(dir, "x.gguf") }))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) assert.include(String(exit.cause), "SynthFailed")
      assert.deepStrictEqual(Fs.readdirSync(dir), [])
    }))
})

describe("writeSyntheticModel interrupted", () => {
  it.scopedLive("leaves no temporary file and the previous output untouched", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const out = Path.join(dir, "m.gguf")
      Fs.writeFileSync(out, "old")
      const fiber = yield* Effect.fork(writeSyntheticModel({ params: 1.1e9, quant: "q4_0", seed: 1, outPath: out }))
      yield* Effect.sync(() => Fs.readdirSync(dir).some((f) => f.endsWith(".tmp"))).pipe(
        Effect.repeat({ until: (started) => started, schedule: Schedule.spaced("5 millis") }))
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(Fs.readdirSync(dir), ["m.gguf"])
      assert.strictEqual(Fs.readFileSync(out, "utf8"), "old")
    }))
})

// ---- real inference ------------------------------------------------------------------------
let llamaPromise: Promise<Llama> | undefined
const llama = Effect.promise(() => (llamaPromise ??= getLlama({ gpu: false, build: "never", maxThreads: 2, logger: () => {} })))
afterAll(async () => {
  if (llamaPromise !== undefined) await (await llamaPromise).dispose()
})

interface Generated { readonly promptTokens: number; readonly generated: ReadonlyArray<number>; readonly maxProb: number; readonly finite: boolean }

/** Loads `path`, tokenizes `prompt`, generates 16 tokens greedily; also the next-token distribution at temperature 1. */
const generate = (path: string, prompt: string, context: Partial<LlamaContextOptions> = {}) =>
  Effect.gen(function*() {
    const l = yield* llama
    const model = yield* Effect.acquireRelease(Effect.promise(() => l.loadModel({ modelPath: path })),
      (m) => Effect.promise(() => m.dispose()))
    const ctx = yield* Effect.acquireRelease(
      Effect.promise(() => model.createContext({ contextSize: 512, threads: 2, ...context })),
      (c) => Effect.promise(() => c.dispose()))
    const tokens = [model.tokens.bos!, ...model.tokenize(prompt)]
    return yield* Effect.promise(async (): Promise<Generated> => {
      const seq = ctx.getSequence()
      const generated: Array<number> = []
      let maxProb = 0, finite = true
      for await (const out of seq.evaluateWithMetadata(tokens, { probabilities: true }, { temperature: 1, topK: 0, seed: 1 })) {
        for (const p of out.probabilities.values()) {
          finite &&= Number.isFinite(p)
          maxProb = Math.max(maxProb, p)
        }
        break
      }
      await seq.clearHistory()
      for await (const t of seq.evaluate(tokens)) { // greedy (temperature 0 by default)
        generated.push(t)
        if (generated.length === 16) break
      }
      return { promptTokens: tokens.length - 1, generated, maxProb, finite }
    })
  })

const words = (n: number): string => {
  const letters = "abcdefghijklmnopqrstuvwxyz"
  return Array.from({ length: n }, (_, i) =>
    Array.from({ length: 2 + (i % 2) }, (_, j) => letters[(i * 7 + j * 11 + i * j * 3) % 26]).join("")).join(" ")
}

describe("synthetic models in node-llama-cpp", () => {
  for (const [name, path] of [["15M q4_0", tinyModelPath("q4_0")], ["15M q8_0", tinyModelPath("q8_0")],
    ["15M f16", tinyModelPath("f16")], ["60M q4_0 (Q6_K output)", smallModelPath()]] as const) {
    it.scopedLive(`${name} loads and generates valid tokens from near-uniform, finite logits`, () =>
      Effect.gen(function*() {
        const r = yield* generate(path, "the cat sat on the mat and the dog ran off")
        assert.strictEqual(r.generated.length, 16)
        assert.isTrue(r.generated.every((t) => Number.isInteger(t) && t >= 0 && t < VOCAB_SIZE))
        assert.isTrue(r.finite)
        assert.isBelow(r.maxProb, 0.01, "random weights should give a flat next-token distribution")
      }))
  }

  it.scopedLive("N short words tokenize to about N tokens", () =>
    Effect.gen(function*() {
      const l = yield* llama
      const model = yield* Effect.acquireRelease(Effect.promise(() => l.loadModel({ modelPath: tinyModelPath() })),
        (m) => Effect.promise(() => m.dispose()))
      assert.strictEqual(model.tokenize(words(100)).length, 100)
      assert.strictEqual(model.tokenize("the cat sat on the mat").length, 6)
      const english = "The quick brown fox jumps over the lazy dog, and then it runs home."
      assert.isAtMost(model.tokenize(english).length, 2 * english.split(" ").length)
      assert.strictEqual(model.detokenize(model.tokenize(english)), english)
    }))

  it.scopedLive("loads with a q8_0 KV cache (flash attention auto)", () =>
    Effect.gen(function*() {
      const r = yield* generate(tinyModelPath(), words(20), {
        flashAttention: "auto", experimentalKvCacheKeyType: "Q8_0", experimentalKvCacheValueType: "Q8_0"
      })
      assert.strictEqual(r.generated.length, 16)
      assert.isTrue(r.finite)
    }))
})

// ---- the real llama.cpp ----------------------------------------------------------------------
const llamaCppBinDir = process.env["LLAMA_CPP_BIN_DIR"] ?? Path.join(repoRoot, "..", "shared", "llama.cpp", "bin")
const llamaServerBin = process.env["LLAMA_SERVER"] ?? Path.join(llamaCppBinDir, "llama-server")
const llamaQuantizeBin = Path.join(llamaCppBinDir, "llama-quantize")

/** Mean and standard deviation of every F32 tensor of a GGUF file, by name. */
const f32Stats = (path: string) => Effect.promise(async () => {
  const info = await readGgufFileInfo(path, { logWarnings: false })
  const fd = Fs.openSync(path, "r")
  const stats = new Map<string, { mean: number; std: number }>()
  for (const t of info.tensorInfo ?? []) {
    const n = t.dimensions.map(Number).reduce((a, b) => a * b, 1)
    const buf = Buffer.alloc(n * 4)
    Fs.readSync(fd, buf, 0, n * 4, Number(t.fileOffset))
    let s = 0, s2 = 0
    for (let i = 0; i < n; i++) { const x = buf.readFloatLE(4 * i); s += x; s2 += x * x }
    stats.set(t.name, { mean: s / n, std: Math.sqrt(s2 / n - (s / n) ** 2) })
  }
  Fs.closeSync(fd)
  return stats
})

describe("synthetic weights as llama.cpp dequantizes them", () => {
  for (const [name, path] of [["Q4_0 + Q6_K output", smallModelPath()], ["Q4_0 + Q8_0 output", tinyModelPath()],
    ["Q8_0", tinyModelPath("q8_0")], ["F16", tinyModelPath("f16")]] as const) {
    it.scoped(`${name}: weights have mean ≈ 0 and std ≈ 0.02, norms are 1`, () =>
      Effect.gen(function*() {
        const out = Path.join(yield* tempDir, "f32.gguf")
        const r = ChildProcess.spawnSync(llamaQuantizeBin, ["--allow-requantize", path, out, "f32", "2"], { stdio: "ignore" })
        assert.strictEqual(r.status, 0)
        for (const [tensor, { mean, std }] of yield* f32Stats(out)) {
          if (tensor.endsWith("norm.weight")) {
            assert.deepStrictEqual({ tensor, mean, std }, { tensor, mean: 1, std: 0 })
          } else {
            assert.isBelow(Math.abs(mean), 1e-3, tensor)
            assert.closeTo(std, 0.02, 0.0006, tensor)
          }
        }
      }))
  }
})


describe("synthetic models in llama-server", () => {
  it.scopedLive("llama-server loads the tiny model and completes", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const proc = yield* Command.make(llamaServerBin, "-m", tinyModelPath(), "--port", `${port}`, "-t", "2", "-c", "512",
        "-np", "1").pipe(Command.start)
      yield* Effect.addFinalizer(() => Effect.interruptible(proc.kill("SIGTERM")).pipe(Effect.timeout("10 seconds"),
        Effect.orElse(() => proc.kill("SIGKILL")), Effect.ignore))
      yield* Effect.forkScoped(Stream.runDrain(Stream.merge(proc.stdout, proc.stderr)))
      const base = `http://127.0.0.1:${port}`
      yield* Effect.tryPromise(() => fetch(`${base}/health`).then((r) => r.ok ? r : Promise.reject(new Error(`${r.status}`)))).pipe(
        Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo(Duration.seconds(30)))))
      const body = yield* Effect.tryPromise(() => fetch(`${base}/completion`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: "the cat sat on the mat", n_predict: 8, temperature: 0 })
      }).then((r) => r.json() as Promise<{ tokens_predicted: number; tokens_evaluated: number }>))
      assert.strictEqual(body.tokens_predicted, 8)
      assert.strictEqual(body.tokens_evaluated, 7) // <s> + one token per word
    }).pipe(Effect.provide(NodeContext.layer)))
})
