/**
 * Process entry of `autotune serve` alone, the embedded provider (SPEC E-5), which the tuner
 * starts once per candidate: the same root command with only `serve` under it, on Node's
 * FileSystem, Path and Terminal (all @effect/cli and serve use), so the process loads none of
 * the tuner's modules (SQL, pipeline, report). Measured on 2 cores (issue 14): importing Cli.js
 * took 1.1–1.3 s, the serve command alone 0.75–0.8 s, and every candidate start pays it.
 * bin/autotune.js routes here for `serve` without a built-in flag (`--help`, `--version`,
 * `--wizard`, `--completions`, `--log-level`), whose answers come from the whole tree.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { runAsProcess } from "./cli/RunProcess.js"
import { runRootWith } from "./cli/Root.js"
import { serveCommand } from "./cli/ServeCommand.js"

runAsProcess(runRootWith([serveCommand])(process.argv), NodeContext.layer)
