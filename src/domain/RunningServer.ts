/** A started, ready candidate provider, as the probe sees it (SPEC E-3, E-4). */
import type { Effect } from "effect"

/** How a provider process ended: exit code (null when killed by a signal) and signal name. */
export interface ProcessExit {
  readonly code: number | null
  readonly signal: string | null
}

/** How a process ended, for a reason: its signal's name, else `exit code N`. */
export const exitText = (x: ProcessExit): string => x.signal ?? `exit code ${x.code}`

/**
 * A started, ready candidate provider (SPEC E-3, E-4). Lives as long as the
 * Scope it was started in; closing that Scope stops the whole process group.
 */
export interface RunningServer {
  /** `http://127.0.0.1:<port>` */
  readonly baseUrl: string
  readonly port: number
  readonly pid: number
  /** The id the provider serves the model under (from `GET /v1/models`). */
  readonly modelId: string
  /** Per-start log file with the provider's stdout and stderr (SPEC E-3). */
  readonly logPath: string
  /** Completes when the process exits (never fails). */
  readonly exited: Effect.Effect<ProcessExit>
  /** The last lines of the provider's output, for reasons (SPEC E-4). */
  readonly outputTail: Effect.Effect<string>
  /**
   * Marks the trial decided by the gate: nothing the provider does next is
   * measured, so its stop gives SIGTERM only DECIDED_STOP_GRACE before SIGKILL
   * instead of STOP_GRACE (services/CandidateProvider.ts; issue 14: llama-server
   * finishes the prefill a gate cut abandoned before it honours SIGTERM).
   */
  readonly decided: Effect.Effect<void>
  /**
   * Resident bytes of the provider's whole process group now (SPEC C-3: the
   * provider and every worker it forked; a launch shim left out), null where
   * it cannot be read. Never fails.
   */
  readonly residentBytes: Effect.Effect<number | null>
  /**
   * The same, the members looked for afresh (on Linux `residentBytes` may
   * read only the members found at its last look through /proc: a worker
   * forked since counts from its next look). A trial's last sample. Absent:
   * `residentBytes`. Never fails.
   */
  readonly residentBytesScanned?: Effect.Effect<number | null>
  /**
   * SPEC E-4 after the fact, asked when the pre-warm's first requests failed
   * (none answered): waits until ALIVE_AFTER_READY (200 ms,
   * services/CandidateProvider.ts) after the provider answered ready, or its
   * exit if sooner, and gives that exit when the process exited within it (it
   * answered ready, then died: the start's failure, with its exit code), else
   * null. A healthy start waits for nothing: the check costs time only on
   * this failure path (issue 14). Absent (a server built by a library user for
   * `CandidateProvider.Stub`): never asked.
   */
  readonly exitedAfterReady?: Effect.Effect<ProcessExit | null>
}
