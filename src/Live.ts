/**
 * The live layers of the library (issue "library surface"): Node platform
 * services and the project's services on them. The CLI (bin.ts) and scripts
 * use the same layers.
 */
import { NodeContext, NodeHttpClient } from "@effect/platform-node"
import { Layer } from "effect"
import { CandidateProvider } from "./services/CandidateProvider.js"
import { TrialStore } from "./services/TrialStore.js"

/** Node platform services: FileSystem, Path, CommandExecutor, Terminal (NodeContext) and an undici HttpClient. */
export const PlatformLive = Layer.mergeAll(NodeContext.layer, NodeHttpClient.layerUndici)

/**
 * CandidateProvider (scoped provider processes, SPEC E-3/E-4) with the
 * platform services it needs, and those services too (HttpClient for probes,
 * FileSystem for apply). Enough for Stage 1, Stage 2 and probes without SQLite.
 */
export const ProviderLive = CandidateProvider.Default.pipe(Layer.provideMerge(PlatformLive))

/**
 * Everything `tune` needs, in one layer: TrialStore on the SQLite file
 * `dbPath` (created and migrated on open, SPEC S-1..S-3), CandidateProvider,
 * HttpClient and FileSystem. Building it fails with StoreFailed when the
 * database cannot be opened or migrated.
 */
export const AutotuneLive = (dbPath: string) =>
  Layer.mergeAll(TrialStore.layer(dbPath), CandidateProvider.Default).pipe(Layer.provideMerge(PlatformLive))
