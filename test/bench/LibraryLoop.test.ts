/**
 * Figure 8's loop (bench/LibraryLoop.ts, issue 14 part 1): node-llama-cpp's own `evaluate` loop, run as its
 * own process on a real GGUF, and the two rows that split the embedded provider's decode gap with it — the
 * served path's factor (the provider's decode ÷ the loop's) and the library's (the loop's ÷ llama-bench's).
 */
import { describe, expect, it } from "@effect/vitest"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import { createRequire } from "node:module"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import { type EngineMeasurements, type EngineRow, threadpoolOf } from "../../bench/EngineVsLlamaBench.js"
import { engineFigures } from "../../bench/Figures.js"
import { measureLibraryLoop } from "../../bench/LibraryLoop.js"
import type { LlamaBenchRow } from "../../bench/LlamaBench.js"
import type { ThroughputResult } from "../../bench/Throughput.js"
import { waitFor } from "../support/cli.js"
import { repoRoot, tinyModelPath } from "../support/models.js"

const spec = { threads: 1, contextTokens: 512, promptTokens: 120, promptWords: 40, maxTokens: 8, warmup: 1, requests: 2 }

describe("node-llama-cpp's own evaluate loop (bench/LibraryLoop.ts, issue 14)", () => {
  it("issue 14 runs the measured requests on the real model in its own process, with the engine's context options as asked: each decodes max_tokens", async () => {
    const r = await measureLibraryLoop({ ...spec, model: tinyModelPath(), flashAttn: false })
    expect(r.requests).toBe(2)
    expect(r.completionTokens).toBe(8)
    expect(r.decodeTps!).toBeGreaterThan(0)
    expect(r.decodeTpsRange![0]).toBeLessThanOrEqual(r.decodeTps!)
    expect(r.decodeTpsRange![1]).toBeGreaterThanOrEqual(r.decodeTps!)
    // The context node-llama-cpp made (threads as llama.cpp reports them): a loop that ignored the spec would show here.
    expect(r.context).toEqual({ contextSize: 512, threads: 1, flashAttention: false })
    expect(r.build.llamaCppRelease).not.toBe("")
    if (process.platform === "linux") expect(r.build.cpuBackend).toMatch(/^libggml-cpu-[\w-]+\.so$/)
    // As `serve` computes: on the persistent threadpool the build made (bin/native.js), named in figure 8's detail.
    expect(r.threadpool).toBe("ggml threadpool persistent (attached at the first decode)")
  }, 60_000)

  it("issue 14 without flash attention set the loop leaves it to the build (`auto`), as `serve` does", async () => {
    const r = await measureLibraryLoop({ ...spec, model: tinyModelPath(), requests: 1 })
    expect(r.context.flashAttention).toBe("auto")
  }, 60_000)

  it("issue 14 a model the library cannot load rejects, naming the loop, the model and the library's error (not a stack frame)", async () => {
    await expect(measureLibraryLoop({ ...spec, model: "/nonexistent/nope.gguf" }))
      .rejects.toThrow(/^node-llama-cpp loop \(nope\.gguf, 1 thread\) exited 1: .*\/nonexistent\/nope\.gguf/)
  }, 60_000)

  it("issue 14 a loop past its time limit is killed and said to have timed out; none of its processes is left", async () => {
    // The model under a name no other process has, so the look for leftovers sees only this loop's.
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "library-loop-"))
    const model = Path.join(dir, `timed-out-${process.pid}-${Date.now()}.gguf`)
    Fs.symlinkSync(tinyModelPath(), model)
    try {
      // A million requests cannot end within 2 s on any machine: the limit decides, whatever the speed.
      await expect(measureLibraryLoop({ ...spec, model, requests: 1_000_000 }, 2_000))
        .rejects.toThrow(`node-llama-cpp loop (${Path.basename(model)}, 1 thread) timed out after 2 s`)
      const left = ChildProcess.spawnSync("pgrep", ["-f", Path.basename(model)], { encoding: "utf8" }).stdout.trim()
      expect(left).toBe("")
    } finally {
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)

  it("issue 14 Ctrl-C to the bench's process group while a loop runs: the bench ends by SIGINT, the loop's own group is killed", async () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "library-loop-int-"))
    const model = Path.join(dir, `interrupted-${process.pid}-${Date.now()}.gguf`)
    Fs.symlinkSync(tinyModelPath(), model)
    // A stand-in for bench/run.ts: a process that runs one loop (a million requests: it only ends by a signal).
    const script = Path.join(dir, "bench.mts")
    Fs.writeFileSync(script, `import { measureLibraryLoop } from ${JSON.stringify(Path.join(repoRoot, "bench", "LibraryLoop.ts"))}
await measureLibraryLoop({ ...JSON.parse(process.env.LOOP_SPEC), requests: 1_000_000 }, 600_000)
`)
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href
    // Its own group, as a terminal's foreground job; the model only in the environment, so only the loop's argv names it.
    const bench = ChildProcess.spawn(process.execPath, ["--import", tsx, script], {
      detached: true,
      stdio: "ignore",
      env: { ...process.env, LOOP_SPEC: JSON.stringify({ ...spec, model }) }
    })
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) => bench.once("exit", (code, signal) => resolve(signal ?? code)))
    const loops = () => ChildProcess.spawnSync("pgrep", ["-f", Path.basename(model)], { encoding: "utf8" }).stdout.trim()
    try {
      await waitFor(() => loops() !== "", 30_000)
      expect(loops()).not.toBe("")
      process.kill(-bench.pid!, "SIGINT")
      expect(await exited).toBe("SIGINT")
      await waitFor(() => loops() === "", 5_000)
      expect(loops()).toBe("")
    } finally {
      try {
        process.kill(-bench.pid!, "SIGKILL")
      } catch { /* gone */ }
      for (const pid of loops().split("\n").filter((x) => x !== "")) {
        try {
          process.kill(Number(pid), "SIGKILL")
        } catch { /* gone */ }
      }
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})

