/**
 * The embedded provider's persistent ggml threadpool (issue 14; native/llama-threadpool.c,
 * bin/native.js, src/serve/ThreadpoolShim.ts): `autotune serve` says which threads its context
 * computes on, attaches one pool per context, and replies exactly as llama.cpp's per-graph
 * threads do; the build makes the library where it can and says why where it cannot. (How much
 * faster decode is with it is the bench's figure 8, measured side by side, not a test.)
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile, spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { NODE_LLAMA_CPP_VERSION } from "../../src/system/Versions.js"
import { repoRoot, tinyModelPath } from "../support/models.js"
import { postJson, startServe } from "./ServeProcess.js"

const base = ["--model", tinyModelPath("q4_0"), "--no-join", "--max-context", "1024", "--threads", "2"]
/**
 * Runs fixtures/<script> on the tiny model with `args` after it and `env` over this process's environment
 * (killed after `timeoutMs`); its exit code (null when killed) and output.
 */
const runFixture = (script: string, args: ReadonlyArray<string>, env: Record<string, string>, timeoutMs: number) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [Path.join(repoRoot, "fixtures", script), tinyModelPath("q4_0"), ...args], {
      encoding: "utf8",
      env: { ...process.env, ...env },
      timeout: timeoutMs
    }, (error, stdout, stderr) => resolve({ code: error === null ? 0 : (typeof error.code === "number" ? error.code : null), stdout, stderr }))
  })

const ATTACHED = /autotune: a persistent ggml threadpool of (\d+) thread\(s\) attached to a llama\.cpp context/g

/** The thread ids of a process (/proc/<pid>/task). */
const threadIds = (pid: number): Set<string> => new Set(Fs.readdirSync(`/proc/${pid}/task`))

/**
 * Two greedy completions of different prompts from one `autotune serve` at 2 threads, the threads it has
 * after each (the fewest of a few reads: a helper llama.cpp started for the last graph may still be
 * exiting), and how it stopped on SIGTERM.
 */
const twoReplies = (env: Record<string, string>) =>
  Effect.gen(function*() {
    const s = yield* startServe(base, undefined, [], env)
    const replies: Array<string> = []
    const threads: Array<Set<string>> = []
    for (const content of ["the quick brown fox jumps over the lazy dog", "seven happy cats sing near the old river"]) {
      const r = yield* postJson(`${s.baseUrl}/v1/chat/completions`, { messages: [{ role: "user", content }], max_tokens: 24, temperature: 0 })
      assert.strictEqual(r.status, 200)
      replies.push(r.body.choices[0].message.content as string)
      let fewest = threadIds(s.proc.pid!)
      for (let i = 0; i < 4; i++) {
        yield* Effect.sleep("50 millis")
        const now = threadIds(s.proc.pid!)
        if (now.size < fewest.size) fewest = now
      }
      threads.push(fewest)
    }
    s.proc.kill("SIGTERM")
    const exit = yield* Effect.promise(() => s.exited)
    return { replies, threads, exit, stderr: s.stderr() }
  })

