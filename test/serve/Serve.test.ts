/**
 * `autotune serve` (the embedded provider, SPEC E-5) end to end: each test spawns
 * the real CLI on the tiny synthetic model and talks HTTP to it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { DEFAULT_STREAM_INTERVAL_MS } from "../../src/domain/StreamInterval.js"
import { ChatMessage, renderPrompt } from "../../src/serve/OpenAi.js"
import { mediumModelPath, repoRoot, tinyModelPath } from "../support/models.js"
// @ts-expect-error: a plain ES module shared with the import hook test/support/noTuner.mjs (no types)
import { serveOnlyModules } from "../support/serveModules.mjs"
import {
  getJson,
  type ProcessExit,
  portOpen,
  postJson,
  spawnServe,
  startServe,
  type StreamResult,
  streamChat
} from "./ServeProcess.js"

const model = tinyModelPath("q4_0")
const modelId = "synth-15M-q4_0"
const base = ["--model", model, "--no-join", "--max-context", "1024"]

const chunks = (r: StreamResult) => r.events.filter((e) => e.data !== "[DONE]").map((e) => ({ at: e.at, json: JSON.parse(e.data) }))
const contentDeltas = (r: StreamResult) => chunks(r).filter((c) => typeof c.json.choices?.[0]?.delta?.content === "string")
const lastChunk = (r: StreamResult) => chunks(r).at(-1)!.json

/** Runs node with `args` in the repository; its exit code (null when killed), stdout and stderr. */
const runNode = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.promise(() =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [...args], { cwd: repoRoot, env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) =>
        resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : null, stdout, stderr }))))

/** Waits for the process to exit, at most `ms`; fails the test when it does not. */
const exitWithin = (exited: Promise<ProcessExit>, ms: number) =>
  Effect.promise(() =>
    Promise.race([
      exited,
      new Promise<ProcessExit>((_, reject) => setTimeout(() => reject(new Error(`still running after ${ms} ms`)), ms))
    ])
  )

/** A fresh directory under the OS temp dir, removed with everything in it when the test's scope closes. */
const scopedTempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix))),
    (d) => Effect.sync(() => Fs.rmSync(d, { recursive: true, force: true }))
  )

const words = (n: number) => Array.from({ length: n }, (_, i) => ["alpha", "river", "stone", "light", "seven"][i % 5]).join(" ")

/** Threads of a process (`Threads:` in /proc/<pid>/status). */
const threadCount = (pid: number): number => Number(/^Threads:\s+(\d+)/m.exec(Fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1])

