/**
 * A GGUF header read once per tune while the file stays as it was (gguf/FileStampCache.ts, issue 14),
 * and read again as soon as it is not: SPEC D-2's pre-load check still sees a replaced or damaged model.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { cachedByStamp, type FileStamp, fileStamp, makeFileStampCache } from "../../src/gguf/FileStampCache.js"
import { estimateMemory } from "../../src/gguf/MemoryEstimate.js"
import { ggufParts, ggufStamp, modelInfoReader, readModelInfo } from "../../src/gguf/ModelInfo.js"
import { tinyModelPath } from "../support/models.js"

const tempFile = (content: string | Buffer): string => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "stamp-cache-"))
  const file = Path.join(dir, "f.bin")
  Fs.writeFileSync(file, content)
  return file
}

/** A compute that counts its runs and returns the file's content. */
const counting = (file: string) => {
  let runs = 0
  return {
    runs: () => runs,
    effect: () =>
      Effect.sync(() => {
        runs++
        return Fs.readFileSync(file, "utf8")
      })
  }
}

/** A stamp function that answers the given stamps in turn (the last one from then on). */
const stamps = (...seq: ReadonlyArray<FileStamp | null>) => {
  let i = 0
  return () => Promise.resolve(seq[Math.min(i++, seq.length - 1)]!)
}

/** `m.gguf` in a new temporary folder: a copy of the 15M test model (`link`: a symlink to it instead). */
const tinyModelAt = (how: "copy" | "link" = "copy"): string => {
  const file = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "stamp-model-")), "m.gguf")
  if (how === "copy") Fs.copyFileSync(tinyModelPath("q4_0"), file)
  else Fs.symlinkSync(tinyModelPath("q4_0"), file)
  return file
}

/** A stamp changed long enough ago to be kept under the default racy window. */
const old = (key: string, bytes = 4): FileStamp => ({ key, changedMs: Date.now() - 60_000, bytes })

