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
import { cachedByStamp, fileStamp, makeFileStampCache } from "../../src/gguf/FileStampCache.js"
import { estimateMemory } from "../../src/gguf/MemoryEstimate.js"
import { ggufParts, ggufStamp, readModelInfo } from "../../src/gguf/ModelInfo.js"
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
    effect: Effect.sync(() => {
      runs++
      return Fs.readFileSync(file, "utf8")
    })
  }
}

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
      const old = Fs.statSync(file, { bigint: true })
      Fs.writeFileSync(file, "bbbb")
      ChildProcess.execFileSync("touch", ["-r", ref, file])
      const now = Fs.statSync(file, { bigint: true })
      expect([now.size, now.ino, now.mtimeNs]).toEqual([old.size, old.ino, old.mtimeNs])
      expect(now.ctimeNs).not.toBe(old.ctimeNs)
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
      const file = tempFile("aaaa")
      const c = counting(file)
      const cache = makeFileStampCache<string>(4)
      yield* cachedByStamp(cache, file, c.effect)
      yield* cachedByStamp(cache, file, c.effect)
      expect(c.runs()).toBe(2)
      // The same file under a window of 0 is kept.
      const eager = makeFileStampCache<string>(4, 0)
      yield* cachedByStamp(eager, file, c.effect)
      yield* cachedByStamp(eager, file, c.effect)
      expect(c.runs()).toBe(3)
    }))

  it.effect("issue 14 a split model's stamp covers every part: a change to part 2 computes again", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "stamp-split-"))
      const first = Path.join(dir, "m-00001-of-00002.gguf")
      expect(ggufParts(first)).toEqual([first, Path.join(dir, "m-00002-of-00002.gguf")])
      expect(ggufParts(Path.join(dir, "m.gguf"))).toEqual([Path.join(dir, "m.gguf")])
      for (const p of ggufParts(first)) Fs.writeFileSync(p, "part")
      const cache = makeFileStampCache<string>(4, 0)
      const c = counting(first)
      yield* cachedByStamp(cache, first, c.effect, { stamp: ggufStamp })
      yield* cachedByStamp(cache, first, c.effect, { stamp: ggufStamp })
      expect(c.runs()).toBe(1)
      Fs.writeFileSync(ggufParts(first)[1]!, "PART")
      yield* cachedByStamp(cache, first, c.effect, { stamp: ggufStamp })
      expect(c.runs()).toBe(2)
      // A missing part: no stamp, nothing kept.
      Fs.rmSync(ggufParts(first)[1]!)
      yield* cachedByStamp(cache, first, c.effect, { stamp: ggufStamp })
      yield* cachedByStamp(cache, first, c.effect, { stamp: ggufStamp })
      expect(c.runs()).toBe(4)
    }))

  it.effect("issue 14 a failure is not kept, nor a value read while the file changed, nor anything for a file that cannot be stat'ed", () =>
    Effect.gen(function*() {
      const file = tempFile("aaaa")
      const cache = makeFileStampCache<string>(4, 0)
      let runs = 0
      const failOnce = Effect.suspend(() => (++runs === 1 ? Effect.fail("boom" as const) : Effect.succeed("ok")))
      expect(Either.getLeft(yield* Effect.either(cachedByStamp(cache, file, failOnce)))._tag).toBe("Some")
      expect(yield* cachedByStamp(cache, file, failOnce)).toBe("ok")
      expect(runs).toBe(2)

      const numbers = makeFileStampCache<number>(4, 0)
      const changing = tempFile("x")
      let reads = 0
      const writesWhileReading = Effect.sync(() => {
        reads++
        Fs.appendFileSync(changing, "y")
        return reads
      })
      yield* cachedByStamp(numbers, changing, writesWhileReading)
      yield* cachedByStamp(numbers, changing, writesWhileReading)
      expect(reads).toBe(2)

      expect(yield* Effect.promise(() => fileStamp("/nonexistent/f.gguf"))).toBeNull()
      let missing = 0
      const m = Effect.sync(() => ++missing)
      yield* cachedByStamp(numbers, "/nonexistent/f.gguf", m)
      yield* cachedByStamp(numbers, "/nonexistent/f.gguf", m)
      expect(missing).toBe(2)
    }))

  it.effect("issue 14 keeps at most its capacity of files, dropping the oldest", () =>
    Effect.gen(function*() {
      const cache = makeFileStampCache<string>(2, 0)
      const files = ["a", "b", "c"].map(tempFile)
      const cs = files.map(counting)
      for (const [i, f] of files.entries()) yield* cachedByStamp(cache, f, cs[i]!.effect)
      // a was dropped when c came; b and c are still kept (a hit makes a file the newest).
      yield* cachedByStamp(cache, files[2]!, cs[2]!.effect)
      yield* cachedByStamp(cache, files[1]!, cs[1]!.effect)
      expect(cs.map((c) => c.runs())).toEqual([1, 1, 1])
      yield* cachedByStamp(cache, files[0]!, cs[0]!.effect)
      expect(cs.map((c) => c.runs())).toEqual([2, 1, 1])
    }))
})

describe("readModelInfo through the cache (SPEC D-2)", () => {
  it.effect("D-2 a model replaced by another, or cut short, after it was read is read again: the new size, then the damage", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "stamp-model-"))
      const file = Path.join(dir, "m.gguf")
      Fs.copyFileSync(tinyModelPath("q4_0"), file)
      const first = yield* readModelInfo(file)
      expect(yield* readModelInfo(file)).toEqual(first)
      Fs.copyFileSync(tinyModelPath("q8_0"), file)
      const replaced = yield* readModelInfo(file)
      expect(replaced.fileBytes).toBe(Fs.statSync(tinyModelPath("q8_0")).size)
      expect(replaced.fileBytes).not.toBe(first.fileBytes)
      Fs.truncateSync(file, Math.floor(replaced.fileBytes / 2))
      const cut = yield* Effect.either(readModelInfo(file))
      expect(Either.isLeft(cut) && cut.left.message).toMatch(/not within the file bounds/)
    }))

  it.effect("D-2 the magic is read on every call: a same-size overwrite of it in place, after the model was read, fails the check", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "stamp-magic-"))
      const file = Path.join(dir, "m.gguf")
      Fs.copyFileSync(tinyModelPath("q4_0"), file)
      yield* readModelInfo(file)
      const fd = Fs.openSync(file, "r+")
      Fs.writeSync(fd, Buffer.from("XXXX"), 0, 4, 0)
      Fs.closeSync(fd)
      const bad = yield* Effect.either(readModelInfo(file))
      expect(Either.isLeft(bad) && bad.left.message).toBe('Invalid GGUF magic: expected "GGUF", got "XXXX"')
    }))
})

describe("estimateMemory through the cache (issue 14)", () => {
  it.effect("issue 14 a model swapped for another under the same path gets the other's estimate (the model part is read again)", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "stamp-estimate-"))
      const link = Path.join(dir, "m.gguf")
      Fs.symlinkSync(tinyModelPath("q4_0"), link)
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
