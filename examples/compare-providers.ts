/**
 * The same model, knobs and requests on two providers, side by side: the
 * embedded provider (`autotune serve`) and llama.cpp's `llama-server`
 * (SPEC E-5). Each runs one trial (start, pre-warm, replicates) as Stage 2 would.
 *
 *   npx tsx examples/compare-providers.ts --model m.gguf [--llama-server <path>] [--threads 2]
 *     [--kv-bits 8] [--target-context 1024] [--max-tokens 64] [--replicates 3]
 *
 * The llama-server binary: --llama-server, else $LLAMA_SERVER, $LLAMA_CPP_BIN_DIR, PATH.
 * Exit 0 when both ran (feasible or not), 64 for bad input.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import {
  DEFAULT_REPLY_TOKENS,
  describeKnobs,
  embedded,
  findLlamaServer,
  Knobs,
  llamaServerAdapter,
  notesOf,
  type ProviderAdapter,
  ProviderLive,
  runTrial,
  type TrialOutcome,
  UsageError
} from "llm-autotune"

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}
const num = (name: string, fallback: number) => Number(arg(name) ?? fallback)
const cell = (n: number | null, digits = 1) => (n === null ? "n/a" : n.toFixed(digits)).padStart(10)

const program = Effect.gen(function*() {
  const model = arg("model")
  if (model === undefined || !fs.existsSync(model)) {
    return yield* new UsageError({ flag: "model", message: `--model must name an existing GGUF file (got ${model})` })
  }
  const lookup = findLlamaServer(arg("llama-server") ?? null)
  if (lookup.found === null) {
    return yield* new UsageError({ flag: "llama-server", message: `no llama-server: looked at ${lookup.looked.join(", ")}` })
  }
  const kv = arg("kv-bits")
  const knobs = new Knobs({
    kvBits: kv === "4" ? 4 : kv === "8" ? 8 : null,
    maxContext: null,
    maxBatch: 1,
    threads: num("threads", os.availableParallelism())
  })
  const targetContext = num("target-context", 1024)
  const candidate = { id: model, model: path.resolve(model), rank: 1, paramCount: null, ggufFile: true, fileBytes: null }
  const trialOn = (adapter: ProviderAdapter) =>
    runTrial(
      {
        adapter,
        targetContext,
        maxTokens: num("max-tokens", 64),
        replyTokens: Math.max(DEFAULT_REPLY_TOKENS, num("max-tokens", 64)),
        gateTtftMs: 600_000,
        requestTimeoutMs: 720_000,
        readyTimeoutMs: 300_000,
        logDir: path.join(os.tmpdir(), "llm-autotune-examples", "logs"),
        estimate: false,
        memoryLimitGiB: null,
        maxBackgroundCores: null
      },
      candidate,
      knobs,
      num("replicates", 3),
      null
    )
  // One after the other, never at once: they would share the cores.
  const rows: Array<readonly [string, TrialOutcome]> = []
  // llamaServerAdapter asks the binary which optional flags it has before anything starts.
  for (const adapter of [embedded(null), yield* llamaServerAdapter(lookup.found)]) rows.push([adapter.name, yield* trialOn(adapter)])
  yield* Console.log(`${model}, ${describeKnobs(knobs)}, ${targetContext} tokens of context`)
  yield* Console.log(
    `${"provider".padEnd(14)}${"tok/s".padStart(10)}${"TTFT med".padStart(10)}${"TTFT p95".padStart(10)}` +
      `${"srv pp/s".padStart(10)}${"srv tg/s".padStart(10)}  result`
  )
  for (const [name, o] of rows) {
    yield* Console.log(
      `${name.padEnd(14)}${cell(o.tpsMedian)}${cell(o.ttftMedianMs, 0)}${cell(o.ttftP95Ms, 0)}` +
        `${cell(o.server.promptTps)}${cell(o.server.decodeTps)}  ${notesOf(o.verdict) ?? "fits"}`
    )
  }
}).pipe(
  Effect.catchTag("UsageError", (e) => Console.error(e.message).pipe(Effect.zipRight(Effect.sync(() => (process.exitCode = 64))))),
  Effect.provide(ProviderLive)
)

NodeRuntime.runMain(program)
