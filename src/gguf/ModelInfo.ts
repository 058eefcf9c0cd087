/**
 * Reads what the tuner needs to know about a GGUF model file (size ordering,
 * pre-warm integrity checks) and rejects files llama.cpp would refuse to load.
 */
import { Effect, Schema } from "effect"
import * as Fs from "node:fs/promises"
import type { GgufFileInfo } from "node-llama-cpp"
import { cachedByStamp, type FileStamp, type FileStampCache, filesStamp, makeFileStampCache } from "./FileStampCache.js"
import { tensorBytes } from "./GgmlType.js"

/**
 * A file that is not a loadable GGUF model; `message` gives the concrete
 * reason. `kind` is `io` when the file could not be opened or read (a path or
 * permission problem), `corrupt` when its bytes are not a valid GGUF model
 * (bad magic or version, a header cut short, tensors outside the file) —
 * an integrity failure (SPEC D-2) — and `unsupported` for a valid GGUF that is
 * no servable model (no tensors, no architecture or context length: a
 * vocab-only or projector file).
 */
export class GgufInvalid extends Schema.TaggedError<GgufInvalid>()("GgufInvalid", {
  path: Schema.String,
  kind: Schema.Literal("io", "corrupt", "unsupported"),
  message: Schema.String
}) {}

/** Facts about a GGUF model file. */
export interface ModelInfo {
  /** Sum of all tensors' element counts (the model's parameter count). */
  readonly paramCount: number
  /** `<arch>.context_length`: trained context length in tokens. */
  readonly contextLength: number
  /** Size of the file in bytes (of the first part for a split model). */
  readonly fileBytes: number
  /** `general.architecture`, e.g. "llama". */
  readonly architecture: string
}

/** Metadata keys not needed to read a model's facts and large to materialise (vocabularies). */
const GGUF_IGNORED_KEYS = ["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
  "tokenizer.ggml.merges"]

/**
 * A GGUF file's header and tensor table, by node-llama-cpp's `readGgufFileInfo`
 * (the vocabularies left out). node-llama-cpp is imported on first use: loading
 * it takes ~0.4 s, which a command that reads no model (`--help`, `history`)
 * should not pay (issue 14).
 * Rejects with node-llama-cpp's error for an unreadable header.
 */
export const readGgufHeader = (file: string): Promise<GgufFileInfo> =>
  import("node-llama-cpp").then(({ readGgufFileInfo }) =>
    readGgufFileInfo(file, { sourceType: "filesystem", readTensorInfo: true, logWarnings: false, ignoreKeys: GGUF_IGNORED_KEYS }))

const reason = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * Reads a GGUF model's parameter count, context length, file size and architecture.
 *
 * node-llama-cpp's `readGgufFileInfo` parses the header but is not a validator (STACK.md:
 * truncated metadata yields garbage), so this also checks, like llama.cpp's loader
 * (gguf.cpp, llama-model-loader.cpp), that the file starts with the magic "GGUF", has
 * version 2 or 3, has tensors, and that every tensor's data (offset + size from its ggml
 * type's block layout) lies within the file. Tensors of a ggml type unknown here are only
 * checked to start within the file. For a split model (`-00001-of-0000N.gguf`) the
 * parameter count covers all parts and the bounds check covers the first part.
 *
 * The magic and version are read on every call; the rest (the header's parse and the bounds
 * check) is kept while the file, and every part of a split model, stays as it was
 * (gguf/FileStampCache.ts: same device, inode, size, mtime and ctime), so the per-trial check
 * of a tune parses each header once.
 *
 * Fails with `GgufInvalid` when the file cannot be read or fails a check; its message
 * quotes the reason, e.g. `Invalid GGUF magic: expected "GGUF", got "\0\0\0\0"` or
 * `tensor 'output.weight' data is not within the file bounds (...)`.
 */
export const readModelInfo = (path: string): Effect.Effect<ModelInfo, GgufInvalid> => modelInfoReader(modelInfoCache)(path)

/** The checked files' ModelInfo (a tune's ladder is a few models; an entry is four numbers and a name). */
const modelInfoCache = makeFileStampCache<ModelInfo>(16)

/**
 * readModelInfo over `cache`, files stamped by `stamp` (default `ggufStamp`; a test gives a fixed
 * one to reach the kept path): the head checked on every call, then the tensors through the cache,
 * checked against the size in the stamp they are kept under (the head's own size where no stamp).
 */
export const modelInfoReader = (
  cache: FileStampCache<ModelInfo>,
  stamp: (path: string) => Promise<FileStamp | null> = ggufStamp
) =>
(path: string): Effect.Effect<ModelInfo, GgufInvalid> =>
  checkHead(path).pipe(
    Effect.flatMap((fileBytes) => cachedByStamp(cache, path, (st) => checkTensors(path, st?.bytes ?? fileBytes), { stamp }))
  )

