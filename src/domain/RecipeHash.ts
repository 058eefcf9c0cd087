/**
 * The recipe hash (SPEC F-2h): what makes a recommendation comparable across
 * runs, machines of a fleet and implementations.
 */
import canonicalize from "canonicalize"
import { createHash } from "node:crypto"
import type { Inputs, KnobsJson, Machine } from "./TuneDocument.js"

/**
 * RFC 8785 (JSON Canonicalization Scheme) text of a JSON value: object keys
 * sorted by UTF-16 code units, no whitespace, numbers in ECMAScript shortest
 * form (RFC 8785 §3.2.2.3), strings escaped as ECMAScript's JSON.stringify;
 * `undefined` members are left out. From the `canonicalize` package (Samuel
 * Erdtman's implementation, listed by the RFC's authors), not our own code.
 * Throws on NaN, ±Infinity, lone surrogates and cycles (RFC 8785 §3.2.2.3, §3.2.2.2).
 */
export const canonicalJson = (value: unknown): string => {
  const text = canonicalize(value)
  if (text === undefined) throw new Error("RFC 8785: the value has no JSON form")
  return text
}

/** What the recipe hash covers (SPEC F-2h): nothing else — no run id, times or metrics. */
export interface RecipeHashInput {
  readonly machine: Machine
  readonly inputs: Inputs
  readonly recommendation: { readonly model: string; readonly knobs: KnobsJson }
}

/**
 * `recipe_hash` (SPEC F-2h): `"sha256:"` + 64 lowercase hex digits of the
 * SHA-256 of the UTF-8 bytes of the RFC 8785 canonical JSON of
 * `{machine, inputs, recommendation: {model, knobs}}`. The same machine, inputs
 * and choice give the same hash, in any implementation that follows F-2h
 * (checked against an independently computed vector in
 * fixtures/recipe-hash/reference.json).
 */
export const recipeHash = (h: RecipeHashInput): string =>
  canonicalSha256({
    machine: { ...h.machine },
    inputs: { ...h.inputs },
    recommendation: { model: h.recommendation.model, knobs: h.recommendation.knobs }
  })

/**
 * `"sha256:"` + 64 lowercase hex digits of the SHA-256 of the UTF-8 bytes of
 * `value`'s RFC 8785 canonical JSON (`canonicalJson`): the form of the recipe
 * hash (F-2h) and of a trial key (R-1). Throws as `canonicalJson` does.
 */
export const canonicalSha256 = (value: unknown): string =>
  "sha256:" + createHash("sha256").update(canonicalJson(value), "utf8").digest("hex")
