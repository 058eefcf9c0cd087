import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { Knobs } from "../../src/domain/Knobs.js"
import { embedded } from "../../src/providers/Embedded.js"
import { repoRoot } from "../support/models.js"
import { llamaServer, NO_OPTIONAL_FLAGS } from "../../src/providers/LlamaServer.js"
import { macProvider } from "../../src/providers/MacProvider.js"
import { preWarmPolicy } from "../../src/steps/PreWarm.js"

const spec = (knobs: Partial<ConstructorParameters<typeof Knobs>[0]>) => ({
  model: "/m/model.gguf",
  port: 4321,
  targetContext: 512,
  replyTokens: 1024,
  knobs: new Knobs({ kvBits: null, maxContext: null, maxBatch: null, threads: null, ...knobs })
})

describe("embedded provider adapter (SPEC E-5)", () => {
  it("issue 14 D-1 P-1 R-1 embedded and llama-server are warmed by the short requests (measured with one slot) and count tokens (/tokenize), so a one-slot trial sends no full-length warm-up; macprovider, unmeasured, keeps it; the policy in a run's identity says which", () => {
    // 2026-12-06: the first full-length TTFT after the two short requests within 2 % of later ones, and three
    // npm run bench pairs with and without the full-length warm-up made the same decisions (ProviderAdapter.ts).
    expect(embedded(null).shortWarmUpSuffices).toBe(true)
    expect(embedded("/opt/fake-provider").shortWarmUpSuffices).toBe(true)
    expect(llamaServer("llama-server", NO_OPTIONAL_FLAGS).shortWarmUpSuffices).toBe(true)
    expect(macProvider("macprovider-cli").shortWarmUpSuffices).toBe(false)
    // 2026-12-07: usage.prompt_tokens − /tokenize's count of the text is one number per provider (16 to 1000 words).
    expect(embedded(null).countsTokens).toBe(true)
    expect(llamaServer("llama-server", NO_OPTIONAL_FLAGS).countsTokens).toBe(true)
    expect(macProvider("macprovider-cli").countsTokens).toBe(false)
    // A run recorded under another policy is not resumed from (its trials were pre-warmed otherwise).
    const policies = [preWarmPolicy(true, true), preWarmPolicy(true, false), preWarmPolicy(false, true), preWarmPolicy(false, false)]
    expect(new Set(policies).size).toBe(4)
    expect(preWarmPolicy(false, false)).toBe(
      "two short first-use requests, then full-length bounded at twice the gate in Stage 1 (issue 14)"
    )
    // Pinned: a change of what a pre-warm sends or bounds must change this text too.
    expect(preWarmPolicy(true, true)).toBe(
      "two short first-use requests, the prompt sized by the provider's /tokenize where it counts, then full-length only to calibrate from usage with one slot (else always), bounded at the gate + 5 % where a probe's equal, else twice the gate in Stage 1, where the first probe is so bounded when no full-length request ran (issue 14)"
    )
  })

  it("E-5 a candidate and a config-started provider run through the launcher, bin/autotune.js (one libuv pool thread; issue 14)", () => {
    const launcher = Path.join(repoRoot, "bin", "autotune.js")
    const a = embedded(null).argv(spec({ threads: 2 }), true)
    expect(a.command).toBe(process.execPath)
    expect(a.args.slice(0, 2)).toEqual([launcher, "serve"])
    expect(a.args).toContain("--threads")
    const fromFile = embedded(null).config!.launchFrom!("/etc/autotune.yaml").argv(spec({}), true)
    expect(fromFile.command).toBe(process.execPath)
    expect(fromFile.args.slice(0, 4)).toEqual([launcher, "serve", "--config", "/etc/autotune.yaml"])
  })

  it("issue 14 --flash-attn on|off is passed when searched, and not with a quantized KV cache (which runs with it on); the config edit always owns flash_attn_override", () => {
    const args = (k: Partial<ConstructorParameters<typeof Knobs>[0]>) => embedded(null).argv(spec(k), true).args
    expect(args({ flashAttn: false }).join(" ")).toContain("--flash-attn off")
    expect(args({ flashAttn: true }).join(" ")).toContain("--flash-attn on")
    expect(args({})).not.toContain("--flash-attn")
    expect(args({ kvBits: 8, flashAttn: true })).not.toContain("--flash-attn")
    expect(embedded(null).serveCommand(spec({ flashAttn: false }))).toContain("--flash-attn off")
    const edit = (k: Partial<ConstructorParameters<typeof Knobs>[0]>) => {
      const r = embedded(null).config!.edit(spec(k), "/etc/autotune.yaml")("model: x\nflash_attn_override: false\n")
      if (r._tag === "Left") throw new Error(r.left)
      return r.right.text
    }
    expect(edit({ flashAttn: true })).toContain("flash_attn_override: true\n")
    // A quantized KV cache runs with it on, whatever the cell says.
    expect(edit({ kvBits: 8, flashAttn: false })).toContain("flash_attn_override: true\n")
    // Not searched: every trial ran with `auto`, so the operator's line goes (a file that serves what was measured).
    expect(edit({})).not.toContain("flash_attn_override")
    expect(edit({ kvBits: 8 })).not.toContain("flash_attn_override")
  })

  it("C-1 E-5 F-4 issue 14 a stream interval given to the adapter is on its argv, its serve command and in its config; none removes the operator's line", () => {
    const tight = embedded(null, 12)
    expect(tight.argv(spec({ threads: 1 }), true).args.join(" ")).toContain("--stream-interval-ms 12 --no-join")
    expect(tight.serveCommand(spec({}))).toContain("--stream-interval-ms 12")
    expect(embedded("/opt/fake-provider", 0).argv(spec({}), true).args.join(" ")).toContain("--stream-interval-ms 0")
    expect(embedded(null).argv(spec({}), true).args).not.toContain("--stream-interval-ms")
    expect(embedded(null).serveCommand(spec({}))).not.toContain("--stream-interval-ms")
    const edit = (adapter: ReturnType<typeof embedded>, source: string) => {
      const r = adapter.config!.edit(spec({}), "/etc/autotune.yaml")(source)
      if (r._tag === "Left") throw new Error(r.left)
      return r.right
    }
    expect(edit(tight, "model: x\n").text).toContain("stream_interval_ms_override: 12\n")
    expect(edit(tight, "model: x\nstream_interval_ms_override: 12 # mine\n").changed).not.toContain("stream_interval_ms_override")
    // The default: a file that serves what was measured has no such line.
    const plain = edit(embedded(null), "model: x\nstream_interval_ms_override: 5\n")
    expect(plain.text).not.toContain("stream_interval_ms_override")
    expect(plain.changed).toContain("stream_interval_ms_override")
    // A config started provider reads it from the file: no flag of its own.
    expect(tight.config!.launchFrom!("/etc/autotune.yaml").argv(spec({}), true).args).not.toContain("--stream-interval-ms")
  })
})
