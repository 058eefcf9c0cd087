/** The embedded provider adapter (SPEC E-5): this project's own `autotune serve`. */
import { Effect } from "effect"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { editConfigText, yamlEditable } from "../domain/ConfigYaml.js"
import { requestContextTokens } from "../domain/Prompt.js"
import { shellQuote } from "../domain/Shell.js"
import { macproviderKnobArgs } from "./MacProvider.js"
import { type LaunchSpec, type ProviderAdapter, versionOf } from "./ProviderAdapter.js"
import { EMBEDDED_BINARY_VERSION } from "../system/Versions.js"

/** This project's own CLI launcher (bin/autotune.js), which runs `autotune serve`. */
export const autotuneLauncher = fileURLToPath(new URL("../../bin/autotune.js", import.meta.url))

/**
 * Context the embedded provider is started with (`--max-context`, per
 * sequence), in tokens: what one request occupies (`requestContextTokens`:
 * the max-context knob, else the target context, + 5 % P-1 tolerance + the
 * reply), because `autotune serve --max-context` is the whole per-sequence
 * context, as llama-server's `-c` per slot.
 */
const contextSize = (spec: LaunchSpec): number => requestContextTokens(spec.knobs.maxContext ?? spec.targetContext, spec.replyTokens)

const args = (spec: LaunchSpec, streamIntervalMs: number | null): Array<string> => [
  "serve",
  "--model",
  spec.model,
  ...(spec.port === null ? [] : ["--port", `${spec.port}`]),
  ...macproviderKnobArgs(spec, contextSize(spec)),
  ...(spec.knobs.threads === null ? [] : ["--threads", `${spec.knobs.threads}`]),
  // A quantized KV cache runs with flash attention on under `auto` (the only cell Axes.cells makes for it).
  ...(spec.knobs.flashAttn === null || spec.knobs.kvBits !== null ? [] : ["--flash-attn", spec.knobs.flashAttn ? "on" : "off"]),
  ...(streamIntervalMs === null ? [] : ["--stream-interval-ms", `${streamIntervalMs}`])
]

/**
 * `flash_attn_override` as the embedded config gets it (F-4), always owned as
 * `threads_override` is, so a provider started from the file runs what was
 * measured: the measured value when the recipe searched flash attention (on
 * for a quantized KV cache, the only way it runs), else null (the key
 * removed: `auto`, what every trial ran with).
 */
const flashAttnValue = (spec: LaunchSpec): boolean | null =>
  spec.knobs.flashAttn === null ? null : spec.knobs.kvBits !== null || spec.knobs.flashAttn

/**
 * The embedded provider (`autotune serve`, SPEC E-5): macprovider's flags plus `--threads`
 * and `--flash-attn on|off` (when searched, issue 14), and `--stream-interval-ms`
 * when `streamIntervalMs` is not null (ms; a tune under a tight ITL objective,
 * `streamIntervalForItl`; null: the provider's default, no flag).
 * `binary` null runs this project's own launcher with the running Node; otherwise the
 * given executable gets the same arguments (`--provider-bin`, used for fake providers).
 * Its config (F-4) is `autotune serve --config <file>`'s: the owned keys plus
 * `threads_override`, `flash_attn_override` (`flashAttnValue`) and
 * `stream_interval_ms_override` (`streamIntervalMs`, null removes it), the model as an absolute path and `max_context_override`
 * the per-sequence context a candidate is started with, so a provider started
 * from the file holds what was measured.
 */
export const embedded = (binary: string | null, streamIntervalMs: number | null = null): ProviderAdapter => {
  const launch = (a: ReadonlyArray<string>) =>
    binary === null ? { command: process.execPath, args: [autotuneLauncher, ...a] } : { command: binary, args: [...a] }
  /** The provider as `autotune serve --config <configPath>` starts it (F-6). */
  const fromConfig = (configPath: string): ProviderAdapter => {
    const file = path.resolve(configPath)
    return {
      ...self,
      argv: (spec, candidate) =>
        launch(["serve", "--config", file, ...(spec.port === null ? [] : ["--port", `${spec.port}`]), ...(candidate ? ["--no-join"] : [])]),
      serveCommand: () => [binary ?? "autotune", "serve", "--config", file].map(shellQuote).join(" "),
      config: null
    }
  }
  const self: ProviderAdapter = {
    name: "embedded",
    hasThreads: true,
    hasFlashAttn: true,
    shortWarmUpSuffices: true,
    countsTokens: true,
    streamIntervalMs,
    watchesParent: true,
    healthPath: null,
    argv: (spec, candidate) => launch([...args(spec, streamIntervalMs), ...(candidate ? ["--no-join"] : [])]),
    contextSize,
    serveCommand: (spec) => [binary ?? "autotune", ...args(spec, streamIntervalMs)].map(shellQuote).join(" "),
    probe: Effect.sync(() => self),
    // Without --provider-bin the provider is this tool itself: its own version, no process.
    version: binary === null ? Effect.succeed(EMBEDDED_BINARY_VERSION) : versionOf(binary),
    config: {
      edit: (spec) => (source) =>
        editConfigText(source, {
          model: path.resolve(spec.model),
          kv_bits_override: spec.knobs.kvBits,
          max_context_override: contextSize(spec),
          max_concurrency_override: spec.knobs.maxBatch,
          threads_override: spec.knobs.threads,
          flash_attn_override: flashAttnValue(spec),
          stream_interval_ms_override: streamIntervalMs
        }),
      editable: (source) => yamlEditable(source, true),
      createIfMissing: true,
      launchFrom: fromConfig
    }
  }
  return self
}
