import * as path from "node:path"
import { Console, Effect } from "effect"
import { ProviderConflict } from "../domain/AutotuneError.js"
import { descendantsOf, listProcesses, type ProcessInfo } from "../services/ProcessTable.js"
import { jobState, resolveServiceManager, type ServiceManagerKind } from "../services/ServiceManager.js"

/** Interpreters a script provider may run under (argv[0]), whose argv[1] is then the script. */
const INTERPRETERS = new Set(["node", "nodejs", "python", "python3", "bash", "sh", "deno", "bun"])

/**
 * Is `argv` a running provider (SPEC E-1)? Its executable's base name is
 * exactly `binary` (argv[0], or argv[1] under an interpreter such as `node`
 * for a script), and `serve` is a whole argv word after it:
 * `macprovider-cli-helper serve` and `macprovider-cli observer` are not.
 */
export const isProviderProcess = (argv: ReadonlyArray<string>, binary: string): boolean => {
  const exeAt = argv.length > 0 && path.basename(argv[0]!) === binary
    ? 0
    : argv.length > 1 && INTERPRETERS.has(path.basename(argv[0]!)) && path.basename(argv[1]!) === binary
    ? 1
    : -1
  return exeAt >= 0 && argv.slice(exeAt + 1).includes("serve")
}

/** Running providers in `table` other than `self` and its descendants (SPEC E-1). */
export const foregroundProviders = (
  table: ReadonlyArray<ProcessInfo>,
  binary: string,
  self: number
): ReadonlyArray<ProcessInfo> => {
  const mine = descendantsOf(table, self)
  return table.filter((p) => !mine.has(p.pid) && isProviderProcess(p.argv, binary))
}

/** What pre-flight checks: the service manager (or auto), the job label, the provider binary's base name. */
export interface PreflightOptions {
  readonly serviceManager: ServiceManagerKind | "auto"
  readonly serviceLabel: string
  readonly providerBinary: string
}

/**
 * Pre-flight (SPEC E-1): refuses to start when the operator's provider is
 * running, as a service-manager job or a foreground process, since a tune
 * beside it would measure a shared machine and fight it for memory. A job
 * loaded but not running is no conflict (said on stderr). Fails with
 * ProviderConflict naming what runs (pid, label); nothing is started then.
 */
export const preflight = (o: PreflightOptions): Effect.Effect<void, ProviderConflict> =>
  Effect.gen(function*() {
    const kind = yield* resolveServiceManager(o.serviceManager)
    const job = yield* jobState(kind, o.serviceLabel)
    const found: Array<string> = []
    if (job._tag === "Running") {
      found.push(`${kind} job ${o.serviceLabel} is running${job.pid === null ? "" : ` (pid ${job.pid})`}`)
    } else if (job._tag === "Loaded") {
      yield* Console.error(`autotune: ${kind} job ${o.serviceLabel} is loaded but not running`)
    }
    const table = yield* listProcesses
    for (const p of foregroundProviders(table, path.basename(o.providerBinary), process.pid)) {
      found.push(`foreground provider pid ${p.pid}: ${p.argv.join(" ").slice(0, 200)}`)
    }
    if (found.length > 0) {
      return yield* new ProviderConflict({
        message: `a provider is already running, so the tune would share the machine with it:\n  ${
          found.join("\n  ")
        }\nstop it first, then run the tune again`
      })
    }
  })
