/** `autotune serve`: the embedded provider (SPEC E-5) as a command; the server is `serve/Serve.ts`. */
import { Command, Options } from "@effect/cli"
import { Effect } from "effect"
import { serve } from "../serve/Serve.js"
import { MAX_SLOTS_OR_THREADS, MAX_TARGET_CONTEXT } from "../domain/Limits.js"
import { integerOption } from "./CliOptions.js"

const serveModel = Options.file("model", { exists: "either" }).pipe(
  Options.withDescription("GGUF model file to serve"))
const servePort = integerOption("port", { min: 1, max: 65535 }).pipe(Options.withDefault(8080),
  Options.withDescription("TCP port to listen on (default 8080)"))
const serveHost = Options.text("host").pipe(Options.withDefault("127.0.0.1"),
  Options.withDescription("address to bind (default 127.0.0.1)"))
const noJoin = Options.boolean("no-join").pipe(
  Options.withDescription("do not join a coordinator pool (the embedded provider never joins one; accepted for macprovider-cli compatibility)"))
const kvBits = Options.choiceWithValue("kv-bits", [["4", 4], ["8", 8]] as const).pipe(Options.optional,
  Options.withDescription("KV-cache bits: 4 (q4_0) or 8 (q8_0); unset = f16"))
const maxContext = integerOption("max-context", { min: 1, max: 4 * MAX_TARGET_CONTEXT }).pipe(Options.optional,
  Options.withDescription("context size per sequence, in tokens (default: the model's training context)"))
const maxBatch = integerOption("max-batch", { min: 1, max: MAX_SLOTS_OR_THREADS }).pipe(Options.withDefault(1),
  Options.withDescription("how many requests decode in parallel (sequences), default 1"))
const threads = integerOption("threads", { min: 1, max: MAX_SLOTS_OR_THREADS }).pipe(Options.optional,
  Options.withDescription("CPU threads for inference (default: the core count)"))

/** `autotune serve --model <gguf> [--port N] [--kv-bits 4|8] [--max-context N] [--max-batch N] [--threads N]`. */
export const serveCommand = Command.make("serve",
  { model: serveModel, port: servePort, host: serveHost, noJoin, kvBits, maxContext, maxBatch, threads },
  (o) => Effect.gen(function*() {
    return yield* serve({
      modelPath: o.model, port: o.port, host: o.host, maxBatch: o.maxBatch, maxContext: o.maxContext, threads: o.threads,
      kvBits: o.kvBits
    }).pipe(Effect.scoped)
  })
).pipe(Command.withDescription("Serve a GGUF model over an OpenAI-compatible HTTP API (the embedded provider)"))

