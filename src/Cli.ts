/**
 * The `autotune` command tree: `tune`, `serve`, `synth`, `report`, `restore`, one file
 * per command in `cli/`. Handlers parse and call into the pipeline; failures
 * are printed once, to stderr, by bin.ts.
 */
import { Command } from "@effect/cli"
import { reportCommand } from "./cli/ReportCommand.js"
import { restoreCommand } from "./cli/RestoreCommand.js"
import { serveCommand } from "./cli/ServeCommand.js"
import { synthCommand } from "./cli/SynthCommand.js"
import { tuneCommand } from "./cli/TuneCommand.js"
import { AUTOTUNE_VERSION } from "./system/Versions.js"

const root = Command.make("autotune").pipe(
  Command.withDescription("Find the biggest model this machine can serve well, and the serving knobs for it"),
  Command.withSubcommands([tuneCommand, serveCommand, synthCommand, reportCommand, restoreCommand])
)

/** Runs the command tree on `process.argv`. */
export const run = Command.run(root, { name: "autotune", version: AUTOTUNE_VERSION })
