/** The macprovider adapter (SPEC E-5): `macprovider-cli serve`. */
import { Effect } from "effect"
import { editConfigText, ownedValuesOf, yamlEditable } from "../domain/ConfigYaml.js"
import { requestContextTokens } from "../domain/Prompt.js"
import { shellQuote } from "../domain/Shell.js"
import { type LaunchSpec, type ProviderAdapter, versionOf } from "./ProviderAdapter.js"

/** Knob flags shared by `macprovider-cli serve` and `autotune serve` (SPEC E-5): `--kv-bits`, `--max-context`, `--max-batch`. */
export const macproviderKnobArgs = (spec: LaunchSpec, maxContext: number | null): Array<string> => [
  ...(spec.knobs.kvBits === null ? [] : ["--kv-bits", `${spec.knobs.kvBits}`]),
  ...(maxContext === null ? [] : ["--max-context", `${maxContext}`]),
  ...(spec.knobs.maxBatch === null ? [] : ["--max-batch", `${spec.knobs.maxBatch}`])
]

/**
 * `macprovider-cli serve --model M --port P --no-join [--kv-bits N] [--max-context N] [--max-batch N]`
 * (SPEC E-5). The max-context knob is passed as given: macprovider owns its
 * meaning; its slot context, for the memory estimate, is taken as what one
 * request occupies (`requestContextTokens`).
 */
export const macProvider = (binary: string): ProviderAdapter => {
  const self: ProviderAdapter = {
    name: "macprovider",
    hasThreads: false,
    hasFlashAttn: false,
    shortWarmUpSuffices: false,
    countsTokens: false,
    watchesParent: false,
    healthPath: null,
    argv: (spec, candidate) => ({
      command: binary,
      args: [
        "serve",
        "--model",
        spec.model,
        ...(spec.port === null ? [] : ["--port", `${spec.port}`]),
        ...(candidate ? ["--no-join"] : []),
        ...macproviderKnobArgs(spec, spec.knobs.maxContext)
      ]
    }),
    contextSize: (spec) => requestContextTokens(spec.knobs.maxContext ?? spec.targetContext, spec.replyTokens),
    serveCommand: (spec) =>
      [binary, "serve", "--model", spec.model, ...macproviderKnobArgs(spec, spec.knobs.maxContext)].map(shellQuote).join(" "),
    probe: Effect.sync(() => self),
    version: versionOf(binary),
    // F-3: its config.yaml, which it reads at start from its own path (this tool cannot point it at another).
    config: {
      edit: (spec) => (source) => editConfigText(source, ownedValuesOf(spec.model, spec.knobs)),
      editable: (source) => yamlEditable(source, false),
      createIfMissing: false,
      launchFrom: null
    }
  }
  return self
}
