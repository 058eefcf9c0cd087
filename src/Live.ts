/**
 * The live layers: Node platform services, and the project's services on
 * them. bin.ts provides `AutotuneLive` to every command but `serve` started
 * through the launcher (serveBin.ts: Node's context alone); library scripts use
 * the same layers.
 */
// Subpath imports: the package's index loads every module it has (HTTP server, sockets, workers), ~0.3 s of start-up.
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Layer } from "effect"
import { CandidateProvider } from "./services/CandidateProvider.js"
import { CpuMeter } from "./services/CpuMeter.js"
import { Exec } from "./services/Exec.js"
import { ProcessTable } from "./services/ProcessTable.js"
import { ServiceManager } from "./services/ServiceManager.js"

/** Node platform services: FileSystem, Path, CommandExecutor, Terminal (NodeContext) and an undici HttpClient. */
export const PlatformLive = Layer.mergeAll(NodeContext.layer, NodeHttpClient.layerUndici)

/**
 * CandidateProvider (scoped provider processes, SPEC E-3/E-4), Exec (the
 * process seam) and CpuMeter (the quiet-machine guard, SPEC N-3) with the platform services they need, and those services too
 * (HttpClient for probes, FileSystem for apply). Enough for Stage 1, Stage 2
 * and probes.
 */
export const ProviderLive = Layer.mergeAll(CandidateProvider.Default, Exec.Default, CpuMeter.Default).pipe(
  Layer.provideMerge(PlatformLive)
)

/**
 * Everything `tune` needs, in one layer: ProviderLive, plus the operator's
 * service manager and the process table (pre-flight and drain, SPEC E-1,
 * E-2). The trial store is not in it: `tune` opens the plan's database
 * itself once it holds the run's locks.
 */
export const AutotuneLive = Layer.mergeAll(ProviderLive, ServiceManager.Default, ProcessTable.Default).pipe(
  Layer.provideMerge(PlatformLive)
)
