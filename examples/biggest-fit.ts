/**
 * Stage 1 only (SPEC A-1..A-4): the biggest candidate this machine serves
 * within the TTFT gate, and why each larger one failed — no Stage 2, no SQLite.
 *
 *   npx tsx examples/biggest-fit.ts [--target-context 2048] [--gate-ttft-ms 60000] a.gguf b.gguf …
 *
 * Candidates are tried in the order given (SPEC A-1: list them biggest
 * first); the first that fits is the answer. Exit 0 with a choice, 2 when none fits.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect } from "effect"
import * as os from "node:os"
import * as path from "node:path"
import { DEFAULT_REPLY_TOKENS, embedded, formatParams, notesOf, ProviderLive, type Rejected, resolveCandidates, stage1 } from "llm-autotune"

const flag = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const files = process.argv.slice(2).filter((a, i, all) => !a.startsWith("--") && !all[i - 1]?.startsWith("--"))
const gateTtftMs = flag("gate-ttft-ms", 60_000)

const program = Effect.gen(function*() {
  const candidates = yield* resolveCandidates(files, "embedded")
  const failed: Array<Rejected> = []
  const chosen = yield* stage1(
    {
      adapter: embedded(null),
      targetContext: flag("target-context", 2048),
      maxTokens: flag("max-tokens", 64),
      replyTokens: Math.max(DEFAULT_REPLY_TOKENS, flag("max-tokens", 64)),
      gateTtftMs,
      requestTimeoutMs: gateTtftMs + 120_000,
      readyTimeoutMs: 300_000,
      logDir: path.join(os.tmpdir(), "llm-autotune-examples", "logs"),
      estimate: true,
      memoryLimitGiB: null,
      maxBackgroundCores: null
    },
    candidates,
    flag("replicates", 3),
    (c, o) => Effect.sync(() => void (o.verdict._tag === "Fits" ? undefined : failed.push({ candidate: c, verdict: o.verdict })))
  )
  yield* Console.log(
    `biggest fit: ${chosen.candidate.id} (${formatParams(chosen.candidate.paramCount)}), ` +
      `${chosen.outcome.tpsMedian?.toFixed(1)} tok/s, TTFT p95 ${chosen.outcome.ttftP95Ms?.toFixed(0)} ms`
  )
  const size = chosen.candidate.paramCount ?? 0
  for (const r of failed) {
    const larger = (r.candidate.paramCount ?? 0) > size
    yield* Console.log(`  ${larger ? "larger" : "tried first"}, failed: ${r.candidate.id} (${formatParams(r.candidate.paramCount)}): ${notesOf(r.verdict)}`)
  }
}).pipe(
  Effect.catchTag("AllInfeasible", (e) =>
    Console.log(`nothing fits: ${e.message}`).pipe(Effect.zipRight(Effect.sync(() => (process.exitCode = 2))))),
  Effect.provide(ProviderLive)
)

NodeRuntime.runMain(program)
