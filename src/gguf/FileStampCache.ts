/**
 * Results computed from a file's bytes, kept for as long as the file is the same
 * file with the same bytes as far as the file system can tell: its device, inode,
 * size, modification and status-change times (nanoseconds) are unchanged. A write,
 * a truncation, a replacement by rename or copy changes at least one of them (a
 * write followed by `touch -r` or `cp -p` back to the old times still moves ctime,
 * which no user can set), so a tune that reads the same GGUF header for every trial
 * (SPEC D-2's pre-load check, the memory estimate) parses it once while the file
 * stays as it was (issue 14: 90–170 ms per trial on the 130M and 1.1B, about 1 s of
 * a tune's time between trials), and a changed file is read again.
 *
 * Where the stamp could miss a change, nothing is kept: a value is stored only if
 * the stamp is the same after computing it as before, and not when the file changed
 * less than `racyMs` (default 2 s) before the stamp was taken — a later same-size
 * change within one tick of a coarse timestamp would leave the stamp as it was (git's
 * "racy clean" rule). The stamp is read through an open file descriptor, so an NFS
 * client revalidates the attributes it would otherwise answer from its cache.
 */
import { Effect } from "effect"
import * as Fs from "node:fs"

/**
 * A file's identity and its bytes' version (`key`), when it last changed (`changedMs`: its ctime,
 * ms since the epoch — the kernel moves ctime on every change, `utimes` included, and no user can
 * set it), and its size (`bytes`; of the first file, for several).
 */
export interface FileStamp {
  readonly key: string
  readonly changedMs: number
  readonly bytes: number
}

/** The stamp of an open file's `fstat` (bigint: nanoseconds). */
const stampOf = (s: Fs.BigIntStats): FileStamp => ({
  key: `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`,
  changedMs: Number(s.ctimeNs / 1_000_000n),
  bytes: Number(s.size)
})

/** `path`'s stamp, read through an open descriptor (symlinks followed); null when it cannot be opened or stat'ed. */
export const fileStamp = async (path: string): Promise<FileStamp | null> => {
  try {
    const fh = await Fs.promises.open(path, "r")
    try {
      return stampOf(await fh.stat({ bigint: true }))
    } finally {
      await fh.close()
    }
  } catch {
    return null
  }
}

/** The stamp of several files together (a split model's parts): null when any has none. */
export const filesStamp = async (paths: ReadonlyArray<string>): Promise<FileStamp | null> => {
  const stamps = await Promise.all(paths.map(fileStamp))
  if (stamps.some((s) => s === null)) return null
  const all = stamps as Array<FileStamp>
  return { key: all.map((s) => s.key).join("|"), changedMs: Math.max(...all.map((s) => s.changedMs)), bytes: all[0]?.bytes ?? 0 }
}

/** Git's racy-clean window: a file changed less than this before its stamp was read is not kept, ms. */
export const RACY_MS = 2000

/** A bounded map from a file path to a value computed from the file under one stamp. */
export interface FileStampCache<V> {
  /** The value kept for `path` under `stamp`, if any (a null stamp never matches); a hit becomes the newest entry. */
  readonly lookup: (path: string, stamp: FileStamp | null) => V | undefined
  /**
   * Keeps `value` for `path` under `stamp`, read at `stampedAtMs` (ms since the epoch), unless the
   * stamp is null or the file changed less than the cache's racy window before it; the least
   * recently used file is dropped past the capacity.
   */
  readonly store: (path: string, stamp: FileStamp | null, stampedAtMs: number, value: V) => void
}

/**
 * A FileStampCache of at most `capacity` files (at least 1), with a racy window of `racyMs`
 * (default RACY_MS; 0 keeps a file that has just changed).
 */
export const makeFileStampCache = <V>(capacity: number, racyMs: number = RACY_MS): FileStampCache<V> => {
  const bound = Number.isFinite(capacity) ? Math.max(1, Math.floor(capacity)) : 1
  const entries = new Map<string, { readonly stamp: string; readonly value: V }>()
  return {
    lookup: (path, stamp) => {
      const hit = entries.get(path)
      if (stamp === null || hit === undefined || hit.stamp !== stamp.key) return undefined
      entries.delete(path)
      entries.set(path, hit)
      return hit.value
    },
    store: (path, stamp, stampedAtMs, value) => {
      if (stamp === null || stampedAtMs - stamp.changedMs < racyMs) return
      entries.delete(path)
      entries.set(path, { stamp: stamp.key, value })
      while (entries.size > bound) entries.delete(entries.keys().next().value!)
    }
  }
}

/**
 * `compute` (which reads `path`; given the stamp it runs under, so what it checks is what is kept
 * under that stamp) through `cache`: the kept value while the file's stamp (`o.stamp(path)`,
 * default `fileStamp`; it must not reject: null for no stamp) is the one it was computed under,
 * else `compute` again — kept only when it succeeds, `o.keep(value)` holds (default: always), the
 * stamp is the same after it as before it (a file changed while it was read is not kept), and the
 * file's ctime is at least the racy window older than this machine's clock (`Date.now()`, not the
 * Effect clock: a file system's times are real ones; a network file system whose clock runs behind
 * this machine's by more than the window weakens the rule). Fails as `compute` does; a failure is
 * never kept. Two calls at once for one path may both compute (both results are right; the callers
 * here are sequential).
 */
export const cachedByStamp = <V, E, R>(
  cache: FileStampCache<V>,
  path: string,
  compute: (stamp: FileStamp | null) => Effect.Effect<V, E, R>,
  o: {
    readonly stamp?: (path: string) => Promise<FileStamp | null>
    readonly keep?: (value: V) => boolean
  } = {}
): Effect.Effect<V, E, R> =>
  Effect.gen(function*() {
    const stamp = o.stamp ?? fileStamp
    const stampedAtMs = Date.now()
    const before = yield* Effect.promise(() => stamp(path))
    const hit = cache.lookup(path, before)
    if (hit !== undefined) return hit
    const value = yield* compute(before)
    if (before === null || (o.keep !== undefined && !o.keep(value))) return value
    const after = yield* Effect.promise(() => stamp(path))
    if (after !== null && after.key === before.key) cache.store(path, before, stampedAtMs, value)
    return value
  })