describe("FileStampCache (issue 14: one header read per file per tune)", () => {
  it.effect("issue 14 the same file, untouched, is computed once; any write, even one with size and mtime put back to the nanosecond, computes again", () =>
    Effect.gen(function*() {
      const file = tempFile("aaaa")
      const cache = makeFileStampCache<string>(4, 0)
      const c = counting(file)
      expect(yield* cachedByStamp(cache, file, c.effect)).toBe("aaaa")
      expect(yield* cachedByStamp(cache, file, c.effect)).toBe("aaaa")
      expect(c.runs()).toBe(1)
      // Same size, same inode, the old mtime put back exactly (touch -r copies nanoseconds): only ctime moved.
      const ref = `${file}.ref`
      Fs.writeFileSync(ref, "")
      ChildProcess.execFileSync("touch", ["-r", file, ref])
      const before = Fs.statSync(file, { bigint: true })
      Fs.writeFileSync(file, "bbbb")
      ChildProcess.execFileSync("touch", ["-r", ref, file])
      const after = Fs.statSync(file, { bigint: true })
      expect([after.size, after.ino, after.mtimeNs]).toEqual([before.size, before.ino, before.mtimeNs])
      expect(after.ctimeNs).not.toBe(before.ctimeNs)
      expect(yield* cachedByStamp(cache, file, c.effect)).toBe("bbbb")
      expect(c.runs()).toBe(2)
      // Replaced by rename: another inode.
      const other = `${file}.new`
      Fs.writeFileSync(other, "cccc")
      Fs.renameSync(other, file)
      expect(yield* cachedByStamp(cache, file, c.effect)).toBe("cccc")
      expect(c.runs()).toBe(3)
    }))

  it.effect("issue 14 a file changed within the racy window (2 s by default) is not kept: a same-size change in the same clock tick could not be told apart", () =>
    Effect.gen(function*() {
      const cache = makeFileStampCache<string>(4)
      let runs = 0
      const compute = () => Effect.sync(() => `v${++runs}`)
      const fresh: FileStamp = { key: "k", changedMs: Date.now(), bytes: 4 }
      yield* cachedByStamp(cache, "/m.gguf", compute, { stamp: stamps(fresh) })
      yield* cachedByStamp(cache, "/m.gguf", compute, { stamp: stamps(fresh) })
      expect(runs).toBe(2)
      // The same file once it is older than the window is kept.
      yield* cachedByStamp(cache, "/m.gguf", compute, { stamp: stamps(old("k")) })
      expect(yield* cachedByStamp(cache, "/m.gguf", compute, { stamp: stamps(old("k")) })).toBe("v3")
      expect(runs).toBe(3)
    }))

  it.effect("issue 14 a split model's stamp covers every part, as node-llama-cpp names them: a change to part 2 computes again", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "stamp-split-"))
      const first = Path.join(dir, "m-00001-of-00002.gguf")
      expect(ggufParts(first)).toEqual([first, Path.join(dir, "m-00002-of-00002.gguf")])
      expect(ggufParts(Path.join(dir, "m-00002-of-00002.gguf"))).toEqual(ggufParts(first))
      for (const name of ["m.gguf", "m-00000-of-00002.gguf", "m-00003-of-00002.gguf", "m-00001-of-00002.GGUF"]) {
        expect(ggufParts(Path.join(dir, name))).toEqual([Path.join(dir, name)])
      }
      for (const p of ggufParts(first)) Fs.writeFileSync(p, "part")
      const cache = makeFileStampCache<string>(4, 0)
      const c = counting(first)
      yield* cachedByStamp(cache, first, c.effect, { stamp: ggufStamp })
      yield* cachedByStamp(cache, first, c.effect, { stamp: ggufStamp })
      expect(c.runs()).toBe(1)
      Fs.writeFileSync(ggufParts(first)[1]!, "part two")
      yield* cachedByStamp(cache, first, c.effect, { stamp: ggufStamp })
      expect(c.runs()).toBe(2)
      // A missing part: no stamp, nothing kept.
      Fs.rmSync(ggufParts(first)[1]!)
      yield* cachedByStamp(cache, first, c.effect, { stamp: ggufStamp })
      yield* cachedByStamp(cache, first, c.effect, { stamp: ggufStamp })
      expect(c.runs()).toBe(4)
    }))

  it.effect("issue 14 not kept: a failure, a value read while the stamp moved and came back, one `keep` refuses, a file with no stamp", () =>
    Effect.gen(function*() {
      const cache = makeFileStampCache<string>(4, 0)
      let runs = 0
      const failOnce = () => Effect.suspend(() => (++runs === 1 ? Effect.fail("boom" as const) : Effect.succeed("ok")))
      const a = old("a")
      expect(Either.isLeft(yield* Effect.either(cachedByStamp(cache, "/f", failOnce, { stamp: stamps(a) })))).toBe(true)
      expect(yield* cachedByStamp(cache, "/f", failOnce, { stamp: stamps(a) })).toBe("ok")
      expect(runs).toBe(2)

      // Before: a; after the read: b (the file changed while it was read); then a again: not the value read under b.
      let reads = 0
      const read = () => Effect.sync(() => `r${++reads}`)
      yield* cachedByStamp(cache, "/g", read, { stamp: stamps(a, old("b"), a, a) })
      expect(yield* cachedByStamp(cache, "/g", read, { stamp: stamps(a) })).toBe("r2")
      expect(reads).toBe(2)

      let kept = 0
      const k = () => Effect.sync(() => `k${++kept}`)
      yield* cachedByStamp(cache, "/h", k, { stamp: stamps(a), keep: () => false })
      yield* cachedByStamp(cache, "/h", k, { stamp: stamps(a), keep: () => false })
      expect(kept).toBe(2)

      expect(yield* Effect.promise(() => fileStamp("/nonexistent/f.gguf"))).toBeNull()
      let missing = 0
      const m = () => Effect.sync(() => `m${++missing}`)
      yield* cachedByStamp(cache, "/nonexistent/f.gguf", m)
      yield* cachedByStamp(cache, "/nonexistent/f.gguf", m)
      expect(missing).toBe(2)
    }))

  it.effect("issue 14 keeps at most its capacity of files, the least recently used dropped first", () =>
    Effect.gen(function*() {
      const cache = makeFileStampCache<string>(2, 0)
      const runs = new Map<string, number>()
      const get = (path: string) =>
        cachedByStamp(cache, path, () => Effect.sync(() => {
          runs.set(path, (runs.get(path) ?? 0) + 1)
          return path
        }), { stamp: stamps(old(path)) })
      yield* get("/a")
      yield* get("/b")
      yield* get("/a") // a used: b is now the least recently used
      yield* get("/c") // drops b, not a (first in, first out would drop a)
      yield* get("/a")
      expect(runs.get("/a")).toBe(1)
      yield* get("/b")
      expect(runs.get("/b")).toBe(2)
    }))
})

