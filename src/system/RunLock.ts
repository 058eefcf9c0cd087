/**
 * One tune at a time per database and per provider (issue "one run at a
 * time"): pid lock files, held for the whole run as a scoped resource.
 *
 * A lock file holds one JSON object `{pid, started_at, argv}` of its holder.
 * It is created whole and exclusively: the JSON is written to a private temp
 * file (`wx`), which is then hard-linked to the lock path. `link(2)` fails with
 * EEXIST when the lock exists, so it is an exclusive create like `O_EXCL`, and,
 * unlike `wx` + write, no other run can ever read a half-written lock and
 * mistake a starting holder for a crashed one.
 *
 * A lock whose pid is gone (or whose file is unreadable: a crash or a disk
 * problem) is stale and taken over. Taking over is the racy part: two runs may
 * find the same stale lock at once, and "unlink, then create" would let the
 * second unlink the first's fresh lock, so both would win. Taking over
 * therefore needs the lock's takeover guard `<lock>.takeover`, itself a lock
 * acquired by this same procedure (a stale guard, left by a run killed inside
 * its takeover, is taken over through `<lock>.takeover.takeover`, to a bounded
 * depth). Holding the guard, the run re-reads the lock and, only if it is still
 * stale, renames its own temp file over it (`rename(2)` replaces atomically, so
 * the lock path never disappears). Why no two runs both win: while a lock is
 * stale its holder is dead and never releases it, fresh creators' `link` fails
 * because the path exists, and every other replacer needs the guard; so from
 * the guarded re-read to the rename the lock cannot change, and a run that
 * gets the guard after someone else's takeover re-reads a live holder and is
 * refused.
 *
 * A holder is known by its pid, host, boot id and process start time
 * (ProcessIdentity): a dead holder's pid reused by an unrelated process, or a
 * lock left before a reboot, is stale; a lock written on another host (a
 * shared directory) is never taken over. A lock file from before those fields
 * is judged by its pid alone.
 */
import { Console, Effect, Option, Schema, type Scope } from "effect"
import { findExecutable } from "./Executables.js"
import { pidAlive } from "./Pids.js"
import { liveness, ProcessIdentity, selfIdentity } from "./ProcessIdentity.js"
import * as Crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { RunLocked } from "../domain/AutotuneError.js"
import { dataDir } from "./UserDirs.js"

/**
 * The contents of a lock file: who holds it (pid, and — since lifecycle round
 * 2 — host, boot id and process start time, ProcessIdentity), since when
 * (ISO 8601), with what command line.
 */
export class LockHolder extends Schema.Class<LockHolder>("LockHolder")({
  pid: Schema.Int.pipe(Schema.positive()), // 0 or -1 would probe a process group: such a file is unreadable, so stale
  host: Schema.optional(Schema.String),
  boot_id: Schema.optional(Schema.NullOr(Schema.String)),
  start_ticks: Schema.optional(Schema.NullOr(Schema.Number)),
  started_at: Schema.String,
  argv: Schema.Array(Schema.String)
}) {}

const HolderJson = Schema.parseJson(LockHolder)
const decodeHolder = Schema.decodeUnknownOption(HolderJson)
const encodeHolder = Schema.encodeSync(HolderJson)

/** How deep stale takeover guards are themselves taken over before giving up (each level needs a kill within a few syscalls). */
const MAX_GUARD_DEPTH = 3
/** Acquisition rounds per lock: a round restarts only when the lock vanished or was taken over under us. */
const MAX_ROUNDS = 5

/** The database's lock: `<absolute db path>.lock`, next to the SQLite file. */
export const dbLockPath = (dbPath: string): string => `${path.resolve(dbPath)}.lock`

/**
 * What a provider lock is keyed on: the provider's name and the executable it
 * starts with its fixed arguments (`adapterCommand` of its adapter).
 */
export interface ProviderBinary {
  readonly name: string
  readonly command: string
  readonly args: ReadonlyArray<string>
}

/**
 * A provider's lock: `<data dir>/locks/<provider name>-<sha1 of the resolved
 * binary path>.lock` (data dir: `UserDirs.dataDir`, which ends in
 * `llm-autotune`). The binary is the provider's executable, found on PATH and
 * with symlinks resolved, so `macprovider-cli` and its full path share a lock;
 * for the embedded provider run by this tool's own launcher under Node, the
 * launcher script.
 */
export const providerLockPath = (provider: ProviderBinary, dir: string = dataDir()): string => {
  const launcher = provider.command === process.execPath && provider.args[0] !== undefined ? provider.args[0] : provider.command
  const binary = findExecutable(launcher) ?? launcher
  const key = Crypto.createHash("sha1").update(binary).digest("hex")
  return path.join(dir, "locks", `${provider.name}-${key}.lock`)
}

/**
 * The locks of one tune run: its database's and its provider's (see
 * `dbLockPath`, `providerLockPath`; `dir`: the data directory).
 */
export const runLockPaths = (dbPath: string, provider: ProviderBinary, dir: string = dataDir()): ReadonlyArray<string> => [
  dbLockPath(dbPath),
  providerLockPath(provider, dir)
]

/** What a lock file says now. */
type Reading =
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Live"; readonly pid: number }
  | { readonly _tag: "Stale"; readonly pid: number | null }

const read = (lockPath: string): Reading => {
  let raw: string
  try {
    raw = fs.readFileSync(lockPath, "utf8")
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { _tag: "Missing" }
    throw e
  }
  return Option.match(decodeHolder(raw), {
    onNone: () => ({ _tag: "Stale", pid: null }),
    // A holder on another host (a shared directory) is never taken for dead; a local pid
    // that now belongs to a process started at another time (reused) is.
    onSome: (h) =>
      liveness(new ProcessIdentity(h), pidAlive) === "Gone" ? { _tag: "Stale", pid: h.pid } : { _tag: "Live", pid: h.pid }
  })
}