/**
 * A split model's part names as node-llama-cpp resolves them (its `resolveSplitGgufParts`, which
 * reads every part): `<name>-0000K-of-0000N.gguf` with 1 ≤ K ≤ N gives its N parts; any other
 * name, itself alone.
 */
export const ggufParts = (path: string): ReadonlyArray<string> => {
  const m = /-(\d{5})-of-(\d{5})\.gguf$/.exec(path)
  const part = m === null ? 0 : Number(m[1])
  const parts = m === null ? 0 : Number(m[2])
  if (m === null || part === 0 || parts === 0 || part > parts) return [path]
  const common = path.slice(0, path.length - m[0].length)
  return Array.from({ length: parts }, (_, i) => `${common}-${String(i + 1).padStart(5, "0")}-of-${m[2]}.gguf`)
}

/** A GGUF model's stamp: every part of a split model together (FileStampCache). */
export const ggufStamp = (path: string) => filesStamp(ggufParts(path))

const invalidOf = (path: string) => (message: string) => new GgufInvalid({ path, kind: "corrupt", message })
const unreadableOf = (path: string) => (message: string) => new GgufInvalid({ path, kind: "io", message })

/** The magic and version (read on every call); succeeds with the file's size, bytes. */
const checkHead = (path: string): Effect.Effect<number, GgufInvalid> =>
  Effect.gen(function*() {
    const invalid = invalidOf(path)
    const unreadable = unreadableOf(path)
    const { fileBytes, head } = yield* Effect.acquireUseRelease(
      Effect.tryPromise({ try: () => Fs.open(path, "r"), catch: (e) => unreadable(`cannot open the file: ${reason(e)}`) }),
      (fh) => Effect.tryPromise({
        try: async () => {
          const head = Buffer.alloc(8)
          const { bytesRead } = await fh.read(head, 0, 8, 0)
          return { fileBytes: (await fh.stat()).size, head: head.subarray(0, bytesRead) }
        },
        catch: (e) => unreadable(`cannot read the file: ${reason(e)}`)
      }),
      (fh) => Effect.tryPromise(() => fh.close()).pipe(Effect.ignore)
    )
    if (head.length < 4 || head.toString("latin1", 0, 4) !== "GGUF") {
      return yield* invalid(`Invalid GGUF magic: expected "GGUF", got ${JSON.stringify(head.toString("latin1", 0, 4))}`)
    }
    const version = head.length < 8 ? -1 : head.readUInt32LE(4)
    if (version !== 2 && version !== 3) {
      return yield* invalid(`unsupported GGUF version ${version} (llama.cpp reads 2 and 3)`)
    }
    return fileBytes
  })

/** The header's parse and the tensor bounds check (kept per file stamp by readModelInfo). */
const checkTensors = (path: string, fileBytes: number): Effect.Effect<ModelInfo, GgufInvalid> =>
  Effect.gen(function*() {
    const invalid = invalidOf(path)
    const unsupported = (message: string) => new GgufInvalid({ path, kind: "unsupported", message })
    const info = yield* Effect.tryPromise({
      try: () => readGgufHeader(path),
      catch: (e) => invalid(`unreadable GGUF header: ${reason(e)}`)
    })
    const tensors = info.fullTensorInfo ?? info.tensorInfo ?? []
    if (tensors.length === 0) return yield* unsupported("the file has no tensors")
    let paramCount = 0
    for (const t of tensors) {
      const dims = t.dimensions.map(Number)
      if (dims.length === 0 || dims.some((d) => !Number.isSafeInteger(d) || d < 0)) {
        return yield* invalid(`tensor '${t.name}' has invalid dimensions [${t.dimensions.join(", ")}]`)
      }
      const elements = dims.reduce((a, b) => a * b, 1)
      paramCount += elements
      if (t.filePart !== 1) continue
      const start = Number(t.fileOffset)
      const end = start + (tensorBytes(t.ggmlType, dims[0]!, elements) ?? 0)
      if (!Number.isSafeInteger(start) || start < 0 || end > fileBytes) {
        return yield* invalid(`tensor '${t.name}' data is not within the file bounds (bytes ${start}..${end}, ` +
          `file has ${fileBytes}): the model is corrupted or incomplete`)
      }
    }
    const metadata = info.metadata as unknown as Record<string, unknown>
    const general = metadata["general"] as Record<string, unknown> | undefined
    const architecture = general?.["architecture"]
    if (typeof architecture !== "string") return yield* unsupported("missing general.architecture")
    const contextLength = Number((metadata[architecture] as Record<string, unknown> | undefined)?.["context_length"])
    if (!Number.isSafeInteger(contextLength) || contextLength <= 0) {
      return yield* unsupported(`missing or invalid ${architecture}.context_length`)
    }
    return { paramCount, contextLength, fileBytes, architecture }
  })
