/**
 * The `autotune` command tree: `tune`, `serve`, `synth`, `report`, `restore`,
 * `history`, `verify`, one file
 * per command in `cli/`. Handlers parse and call into the pipeline; failures
 * are printed once, to stderr, by cli/RunProcess.ts.
 */
import { historyCommand } from "./cli/HistoryCommand.js"
import { reportCommand } from "./cli/ReportCommand.js"
import { restoreCommand } from "./cli/RestoreCommand.js"
import { LATEST } from "./cli/Resume.js"
import { runRootWith } from "./cli/Root.js"
import { serveCommand } from "./cli/ServeCommand.js"
import { synthCommand } from "./cli/SynthCommand.js"
import { tuneCommand } from "./cli/TuneCommand.js"
import { verifyCommand } from "./cli/VerifyCommand.js"

/**
 * `--resume` with no run id after it (last, or followed by another flag)
 * continues the newest resumable run (SPEC R-2): it reads as `--resume latest`.
 */
const resumeArgv = (argv: ReadonlyArray<string>): Array<string> =>
  argv.flatMap((a, i) => (a === "--resume" && (i + 1 >= argv.length || argv[i + 1]!.startsWith("-")) ? [a, LATEST] : [a]))

const runRoot = runRootWith([tuneCommand, serveCommand, synthCommand, reportCommand, restoreCommand, historyCommand, verifyCommand])

/** Runs the command tree on `process.argv`. */
export const run = (argv: ReadonlyArray<string>) => runRoot(resumeArgv(argv))