const isCode = (e: unknown, code: string) => (e as NodeJS.ErrnoException | null)?.code === code

/** Result of one synchronous acquisition attempt. */
type Attempt =
  | { readonly _tag: "Held"; readonly content: string }
  | { readonly _tag: "Refused"; readonly pid: number; readonly lockPath: string }

/**
 * Acquires `lockPath` for this process, synchronously (a handful of syscalls,
 * so nothing interleaves with it inside this process). `announce` gets one line
 * per stale lock taken over. Throws on unexpected I/O errors.
 */
const acquireSync = (lockPath: string, content: string, announce: (line: string) => void, depth = 0): Attempt => {
  fs.mkdirSync(path.dirname(lockPath), { recursive: true })
  const tmp = `${lockPath}.${process.pid}.${Crypto.randomUUID().slice(0, 8)}.tmp`
  fs.writeFileSync(tmp, content, { flag: "wx" })
  try {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      try {
        fs.linkSync(tmp, lockPath) // exclusive create of a complete file
        return { _tag: "Held", content }
      } catch (e) {
        if (!isCode(e, "EEXIST")) throw e
      }
      const seen = read(lockPath)
      if (seen._tag === "Missing") continue // released between our link and read: try again
      if (seen._tag === "Live") return { _tag: "Refused", pid: seen.pid, lockPath }
      if (depth >= MAX_GUARD_DEPTH) {
        throw new Error(`stale lock ${lockPath} could not be taken over (nested takeover guards); delete it by hand`)
      }
      announce(`autotune: taking over stale lock ${lockPath} from ${seen.pid === null ? "an unreadable holder" : `pid ${seen.pid}`}`)
      const guardPath = `${lockPath}.takeover`
      const guard = acquireSync(guardPath, content, announce, depth + 1)
      // Someone else is taking this lock over right now: they are the holder-to-be.
      if (guard._tag === "Refused") return { _tag: "Refused", pid: guard.pid, lockPath }
      try {
        // Under the guard, nothing but a guard holder changes a stale lock (see the module comment).
        if (read(lockPath)._tag === "Stale") {
          fs.renameSync(tmp, lockPath)
          return { _tag: "Held", content }
        }
      } finally {
        releaseSync(guardPath, guard.content)
      }
      // Missing (its live holder released it) or Live (taken over first by another run): next round decides.
    }
    throw new Error(`lock ${lockPath} kept changing under ${MAX_ROUNDS} acquisition attempts`)
  } finally {
    fs.rmSync(tmp, { force: true }) // gone already after a rename; the link's other name otherwise
  }
}

/**
 * Deletes `lockPath` if it still holds exactly what we wrote. A live holder's
 * lock is only ever replaced by its holder, so nothing changes it between the
 * read and the unlink.
 */
const releaseSync = (lockPath: string, content: string): void => {
  try {
    if (fs.readFileSync(lockPath, "utf8") === content) fs.unlinkSync(lockPath)
  } catch (e) {
    if (!isCode(e, "ENOENT")) throw e
  }
}

/**
 * One lock file, held until the enclosing Scope closes (any exit, interruption
 * included). Fails with RunLocked when a live process holds it; announces on
 * stderr any stale lock it takes over. An I/O error (unwritable directory) is
 * a defect naming the path.
 */
const acquireOne = (lockPath: string, content: string): Effect.Effect<void, RunLocked, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const lines: Array<string> = []
      const attempt = yield* Effect.try({
        try: () => acquireSync(lockPath, content, (line) => lines.push(line)),
        catch: (e) => new Error(`run lock ${lockPath}: ${e instanceof Error ? e.message : String(e)}`)
      }).pipe(Effect.orDie)
      yield* Effect.forEach(lines, (line) => Console.error(line), { discard: true })
      if (attempt._tag === "Refused") {
        return yield* new RunLocked({
          holderPid: attempt.pid,
          lockPath,
          message: `another autotune run (pid ${attempt.pid}) holds ${lockPath}: one tune at a time per database ` +
            `and provider; retry when it has finished (if pid ${attempt.pid} is not autotune, delete the file)`
        })
      }
    }),
    () => Effect.sync(() => releaseSync(lockPath, content)).pipe(Effect.orDie)
  )

/**
 * Holds a run lock on each of `paths` (e.g. `runLockPaths`) until the
 * enclosing Scope closes, on every exit path including interruption; take them
 * before anything a refused run must not do (the `tune_runs` row). Each file
 * holds `{pid, started_at, argv}` of this process and is deleted on release
 * only if it still holds exactly that. Paths are taken in sorted order, so of
 * two runs racing for the same set one always gets all of them.
 * Fails with RunLocked (exit 75, EX_TEMPFAIL, sysexits.h; exit_reason
 * `provider_conflict`, SPEC H-2) naming the live holder's pid and the lock
 * path; locks taken before the refusal are released with the Scope. Stale
 * locks (dead pid, unreadable file) are taken over, announced on stderr.
 */
export const acquireRunLock = (paths: ReadonlyArray<string>): Effect.Effect<void, RunLocked, Scope.Scope> =>
  Effect.gen(function*() {
    const content = encodeHolder(
      new LockHolder({ ...selfIdentity(), started_at: new Date().toISOString(), argv: process.argv })
    )
    const sorted = [...new Set(paths.map((p) => path.resolve(p)))].sort()
    yield* Effect.forEach(sorted, (p) => acquireOne(p, content), { discard: true })
  })
