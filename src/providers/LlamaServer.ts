/** The llama.cpp `llama-server` adapter (SPEC E-5). */
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { editSwapText, swapCommand } from "../domain/LlamaSwapYaml.js"
import { kvCacheType } from "../domain/Knobs.js"
import { editPresetText, presetSectionFor, presetValuesOf } from "../domain/PresetIni.js"
import { requestContextTokens } from "../domain/Prompt.js"
import { shellQuote } from "../domain/Shell.js"
import { Exec } from "../services/Exec.js"
import { type LaunchSpec, type ProviderAdapter, versionOf } from "./ProviderAdapter.js"

/** Context of one slot, in tokens: what one request occupies (`requestContextTokens`), as for the embedded provider. */
const slotContext = (spec: LaunchSpec): number => requestContextTokens(spec.knobs.maxContext ?? spec.targetContext, spec.replyTokens)

/**
 * Total context llama-server is started with, in tokens (`--ctx-size`): the
 * per-slot context (the max-context knob, else the target context, with
 * P-1's 5 % tolerance and room for the reply) times the parallel slots,
 * because llama-server splits `--ctx-size` evenly over `--parallel` slots
 * (llama.cpp tools/server README).
 */
export const llamaServerContextSize = (spec: LaunchSpec): number => slotContext(spec) * (spec.knobs.maxBatch ?? 1)

/** What a llama-server build accepts beyond the SPEC E-5 flags. */
export interface LlamaServerFlags {
  /** `--cache-ram` (host-RAM prompt cache, default 8 GiB; builds from late 2025 on). */
  readonly cacheRam: boolean
}

/**
 * No optional flag: for an adapter built before its binary may be asked (a
 * plan, a dry run). A run asks the binary first (`probe`, `llamaServerAdapter`);
 * an adapter that keeps these flags starts candidates without `--cache-ram 0`.
 */
export const NO_OPTIONAL_FLAGS: LlamaServerFlags = { cacheRam: false }

/**
 * Which optional flags `binary` accepts, from its `--help` (15 s at most);
 * none when it does not answer. Never fails.
 */
export const llamaServerFlags = (binary: string): Effect.Effect<LlamaServerFlags, never, Exec> =>
  Effect.flatMap(Exec, (exec) => exec.run(binary, ["--help"], { timeoutMs: 15_000 })).pipe(
    Effect.map((r) => ({ cacheRam: r.stdout.includes("--cache-ram") }))
  )

const knobArgs = (spec: LaunchSpec): Array<string> => [
  "--ctx-size",
  `${llamaServerContextSize(spec)}`,
  "--parallel",
  `${spec.knobs.maxBatch ?? 1}`,
  ...(spec.knobs.kvBits === null
    ? []
    // A quantized V cache needs flash attention in llama.cpp (STACK.md); turn it on explicitly.
    : [
      "--cache-type-k",
      kvCacheType(spec.knobs.kvBits),
      "--cache-type-v",
      kvCacheType(spec.knobs.kvBits),
      "--flash-attn",
      "on"
    ]),
  // Issue 17 part 3: flash attention measured on and off (with a quantized cache it is on, above).
  ...(spec.knobs.flashAttn === null || spec.knobs.kvBits !== null ? [] : ["--flash-attn", spec.knobs.flashAttn ? "on" : "off"]),
  ...(spec.knobs.threads === null ? [] : ["--threads", `${spec.knobs.threads}`]),
  ...(spec.knobs.ubatch === null ? [] : ["--ubatch-size", `${spec.knobs.ubatch}`]),
  ...(spec.knobs.batch === null ? [] : ["--batch-size", `${spec.knobs.batch}`])
]

/**
 * llama.cpp's `llama-server` (SPEC E-5): `-m M --host 127.0.0.1 --port P
 * [--cache-ram 0] --ctx-size N --parallel N [--cache-type-k/-v q4_0|q8_0 --flash-attn on]
 * [--flash-attn on|off] [--threads N] [--ubatch-size N] [--batch-size N]`; ready when `GET /health` is 200 (503 while loading), then
 * `GET /v1/models`. It has no coordinator pool, so a candidate gets no
 * `--no-join` (SPEC E-3's purpose, never taking pool traffic, holds by
 * construction; the flag would make it exit "invalid argument"). Candidates
 * bind 127.0.0.1 only. `binary` is resolved by the caller (`--provider-bin`,
 * `$LLAMA_SERVER`, `$LLAMA_CPP_BIN_DIR`, PATH). `flags`: what the build
 * accepts (`llamaServerFlags` asks it; `llamaServerAdapter` does both); `probe`
 * asks the binary again and returns the adapter with its answer.
 */
