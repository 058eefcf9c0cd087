import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { DEFAULT_STREAM_INTERVAL_MS } from "../../src/domain/StreamInterval.js"
import { readServeConfig, type ServeFlags, serveOptionsOf } from "../../src/serve/ServeConfig.js"
import { tempDir } from "../support/cli.js"

const LIMITS = { maxContext: 1_000_000, slotsOrThreads: 256 }

const write = (text: string) => {
  const dir = tempDir()
  const file = Path.join(dir, "config.yaml")
  Fs.writeFileSync(file, text)
  return file
}

const noFlags: ServeFlags = {
  model: Option.none(),
  kvBits: Option.none(),
  maxContext: Option.none(),
  maxBatch: Option.none(),
  threads: Option.none(),
  flashAttn: Option.none(),
  streamIntervalMs: Option.none(),
  port: 8080,
  host: "127.0.0.1"
}

describe("autotune serve --config (SPEC F-4)", () => {
  it.effect("F-4 reads the owned keys, threads_override, flash_attn_override and stream_interval_ms_override; other keys are the operator's; a relative model is taken from the file's directory", () =>
    Effect.gen(function*() {
      const file = write("---\n# mine\nhost_alias: &h x\nmodel: models/a.gguf # c\nkv_bits_override: 8\nmax_context_override: 602\nmax_concurrency_override: 2\nthreads_override: 1\nflash_attn_override: true\nstream_interval_ms_override: 0\nother: *h\n")
      const c = yield* readServeConfig(file, LIMITS)
      assert.deepStrictEqual(c, {
        model: Option.some(Path.join(Path.dirname(file), "models", "a.gguf")),
        kvBits: Option.some(8),
        flashAttn: Option.some(true),
        maxContext: Option.some(602),
        maxBatch: Option.some(2),
        threads: Option.some(1),
        streamIntervalMs: Option.some(0)
      })
      const opts = yield* serveOptionsOf(noFlags, c, file)
      assert.deepStrictEqual(
        { model: opts.modelPath, kv: opts.kvBits, ctx: opts.maxContext, batch: opts.maxBatch, threads: opts.threads, fa: opts.flashAttn, interval: opts.streamIntervalMs },
        { model: Path.join(Path.dirname(file), "models", "a.gguf"), kv: Option.some(8), ctx: Option.some(602), batch: 2, threads: Option.some(1), fa: Option.some(true), interval: 0 }
      )
    }))

  it.effect("F-4 issue 14: flash attention off with a quantized KV cache is a usage error (--flash-attn), from flags or the file; off alone is served", () =>
    Effect.gen(function*() {
      const off = write("model: /m/a.gguf\nflash_attn_override: false\n")
      const c = yield* readServeConfig(off, LIMITS)
      assert.deepStrictEqual(c.flashAttn, Option.some(false))
      assert.deepStrictEqual((yield* serveOptionsOf(noFlags, c, off)).flashAttn, Option.some(false))
      const fromFile = yield* serveOptionsOf({ ...noFlags, kvBits: Option.some(8) }, c, off).pipe(Effect.flip)
      assert.strictEqual(fromFile.flag, "flash-attn")
      // Each named where it came from: the off from the file, the 8 bits from the flag.
      expect(fromFile.message).toContain(`flash attention off (flash_attn_override in ${off}): a KV cache of 8 bits (--kv-bits 8) needs it on`)
      const fromFlags = yield* serveOptionsOf({ ...noFlags, model: Option.some("/m/a.gguf"), kvBits: Option.some(4), flashAttn: Option.some(false) }, null, null)
        .pipe(Effect.flip)
      assert.strictEqual(fromFlags.flag, "flash-attn")
      expect(fromFlags.message).toContain("flash attention off (--flash-attn off): a KV cache of 4 bits (--kv-bits 4) needs it on")
      // A flag wins over the file: --flash-attn on serves the file's 8-bit cache.
      const kv8 = write("model: /m/a.gguf\nkv_bits_override: 8\nflash_attn_override: false\n")
      const on = yield* serveOptionsOf({ ...noFlags, flashAttn: Option.some(true) }, yield* readServeConfig(kv8, LIMITS), kv8)
      assert.deepStrictEqual([on.kvBits, on.flashAttn], [Option.some(8), Option.some(true)])
      // --flash-attn auto leaves it to llama.cpp, over the file's false.
      const auto = yield* serveOptionsOf({ ...noFlags, flashAttn: Option.some("auto" as const) }, yield* readServeConfig(kv8, LIMITS), kv8)
      assert.deepStrictEqual(auto.flashAttn, Option.none())
      // Booleans only (what --apply writes and verify --config compares): YAML 1.2 reads the flag's words as strings.
      const word = yield* readServeConfig(write("model: /m/a.gguf\nflash_attn_override: off\n"), LIMITS).pipe(Effect.flip)
      expect(word.message).toContain("flash_attn_override must be true, false or null (auto), got \"off\" (YAML reads off as a word here: write false)")
    }))

  it.effect("F-4 flags given on the command line win over the file; absent or null keys leave the defaults", () =>
    Effect.gen(function*() {
      const file = write("model: /m/a.gguf\nkv_bits_override: 8\nmax_concurrency_override: 4\nthreads_override: null\nstream_interval_ms_override: 5\n")
      const c = yield* readServeConfig(file, LIMITS)
      const opts = yield* serveOptionsOf({ ...noFlags, model: Option.some("/m/b.gguf"), kvBits: Option.some(4), port: 9000, streamIntervalMs: Option.some(0) }, c, file)
      assert.strictEqual(opts.streamIntervalMs, 0)
      assert.strictEqual((yield* serveOptionsOf(noFlags, c, file)).streamIntervalMs, 5)
      // Neither the flag nor the key: serve's default interval.
      assert.strictEqual((yield* serveOptionsOf(noFlags, yield* readServeConfig(write("model: /m/a.gguf\nstream_interval_ms_override: null\n"), LIMITS), "y.yaml")).streamIntervalMs, DEFAULT_STREAM_INTERVAL_MS)
      assert.strictEqual(opts.modelPath, "/m/b.gguf")
      assert.deepStrictEqual(opts.kvBits, Option.some(4))
      assert.strictEqual(opts.maxBatch, 4)
      assert.deepStrictEqual(opts.threads, Option.none())
      assert.deepStrictEqual(opts.maxContext, Option.none())
      assert.strictEqual(opts.port, 9000)
      const bare = yield* serveOptionsOf(noFlags, yield* readServeConfig(write("# nothing yet\n"), LIMITS), "x.yaml").pipe(Effect.flip)
      expect(bare.message).toContain("x.yaml has no model key")
      const none = yield* serveOptionsOf(noFlags, null, null).pipe(Effect.flip)
      expect(none.message).toContain("--model <gguf> or --config <file> is required")
    }))

  it.effect("F-4 a missing or malformed file is a usage error naming the file and the key", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [string | null, string]> = [
        [null, "no such file"],
        ["model: [unclosed\n", "not valid YAML"],
        ["- a\n- b\n", "top level is not a mapping"],
        ["model: 3\n", "model must be the path of a GGUF file"],
        ["model: a.gguf\nkv_bits_override: 16\n", "kv_bits_override must be 4, 8 or null, got 16"],
        ["model: a.gguf\nmax_context_override: -1\n", "max_context_override must be an integer from 1"],
        ["model: a.gguf\nmax_concurrency_override: 1.5\n", "max_concurrency_override must be an integer from 1"],
        ["model: a.gguf\nthreads_override: \"2\"\n", "threads_override must be an integer from 1 to 256"],
        ["model: a.gguf\nthreads_override: 999\n", "threads_override must be an integer from 1 to 256"],
        ["model: a.gguf\nflash_attn_override: 1\n", "flash_attn_override must be true, false or null (auto)"],
        ["model: a.gguf\nstream_interval_ms_override: -1\n", "stream_interval_ms_override must be an integer from 0 to 1000"],
        ["model: a.gguf\nstream_interval_ms_override: 2.5\n", "stream_interval_ms_override must be an integer from 0 to 1000"],
        ["model: a.gguf\nstream_interval_ms_override: 1001\n", "stream_interval_ms_override must be an integer from 0 to 1000"]
      ]
      for (const [text, want] of cases) {
        const file = text === null ? Path.join(tempDir(), "missing.yaml") : write(text)
        const e = yield* readServeConfig(file, LIMITS).pipe(Effect.flip)
        assert.strictEqual(e.flag, "config")
        expect(e.message, String(text)).toContain(file)
        expect(e.message, String(text)).toContain(want)
      }
    }))
})
