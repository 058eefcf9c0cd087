/**
 * Reads the identities a trial key is made of (SPEC R-1) from the files on
 * this machine: the provider's executable and each candidate's model file.
 */
import { Effect, Option } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import type { Candidate } from "../domain/Candidate.js"
import type { ModelIdentity, ProviderIdentity } from "../domain/TrialKey.js"
import { readGgufHeader } from "../gguf/ModelInfo.js"
import { findExecutable } from "../system/Executables.js"

/** The most of a file's head hashed when its GGUF info section cannot be located (a file llama.cpp would refuse anyway). */
const FALLBACK_HEAD_BYTES = 1 << 20

/** SHA-256 (hex) of the bytes `[0, end)` of `file`, read in 1 MiB chunks; null when it cannot be read. */
const sha256Head = (file: string, end: number): string | null => {
  let fd: number | null = null
  try {
    fd = fs.openSync(file, "r")
    const hash = createHash("sha256")
    const buf = Buffer.alloc(1 << 20)
    for (let pos = 0; pos < end;) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos)
      if (n === 0) break
      hash.update(buf.subarray(0, n))
      pos += n
    }
    return hash.digest("hex")
  } catch {
    return null
  } finally {
    if (fd !== null) fs.closeSync(fd)
  }
}

/**
 * A candidate's model identity: for a local GGUF file its size and the
 * sha256 of its header and tensor index (bytes before the tensor data, placed
 * by node-llama-cpp's GGUF reader, `infoEndOffset`, vocabularies skipped as
 * `readModelInfo` skips them; the first 1 MiB when the reader cannot place
 * it), so replacing the file with another model — or the same name
 * re-quantized — changes it, without hashing gigabytes of weights. A model
 * id: the id alone. Never fails: what cannot be read is null.
 */
export const modelIdentity = (c: Candidate): Effect.Effect<ModelIdentity> =>
  Effect.gen(function*() {
    if (!c.ggufFile) return { id: c.id, bytes: null, header_sha256: null }
    const bytes = fs.statSync(c.model, { throwIfNoEntry: false })?.size ?? null
    if (bytes === null) return { id: c.id, bytes: null, header_sha256: null }
    const info = yield* Effect.option(Effect.tryPromise(() => readGgufHeader(c.model)))
    const end = Option.flatMapNullable(info, (i) => i.infoEndOffset).pipe(Option.getOrElse(() => FALLBACK_HEAD_BYTES))
    return { id: c.id, bytes, header_sha256: sha256Head(c.model, Math.min(end, bytes)) }
  })

/**
 * The provider's identity: its name, `version` (as the run recorded it in
 * `machine.binary_version`), and its `executable` with the sha256 of its
 * bytes; `executable` null for the embedded provider run by this tool's own
 * launcher, which is named by its version (this tool's and node-llama-cpp's)
 * instead of Node's 100 MB executable (`adapterExecutable` says which). Never
 * fails: an unreadable executable hashes as null.
 */
export const providerIdentity = (name: string, executable: string | null, version: string | null): ProviderIdentity => {
  // A bare name (macprovider-cli) is the executable PATH finds, as the provider is started.
  const file = executable === null ? null : findExecutable(executable) ?? executable
  const size = file === null ? null : fs.statSync(file, { throwIfNoEntry: false })?.size ?? null
  return {
    name,
    version,
    executable: file,
    executable_sha256: size === null ? null : sha256Head(file!, size)
  }
}
