/**
 * `tune --resume` (SPEC R-2) on the command line: the flags a run was started
 * with, kept with it as JSON, read back to continue it with the same inputs;
 * which run to continue.
 */
import { Effect, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { type StoreFailed, UsageError } from "../domain/AutotuneError.js"
import type { RunRow } from "../domain/Run.js"
import type { TrialStore } from "../services/TrialStore.js"

/** `--resume` without a run id: the argument rewrite in Cli.ts (`resumeArgv`) puts this in its place. */
export const LATEST = "latest"

/**
 * Flags of this invocation that `--resume` honours over the resumed run's:
 * how the result is shown, this invocation's budget and retention, where the
 * database is, the dry run, and what this invocation does around the
 * measurement — pre-flight and drain (E-1, E-2), the wait for a quiet
 * machine (N-3), apply (F-3). None of them enters a trial key or the hashed
 * inputs. Every other flag is the run's own.
 */
const OWN_FLAGS = new Set([
  "json",
  "maxDurationS",
  "keepRuns",
  "dbPath",
  "dryRun",
  "resume",
  "drain",
  "restartForeground",
  "serviceManager",
  "serviceLabel",
  "waitQuietS",
  "apply",
  "configPath",
  "verify"
])

/** Whether `flag` (as a UsageError names it, `wait-quiet`) is one of the invocation's own (OWN_FLAGS). */
export const isOwnFlag = (flag: string): boolean => [...OWN_FLAGS].some((k) => flagName(k) === `--${flag}`)

/**
 * Flags `--resume` takes only when given: `--provider-bin`, for a run whose
 * provider executable was found on PATH, `$LLAMA_SERVER` or
 * `$LLAMA_CPP_BIN_DIR` and is not there in this shell. A different build changes the trial keys (R-1):
 * its trials are measured again, and said so.
 */
const WHEN_GIVEN = new Set(["providerBin"])

/** The invocation's own flags (OWN_FLAGS, and WHEN_GIVEN ones given) of `current` over the resumed run's `stored` flags. */
export const withOwnFlags = <F extends Readonly<Record<string, unknown>>>(stored: F, current: F): F =>
  ({
    ...stored,
    ...Object.fromEntries(Object.entries(current).filter(([k, v]) => OWN_FLAGS.has(k) || (WHEN_GIVEN.has(k) && Option.isOption(v) && Option.isSome(v))))
  }) as F

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

/**
 * Parsed flags as JSON: an `Option` as `{"some": value}` or `{"none": true}`,
 * every other value as is; `$cwd` the directory they were given in (relative
 * paths among them are read from there).
 */
export const encodeFlags = (flags: Readonly<Record<string, unknown>>, cwd: string): string =>
  JSON.stringify({
    ...Object.fromEntries(Object.entries(flags).map(([k, v]) => [
      k,
      Option.isOption(v) ? (Option.isSome(v) ? { some: v.value } : { none: true }) : v
    ])),
    $cwd: cwd
  })

const decodeOne = (v: unknown, option: boolean): unknown => {
  if (!option) return v
  if (typeof v !== "object" || v === null) throw new Error("not an option")
  return "some" in v ? Option.some((v as { some: unknown }).some) : Option.none()
}

/**
 * Flags `encodeFlags` wrote, shaped like `defaults` (the flags of an empty
 * command line): a key missing from the text (a flag added since) takes its
 * default; with the directory they were given in (null when not recorded).
 * Fails with UsageError naming `--resume` on text that is not such JSON.
 */
export const decodeFlags = <F extends Readonly<Record<string, unknown>>>(
  text: string,
  defaults: F,
  runId: string
): Effect.Effect<{ readonly flags: F; readonly cwd: string | null }, UsageError> =>
  Effect.try({
    try: () => {
      const raw: unknown = JSON.parse(text)
      if (typeof raw !== "object" || raw === null) throw new Error("not an object")
      const out: Record<string, unknown> = { ...defaults }
      for (const [k, v] of Object.entries(raw)) {
        if (k in defaults) out[k] = decodeOne(v, Option.isOption(defaults[k]))
      }
      const cwd = (raw as { $cwd?: unknown }).$cwd
      // Shaped like `defaults` key by key above; each value as the parser once produced it.
      return { flags: out as F, cwd: typeof cwd === "string" ? cwd : null }
    },
    catch: () => new UsageError({ flag: "resume", message: `--resume ${runId}: the run's stored flags cannot be read` })
  })

/**
 * The `--provider-bin` a run was started with, from its stored flags (absolute
 * since pinned), or null when none was given or the text is not such JSON.
 */
export const storedProviderBin = (flagsJson: string | null): string | null => {
  try {
    const bin = (JSON.parse(flagsJson ?? "null") as { providerBin?: { some?: unknown } } | null)?.providerBin?.some
    return typeof bin === "string" ? bin : null
  } catch {
    return null
  }
}

/**
 * SPEC R-2: a run whose candidates include relative paths is resumed from the
 * directory it was started in (those paths are its candidates' ids, part of
 * the recipe hash's inputs, so they cannot be rewritten). Fails with
 * UsageError naming `--resume` and the directory otherwise.
 */
export const checkStartedHere = (candidateIds: ReadonlyArray<string>, startedIn: string | null, runId: string) => {
  if (startedIn === null || path.resolve(startedIn) === process.cwd()) return Effect.void
  const relative = candidateIds.filter((id) => !path.isAbsolute(id) && fs.existsSync(path.join(startedIn, id)))
  return relative.length === 0 ? Effect.void : Effect.fail(new UsageError({
    flag: "resume",
    message: `--resume: run ${runId} was started in ${startedIn}, and its candidates ${relative.join(", ")} are paths from there: cd ${startedIn} and resume`
  }))
}

/**
 * The flags given with `--resume` that would change the resumed run's inputs:
 * every flag whose value differs from an empty command line's, except the
 * invocation's own (OWN_FLAGS) and the ones taken when given (WHEN_GIVEN).
 * Checked before the database is opened. Fails
 * with UsageError naming the first such flag.
 */
export const checkResumeFlags = (current: Readonly<Record<string, unknown>>, defaults: Readonly<Record<string, unknown>>) => {
  const same = (a: unknown, b: unknown) => encodeFlags({ v: a }, "") === encodeFlags({ v: b }, "")
  const changed = Object.keys(current).filter((k) => !OWN_FLAGS.has(k) && !WHEN_GIVEN.has(k) && !same(current[k], defaults[k]))
  return changed.length === 0 ? Effect.void : Effect.fail(new UsageError({
    flag: flagName(changed[0]!).slice(2),
    message: `--resume continues a run with the flags it was started with; ${
      changed.map(flagName).join(", ")
    } cannot be given with it (start a new tune to change them)`
  }))
}

/**
 * The run `--resume <id>` names, or for `latest` the newest run that did not
 * end `ok`, that no later run resumed already and that kept its flags (SPEC R-2); it must have been started from the command line (its
 * flags kept). Fails with UsageError naming `--resume` otherwise.
 */
export const runToResume = (store: TrialStore, id: string, dbPath: string): Effect.Effect<RunRow, UsageError | StoreFailed> =>
  Effect.gen(function*() {
    const runs = yield* store.runs()
    // A run another run already continued is done with: that run (or its own continuation) is the one to resume.
    const continued = new Set(runs.flatMap((r) => (r.parent_run_id === null ? [] : [r.parent_run_id])))
    const run = id === LATEST
      ? runs.find((r) => r.exit_reason !== "ok" && !continued.has(r.run_id) && r.flags_json !== null)
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
