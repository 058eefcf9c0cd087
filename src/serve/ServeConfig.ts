/**
 * `autotune serve --config <file>` (SPEC F-4): the embedded provider's
 * config.yaml, the file `tune --apply --provider embedded` writes. It holds
 * macprovider's owned keys plus `threads_override`, `flash_attn_override` and
 * `stream_interval_ms_override`; every other key is the
 * operator's and is ignored here. Parsed with `yaml` (eemeli/yaml), the
 * library the apply editor checks its edits with, so what apply verified is
 * what serve reads.
 */
import { Effect, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { isMap, parseDocument } from "yaml"
import { UsageError } from "../domain/AutotuneError.js"
import type { KvBits } from "../domain/Knobs.js"
import { DEFAULT_STREAM_INTERVAL_MS, MAX_STREAM_INTERVAL_MS } from "../domain/StreamInterval.js"
import type { ServeOptions } from "./Serve.js"

/**
 * What a config file says (F-4); each field None when its key is absent or
 * null (the provider's default). `model`: the GGUF path, relative paths taken
 * from the config file's directory. `maxContext`: context per sequence,
 * tokens; `maxBatch`: parallel sequences; `threads`: CPU threads;
 * `flashAttn`: flash attention on (true) or off (false), None = `auto`;
 * `streamIntervalMs`: least time between two writes of a stream's tokens,
 * ms (0 = every token; None = DEFAULT_STREAM_INTERVAL_MS).
 */
export interface ServeConfig {
  readonly model: Option.Option<string>
  readonly kvBits: Option.Option<NonNullable<KvBits>>
  readonly maxContext: Option.Option<number>
  readonly maxBatch: Option.Option<number>
  readonly threads: Option.Option<number>
  readonly flashAttn: Option.Option<boolean>
  readonly streamIntervalMs: Option.Option<number>
}

/** Upper bounds the flags have too (ServeCommand.ts), so a file cannot ask for what a flag could not. */
export interface ServeConfigLimits {
  readonly maxContext: number
  readonly slotsOrThreads: number
}

/**
 * Reads the embedded provider's config (F-4). Fails with UsageError (flag
 * `config`, exit 64) naming the file, and the key where one is wrong: the
 * file is missing or unreadable, not UTF-8 YAML, holds several documents,
 * its top level is not a mapping, or `model` is not a non-empty string,
 * `kv_bits_override` not 4, 8 or null, `max_context_override`,
 * `max_concurrency_override` or `threads_override` not a positive integer (up
 * to `limits`) or null, `flash_attn_override` not true, false or null, or
 * `stream_interval_ms_override` not an integer from 0 to
 * MAX_STREAM_INTERVAL_MS or null.
 */
export const readServeConfig = (file: string, limits: ServeConfigLimits): Effect.Effect<ServeConfig, UsageError> =>
  Effect.gen(function*() {
    const bad = (why: string) => new UsageError({ flag: "config", message: `--config ${file}: ${why}` })
    const text = yield* Effect.try({
      try: () => new TextDecoder("utf-8", { fatal: true }).decode(fs.readFileSync(file)),
      catch: (e) =>
        bad((e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : `cannot be read as UTF-8 text: ${e instanceof Error ? e.message : String(e)}`)
    })
    const doc = parseDocument(text)
    if (doc.errors.length > 0) return yield* bad(`not valid YAML: ${doc.errors[0]!.message.trim()}`)
    if (doc.contents !== null && !isMap(doc.contents)) return yield* bad("its top level is not a mapping of keys")
    const values = yield* Effect.try({
      try: () => (doc.toJS() ?? {}) as Record<string, unknown>,
      catch: (e) => bad(`does not load: ${e instanceof Error ? e.message : String(e)}`)
    })
    const key = (k: string) => (Object.hasOwn(values, k) && values[k] !== null ? Option.some(values[k]) : Option.none())
    const integer = (k: string, min: number, max: number) =>
      Option.match(key(k), {
        onNone: () => Effect.succeed(Option.none<number>()),
        onSome: (v) =>
          typeof v === "number" && Number.isSafeInteger(v) && v >= min && v <= max
            ? Effect.succeed(Option.some(v))
            : Effect.fail(bad(`${k} must be an integer from ${min} to ${max} (or null for the default), got ${JSON.stringify(v)}`))
      })
    const positive = (k: string, max: number) => integer(k, 1, max)
    const model = yield* Option.match(key("model"), {
      onNone: () => Effect.succeed(Option.none<string>()),
      onSome: (v) =>
        typeof v === "string" && v.trim() !== ""
          ? Effect.succeed(Option.some(path.resolve(path.dirname(path.resolve(file)), v)))
          : Effect.fail(bad(`model must be the path of a GGUF file, got ${JSON.stringify(v)}`))
    })
    const kvBits: Option.Option<4 | 8> = yield* Option.match(key("kv_bits_override"), {
      onNone: () => Effect.succeed(Option.none<4 | 8>()),
      onSome: (v) =>
        v === 4 || v === 8
          ? Effect.succeed(Option.some<4 | 8>(v))
          : Effect.fail(bad(`kv_bits_override must be 4, 8 or null, got ${JSON.stringify(v)}`))
    })
    // Booleans only: what `--apply` writes and `verify --config` compares (YAML 1.2 reads `on`/`off` as words).
    const flashAttn: Option.Option<boolean> = yield* Option.match(key("flash_attn_override"), {
      onNone: () => Effect.succeed(Option.none<boolean>()),
      onSome: (v) =>
        typeof v === "boolean"
          ? Effect.succeed(Option.some(v))
          : Effect.fail(bad(`flash_attn_override must be true, false or null (auto), got ${JSON.stringify(v)}${
            v === "on" || v === "off" ? ` (YAML reads ${v} as a word here: write ${v === "on"})` : ""
          }`))
    })
    return {
      model,
      kvBits,
      flashAttn,
      maxContext: yield* positive("max_context_override", limits.maxContext),
      maxBatch: yield* positive("max_concurrency_override", limits.slotsOrThreads),
      threads: yield* positive("threads_override", limits.slotsOrThreads),
      streamIntervalMs: yield* integer("stream_interval_ms_override", 0, MAX_STREAM_INTERVAL_MS)
    }
  })

/**
 * The knob flags `autotune serve` was given (None: not given), with its port
 * and host; `--flash-attn auto` is "auto". `streamIntervalMs` is
 * `--stream-interval-ms` (ms).
 */
export interface ServeFlags extends Omit<ServeConfig, "maxBatch" | "flashAttn"> {
  readonly maxBatch: Option.Option<number>
  readonly flashAttn: Option.Option<boolean | "auto">
  readonly port: number
  readonly host: string
}

/**
 * The options `serve` runs with (F-4): each knob from its flag, else from the
 * config's key (`config` null: no `--config`), else the default (1 sequence;
 * the others None, `serve`'s own defaults). `configFile` names the file in the
 * error. Fails with UsageError (flag `model`) when neither names a model, and
 * (flag `flash-attn`) when flash attention is off with a quantized KV cache
 * (llama.cpp cannot quantize the V cache without it).
 */
export const serveOptionsOf = (flags: ServeFlags, config: ServeConfig | null, configFile: string | null): Effect.Effect<ServeOptions, UsageError> => {
  const or = <A>(flag: Option.Option<A>, key: (c: ServeConfig) => Option.Option<A>) =>
    Option.orElse(flag, () => (config === null ? Option.none() : key(config)))
  const model = or(flags.model, (c) => c.model)
  if (Option.isNone(model)) {
    return Effect.fail(new UsageError({
      flag: "model",
      message: configFile !== null ? `--model: ${configFile} has no model key; give --model <gguf>` : "--model <gguf> or --config <file> is required"
    }))
  }
  const kvBits = or(flags.kvBits, (c) => c.kvBits)
  // `--flash-attn auto` wins over the file too: it leaves the choice to llama.cpp.
  const flashAttn = Option.isSome(flags.flashAttn)
    ? Option.filter(flags.flashAttn, (v): v is boolean => v !== "auto")
    : config === null ? Option.none<boolean>() : config.flashAttn
  if (Option.isSome(kvBits) && Option.contains(flashAttn, false)) {
    // Name where each of the two came from: a flag, or the file's key.
    const from = (flag: Option.Option<unknown>, flagText: string, key: string) =>
      Option.isSome(flag) || configFile === null ? flagText : `${key} in ${configFile}`
    return Effect.fail(new UsageError({
      flag: "flash-attn",
      message: `flash attention off (${from(flags.flashAttn, "--flash-attn off", "flash_attn_override")}): a KV cache of ${kvBits.value} bits (${
        from(flags.kvBits, `--kv-bits ${kvBits.value}`, "kv_bits_override")
      }) needs it on (llama.cpp quantizes the V cache only with it)`
    }))
  }
  return Effect.succeed({
    modelPath: model.value,
    port: flags.port,
    host: flags.host,
    maxBatch: Option.getOrElse(or(flags.maxBatch, (c) => c.maxBatch), () => 1),
    maxContext: or(flags.maxContext, (c) => c.maxContext),
    threads: or(flags.threads, (c) => c.threads),
    kvBits,
    flashAttn,
    streamIntervalMs: Option.getOrElse(or(flags.streamIntervalMs, (c) => c.streamIntervalMs), () => DEFAULT_STREAM_INTERVAL_MS)
  })
}
