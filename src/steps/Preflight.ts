/**
 * Pre-flight (SPEC E-1): is the operator's provider running, as a service
 * job or a foreground process? A tune beside it would measure a shared machine.
 */
import * as path from "node:path"
import { Console, Effect } from "effect"
import { ProviderConflict } from "../domain/AutotuneError.js"
import { adapterCommand, type ProviderAdapter } from "../providers/ProviderAdapter.js"
import { descendantsOf, type ProcessInfo, ProcessTable } from "../services/ProcessTable.js"
import { ServiceManager, type ServiceManagerKind } from "../services/ServiceManager.js"

/** Interpreters a script provider may run under (argv[0]), whose argv[1] is then the script. */
const INTERPRETERS = new Set(["node", "nodejs", "python", "python3", "bash", "sh", "deno", "bun"])

/**
 * Is `argv` a running provider (SPEC E-1)? Its executable's base name is
 * exactly `binary` (argv[0], or argv[1] under an interpreter such as `node`
 * for a script), and `subcommand` (default `serve`) is a whole argv word after
 * it: `macprovider-cli-helper serve` and `macprovider-cli observer` are not.
 * `subcommand` null matches the executable alone (llama-server has none).
 */
export const isProviderProcess = (argv: ReadonlyArray<string>, binary: string, subcommand: string | null = "serve"): boolean => {
  const exeAt = argv.length > 0 && path.basename(argv[0]!) === binary
    ? 0
    : argv.length > 1 && INTERPRETERS.has(path.basename(argv[0]!)) && path.basename(argv[1]!) === binary
    ? 1
    : -1
  return exeAt >= 0 && (subcommand === null || argv.slice(exeAt + 1).includes(subcommand))
}

/** Running providers in `table` other than `self` and its descendants (SPEC E-1). */
export const foregroundProviders = (
  table: ReadonlyArray<ProcessInfo>,
  binary: string,
  self: number,
  subcommand: string | null = "serve"
): ReadonlyArray<ProcessInfo> => {
  const mine = descendantsOf(table, self)
  return table.filter((p) => !mine.has(p.pid) && isProviderProcess(p.argv, binary, subcommand))
}

/** Is `p` an `autotune … tune` or `autotune … verify` process (this tool's CLI measuring candidates)? */
const isAutotuneTune = (p: ProcessInfo | undefined): boolean =>
  p !== undefined && (p.argv.includes("tune") || p.argv.includes("verify")) &&
  p.argv.some((a) =>
    ["autotune", "autotune.js", "bin.ts"].includes(path.basename(a)) || a.endsWith(`${path.sep}dist${path.sep}bin.js`))

/** How many parents up a candidate's own workers are still traced to its shim (a llama-server router's model servers are 1). */
const MAX_CANDIDATE_DEPTH = 4

/**
 * Splits foreground providers into the operator's and live candidates of
 * another tune. A candidate (`--no-join`, SPEC E-3) whose parent is a running
 * `autotune … tune` (or `verify`) belongs to that run and is left alone (the
 * run lock keeps two tunes of one database or provider apart); so does any
 * process below a bin/provider-shim.mjs whose parent is such a run (a
 * llama-server candidate, or the model server a router candidate started,
 * F-6). An orphaned one counts as the operator's, so it conflicts and
 * `--drain` can stop it. The service job's process and its descendants
 * (`jobTree`) are the job, not foreground providers.
 */
export const classifyForeground = (
  found: ReadonlyArray<ProcessInfo>,
  table: ReadonlyArray<ProcessInfo>,
  jobTree: ReadonlySet<number>
): { readonly operator: ReadonlyArray<ProcessInfo>; readonly candidates: ReadonlyArray<ProcessInfo> } => {
  const parentOf = (p: ProcessInfo) => table.find((q) => q.pid === p.ppid)
  const isShim = (p: ProcessInfo | undefined) => p?.argv.some((a) => path.basename(a) === "provider-shim.mjs") === true
  /** `p`'s parent, grandparent, … up to MAX_CANDIDATE_DEPTH + 1 of them. */
  const ancestors = (p: ProcessInfo) => {
    const out: Array<ProcessInfo> = []
    for (let q = parentOf(p); q !== undefined && out.length <= MAX_CANDIDATE_DEPTH; q = parentOf(q)) out.push(q)
    return out
  }
  const ownedByTune = (p: ProcessInfo) => {
    const up = ancestors(p)
    if (p.argv.includes("--no-join") && isAutotuneTune(isShim(up[0]) ? up[1] : up[0])) return true
    // llama-server candidates carry no --no-join: running under the shim of a live tune marks them, and what they started.
    const shim = up.findIndex(isShim)
    return shim >= 0 && isAutotuneTune(up[shim + 1])
  }
  const rest = found.filter((p) => !jobTree.has(p.pid))
  return { operator: rest.filter((p) => !ownedByTune(p)), candidates: rest.filter(ownedByTune) }
}

