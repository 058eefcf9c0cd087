import { describe, expect, it } from "vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { canonicalJson, recipeHash } from "../../src/domain/RecipeHash.js"
import { Inputs, Machine } from "../../src/domain/TuneDocument.js"
import { repoRoot } from "../support/models.js"

/** An IEEE 754 binary64 from its 16 hex digits (RFC 8785 Appendix B notation). */
const ieee754 = (hex: string): number => {
  const b = Buffer.from(hex, "hex")
  return b.readDoubleBE(0)
}

describe("RFC 8785 canonical JSON (SPEC F-2h)", () => {
  it("F-2h RFC 8785 Appendix B: every finite number serializes as the RFC lists", () => {
    const vectors: ReadonlyArray<readonly [string, string]> = [
      ["0000000000000000", "0"],
      ["8000000000000000", "0"],
      ["0000000000000001", "5e-324"],
      ["8000000000000001", "-5e-324"],
      ["7fefffffffffffff", "1.7976931348623157e+308"],
      ["ffefffffffffffff", "-1.7976931348623157e+308"],
      ["4340000000000000", "9007199254740992"],
      ["c340000000000000", "-9007199254740992"],
      ["4430000000000000", "295147905179352830000"],
      ["44b52d02c7e14af5", "9.999999999999997e+22"],
      ["44b52d02c7e14af6", "1e+23"],
      ["44b52d02c7e14af7", "1.0000000000000001e+23"],
      ["444b1ae4d6e2ef4e", "999999999999999700000"],
      ["444b1ae4d6e2ef4f", "999999999999999900000"],
      ["444b1ae4d6e2ef50", "1e+21"],
      ["3eb0c6f7a0b5ed8c", "9.999999999999997e-7"],
      ["3eb0c6f7a0b5ed8d", "0.000001"],
      ["41b3de4355555553", "333333333.3333332"],
      ["41b3de4355555554", "333333333.33333325"],
      ["41b3de4355555555", "333333333.3333333"],
      ["41b3de4355555556", "333333333.3333334"],
      ["41b3de4355555557", "333333333.33333343"],
      ["becbf647612f3696", "-0.0000033333333333333333"],
      ["43143ff3c1cb0959", "1424953923781206.2"]
    ]
    for (const [hex, want] of vectors) expect(canonicalJson(ieee754(hex)), hex).toBe(want)
  })

  it("F-2h RFC 8785 Appendix B: NaN and Infinity are errors, not hashed", () => {
    for (const hex of ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"]) {
      expect(() => canonicalJson(ieee754(hex)), hex).toThrow()
    }
  })

  it("F-2h RFC 8785 §3.2.2: the example's literals, numbers and string escapes", () => {
    const input = JSON.parse(
      `{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],` +
        `"string": "\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}`
    )
    expect(canonicalJson(input)).toBe(
      `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],` +
        `"string":"€$\\u000f\\nA'B\\"\\\\\\\\\\"/"}`
    )
  })

  it("F-2h RFC 8785 §3.2.3: properties sorted by UTF-16 code units", () => {
    const input = JSON.parse(
      `{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One",` +
        ` "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control", "\\u00f6": "Latin Small Letter O With Diaeresis"}`
    )
    expect(canonicalJson(input)).toBe(
      `{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis",` +
        `"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}`
    )
  })

  it("F-2h RFC 8785 §3.2.2.2: a lone surrogate cannot be canonicalized", () => {
    expect(() => canonicalJson({ model: "bad\ud800" })).toThrow()
  })
})

describe("recipe hash (SPEC F-2h)", () => {
  const reference = JSON.parse(
    Fs.readFileSync(Path.join(repoRoot, "fixtures", "recipe-hash", "reference.json"), "utf8")
  ) as {
    input: {
      machine: ConstructorParameters<typeof Machine>[0]
      inputs: ConstructorParameters<typeof Inputs>[0]
      recommendation: { model: string; knobs: { kv_bits: 4 | 8 | null; max_concurrency_override: number | null; max_context_override: number | null; threads?: number | null } }
    }
    canonical: string
    recipe_hash: string
  }

  it("F-2h matches the independently computed reference vector (fixtures/recipe-hash)", () => {
    const { input } = reference
    const hashInput = { machine: new Machine(input.machine), inputs: new Inputs(input.inputs), recommendation: input.recommendation }
    expect(canonicalJson({ machine: { ...hashInput.machine }, inputs: { ...hashInput.inputs }, recommendation: input.recommendation }))
      .toBe(reference.canonical)
    expect(recipeHash(hashInput)).toBe(reference.recipe_hash)
  })

  it("F-2h is sha256: and 64 lowercase hex; key order of the inputs does not matter", () => {
    const { input } = reference
    const reordered = {
      machine: new Machine({ binary_version: input.machine.binary_version, os_version: input.machine.os_version, chip: input.machine.chip, ram_gb: input.machine.ram_gb }),
      inputs: new Inputs(input.inputs),
      recommendation: { knobs: { threads: 2, max_context_override: 4096, max_concurrency_override: 2, kv_bits: 8 as const }, model: input.recommendation.model }
    }
    expect(recipeHash(reordered)).toMatch(/^sha256:[0-9a-f]{64}$/)
    expect(recipeHash(reordered)).toBe(reference.recipe_hash)
  })

  it("F-2h any change of machine, inputs, model or knobs changes the hash", () => {
    const { input } = reference
    const base = { machine: new Machine(input.machine), inputs: new Inputs(input.inputs), recommendation: input.recommendation }
    const variants = [
      { ...base, machine: new Machine({ ...input.machine, ram_gb: 16 }) },
      { ...base, inputs: new Inputs({ ...input.inputs, target_context: 4096 }) },
      { ...base, recommendation: { ...input.recommendation, model: "other.gguf" } },
      { ...base, recommendation: { ...input.recommendation, knobs: { ...input.recommendation.knobs, kv_bits: 4 as const } } },
      // A provider without a thread-count setting has no `threads` key at all (F-2): a different hash than threads: null.
      { ...base, recommendation: { ...input.recommendation, knobs: { kv_bits: 8 as const, max_concurrency_override: 2, max_context_override: 4096 } } }
    ]
    const hashes = new Set([recipeHash(base), ...variants.map(recipeHash)])
    expect(hashes.size).toBe(variants.length + 1)
  })
})
