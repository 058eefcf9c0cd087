/**
 * The `autotune` root command over a list of subcommands, run on an argv. Cli.ts runs it over
 * every command; serveBin.ts over `serve` alone, so that an embedded candidate's process loads
 * none of the tuner's modules (issue 14: spawn → ready).
 */
import { Command } from "@effect/cli"
import { AUTOTUNE_VERSION } from "../system/Versions.js"

/** The root's one-line description (`autotune --help`). */
const ROOT_DESCRIPTION = "Find the biggest model this machine can serve well, and the serving knobs for it"

/**
 * `Command.run` of `autotune` with `subcommands`, named and versioned as the package: an
 * argv (`process.argv`, node and script first) → the chosen command's Effect. Fails with
 * @effect/cli's ValidationError on bad input (printed by @effect/cli; exit 64 by ExitReason).
 */
// `any` as in @effect/cli's own `withSubcommands` constraint; each handler's R and E still come through.
export const runRootWith = <Subcommands extends readonly [Command.Command<any, any, any, any>, ...Array<Command.Command<any, any, any, any>>]>(
  subcommands: Subcommands
) =>
  Command.run(
    Command.make("autotune").pipe(Command.withDescription(ROOT_DESCRIPTION), Command.withSubcommands(subcommands)),
    { name: "autotune", version: AUTOTUNE_VERSION }
  )
