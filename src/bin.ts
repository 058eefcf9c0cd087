/**
 * Process entry of `autotune` (every command): provides the live services once (Live.ts
 * `AutotuneLive`) and runs the command tree as the process (cli/RunProcess.ts: failures printed
 * once, exit code of the exit_reason, SPEC H-2). bin/autotune.js starts `autotune serve` through
 * serveBin.ts instead.
 */
import { run } from "./Cli.js"
import { runAsProcess } from "./cli/RunProcess.js"
import { AutotuneLive } from "./Live.js"

runAsProcess(run(process.argv), AutotuneLive)
