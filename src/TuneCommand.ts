import { Command } from "@effect/cli"
import { Effect } from "effect"
export const tuneCommand = Command.make("tune", {}, () => Effect.void)