const throughput = (decodeTps: number): ThroughputResult => ({
  kind: "embedded",
  threads: 1,
  requests: 5,
  promptTokens: 990,
  serverPromptN: 990,
  completionTokens: 64,
  ttftMs: 100,
  serverPrefillTps: 9000,
  serverDecodeTps: decodeTps,
  serverDecodeTpsRange: [700, 820],
  clientPrefillTps: 9000,
  clientDecodeTps: decodeTps,
  readyMs: 500
})

const tg = (medianTps: number): LlamaBenchRow => ({
  threads: 1,
  nPrompt: 0,
  nGen: 64,
  nDepth: 990,
  flashAttn: true,
  medianTps,
  avgTps: medianTps,
  stddevTps: 1,
  samplesTps: [medianTps]
})

const figure = (rows: ReadonlyArray<EngineRow>, key: string) => {
  const o = { value: { rows, failures: {} } satisfies EngineMeasurements, reason: null }
  return engineFigures(o, ["15M"]).find((f) => f.key === key)
}

describe("figure 8: the decode gap split into the served path's factor and the library's (issue 14)", () => {
  const base: EngineRow = { params: "15M", threads: 1, embedded: throughput(780), loadMs: 250, promptTokens: 990, pp: null, tg: tg(1100) }

  it("issue 14 the served path's factor is the provider's decode ÷ the loop's (target ≥ 0.95), the library's the loop's ÷ llama-bench's (no target)", () => {
    const row: EngineRow = {
      ...base,
      library: {
        decodeTps: 800,
        decodeTpsRange: [600, 900],
        completionTokens: 64,
        requests: 5,
        context: { contextSize: 2048, threads: 1, flashAttention: "auto" },
        build: { llamaCppRelease: "v0.5.0", cpuBackend: "libggml-cpu-zen4.so" }
      }
    }
    const provider = figure([row], "embedded_vs_library.decode.15M.t1")!
    expect(provider.value).toBeCloseTo(780 / 800, 6)
    expect(provider.target).toEqual({ op: ">=", value: 0.95 })
    const library = figure([row], "library_vs_llama_bench.decode.15M.t1")!
    expect(library.value).toBeCloseTo(800 / 1100, 6)
    expect(library.target).toBeNull()
    // The two factors multiply to the decode row; the details give the ranges and name both builds.
    expect(provider.value! * library.value!).toBeCloseTo(figure([row], "embedded_vs_llama_bench.decode.15M.t1")!.value!, 9)
    expect(provider.detail).toContain("780.0 [700–820] ÷ 800.0 [600–900] tok/s")
    expect(library.detail).toContain("release v0.5.0, libggml-cpu-zen4.so")
  })

  it("issue 14 the persistent threadpool's factor is the provider's decode ÷ its decode with per-graph threads, measured side by side; n/a with the reason when that start failed", () => {
    const row: EngineRow = { ...base, threadpool: "persistent, 1 thread(s) attached", perGraph: { ...throughput(520), serverDecodeTpsRange: [480, 560] } }
    const pool = figure([row], "embedded_threadpool.decode.15M.t1")!
    expect(pool.value).toBeCloseTo(780 / 520, 6)
    expect(pool.target).toBeNull()
    expect(pool.detail).toContain("780.0 [700–820] (threadpool persistent, 1 thread(s) attached) ÷ 520.0 [480–560] tok/s")
    const failed = figure([{ ...base, perGraphFailure: "embedded exited while starting; see x.log" }], "embedded_threadpool.decode.15M.t1")!
    expect(failed.value).toBeNull()
    expect(failed.detail).toBe("n/a: embedded exited while starting; see x.log")
    expect(figure([base], "embedded_threadpool.decode.15M.t1")!.detail).toBe("n/a: not measured in this run")
  })

  it("issue 14 what the provider's context computed on is read from its loaded line (persistent, or per graph and why)", () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "threadpool-of-"))
    try {
      const log = (line: string) => {
        const f = Path.join(dir, `${Math.random()}.log`)
        Fs.writeFileSync(f, `$ node bin/autotune.js serve …\n${line}\n[12:00:00.100] INFO (#21): listening on http://127.0.0.1:1\n`)
        return f
      }
      const loaded = "[12:00:00.000] INFO (#21): loaded m in 380 ms: context 2048 tokens/sequence (allocated 2048) × 1 sequences, KV F16, 2 threads, flash attention auto, libuv pool 1, "
      const persistent = `${loaded}ggml threadpool persistent (attached at the first decode)`
      expect(threadpoolOf(log(`${persistent}\nautotune: a persistent ggml threadpool of 2 thread(s) attached to a llama.cpp context`)))
        .toBe("persistent, 2 thread(s) attached")
      expect(threadpoolOf(log(`${persistent}\nautotune: llama.cpp's threadpool functions not found: contexts keep per-graph threads`)))
        .toBe("loaded, never attached")
      expect(threadpoolOf(log([persistent, "autotune: a persistent ggml threadpool of 2 thread(s) attached to a llama.cpp context",
        "autotune: a llama.cpp context changed its thread count more than 4 times: it computes on per-graph threads from now on"].join("\n"))))
        .toBe("per graph after all (its log says why)")
      expect(threadpoolOf(log(`${loaded}ggml threadpool per graph (not built (npm run build says why))`))).toBe("per graph (not built (npm run build says why))")
      expect(threadpoolOf(log("[12:00:00.000] INFO (#21): loaded m in 380 ms: an older line"))).toBeNull()
      expect(threadpoolOf(Path.join(dir, "none.log"))).toBeNull()
    } finally {
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("issue 14 a failed loop leaves both rows n/a with its reason; a result saved before the loop existed says so", () => {
    const failed = figure([{ ...base, libraryFailure: "node-llama-cpp loop (m.gguf, 1 thread) exited 1: boom" }], "embedded_vs_library.decode.15M.t1")!
    expect(failed.value).toBeNull()
    expect(failed.detail).toBe("n/a: node-llama-cpp loop (m.gguf, 1 thread) exited 1: boom")
    const old = figure([base], "library_vs_llama_bench.decode.15M.t1")!
    expect(old.value).toBeNull()
    expect(old.detail).toBe("n/a: not measured in this run")
  })
})