/** What pre-flight checks: the service manager (or auto), the job label, the provider binary's base name. */
export interface PreflightOptions {
  readonly serviceManager: ServiceManagerKind | "auto"
  readonly serviceLabel: string
  readonly providerBinary: string
  /** The argv word that marks a serving process (`serve`), or null when the executable alone does (llama-server). */
  readonly providerSubcommand: string | null
}

/**
 * Pre-flight options for a provider (SPEC E-1): for llama-server, any running
 * executable of the resolved binary's name (it has no subcommand; any
 * llama-server competes for the machine); otherwise `<binary> serve`, where
 * the binary is `--provider-bin`, else `macprovider-cli` (the embedded
 * provider checks for the operator's macprovider).
 */
export const preflightOptionsFor = (
  adapter: ProviderAdapter,
  providerBin: string | null,
  serviceManager: ServiceManagerKind | "auto",
  serviceLabel: string
): PreflightOptions =>
  adapter.name === "llama-server"
    ? {
      serviceManager,
      serviceLabel,
      providerBinary: adapterCommand(adapter).command,
      providerSubcommand: null
    }
    : { serviceManager, serviceLabel, providerBinary: providerBin ?? "macprovider-cli", providerSubcommand: "serve" }

/** What pre-flight found running: the job (with its manager) and foreground provider processes. */
export interface Findings {
  readonly kind: ServiceManagerKind
  readonly label: string
  readonly jobRunning: boolean
  readonly jobPid: number | null
  readonly foreground: ReadonlyArray<ProcessInfo>
}

/** Human lines for what runs, one per job or process. */
export const describeFindings = (f: Findings): Array<string> => [
  ...(f.jobRunning ? [`${f.kind} job ${f.label} is running${f.jobPid === null ? "" : ` (pid ${f.jobPid})`}`] : []),
  ...f.foreground.map((p) => `foreground provider pid ${p.pid}: ${p.argv.join(" ").slice(0, 200)}`)
]

/**
 * Looks for the operator's provider (SPEC E-1): its service-manager job
 * (`auto` resolved per platform) and foreground processes whose executable is
 * the provider binary with `serve` as an argv word, this process and its
 * descendants excluded. A job loaded but not running is no conflict (said on stderr).
 */
export const detectProviders = (o: PreflightOptions): Effect.Effect<Findings, never, ServiceManager | ProcessTable> =>
  Effect.gen(function*() {
    const manager = yield* ServiceManager
    const kind = yield* manager.resolve(o.serviceManager)
    const job = yield* manager.jobState(kind, o.serviceLabel)
    if (job._tag === "Loaded") yield* Console.error(`autotune: ${kind} job ${o.serviceLabel} is loaded but not running`)
    const table = yield* Effect.flatMap(ProcessTable, (t) => t.list)
    const jobPid = job._tag === "Running" ? job.pid : null
    const { candidates, operator } = classifyForeground(
      foregroundProviders(table, path.basename(o.providerBinary), process.pid, o.providerSubcommand),
      table,
      jobPid === null ? new Set() : descendantsOf(table, jobPid)
    )
    for (const c of candidates) {
      yield* Console.error(`autotune: ignoring pid ${c.pid}, a candidate provider of another tune (--no-join)`)
    }
    return { kind, label: o.serviceLabel, jobRunning: job._tag === "Running", jobPid, foreground: operator }
  })

/** Whether anything runs that the tune must not share the machine with. */
export const conflicting = (f: Findings): boolean => f.jobRunning || f.foreground.length > 0

/**
 * Pre-flight (SPEC E-1): refuses to start when the operator's provider is
 * running, as a service-manager job or a foreground process, since a tune
 * beside it would measure a shared machine and fight it for memory. Returns
 * the findings (for a drain); fails with ProviderConflict naming what runs
 * (pid, label) unless `drain` is set. Nothing is started before it.
 */
export const preflight = (
  o: PreflightOptions,
  drain: boolean
): Effect.Effect<Findings, ProviderConflict, ServiceManager | ProcessTable> =>
  Effect.gen(function*() {
    const found = yield* detectProviders(o)
    if (conflicting(found) && !drain) {
      return yield* new ProviderConflict({
        message: `a provider is already running, so the tune would share the machine with it:\n  ${
          describeFindings(found).join("\n  ")
        }\nstop it first or pass --drain (stops it for the tune, restores it after)`
      })
    }
    return found
  })
