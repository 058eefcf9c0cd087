/** `autotune serve`: the embedded provider (SPEC E-5) as a command; the server is `serve/Serve.ts`. */
import { Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import { serve } from "../serve/Serve.js"
import { readServeConfig, serveOptionsOf } from "../serve/ServeConfig.js"
import { MAX_SLOTS_OR_THREADS, MAX_TARGET_CONTEXT } from "../domain/Limits.js"
import { DEFAULT_STREAM_INTERVAL_MS, MAX_STREAM_INTERVAL_MS } from "../domain/StreamInterval.js"
import { integerOption } from "./CliOptions.js"

const serveModel = Options.file("model", { exists: "either" }).pipe(Options.optional,
  Options.withDescription("GGUF model file to serve (required unless --config names one)"))
const config = Options.file("config", { exists: "either" }).pipe(Options.optional,
  Options.withDescription("a config.yaml to read model, kv_bits_override, max_context_override, max_concurrency_override, threads_override, flash_attn_override and stream_interval_ms_override from (what tune --apply --provider embedded writes; SPEC F-4); flags given on the command line win"))
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
const maxBatch = integerOption("max-batch", { min: 1, max: MAX_SLOTS_OR_THREADS }).pipe(Options.optional,
  Options.withDescription("how many requests decode in parallel (sequences), default 1"))
const flashAttn = Options.choiceWithValue("flash-attn", [["on", true], ["off", false], ["auto", "auto"]] as const).pipe(Options.optional,
  Options.withDescription("flash attention: on, off or auto (default: the config's flash_attn_override, else auto, which llama.cpp turns on on CPU); off needs an unset --kv-bits"))
const streamInterval = integerOption("stream-interval-ms", { min: 0, max: MAX_STREAM_INTERVAL_MS }).pipe(Options.optional,
  Options.withDescription(`least time between two writes of a stream's tokens, in ms (default: the config's stream_interval_ms_override, else ${DEFAULT_STREAM_INTERVAL_MS}; 0 = each token as it comes): the first token is never held; faster tokens go several to a write, which keeps 2 compute threads on 2 cores from losing a core to every token's write`))
const threads = integerOption("threads", { min: 1, max: MAX_SLOTS_OR_THREADS }).pipe(Options.optional,
  Options.withDescription("CPU threads for inference (default: the core count)"))

/**
 * `autotune serve [--config <config.yaml>] [--model <gguf>] [--port N] [--kv-bits 4|8] [--max-context N]
 * [--max-batch N] [--threads N] [--flash-attn on|off|auto] [--stream-interval-ms N]`: each knob from its flag, else from the config's key (F-4), else the
 * default. Fails with UsageError (exit 64) on a bad config (naming the key), when no model is given, or when
 * flash attention is off with a quantized KV cache (issue 14; llama.cpp cannot quantize the V cache without it).
 */
export const serveCommand = Command.make("serve",
  { model: serveModel, config, port: servePort, host: serveHost, noJoin, kvBits, maxContext, maxBatch, threads, flashAttn, streamIntervalMs: streamInterval },
  (o) => Effect.gen(function*() {
    const file = Option.getOrNull(o.config)
    const config = file === null ? null : yield* readServeConfig(file, { maxContext: 4 * MAX_TARGET_CONTEXT, slotsOrThreads: MAX_SLOTS_OR_THREADS })
    return yield* serve(yield* serveOptionsOf(o, config, file)).pipe(Effect.scoped)
  })
).pipe(Command.withDescription("Serve a GGUF model over an OpenAI-compatible HTTP API (the embedded provider)"))
