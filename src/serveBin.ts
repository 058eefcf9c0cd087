/**
 * Process entry of `autotune serve` alone, the embedded provider (SPEC E-5), which the tuner
 * starts once per candidate: the same root command with only `serve` under it, on NodeContext
 * (FileSystem, Path and Terminal, which @effect/cli needs, and CommandExecutor and WorkerManager, which
 * nothing here uses: ~10 ms more to load than the three alone), so the process loads none of
 * the tuner's modules (SQL, pipeline, report). Measured on 2 cores (issue 14, 2026-12-06): the
 * 15M's spawn → ready 1.25–1.30 s through it against 1.45–1.55 s through the whole CLI, which
 * every candidate start paid.
 * bin/autotune.js routes here for `serve` without a built-in flag (`--help`, `--version`,
 * `--wizard`, `--completions`, `--log-level`), whose answers come from the whole tree.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { runAsProcess } from "./cli/RunProcess.js"
import { runRootWith } from "./cli/Root.js"
import { serveCommand } from "./cli/ServeCommand.js"

runAsProcess(runRootWith([serveCommand])(process.argv), NodeContext.layer)
