/**
 * Synthetic GGUF models for tests, cached in `<repo>/.cache/test-models/` (gitignored)
 * across runs. `test/globalSetup.ts` calls `ensureTestModels` once per vitest run;
 * delete the directory after changing the writer to regenerate them.
 */
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import type { SynthFailed } from "../../src/domain/AutotuneError.js"
import { type Quant, writeSyntheticModel } from "../../src/gguf/SyntheticModel.js"

/** The repository root (two levels above this file). */
export const repoRoot = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../..")

/** Directory holding the cached test models. */
export const testModelsDir = Path.join(repoRoot, ".cache", "test-models")

/** Seed of every cached test model. */
export const TEST_MODEL_SEED = 1

/** ~15M parameters (llama2.c-192 shape: 192 wide, 6 layers, 64-wide heads), 12 MB at q4_0. */
export const tinyModelPath = (quant: Quant = "q4_0"): string => Path.join(testModelsDir, `synth-15M-${quant}.gguf`)

/** ~60M parameters (stories42M shape: 512 wide, 9 layers), q4_0, 40 MB. */
export const smallModelPath = (): string => Path.join(testModelsDir, "synth-60M-q4_0.gguf")

/** ~130M parameters (stories110M shape), q4_0, ~70 MB: clearly slower to first token than the tiny one. */
export const mediumModelPath = (): string => Path.join(testModelsDir, "synth-130M-q4_0.gguf")

const wanted: ReadonlyArray<{ readonly path: string; readonly params: number; readonly quant: Quant }> = [
  { path: tinyModelPath("q4_0"), params: 15e6, quant: "q4_0" },
  { path: tinyModelPath("q8_0"), params: 15e6, quant: "q8_0" },
  { path: tinyModelPath("f16"), params: 15e6, quant: "f16" },
  { path: smallModelPath(), params: 60e6, quant: "q4_0" },
  { path: mediumModelPath(), params: 130e6, quant: "q4_0" }
]

/**
 * Writes each test model that is missing (tiny q4_0 first). Files appear atomically
 * (temp file + rename), so concurrent runs never see a partial model. About 2 s when none exist.
 */
export const ensureTestModels = (): Effect.Effect<void, SynthFailed> =>
  Effect.forEach(wanted, (m) =>
    Fs.existsSync(m.path)
      ? Effect.void
      : Effect.asVoid(writeSyntheticModel({ params: m.params, quant: m.quant, seed: TEST_MODEL_SEED, outPath: m.path })),
    { discard: true })

/** A copy of a GGUF whose architecture llama.cpp does not know (same byte length, valid header). */
export const unknownArchitectureCopy = (from: string, to: string) => {
  const b = Buffer.from(Fs.readFileSync(from))
  const key = Buffer.from("general.architecture")
  const at = b.indexOf(key) + key.length + 4 + 8 // key, u32 type, u64 length
  b.write("llamx", at, "latin1")
  for (let i = b.indexOf("llama.", 0, "latin1"); i >= 0 && i < 4_000_000; i = b.indexOf("llama.", i, "latin1")) {
    b.write("llamx.", i, "latin1")
  }
  Fs.writeFileSync(to, b)
}

