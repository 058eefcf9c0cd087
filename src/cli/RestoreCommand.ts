/**
 * `autotune restore [--db-path <file>] [--forget]` (SPEC L-2): brings back what a tune
 * drained when that tune died before it could restore it (SIGKILL, a crash),
 * from the drain journal beside the database. Every `autotune tune` does the
 * same first; this command does only that.
 */
import { Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { ProviderConflict, UsageError } from "../domain/AutotuneError.js"
import { restoreJournaled } from "../steps/Drain.js"
import { drainJournalPath, readJournal, removeJournal } from "../system/DrainJournal.js"
import { holdSignals } from "../system/HoldSignals.js"
import { acquireRunLock, dbLockPath } from "../system/RunLock.js"
import { defaultDbPath } from "../system/UserDirs.js"

const forget = Options.boolean("forget").pipe(Options.withDescription(
  "drop the drain journal without restoring anything (after bringing the provider back by hand); prints what it held"))
const dbPath = Options.text("db-path").pipe(Options.optional,
  Options.withDescription("the tune's SQLite file, beside which the drain journal lives (default <user data dir>/llm-autotune/autotune.db, as for tune)"))

/**
 * Restores the drain journaled beside the database, under the database's run
 * lock (a tune running on it now owns its journal: exit 75). Prints on stdout
 * what it did: nothing to restore (exit 0), restored (exit 0). Fails with
 * UsageError (exit 64) when the journal cannot be read (it names the file to
 * check by hand), ProviderConflict (exit 4) when a restore command failed
 * (what failed stays journaled, for the next try) or the journal was written
 * on another host, and RunLocked (exit 75). `--forget` drops the journal
 * instead (after the operator brought the provider back by hand).
 */
export const restoreCommand = Command.make("restore", { dbPath, forget }, (f) =>
  Effect.scoped(Effect.gen(function*() {
    const db = Option.getOrElse(f.dbPath, defaultDbPath)
    // A second Ctrl-C must not cut a restore short (STYLE pitfall 2).
    yield* holdSignals
    const journal = drainJournalPath(db)
    // Nothing journaled: nothing to lock or touch.
    if (Option.isNone(readJournal(journal))) return yield* Console.log(`nothing to restore: no drain journal at ${journal}`)
    yield* acquireRunLock([dbLockPath(db)])
    if (f.forget) {
      const held = readJournal(journal)
      removeJournal(journal)
      return yield* Console.log(`forgot the drain journal ${journal}${
        Option.isSome(held) && held.value !== "Unreadable"
          ? `; it held: ${[...(held.value.job ? [`${held.value.kind} job ${held.value.label}`] : []), ...held.value.foreground.map((s) => s.argv.join(" "))].join("; ")}`
          : ""
      }`)
    }
    const r = yield* restoreJournaled(journal)
    switch (r._tag) {
      case "None":
        return yield* Console.log(`nothing to restore: no drain journal at ${journal}`)
      case "Unreadable":
        return yield* new UsageError({
          flag: "db-path",
          message: `the drain journal ${journal} cannot be read; restore the provider by hand, then \`autotune restore --forget\``
        })
      case "Elsewhere":
        return yield* new ProviderConflict({ message: `the drain journal ${journal} was written on ${r.host}: run \`autotune restore\` there` })
      case "Restored":
        if (r.failed.length > 0) {
          return yield* new ProviderConflict({ message: `restore failed, bring these back by hand: ${r.failed.join("; ")}` })
        }
        return yield* Console.log(`restored what the dead tune had drained (journal ${journal} removed)`)
    }
  }))).pipe(Command.withDescription("Bring back a provider that a killed tune drained and could not restore (SPEC L-2)"))
