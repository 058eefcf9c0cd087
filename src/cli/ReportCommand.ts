/** `autotune report [<run-id>] [--db-path <file>] [--out <file>]`: the flags; the work is `report/Report.ts`. */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect } from "effect"
import { report } from "../report/Report.js"
import { dbPathOption } from "./CliOptions.js"

const runIdArg = Args.text({ name: "run-id" }).pipe(Args.optional,
  Args.withDescription("the run to report (default: the latest run, by started_at)"))

const out = Options.text("out").pipe(Options.optional,
  Options.withDescription("HTML file to write (default autotune-report-<first 8 chars of the run id>.html in the current directory)"))

/** `autotune report [<run-id>] [--db-path <file>] [--out <file>]`: see `report`. Prints the written path on stdout. */
export const reportCommand = Command.make("report", { runId: runIdArg, dbPath: dbPathOption, out }, (f) =>
  report(f).pipe(Effect.flatMap(Console.log))).pipe(
    Command.withDescription("Write one run (default: the latest) as a self-contained HTML report with charts")
  )