describe("readModelInfo through the cache (SPEC D-2)", () => {
  it.effect("D-2 a model replaced by another, or cut short, after it was read is read again: the new size, then the damage", () =>
    Effect.gen(function*() {
      const file = tinyModelAt()
      const first = yield* readModelInfo(file)
      Fs.copyFileSync(tinyModelPath("q8_0"), file)
      const replaced = yield* readModelInfo(file)
      expect(replaced.fileBytes).toBe(Fs.statSync(tinyModelPath("q8_0")).size)
      expect(replaced.fileBytes).not.toBe(first.fileBytes)
      Fs.truncateSync(file, Math.floor(replaced.fileBytes / 2))
      const cut = yield* Effect.either(readModelInfo(file))
      expect(Either.isLeft(cut) && cut.left.message).toMatch(/not within the file bounds/)
    }))

  it.effect("D-2 the magic is read on every call, even when the stamp says the file is unchanged: a damaged magic fails the check", () =>
    Effect.gen(function*() {
      const file = tinyModelAt()
      const bytes = Fs.statSync(file).size
      // A stamp that never moves: the tensors' check is kept after the first call.
      const read = modelInfoReader(makeFileStampCache(4, 0), stamps(old("same", bytes)))
      const info = yield* read(file)
      expect(yield* read(file)).toBe(info) // the kept value itself
      const fd = Fs.openSync(file, "r+")
      Fs.writeSync(fd, Buffer.from("XXXX"), 0, 4, 0)
      Fs.closeSync(fd)
      const bad = yield* Effect.either(read(file))
      expect(Either.isLeft(bad) && bad.left.message).toBe('Invalid GGUF magic: expected "GGUF", got "XXXX"')
    }))

  it.effect("D-2 the tensors are checked against the size in the stamp they are kept under", () =>
    Effect.gen(function*() {
      const file = tinyModelAt()
      // The stamp saw the file cut to half (as if truncated between the head's read and the stamp's).
      const half = Math.floor(Fs.statSync(file).size / 2)
      const read = modelInfoReader(makeFileStampCache(4, 0), stamps(old("cut", half)))
      const r = yield* Effect.either(read(file))
      expect(Either.isLeft(r) && r.left.message).toMatch(new RegExp(`file has ${half}\\)`))
    }))
})

describe("estimateMemory through the cache (issue 14)", () => {
  it.effect("issue 14 a model swapped for another under the same path gets the other's estimate (the model part is read again)", () =>
    Effect.gen(function*() {
      const link = tinyModelAt("link")
      const opts = { modelPath: link, contextSize: 512, sequences: 1, kvBits: null, threads: 1 } as const
      const q4 = yield* estimateMemory(opts)
      expect((yield* estimateMemory(opts)).totalBytes).toBe(q4.totalBytes)
      // Swapped by rename: the link now names the f16 model, whose weights are about 4× larger.
      Fs.symlinkSync(tinyModelPath("f16"), `${link}.new`)
      Fs.renameSync(`${link}.new`, link)
      const f16 = yield* estimateMemory(opts)
      expect(f16.weightsBytes).toBeGreaterThan(2 * q4.weightsBytes)
    }), 60_000)
})
