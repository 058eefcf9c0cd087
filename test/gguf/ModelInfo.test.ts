import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { readModelInfo } from "../../src/gguf/ModelInfo.js"
import { chooseShape, shapeParamCount } from "../../src/gguf/LlamaShape.js"
import { smallModelPath, tinyModelPath } from "../support/models.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "modelinfo-test-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

describe("readModelInfo", () => {
  it.effect("reads parameter count, context length, size and architecture of the test models", () =>
    Effect.gen(function*() {
      for (const [path, params] of [[tinyModelPath(), 15e6], [tinyModelPath("f16"), 15e6], [smallModelPath(), 60e6]] as const) {
        const info = yield* readModelInfo(path)
        assert.deepStrictEqual(info, {
          paramCount: shapeParamCount(chooseShape(params)), contextLength: 4096,
          fileBytes: Fs.statSync(path).size, architecture: "llama"
        })
      }
    }))

  it.scoped("a bad magic fails with GgufInvalid mentioning the magic", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const bad = Path.join(dir, "bad.gguf")
      const bytes = Fs.readFileSync(tinyModelPath())
      bytes.write("GGUX", 0, "latin1")
      Fs.writeFileSync(bad, bytes)
      const e = yield* Effect.flip(readModelInfo(bad))
      assert.strictEqual(e._tag, "GgufInvalid")
      assert.strictEqual(e.path, bad)
      assert.include(e.message, "magic")
      Fs.writeFileSync(bad, "")
      assert.include((yield* Effect.flip(readModelInfo(bad))).message, "magic")
    }))

  it.scoped("a truncated file fails with GgufInvalid mentioning the bounds", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cut = Path.join(dir, "cut.gguf")
      const bytes = Fs.readFileSync(tinyModelPath())
      Fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 1))
      const e = yield* Effect.flip(readModelInfo(cut))
      assert.strictEqual(e._tag, "GgufInvalid")
      assert.include(e.message, "not within the file bounds")
      assert.include(e.message, "output.weight")
      Fs.writeFileSync(cut, bytes.subarray(0, bytes.length >> 1))
      assert.include((yield* Effect.flip(readModelInfo(cut))).message, "bounds")
    }))

  it.scoped("a file cut inside its metadata fails with GgufInvalid", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cut = Path.join(dir, "meta.gguf")
      Fs.writeFileSync(cut, Fs.readFileSync(tinyModelPath()).subarray(0, 4096))
      assert.strictEqual((yield* Effect.flip(readModelInfo(cut)))._tag, "GgufInvalid")
    }))

  it.effect("a missing file fails with GgufInvalid", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(readModelInfo("/nonexistent/model.gguf"))
      assert.include(e.message, "ENOENT")
    }))
})