describe("the embedded provider's ggml threadpool (issue 14)", () => {
  it.scopedLive("issue 14 E-5 at 2 threads serve computes on one persistent threadpool per context (said; its helper thread outlives each request), replies token for token as with per-graph threads (AUTOTUNE_THREADPOOL=off), and stops as cleanly", () =>
    Effect.gen(function*() {
      const pooled = yield* twoReplies({})
      assert.include(pooled.stderr, "2 threads, flash attention auto, libuv pool 1, ggml threadpool persistent (attached at the first decode)")
      // Attached at the context's first decode, once: the second request computes on the same pool.
      const attached = [...pooled.stderr.matchAll(ATTACHED)].map((m) => m[1])
      assert.deepStrictEqual(attached, ["2"], pooled.stderr)

      const perGraph = yield* twoReplies({ AUTOTUNE_THREADPOOL: "off" })
      assert.include(perGraph.stderr, "ggml threadpool per graph (AUTOTUNE_THREADPOOL=off)")
      assert.notMatch(perGraph.stderr, ATTACHED)
      // The same work on the same thread count, on other threads: the same tokens.
      assert.deepStrictEqual(pooled.replies, perGraph.replies)
      assert.isAbove(pooled.replies.join("").length, 0)
      // The pool's helper thread is there after each request, the same thread; per graph, llama.cpp joined its helper.
      assert.isAtLeast(pooled.threads[1]!.size - perGraph.threads[1]!.size, 1, `threads: pooled ${pooled.threads[1]!.size}, per graph ${perGraph.threads[1]!.size}`)
      const kept = [...pooled.threads[0]!].filter((t) => pooled.threads[1]!.has(t))
      assert.strictEqual(kept.length, pooled.threads[1]!.size)
      // llama_free through the library (the context, then its pool): the same clean stop as without it.
      for (const r of [pooled, perGraph]) {
        assert.deepStrictEqual(r.exit, { code: 130, signal: null }, r.stderr)
        assert.include(r.stderr, "stopped: context, model and llama.cpp released")
      }
    }), 120_000)

  it("issue 14 E-5 a context whose thread count changes (two contexts sharing node-llama-cpp's thread budget) gets a pool of its new size each time, after more than 4 changes per-graph threads (said), replies token for token as without the library, and frees every pool with its context", async () => {
    // node-llama-cpp gives each context 2 threads alone and 1 beside the other (fixtures/two-contexts.mjs).
    const run = (env: Record<string, string>) => runFixture("two-contexts.mjs", ["6"], env, 120_000)
    const pooled = await run({})
    assert.strictEqual(pooled.code, 0, pooled.stderr)
    const attached = [...pooled.stderr.matchAll(ATTACHED)].map((m) => m[1])
    // Without replacement each context would have its first pool only: 2 lines.
    assert.isAtLeast(attached.length, 4, pooled.stderr)
    assert.includeMembers(attached, ["1", "2"])
    assert.include(pooled.stderr, "autotune: a llama.cpp context changed its thread count more than 4 times: it computes on per-graph threads from now on")
    // A context's first pool and at most 4 replacements; then no more pools for it (2 contexts).
    assert.isAtMost(attached.length, 10, pooled.stderr)
    // Model and llama.cpp freed after the contexts: no crash on the way out.
    assert.match(pooled.stderr, /freed\n$/)

    const perGraph = await run({ AUTOTUNE_THREADPOOL: "off" })
    assert.strictEqual(perGraph.code, 0, perGraph.stderr)
    assert.notMatch(perGraph.stderr, ATTACHED)
    const [on, off] = [pooled, perGraph].map((r) => JSON.parse(r.stdout) as { replies: Array<string>; threadsBefore: number; threadsAfter: number })
    assert.lengthOf(on!.replies, 18)
    assert.deepStrictEqual(on!.replies, off!.replies)
    // Every pool (the replaced ones too) freed with its context, its helper threads joined: as many threads as
    // before the first decode, as per graph.
    assert.strictEqual(on!.threadsAfter, on!.threadsBefore, pooled.stdout)
    assert.strictEqual(off!.threadsAfter, off!.threadsBefore, perGraph.stdout)
  }, 240_000)

  it("issue 14 E-5 past 64 contexts at once the others compute on per-graph threads (said once), a freed context's place goes to the next that decodes, and every reply is token for token as without the library", async () => {
    // fixtures/many-contexts.mjs: 65 contexts of one thread, each decoded in turn; the first freed; the 65th and a new one decode again.
    const run = (env: Record<string, string>) => runFixture("many-contexts.mjs", ["65"], env, 180_000)
    const pooled = await run({})
    assert.strictEqual(pooled.code, 0, pooled.stderr)
    assert.match(pooled.stderr, /freed\n$/)
    const [decoded, afterFree] = pooled.stderr.split("phase: all decoded\n")
    assert.isDefined(afterFree, pooled.stderr)
    const attachedIn = (text: string) => [...text.matchAll(ATTACHED)].map((m) => m[1])
    // A pool of one thread for each of the first 64 contexts; the 65th told once that it computes per graph.
    assert.deepStrictEqual(attachedIn(decoded!), Array.from({ length: 64 }, () => "1"))
    const over = "autotune: more than 64 llama.cpp contexts at once: the others compute on per-graph threads"
    assert.strictEqual(decoded!.split(over).length - 1, 1, decoded)
    // The first freed: the 65th takes its place at its next decode; the context made then finds none free, and is not told again.
    const [beforeDispose, afterDispose] = afterFree!.split("phase: first disposed\n")
    assert.deepStrictEqual(attachedIn(beforeDispose!), [])
    assert.deepStrictEqual(attachedIn(afterDispose!), ["1"])
    assert.notInclude(afterFree!, over)

    const perGraph = await run({ AUTOTUNE_THREADPOOL: "off" })
    assert.strictEqual(perGraph.code, 0, perGraph.stderr)
    assert.notMatch(perGraph.stderr, ATTACHED)
    const [on, off] = [pooled, perGraph].map((r) => JSON.parse(r.stdout) as { replies: Array<string> })
    assert.lengthOf(on!.replies, 67)
    assert.deepStrictEqual(on!.replies, off!.replies)
  }, 360_000)

  it.scopedLive("issue 14 E-5 a library built for another node-llama-cpp, or one that cannot be loaded, is left out: serve says why on its loaded line and replies on per-graph threads", () =>
    Effect.gen(function*() {
      // A copy of the package (timestamps kept: its bundles stay usable) whose dist/native/ is changed.
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "autotune-shim-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
      for (const part of ["bin", "dist", "package.json"]) Fs.cpSync(Path.join(repoRoot, part), Path.join(dir, part), { recursive: true, preserveTimestamps: true })
      Fs.symlinkSync(Path.join(repoRoot, "node_modules"), Path.join(dir, "node_modules"))
      const native = Path.join(dir, "dist", "native")
      const entry = Path.relative(repoRoot, Path.join(dir, "bin", "autotune.js"))
      const serveOnce = Effect.gen(function*() {
        const s = yield* startServe(base, entry)
        const r = yield* postJson(`${s.baseUrl}/v1/chat/completions`, { messages: [{ role: "user", content: "the quick brown fox" }], max_tokens: 8, temperature: 0 })
        assert.strictEqual(r.status, 200, s.stderr())
        assert.isAbove((r.body.choices[0].message.content as string).length, 0)
        s.proc.kill("SIGTERM")
        assert.deepStrictEqual(yield* Effect.promise(() => s.exited), { code: 130, signal: null }, s.stderr())
        return s.stderr()
      })

      Fs.writeFileSync(Path.join(native, "built-for.json"), JSON.stringify({ "node-llama-cpp": "3.21.0" }))
      const otherVersion = yield* Effect.scoped(serveOnce)
      assert.include(otherVersion, `ggml threadpool per graph (built for node-llama-cpp 3.21.0, ${NODE_LLAMA_CPP_VERSION} installed (npm run build))`)
      assert.notMatch(otherVersion, ATTACHED)

      Fs.writeFileSync(Path.join(native, "built-for.json"), JSON.stringify({ "node-llama-cpp": NODE_LLAMA_CPP_VERSION }))
      Fs.writeFileSync(Path.join(native, "llama-threadpool.so"), "not a shared object")
      const broken = yield* Effect.scoped(serveOnce)
      assert.match(broken, /ggml threadpool per graph \(cannot load \S+llama-threadpool\.so: /)
      assert.notMatch(broken, ATTACHED)
    }), 120_000)

  describe("bin/native.js (part of npm run build)", () => {
    /** A package root with the build script, the C file and this checkout's node_modules (or `nodeModules`). */
    const packageRoot = (nodeModules?: (dir: string) => void) => {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "autotune-native-"))
      Fs.mkdirSync(Path.join(dir, "bin"))
      Fs.mkdirSync(Path.join(dir, "native"))
      Fs.copyFileSync(Path.join(repoRoot, "bin", "native.js"), Path.join(dir, "bin", "native.js"))
      Fs.copyFileSync(Path.join(repoRoot, "native", "llama-threadpool.c"), Path.join(dir, "native", "llama-threadpool.c"))
      if (nodeModules === undefined) Fs.symlinkSync(Path.join(repoRoot, "node_modules"), Path.join(dir, "node_modules"))
      else nodeModules(dir)
      return dir
    }
    const library = (dir: string) => Path.join(dir, "dist", "native", "llama-threadpool.so")
    /** An earlier build's library, which a build that cannot make one must not leave behind. */
    const earlier = (dir: string) => {
      Fs.mkdirSync(Path.dirname(library(dir)), { recursive: true })
      Fs.writeFileSync(library(dir), "an earlier build")
    }
    /** Runs the build script of the package root `dir`. */
    const build = (dir: string, env: Record<string, string> = {}) =>
      spawnSync(process.execPath, [Path.join(dir, "bin", "native.js")], { encoding: "utf8", env: { ...process.env, ...env }, timeout: 120_000 })

    it("issue 14 with the machine's C compiler it builds the library (a Node-API module defining llama_decode and llama_free); without one the build still succeeds, says why, and leaves no earlier library", () => {
      const dir = packageRoot()
      earlier(dir)
      const made = build(dir)
      try {
        assert.strictEqual(made.status, 0, made.stderr)
        assert.strictEqual(made.stderr, "")
        const symbols = spawnSync("nm", ["-D", "--defined-only", library(dir)], { encoding: "utf8" }).stdout
        for (const s of ["llama_decode", "llama_free", "napi_register_module_v1"]) assert.match(symbols, new RegExp(` T ${s}$`, "m"))
        assert.deepStrictEqual(Fs.readdirSync(Path.dirname(library(dir))).sort(), ["built-for.json", "llama-threadpool.so"])
        // What serve checks before it loads the library (an `npm update` runs no build).
        assert.deepStrictEqual(JSON.parse(Fs.readFileSync(Path.join(Path.dirname(library(dir)), "built-for.json"), "utf8")), { "node-llama-cpp": "3.22.1" })
      } finally {
        Fs.rmSync(dir, { recursive: true, force: true })
      }

      const none = packageRoot()
      earlier(none)
      try {
        const r = build(none, { CC: Path.join(none, "no-such-cc") })
        assert.strictEqual(r.status, 0, r.stderr)
        assert.match(r.stderr, /^note: no persistent ggml threadpool for the embedded provider \(no C compiler \(.*no-such-cc\)\): autotune serve starts llama\.cpp's threads per token/)
        assert.isFalse(Fs.existsSync(library(none)))
      } finally {
        Fs.rmSync(none, { recursive: true, force: true })
      }
    })

    it("issue 14 against another node-llama-cpp than the C file was written for (its llama_batch), nothing is built, and the build says which", () => {
      const dir = packageRoot((d) => {
        Fs.mkdirSync(Path.join(d, "node_modules", "node-llama-cpp"), { recursive: true })
        Fs.writeFileSync(Path.join(d, "node_modules", "node-llama-cpp", "package.json"), JSON.stringify({ name: "node-llama-cpp", version: "3.23.0" }))
      })
      earlier(dir)
      try {
        const r = build(dir)
        assert.strictEqual(r.status, 0, r.stderr)
        assert.include(r.stderr, "node-llama-cpp 3.23.0 is installed; native/llama-threadpool.c is written for 3.22.1")
        assert.isFalse(Fs.existsSync(library(dir)))
      } finally {
        Fs.rmSync(dir, { recursive: true, force: true })
      }
    })
  })
})
