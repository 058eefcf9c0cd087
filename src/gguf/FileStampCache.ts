/**
 * Results computed from a file's bytes, kept for as long as the file is the same
 * file with the same bytes as far as the file system can tell: its device, inode,
 * size, modification and status-change times (nanoseconds) are unchanged. A write,
 * a truncation, a replacement by rename or copy changes at least one of them (a
 * write or a `touch -d` back in time still moves ctime, which no user can set), so
 * a tune that reads the same GGUF header for every trial (SPEC D-2's pre-load
 * check, the memory estimate) parses it once while the file stays as it was
 * (issue 14: 130–170 ms per trial on the 130M/1.1B, ~1 s of a tune's time between
 * trials), and a replaced file is read again.
 */
import { Effect } from "effect"
import * as Fs from "node:fs"

/** A file's identity and its bytes' version: `dev:ino:size:mtimeNs:ctimeNs`; null when it cannot be stat'ed. */
export const fileStamp = async (path: string): Promise<string | null> => {
  try {
    const s = await Fs.promises.stat(path, { bigint: true })
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`
  } catch {
    return null
  }
}

/** A bounded map from a file path to a value computed from the file under one stamp. */
export interface FileStampCache<V> {
  /** The value kept for `path` under `stamp`, if any (a null stamp never matches). */
  readonly lookup: (path: string, stamp: string | null) => V | undefined
  /** Keeps `value` for `path` under `stamp` (nothing for a null stamp); the oldest file dropped past the capacity. */
  readonly store: (path: string, stamp: string | null, value: V) => void
}

/** A FileStampCache of at most `capacity` (≥ 1) files. */
export const makeFileStampCache = <V>(capacity: number): FileStampCache<V> => {
  const entries = new Map<string, { readonly stamp: string; readonly value: V }>()
  return {
    lookup: (path, stamp) => {
      const hit = entries.get(path)
      return stamp !== null && hit !== undefined && hit.stamp === stamp ? hit.value : undefined
    },
    store: (path, stamp, value) => {
      if (stamp === null) return
      entries.delete(path)
      entries.set(path, { stamp, value })
      while (entries.size > Math.max(1, capacity)) entries.delete(entries.keys().next().value!)
    }
  }
}

/**
 * `compute` (which reads `path`) through `cache`: the kept value while the file's stamp is the
 * one it was computed under, else `compute` again — kept only when it succeeds and the stamp is
 * the same after it as before it (a file changed while it was read is not kept). Fails as
 * `compute` does; a failure is never kept.
 */
export const cachedByStamp = <V, E, R>(
  cache: FileStampCache<V>,
  path: string,
  compute: Effect.Effect<V, E, R>
): Effect.Effect<V, E, R> =>
  Effect.gen(function*() {
    const before = yield* Effect.promise(() => fileStamp(path))
    const hit = cache.lookup(path, before)
    if (hit !== undefined) return hit
    const value = yield* compute
    if (before !== null && (yield* Effect.promise(() => fileStamp(path))) === before) cache.store(path, before, value)
    return value
  })
