/**
 * The drain journal (SPEC L-2): what a drain stopped and how to bring it back,
 * on disk beside the database before anything is stopped, so a tuner that dies
 * without running its finalizers (SIGKILL, a heap OOM) leaves the operator's
 * provider restorable by the next tune or `autotune restore`.
 */
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Option, Schema } from "effect"
import { ProcessIdentity } from "./ProcessIdentity.js"

/** A drained foreground provider, as needed to restart it: argv, cwd and environment from before the stop. */
export const StoppedProcess = Schema.Struct({
  pid: Schema.Int,
  argv: Schema.Array(Schema.String),
  cwd: Schema.NullOr(Schema.String),
  env: Schema.NullOr(Schema.Record({ key: Schema.String, value: Schema.String }))
})
export type StoppedProcess = typeof StoppedProcess.Type

/**
 * One drain: the tuner that made it (ProcessIdentity), when (ISO 8601 UTC),
 * the service manager and job label, whether the job was stopped, the
 * foreground providers stopped (or about to be), and whether they are to be
 * restarted (`--restart-foreground`).
 */
export class DrainJournal extends Schema.Class<DrainJournal>("DrainJournal")({
  tuner: ProcessIdentity,
  drained_at: Schema.String,
  kind: Schema.Literal("launchd", "systemd", "none"),
  label: Schema.String,
  job: Schema.Boolean,
  /** The job's main process when it was drained (absent in journals written before it was recorded). */
  job_pid: Schema.optional(Schema.NullOr(Schema.Int)),
  foreground: Schema.Array(StoppedProcess),
  restart_foreground: Schema.Boolean
}) {}

const JournalJson = Schema.parseJson(DrainJournal)
const encode = Schema.encodeSync(JournalJson)
const decode = Schema.decodeUnknownOption(JournalJson)

/** The journal of the database at `dbPath`: `<absolute db path>.drain.json`, beside it. */
export const drainJournalPath = (dbPath: string): string => `${path.resolve(dbPath)}.drain.json`

/**
 * Writes `journal` to `file` whole or not at all: a temp file in the same
 * directory, fsync, rename over `file`, fsync of the directory. Throws on an
 * I/O error (the caller refuses to drain then: nothing is stopped unjournaled).
 */
export const writeJournal = (file: string, journal: DrainJournal): void => {
  // A fresh file only this user reads (it holds the drained process's environment), never one followed through a link.
  const tmp = `${file}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`
  const fd = fs.openSync(tmp, "wx", 0o600)
  try {
    try {
      fs.writeSync(fd, encode(journal))
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, file)
  } catch (e) {
    fs.rmSync(tmp, { force: true }) // it holds a process's environment: never leave it behind
    throw e
  }
  try {
    const dir = fs.openSync(path.dirname(file), "r")
    try {
      fs.fsyncSync(dir)
    } finally {
      fs.closeSync(dir)
    }
  } catch { /* a directory fsync is best effort (not every filesystem allows it) */ }
}

/**
 * The journal at `file`: None when there is none, `Unreadable` when it exists
 * but cannot be read or does not decode (a crash mid-write cannot leave one:
 * it is renamed whole; a hand edit or another user's permissions can). Never throws.
 */
export const readJournal = (file: string): Option.Option<DrainJournal | "Unreadable"> => {
  let raw: string
  try {
    raw = fs.readFileSync(file, "utf8")
  } catch (e) {
    // Only a journal that is not there is no journal (one left unreadable by `sudo` is still one).
    return (e as NodeJS.ErrnoException).code === "ENOENT" ? Option.none() : Option.some("Unreadable" as const)
  }
  return Option.some(Option.getOrElse(decode(raw), () => "Unreadable" as const))
}

/** Removes the journal at `file` (gone already: fine). Never throws. */
export const removeJournal = (file: string): void => {
  try {
    fs.rmSync(file, { force: true })
  } catch { /* it stays: the next restore finds what it journals already back, and starts nothing twice */ }
}
