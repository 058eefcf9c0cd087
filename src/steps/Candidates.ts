/** Candidates (SPEC A-1, A-4): the operator's list parsed, each resolved to what the provider is given and its size. */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { UsageError } from "../domain/AutotuneError.js"
import type { Candidate } from "../domain/Candidate.js"
import { modelParamCount } from "../gguf/ModelSize.js"
import type { ProviderName } from "../providers/ProviderAdapter.js"

/**
 * Splits `--candidate-models` strictly: no empty cells (stray commas), no
 * duplicates (SPEC B-1's strictness applied to the candidate list). Fails with
 * UsageError naming the flag.
 */
export const parseCandidateList = (raw: string): Effect.Effect<ReadonlyArray<string>, UsageError> => {
  const parts = raw.split(",").map((s) => s.trim())
  const flag = "candidate-models"
  if (parts.some((p) => p === "")) {
    return Effect.fail(new UsageError({ flag, message: `--${flag} contains an empty cell; check for stray commas (got "${raw}")` }))
  }
  const dup = parts.find((p, i) => parts.indexOf(p) !== i)
  return dup !== undefined
    ? Effect.fail(new UsageError({ flag, message: `--${flag} names "${dup}" twice` }))
    : Effect.succeed(parts)
}

/** Providers that serve GGUF files only (`-m <file>`), so every candidate must be one. */
const servesFilesOnly = (provider: ProviderName) => provider === "embedded" || provider === "llama-server"

/**
 * Is a candidate a model file rather than a provider's model id? For the
 * embedded provider and llama-server every candidate is a file; for the others an entry is a
 * file only when it ends in `.gguf` or exists on disk, so that ids such as
 * `mlx-community/Llama-3.2-1B-Instruct-4bit` stay ids.
 */
const isFile = (id: string, provider: ProviderName) =>
  servesFilesOnly(provider) || /\.gguf$/i.test(id) || fs.existsSync(id)

/** A local GGUF model file: any regular file for the embedded provider, else a regular `.gguf` file. */
const isGgufFile = (id: string, provider: ProviderName) =>
  (servesFilesOnly(provider) || /\.gguf$/i.test(id)) && fs.statSync(id, { throwIfNoEntry: false })?.isFile() === true

/**
 * Resolves candidate ids in the given order (SPEC A-1) with their parameter
 * counts (SPEC A-4, F-1; see modelParamCount: GGUF header, config.json, size
 * token in the id, else unknown). The embedded provider serves GGUF files only: an id
 * that is not an existing file fails with UsageError naming `--candidate-models`.
 * A file whose header cannot be read keeps the id's size token; pre-warm decides
 * what the file is worth.
 */
export const resolveCandidates = (
  ids: ReadonlyArray<string>,
  provider: ProviderName
): Effect.Effect<ReadonlyArray<Candidate>, UsageError> =>
  Effect.forEach(ids, (id, i) =>
    Effect.gen(function*() {
      if (!isFile(id, provider)) return { id, model: id, rank: i + 1, paramCount: yield* modelParamCount(id), ggufFile: false, fileBytes: null }
      if (!fs.existsSync(id)) {
        return yield* new UsageError({
          flag: "candidate-models",
          message: `--candidate-models: no such file "${id}"${
            servesFilesOnly(provider) ? ` (the ${provider} provider serves GGUF files)` : ""
          }`
        })
      }
      const ggufFile = isGgufFile(id, provider)
      return {
        id,
        model: path.resolve(id),
        rank: i + 1,
        paramCount: yield* modelParamCount(id),
        ggufFile,
        // A model directory or an id has no one file to identify it by.
        fileBytes: ggufFile ? fs.statSync(id, { throwIfNoEntry: false })?.size ?? null : null
      } satisfies Candidate
    }))