export const llamaServer = (binary: string, flags: LlamaServerFlags): ProviderAdapter => {
  const self: ProviderAdapter = {
    name: "llama-server",
    hasThreads: true,
    hasFlashAttn: true,
    shortWarmUpSuffices: true,
    countsTokens: true,
    watchesParent: false,
    healthPath: "/health",
    argv: (spec) => ({
      command: binary,
      args: [
        "-m",
        spec.model,
        ...(spec.port === null ? [] : ["--host", "127.0.0.1", "--port", `${spec.port}`]),
        // Candidates only: no host-RAM prompt cache, which grows with every distinct prompt, is in
        // no estimate, and would let a repeated prefix skip prefill in a probe. The operator's
        // serve command keeps the build's default.
        ...(flags.cacheRam ? ["--cache-ram", "0"] : []),
        ...knobArgs(spec)
      ]
    }),
    contextSize: slotContext,
    serveCommand: (spec) => [binary, "-m", spec.model, ...knobArgs(spec)].map(shellQuote).join(" "),
    probe: Effect.suspend(() => llamaServerAdapter(binary)),
    version: versionOf(binary),
    // F-4: a router preset (`llama-server --models-preset <file>`): the recipe is the model's section;
    // or a llama-swap config.yaml (`.yaml`/`.yml`): the recipe is the flags of its model entry's cmd.
    config: {
      edit: (spec, file) => (source) => editLlamaConfig(file, source, spec.model, knobArgs(spec)),
      // Each candidate's section or entry, set and then unset (a recipe may leave the KV type to the build).
      editable: (source, models, file, extraArgs = []) => {
        for (const m of models.length === 0 ? ["/autotune-check.gguf"] : models) {
          for (const args of [["--ctx-size", "4096", "--threads", "2", "--cache-type-k", "q8_0", ...extraArgs], ["--ctx-size", "4096"]]) {
            const trial = editLlamaConfig(file, source, m, args)
            if (trial._tag === "Left") return trial.left
          }
        }
        return null
      },
      // An existing file only: a mistyped --config-path must not become a new file nobody reads.
      createIfMissing: false,
      launchFrom: (configPath) =>
        isSwapConfig(configPath) ? fromSwap(self, path.resolve(configPath)) : fromPreset(self, binary, path.resolve(configPath))
    }
  }
  return self
}

/** Whether a llama-server config path names a llama-swap `config.yaml` (else a router preset INI). */
const isSwapConfig = (file: string) => /\.ya?ml$/i.test(file)

/** The edit of a llama-server config's text (`file` names its kind) that starts `model` with `args` (F-4). */
const editLlamaConfig = (file: string, source: string, model: string, args: ReadonlyArray<string>) => {
  const values = presetValuesOf(path.resolve(model), args)
  return isSwapConfig(file) ? editSwapText(source, presetName(model), values) : editPresetText(source, presetName(model), values)
}

/**
 * llama-server as llama-swap would start it for the model's entry (F-6): the
 * entry's cmd from the file (macros and `${PORT}` substituted) with the
 * candidate's port (`--port` set, or added with `--host 127.0.0.1`). llama-swap
 * itself is not run: its proxy adds nothing a probe measures. The restart line
 * is `llama-swap --config <file>`. A file that cannot be read starts a
 * process that says why and exits 2, so the verification fails naming it.
 * A model-less spec (`adapterCommand`: run locks, pre-flight, the provider's
 * identity) names no entry: it gets the tuned llama-server's command.
 */
const fromSwap = (base: ProviderAdapter, file: string): ProviderAdapter => ({
  ...base,
  argv: (spec, candidate) => {
    if (spec.model === "") return base.argv(spec, candidate)
    let source: string
    try {
      source = fs.readFileSync(file, "utf8")
    } catch (e) {
      return failing(`cannot read ${file}: ${e instanceof Error ? e.message : String(e)}`)
    }
    const words = editWords(swapCommand(source, presetName(spec.model), path.resolve(spec.model), spec.port ?? 8080), spec.port)
    return Either.isLeft(words) ? failing(`${file}: ${words.left}`) : { command: words.right[0]!, args: words.right.slice(1) }
  },
  serveCommand: () => ["llama-swap", "--config", file].map(shellQuote).join(" "),
  config: null
})

/** A cmd's words with `--port` set to `port` (added, with `--host 127.0.0.1`, when missing); as they are for no port. */
const editWords = (words: Either.Either<ReadonlyArray<string>, string>, port: number | null) =>
  Either.map(words, (w) => {
    if (port === null) return w
    const at = w.indexOf("--port")
    return at >= 0 ? [...w.slice(0, at + 1), `${port}`, ...w.slice(at + 2)] : [...w, "--host", "127.0.0.1", "--port", `${port}`]
  })

/** A launch that fails at once, saying `why` on stderr (the provider log's tail names it). */
const failing = (why: string) => ({
  command: process.execPath,
  args: ["-e", `process.stderr.write(${JSON.stringify(why + "\n")}); process.exit(2)`]
})

/** The section a model's recipe is written to in a preset, and the id the router serves it under: its file name without `.gguf`. */
export const presetName = (model: string): string => path.basename(model).replace(/\.gguf$/i, "")

/**
 * llama-server as a router started from a preset (F-6: `llama-server
 * --models-preset <file>`, the restart line): each request's `model` picks a
 * section, whose server the router starts on first use (its own process, in
 * the router's group) with the section's options. Nothing is added but the
 * candidate's host and port: the router runs as the restart line runs it
 * (the build's own prompt cache included; probes never repeat a prompt prefix).
 */
const fromPreset = (base: ProviderAdapter, binary: string, file: string): ProviderAdapter => ({
  ...base,
  argv: (spec) => ({
    command: binary,
    args: ["--models-preset", file, ...(spec.port === null ? [] : ["--host", "127.0.0.1", "--port", `${spec.port}`])]
  }),
  // The section that serves the model (the operator's own name for it, when it had one), as the edit chose it.
  servedModelId: (spec) => {
    try {
      return Either.getOrElse(presetSectionFor(fs.readFileSync(file, "utf8"), presetName(spec.model), path.resolve(spec.model)), () => presetName(spec.model))
    } catch {
      return presetName(spec.model)
    }
  },
  serveCommand: () => [binary, "--models-preset", file].map(shellQuote).join(" "),
  config: null
})

/** The llama-server adapter for `binary`, with the optional flags its `--help` lists (15 s at most). Never fails. */
export const llamaServerAdapter = (binary: string): Effect.Effect<ProviderAdapter, never, Exec> =>
  Effect.map(llamaServerFlags(binary), (flags) => llamaServer(binary, flags))
