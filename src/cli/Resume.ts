/**
 * `tune --resume` (SPEC R-2) on the command line: the flags a run was started
 * with, kept with it as JSON, read back to continue it with the same inputs;
 * which run to continue.
 */
import { Effect, Option } from "effect"
import { type StoreFailed, UsageError } from "../domain/AutotuneError.js"
import type { RunRow } from "../domain/Run.js"
import type { TrialStore } from "../services/TrialStore.js"

/** `--resume` without a run id: `bin`'s argument rewrite (cli/ResumeArgv) puts this in its place. */
export const LATEST = "latest"

/**
 * Flags of this invocation that `--resume` honours over the resumed run's:
 * how the result is shown, this invocation's budget and retention, where the
 * database is, and the dry run. Every other flag is the run's own.
 */
const OWN_FLAGS = new Set(["json", "maxDurationS", "keepRuns", "dbPath", "dryRun", "resume"])

/** Fields whose flag drops the unit the field name carries. */
const UNIT_FIELDS: Readonly<Record<string, string>> = {
  maxDurationS: "max-duration",
  readyTimeoutS: "ready-timeout",
  requestTimeoutS: "request-timeout",
  waitQuietS: "wait-quiet",
  memoryLimitGiB: "memory-limit"
}

/** A flag's field name as typed on the command line (`gateTtftMs` → `--gate-ttft-ms`, `maxDurationS` → `--max-duration`). */
const flagName = (key: string): string => `--${UNIT_FIELDS[key] ?? key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`

/** Parsed flags as JSON: an `Option` as `{"some": value}` or `{"none": true}`, every other value as is. */
export const encodeFlags = (flags: Readonly<Record<string, unknown>>): string =>
  JSON.stringify(Object.fromEntries(Object.entries(flags).map(([k, v]) => [
    k,
    Option.isOption(v) ? (Option.isSome(v) ? { some: v.value } : { none: true }) : v
  ])))

/**
 * Flags `encodeFlags` wrote, shaped like `defaults` (the flags of an empty
 * command line): a key missing from the text (a flag added since) takes its
 * default. Fails with UsageError naming `--resume` on text that is not such JSON.
 */
export const decodeFlags = <F extends Readonly<Record<string, unknown>>>(text: string, defaults: F, runId: string): Effect.Effect<F, UsageError> =>
  Effect.try({
    try: () => {
      const raw = JSON.parse(text) as Record<string, unknown>
      const out: Record<string, unknown> = { ...defaults }
      for (const [k, v] of Object.entries(raw)) {
        if (!(k in defaults)) continue
        if (Option.isOption(defaults[k])) {
          const o = v as { some?: unknown; none?: true }
          out[k] = "some" in o ? Option.some(o.some) : Option.none()
        } else {
          out[k] = v
        }
      }
      return out as F
    },
    catch: () => new UsageError({ flag: "resume", message: `--resume ${runId}: the run's stored flags cannot be read` })
  })

/**
 * The flags given with `--resume` that would change the resumed run's inputs:
 * every flag whose value differs from an empty command line's, except the
 * invocation's own (`--json`, `--max-duration`, `--keep-runs`, `--db-path`,
 * `--dry-run`). Fails with UsageError naming the first such flag.
 */
export const checkResumeFlags = (current: Readonly<Record<string, unknown>>, defaults: Readonly<Record<string, unknown>>, runId: string) => {
  const changed = Object.keys(current).filter((k) => !OWN_FLAGS.has(k) && encodeFlags({ v: current[k] }) !== encodeFlags({ v: defaults[k] }))
  return changed.length === 0 ? Effect.void : Effect.fail(new UsageError({
    flag: flagName(changed[0]!).slice(2),
    message: `--resume continues run ${runId} with the flags it was started with; ${
      changed.map(flagName).join(", ")
    } cannot be given with it (start a new tune to change them)`
  }))
}

/**
 * The run `--resume <id>` names, or for `latest` the newest run that did not
 * end `ok` and that no later run resumed already (SPEC R-2); it must have been started from the command line (its
 * flags kept). Fails with UsageError naming `--resume` otherwise.
 */
export const runToResume = (store: TrialStore, id: string, dbPath: string): Effect.Effect<RunRow, UsageError | StoreFailed> =>
  Effect.gen(function*() {
    const runs = yield* store.runs()
    // A run another run already continued is done with: that run (or its own continuation) is the one to resume.
    const continued = new Set(runs.flatMap((r) => (r.parent_run_id === null ? [] : [r.parent_run_id])))
    const run = id === LATEST
      ? runs.find((r) => r.exit_reason !== "ok" && !continued.has(r.run_id))
      : runs.find((r) => r.run_id === id)
    if (run === undefined) {
      return yield* new UsageError({
        flag: "resume",
        message: id === LATEST
          ? `--resume: no run to resume in ${dbPath}: every run there ended ok or was resumed (autotune history lists them; --resume <run-id> replays one)`
          : `--resume ${id}: no such run in ${dbPath} (autotune history lists the runs)`
      })
    }
    if (run.flags_json === null) {
      return yield* new UsageError({
        flag: "resume",
        message: `--resume: run ${run.run_id} kept no flags to continue with (recorded by an older version, or started from the library)`
      })
    }
    return run
  })