describe("autotune serve (SPEC E-5)", () => {
  it.scopedLive("E-5 the launcher runs serve on one libuv pool thread: 3 threads fewer than the same CLI started without it (issue 14)", () =>
    Effect.gen(function*() {
      // The same compiled serve entry, started by the launcher (which sets UV_THREADPOOL_SIZE=1 before
      // libuv's pool starts) and as a plain ES module entry (the pool starts with 4 threads as
      // it loads). After one generation both have every thread they will have (the pool, the
      // engine's own), so the difference is the pool's. At 4, 2-thread decode on 2 cores collapsed.
      const counts: Array<number> = []
      for (const entry of [Path.join("bin", "autotune.js"), Path.join("dist", "serveBin.js")]) {
        const s = yield* startServe([...base, "--threads", "2"], entry)
        const r = yield* streamChat(s.baseUrl, { messages: [{ role: "user", content: words(20) }], max_tokens: 8, temperature: 0 })
        assert.strictEqual(r.status, 200)
        // The fewest of a few reads: a compute thread llama.cpp started for the last token may still be exiting.
        const reads: Array<number> = []
        for (let i = 0; i < 5; i++) {
          reads.push(threadCount(s.proc.pid!))
          yield* Effect.sleep("50 millis")
        }
        counts.push(Math.min(...reads))
        assert.include(s.stderr(), entry.startsWith("bin") ? "libuv pool 1" : "libuv pool 4 (default)")
        // Started some other way, serve says how to start it.
        assert.strictEqual(s.stderr().includes("start serve through bin/autotune.js"), !entry.startsWith("bin"))
      }
      assert.isAtLeast(counts[1]! - counts[0]!, 3, `threads: launcher ${counts[0]}, plain entry ${counts[1]}`)
    }))

  it.scopedLive("E-5 issue 14 the launcher starts serve without the tuner's modules: it serves with them unloadable, where the whole CLI cannot start", () =>
    Effect.gen(function*() {
      // What each candidate start no longer loads (the command tree, pipeline, steps, services, SQL): ~0.2 s of 2 cores.
      const noTuner = ["--import", Path.join(repoRoot, "test", "support", "noTuner.mjs")]
      // From dist/ (the bundle off): the hook sees each compiled module the serve entry loads.
      const s = yield* startServe(base, undefined, noTuner, { AUTOTUNE_SERVE_BUNDLE: "off" })
      const r = yield* streamChat(s.baseUrl, { messages: [{ role: "user", content: words(10) }], max_tokens: 4, temperature: 0 })
      assert.strictEqual(r.status, 200)
      assert.notInclude(s.stderr(), "a tuner module was loaded")
      // A usage error still answers as the CLI does (exit 64, @effect/cli's message), under the same hook.
      const bad = yield* runNode([...noTuner, Path.join(repoRoot, "bin", "autotune.js"), "serve", "--model", model, "--flash-attn", "maybe"],
        { AUTOTUNE_SERVE_BUNDLE: "off" })
      assert.strictEqual(bad.code, 64, bad.stderr)
      assert.include(bad.stderr, "Expected one of the following cases: on, off, auto")
      // The hook does bite: the whole CLI (here `tune --help` with the kept answers off) cannot load under it,
      // nor any tuner module on its own, while the serve entry's modules can.
      // (From dist/: the CLI bundle is compiled from its file, which no import hook sees.)
      const tune = yield* runNode([...noTuner, Path.join(repoRoot, "bin", "autotune.js"), "tune", "--help"], { AUTOTUNE_HELP_CACHE: "off", AUTOTUNE_CLI_BUNDLE: "off" })
      assert.notStrictEqual(tune.code, 0)
      assert.include(tune.stderr, "a tuner module was loaded")
      const modules = ["./dist/Cli.js", "./dist/steps/Probe.js", "./dist/providers/Embedded.js", "./dist/domain/TuneDocument.js",
        "./dist/system/RunLock.js", "@effect/sql", "./dist/serve/Engine.js", "./dist/cli/ServeCommand.js"]
      const each = yield* runNode([...noTuner, "--input-type=module", "-e",
        `for (const m of ${JSON.stringify(modules)}) await import(m).then(() => console.log("loaded", m), () => console.log("refused", m))`])
      assert.deepStrictEqual(each.stdout.trim().split("\n"), modules.map((m) => `${m.includes("/serve/") || m.includes("ServeCommand") ? "loaded" : "refused"} ${m}`))
      // Everywhere else the launcher serves from the bundle (bin/bundle.js), as new as the build the test
      // setup made (this fails where esbuild could not run: the build only notes it). What went into it
      // (esbuild's metafile) is the serve entry's modules: no other compiled module, no @effect/sql.
      const bundle = Path.join(repoRoot, "dist", "serve-bundle")
      assert.isAtLeast(Fs.statSync(Path.join(bundle, "serve.cjs")).mtimeMs, Fs.statSync(Path.join(repoRoot, "dist", ".tsbuildinfo")).mtimeMs)
      const meta = JSON.parse(Fs.readFileSync(Path.join(bundle, "meta.json"), "utf8")) as {
        inputs: Record<string, unknown>
        outputs: Record<string, { inputs: Record<string, unknown> }>
      }
      const inputs = Object.keys(meta.inputs)
      const allowed = new RegExp(`^dist/(${(serveOnlyModules as Array<string>).join("|")})$`)
      // (Besides the bundle's own entry, which bin/bundle.js writes: LlamaBoot's starts and the serve entry's `run`.)
      assert.deepStrictEqual(inputs.filter((f) => f.startsWith("dist/") && !allowed.test(f) && f !== "dist/bundle-of-serveBin.js"), [])
      assert.deepStrictEqual(inputs.filter((f) => f.includes("@effect/sql")), [])
      assert.includeMembers(inputs, ["dist/serveBin.js", "dist/serve/Engine.js", "dist/serve/LlamaBoot.js"])
      // node-llama-cpp too (its binary test passed when the build ran it): its ~300 modules and its per-start
      // binary-test fork were ~0.6 s of each start (test/library/Bundle.test.ts has the rest).
      assert.includeMembers(inputs, ["node_modules/node-llama-cpp/dist/index.js", "node_modules/node-llama-cpp/dist/bindings/getLlama.js"],
        "node-llama-cpp is not in the serve bundle: see what `npm run build` noted")
      // Its binary test is the build's: no copy of the forked test's code (it answers to TEST_BINDING_CP) is bundled.
      const code = Fs.readFileSync(Path.join(bundle, "serve.cjs"), "utf8")
      assert.include(code, "binariesGithubRelease")
      assert.notInclude(code, "TEST_BINDING_CP")
      // One file: LlamaBoot's module (the launcher's early start of llama.cpp, which the engine takes) is one
      // instance, which the serve entry, evaluated when the launcher runs it, shares. Two would start llama.cpp twice.
      assert.deepStrictEqual(Object.values(meta.outputs).filter((o) => "dist/serve/LlamaBoot.js" in o.inputs).length, 1)
      // Its V8 code cache, written by the build, is the one V8 takes for it in a plain `node` (bin/bundle-load.js).
      const loaded = yield* runNode(["-e", `const r = require(${JSON.stringify(Path.join(repoRoot, "bin", "bundle-load.js"))})` +
        `.loadBundle(${JSON.stringify(Path.join(bundle, "serve.cjs"))}); console.log(r.cache, Object.keys(r.exports).sort().join(" "))`])
      assert.strictEqual(loaded.stdout.trim(), "used bootLlama run startLlama", loaded.stderr)
      // And the launcher serves from it, no fallback to dist/ said.
      const bundled = yield* startServe(base)
      const answer = yield* streamChat(bundled.baseUrl, { messages: [{ role: "user", content: words(10) }], max_tokens: 4, temperature: 0 })
      assert.strictEqual(answer.status, 200)
      assert.notInclude(bundled.stderr(), "the serve bundle could not be loaded")
      // node-llama-cpp says nothing as it starts: a bundled copy of its own test would warn that it skips itself.
      assert.notInclude(bundled.stderr(), "[node-llama-cpp]")
    }))

  it.scopedLive("E-5 lists the model, streams per-token deltas with usage and timings, answers non-stream, 400/404s, frees a sequence on disconnect", () =>
    Effect.gen(function*() {
      const s = yield* startServe(base)
      assert.include(s.stderr(), `listening on http://127.0.0.1:${s.port}`)

      const models = yield* getJson(`${s.baseUrl}/v1/models`)
      assert.strictEqual(models.status, 200)
      assert.deepStrictEqual(models.body, { object: "list", data: [{ id: modelId, object: "model", created: 0, owned_by: "llm-autotune" }] })

      // prompt_tokens = the fixed template's tokens, BOS included (cross-checked with /tokenize).
      const messages = [{ role: "system", content: "be brief" }, { role: "user", content: "tell me about rivers" }]
      const rendered = renderPrompt(messages.map((m) => ChatMessage.make(m)))
      assert.strictEqual(rendered, "system: be brief\nuser: tell me about rivers\nassistant:")
      const tokenized = yield* postJson(`${s.baseUrl}/tokenize`, { content: rendered })
      const promptTokens: number = tokenized.body.tokens.length
      assert.isAbove(promptTokens, 5)

      const stream = yield* streamChat(s.baseUrl, { model: modelId, messages, max_tokens: 16 })
      assert.strictEqual(stream.status, 200)
      assert.strictEqual(stream.events.at(-1)?.data, "[DONE]")
      const all = chunks(stream)
      assert.deepStrictEqual(all[0].json.choices[0].delta, { role: "assistant" })
      const last = lastChunk(stream)
      assert.strictEqual(last.object, "chat.completion.chunk")
      assert.strictEqual(last.usage.prompt_tokens, promptTokens)
      const n: number = last.usage.completion_tokens
      if (last.choices[0].finish_reason === "length") assert.strictEqual(n, 16)
      else assert.strictEqual(last.choices[0].finish_reason, "stop")
      assert.strictEqual(last.usage.total_tokens, promptTokens + n)
      // One delta per generated token (plus at most one flush of held-back text).
      const deltas = contentDeltas(stream)
      assert.isAtLeast(deltas.length, Math.max(1, n))
      assert.isAtMost(deltas.length, n + 1)
      assert.strictEqual(last.timings.prompt_n, promptTokens)
      assert.strictEqual(last.timings.predicted_n, n)
      for (const k of ["prompt_ms", "prompt_per_second", "predicted_ms", "predicted_per_second"]) {
        assert.isAtLeast(last.timings[k], 0, k)
      }
      // Decode speed counts the tokens after the first over the time from the first to the last (decodeTokensPerSecond).
      if (n > 1 && last.timings.predicted_ms > 0) {
        assert.closeTo(last.timings.predicted_per_second, ((n - 1) * 1000) / last.timings.predicted_ms, 1e-6)
      }
      const streamedText = deltas.map((d) => d.json.choices[0].delta.content).join("")

      // Non-stream: greedy by default, so the same prompt gives the same text.
      const plain = yield* postJson(`${s.baseUrl}/v1/chat/completions`, { messages, max_tokens: 16 })
      assert.strictEqual(plain.status, 200)
      assert.strictEqual(plain.body.object, "chat.completion")
      assert.strictEqual(plain.body.model, modelId)
      assert.strictEqual(plain.body.choices[0].message.role, "assistant")
      assert.strictEqual(plain.body.choices[0].message.content, streamedText)
      assert.deepStrictEqual(plain.body.usage, last.usage)

      // A stop string (taken from the greedy output itself) ends generation before it, finish_reason "stop".
      if (streamedText.length >= 10) {
        const stop = streamedText.slice(5, 9)
        const stopped = yield* postJson(`${s.baseUrl}/v1/chat/completions`, { messages, max_tokens: 16, stop: [stop] })
        assert.strictEqual(stopped.body.choices[0].finish_reason, "stop")
        assert.strictEqual(stopped.body.choices[0].message.content, streamedText.slice(0, streamedText.indexOf(stop)))
      }

      // Never truncate: prompt + max_tokens over the 1024-token context is a 400.
      const long = [{ role: "user", content: words(600) }]
      const tooLong = yield* postJson(`${s.baseUrl}/v1/chat/completions`, { messages: long, max_tokens: 500 })
      assert.strictEqual(tooLong.status, 400)
      assert.strictEqual(tooLong.body.error.code, "context_length_exceeded")
      assert.match(tooLong.body.error.message, /exceeds the context of 1024 tokens/)
      const tooLongStream = yield* postJson(`${s.baseUrl}/v1/chat/completions`, { messages: [{ role: "user", content: words(1200) }], stream: true })
      assert.strictEqual(tooLongStream.status, 400)

      const badJson = yield* postJson(`${s.baseUrl}/v1/chat/completions`, null, "{not json")
      assert.strictEqual(badJson.status, 400)
      assert.match(badJson.body.error.message, /invalid JSON/)
      const noMessages = yield* postJson(`${s.baseUrl}/v1/chat/completions`, { messages: [] })
      assert.strictEqual(noMessages.status, 400)
      const unknown = yield* getJson(`${s.baseUrl}/v1/nope`)
      assert.strictEqual(unknown.status, 404)
      assert.isString(unknown.body.error.message)

      // A client that disconnects mid-stream frees the only sequence (--max-batch 1).
      const abort = new AbortController()
      yield* Effect.promise(async () => {
        const res = await fetch(`${s.baseUrl}/v1/chat/completions`, {
          method: "POST",
          body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 900, stream: true }),
          signal: abort.signal
        })
        const reader = res.body!.getReader()
        let seen = ""
        while (!seen.includes("\"content\"")) seen += new TextDecoder().decode((await reader.read()).value)
        abort.abort()
      })
      const after = yield* postJson(`${s.baseUrl}/v1/chat/completions`, { messages, max_tokens: 4 }).pipe(
        Effect.timeoutFail({ duration: "15 seconds", onTimeout: () => new Error("sequence not freed after a disconnect") })
      )
      assert.strictEqual(after.status, 200)
      // The freed sequence starts clean: the same prompt gives the same greedy prefix.
      assert.isTrue(streamedText.startsWith(after.body.choices[0].message.content))
    }), 60_000)

  it.scopedLive("E-5 --kv-bits 8 --max-batch 2 serves two concurrent streams, interleaved", () =>
    Effect.gen(function*() {
      // One thread: the test runner parses both streams on the other core (2-core machines).
      const s = yield* startServe([...base, "--kv-bits", "8", "--max-batch", "2", "--threads", "1"])
      assert.include(s.stderr(), "× 2 sequences, KV Q8_0, 1 threads")
      const req = (content: string) => streamChat(s.baseUrl, { messages: [{ role: "user", content }], max_tokens: 24 })
      const [a, b] = yield* Effect.all([req("first stream"), req("second stream")], { concurrency: 2 })
      for (const r of [a, b]) {
        assert.strictEqual(r.status, 200)
        const last = lastChunk(r)
        assert.isTrue(last.choices[0].finish_reason === "stop" || last.usage.completion_tokens === 24)
        assert.isAtLeast(contentDeltas(r).length, 1)
      }
      // Both decode at once: each stream's first token arrives before the other's last.
      const span = (r: StreamResult) => {
        const d = contentDeltas(r)
        return { first: d[0].at, last: d.at(-1)!.at }
      }
      const sa = span(a), sb = span(b)
      assert.isBelow(sa.first, sb.last)
      assert.isBelow(sb.first, sa.last)
    }), 60_000)

  it.scopedLive("E-5 F-4 issue 14 the config's stream_interval_ms_override and --stream-interval-ms (which wins) set how often a stream's tokens are written", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTempDir("serve-interval-")
      const config = Path.join(dir, "config.yaml")
      Fs.writeFileSync(config, `model: ${model}\nmax_context_override: 1024\nthreads_override: 1\nstream_interval_ms_override: 1000\n`)
      // Each content delta stays its own event; what the interval changes is how many socket writes
      // (here: client reads) carry them. One compute thread leaves a core for this test's reads.
      const measure = (args: ReadonlyArray<string>) =>
        Effect.scoped(Effect.gen(function*() {
          const s = yield* startServe(["--config", config, "--no-join", ...args])
          const r = yield* streamChat(s.baseUrl, { messages: [{ role: "user", content: words(40) }], max_tokens: 256 })
          const deltas = r.events.filter((e) => e.data !== "[DONE]" && typeof JSON.parse(e.data).choices?.[0]?.delta?.content === "string")
          const n: number = lastChunk(r).usage.completion_tokens
          return { n, reads: new Set(deltas.map((d) => d.read)).size, spanMs: deltas.at(-1)!.at - deltas[0]!.at }
        }))
      const fromConfig = yield* measure([])
      const perToken = yield* measure(["--stream-interval-ms", "0"])
      // Long enough that the default interval would make more reads than the bounds below allow.
      for (const m of [fromConfig, perToken]) assert.isAtLeast(m.spanMs, 5 * DEFAULT_STREAM_INTERVAL_MS, JSON.stringify(m))
      // 1000 ms: the first token at once, then at most one write a second and the flush at the end.
      assert.isAtMost(fromConfig.reads, 2 + Math.ceil(fromConfig.spanMs / 1000), JSON.stringify(fromConfig))
      // 0 (the flag over the file's 1000): a write per token, more reads than even the default's one per 20 ms gives.
      assert.isAbove(perToken.reads, 2 + Math.ceil(perToken.spanMs / DEFAULT_STREAM_INTERVAL_MS), JSON.stringify(perToken))
    }), 60_000)

  it.scopedLive("E-4 a missing, corrupt or truncated model file or a busy port exits 1 promptly, naming the problem on stderr", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTempDir("serve-test-")
      const badMagic = Path.join(dir, "bad-magic.gguf")
      Fs.writeFileSync(badMagic, Buffer.concat([Buffer.from("NOPE"), Buffer.alloc(4096)]))
      const truncated = Path.join(dir, "truncated.gguf")
      Fs.writeFileSync(truncated, Fs.readFileSync(model).subarray(0, 4_000_000))
      const busy = yield* Effect.acquireRelease(
        Effect.promise(() =>
          new Promise<Net.Server>((resolve) => {
            const srv = Net.createServer()
            srv.listen(0, "127.0.0.1", () => resolve(srv))
          })
        ),
        (srv) => Effect.promise(() => new Promise<void>((resolve) => srv.close(() => resolve())))
      )
      const busyPort = (busy.address() as Net.AddressInfo).port
      const cases = [
        { args: ["--model", Path.join(dir, "missing.gguf"), "--no-join"], port: undefined, expect: /model file not found: .*missing\.gguf/ },
        { args: ["--model", badMagic, "--no-join"], port: undefined, expect: /Invalid GGUF magic/ },
        { args: ["--model", truncated, "--no-join"], port: undefined, expect: /not within the file bounds/ },
        { args: ["--model", model, "--no-join"], port: busyPort, expect: new RegExp(`port ${busyPort} on 127.0.0.1 is already in use`) }
      ]
      yield* Effect.forEach(cases, (c) =>
        Effect.gen(function*() {
          const s = yield* spawnServe(c.args, c.port)
          const exit = yield* exitWithin(s.exited, 20_000)
          assert.deepStrictEqual(exit, { code: 1, signal: null }, s.stderr())
          assert.match(s.stderr(), c.expect)
          assert.notInclude(s.stderr(), "listening on")
        }), { concurrency: 2, discard: true })
    }), 60_000)

  it.scopedLive("E-5 SIGTERM during a stream: finalizers run, exit 130 (interrupted) within 5 s, port closed", () =>
    Effect.gen(function*() {
      const s = yield* startServe(base)
      // A generation in flight when the signal arrives.
      const inFlight = streamChat(s.baseUrl, { messages: [{ role: "user", content: "hi" }], max_tokens: 900 }).pipe(
        Effect.catchAllDefect(() => Effect.void),
        Effect.fork
      )
      yield* inFlight
      yield* Effect.sleep("300 millis")
      const t0 = Date.now()
      s.proc.kill("SIGTERM")
      const exit = yield* exitWithin(s.exited, 5_000)
      // runMain interrupts the main fiber; cli/RunProcess.ts maps "interrupted" to 130 (ExitReason.ts).
      // Not 143: serve keeps a SIGTERM listener so node-llama-cpp's signal-exit cannot re-raise it.
      assert.deepStrictEqual(exit, { code: 130, signal: null }, s.stderr())
      assert.isBelow(Date.now() - t0, 5_000)
      assert.include(s.stderr(), "shutting down")
      assert.include(s.stderr(), "stopped: context, model and llama.cpp released") // the last finalizer
      assert.isFalse(yield* Effect.promise(() => portOpen(s.port)))
    }), 60_000)

  it.scopedLive("E-5 SIGTERM during a long prefill stops within 2.5 s (prefill runs in interruptible chunks)", () =>
    Effect.gen(function*() {
      // 130M parameters, 1 thread, ~3000 prompt tokens: a prefill of several seconds in one piece.
      const s = yield* startServe(["--model", mediumModelPath(), "--no-join", "--max-context", "4096", "--threads", "1"])
      const started = Date.now()
      yield* streamChat(s.baseUrl, { messages: [{ role: "user", content: words(1800) }], max_tokens: 4 }).pipe(
        Effect.catchAllDefect(() => Effect.void),
        Effect.fork
      )
      yield* Effect.sleep("600 millis")
      const t0 = Date.now()
      s.proc.kill("SIGTERM")
      const exit = yield* exitWithin(s.exited, 10_000)
      assert.deepStrictEqual(exit, { code: 130, signal: null }, s.stderr())
      assert.isBelow(Date.now() - t0, 2_500, `exit took ${Date.now() - t0} ms (request started ${t0 - started} ms before)`)
      assert.include(s.stderr(), "stopped: context, model and llama.cpp released")
    }), 60_000)
})
