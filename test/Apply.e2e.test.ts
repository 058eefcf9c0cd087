import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Effect } from "effect"
import { parse } from "yaml"
import { calibrate, promptOfWords, wordsForTokens } from "../src/domain/Prompt.js"
import { preWarmPolicy } from "../src/steps/PreWarm.js"
import { pidAlive } from "../src/system/Pids.js"
import { freePort } from "../src/system/Ports.js"
import { describe, expect, it } from "vitest"
import { ctrlC, logFiles, runCli, startCli, tempDir, waitFor } from "./support/cli.js"
import { readRows } from "./support/db.js"
import { repoRoot, tinyModelPath } from "./support/models.js"
import { THROUGHPUT_POLICY } from "../src/steps/Probe.js"

const fake = Path.join(repoRoot, "fixtures", "fake-provider.mjs")
const fullConfig = Fs.readFileSync(Path.join(repoRoot, "fixtures", "config", "full.yaml"), "utf8")

const tuneArgs = (dir: string, extra: ReadonlyArray<string>) => [
  "tune", "--provider", "macprovider", "--provider-bin", fake, "--candidate-models", "ok-5",
  "--target-context", "200", "--max-tokens", "8", "--stage1-replicates", "1", "--stage2-replicates", "1",
  "--max-batch-axis", "2", "--max-context-axis", "4096", "--service-manager", "none", "--db-path", Path.join(dir, "runs.db"), ...extra
]

const backups = (dir: string) => Fs.readdirSync(dir).filter((f) => f.includes(".bak-"))

describe("autotune tune --apply (SPEC F-3, H-4)", () => {
  it("F-3 a finished tune writes only the owned keys, keeps a backup, and says how to restart", async () => {
    const dir = tempDir()
    const cfg = Path.join(dir, "config.yaml")
    Fs.writeFileSync(cfg, fullConfig)
    const r = await runCli(tuneArgs(dir, ["--apply", "--config-path", cfg]), { env: { XDG_DATA_HOME: dir } })
    expect(r.code, r.stderr).toBe(0)
    const after = parse(Fs.readFileSync(cfg, "utf8")) as Record<string, unknown>
    const before = parse(fullConfig) as Record<string, unknown>
    expect(after["model"]).toBe("ok-5")
    expect(after["kv_bits_override"]).toBeUndefined() // nil kv-bits removes its key
    expect(after["max_context_override"]).toBe(4096)
    expect(after["max_concurrency_override"]).toBe(2)
    for (const k of Object.keys(before).filter((k) => !k.endsWith("_override") && k !== "model")) {
      expect(after[k], k).toEqual(before[k])
    }
    expect(backups(dir)).toHaveLength(1)
    expect(Fs.readFileSync(Path.join(dir, backups(dir)[0]!), "utf8")).toBe(fullConfig)
    expect(r.stdout).toMatch(new RegExp(`applied: +${cfg.replace(/[.]/g, "\\.")}`))
    expect(r.stdout).toContain("restart your provider so it reads the new config")
  })

  it("F-3 H-2 an apply that fails at the end leaves the config untouched, exits apply_failed (6) and still prints the recommendation", async () => {
    const dir = tempDir()
    const cfg = Path.join(dir, "config.yaml")
    Fs.writeFileSync(cfg, fullConfig)
    const cli = startCli([...tuneArgs(dir, ["--apply", "--config-path", cfg, "--json"]), "--kv-bits-axis", "unset,8,4"], { XDG_DATA_HOME: dir })
    // The config is broken by hand while the tune runs (after the up-front check passed).
    const broken = "model: [unclosed\n# a comment\n"
    await waitFor(() => cli.stderr().includes("[stage 1]"), 30_000)
    Fs.writeFileSync(cfg, broken)
    expect(await cli.exited, cli.stderr()).toBe(6)
    expect(Fs.readFileSync(cfg, "utf8")).toBe(broken)
    expect(Fs.readdirSync(dir).filter((f) => f.includes(".tmp-") || f.includes(".bak-"))).toEqual([])
    expect(cli.stderr()).toContain(cfg)
    const runs = await readRows<{ exit_reason: string; recommendation_json: string | null }>(
      Path.join(dir, "runs.db"), "SELECT exit_reason, recommendation_json FROM tune_runs")
    expect(runs).toEqual([{ exit_reason: "apply_failed", recommendation_json: expect.stringContaining("ok-5") }])
  })

  it("F-3 B-1 a config --apply could not edit is refused before anything runs (exit 64 naming the file)", async () => {
    const dir = tempDir()
    const cfg = Path.join(dir, "config.yaml")
    const broken = "model: [unclosed\n# a comment\n"
    Fs.writeFileSync(cfg, broken)
    const r = await runCli(tuneArgs(dir, ["--apply", "--config-path", cfg]), { env: { XDG_DATA_HOME: dir } })
    expect(r.code).toBe(64)
    expect(r.stderr).toContain(`${cfg} cannot be edited`)
    expect(Fs.existsSync(Path.join(dir, "runs.db"))).toBe(false)
    expect(Fs.readFileSync(cfg, "utf8")).toBe(broken)
    const ls = await runCli(["tune", "--provider", "llama-server", "--provider-bin", fake, "--candidate-models", "x.gguf", "--apply", "--db-path", Path.join(dir, "e.db")], {
      env: { XDG_DATA_HOME: dir }
    })
    expect(ls.code).toBe(64)
    expect(ls.stderr).toContain("--apply with --provider llama-server needs --config-path <file>")
    const verifyAlone = await runCli(tuneArgs(dir, ["--verify"]), { env: { XDG_DATA_HOME: dir } })
    expect(verifyAlone.code).toBe(64)
    expect(verifyAlone.stderr).toContain("--verify checks what --apply wrote")
    const macVerify = await runCli(tuneArgs(dir, ["--apply", "--config-path", cfg, "--verify"]), { env: { XDG_DATA_HOME: dir } })
    expect(macVerify.code).toBe(64)
    expect(macVerify.stderr).toContain("cannot start the macprovider provider from a config file")
    expect(Fs.existsSync(Path.join(dir, "runs.db"))).toBe(false)
  })

  it("F-3 B-1 --apply without a config file exits 64 before anything runs; --config-path alone is a usage error", async () => {
    const dir = tempDir()
    const r = await runCli(tuneArgs(dir, ["--apply", "--config-path", Path.join(dir, "missing.yaml")]), { env: { XDG_DATA_HOME: dir } })
    expect(r.code).toBe(64)
    expect(r.stderr).toContain("missing.yaml")
    expect(Fs.existsSync(Path.join(dir, "runs.db"))).toBe(false)
    const r2 = await runCli(tuneArgs(dir, ["--config-path", Path.join(dir, "x.yaml")]), { env: { XDG_DATA_HOME: dir } })
    expect(r2.code).toBe(64)
    expect(r2.stderr).toContain("--config-path is only used with --apply")
  })

  it("H-4 F-3 SIGINT during Stage 2 with --apply: exit 130, no config write, no backup", async () => {
    const dir = tempDir()
    const cfg = Path.join(dir, "config.yaml")
    Fs.writeFileSync(cfg, fullConfig)
    const cli = startCli(
      [...tuneArgs(dir, ["--apply", "--config-path", cfg]), "--kv-bits-axis", "unset,8"],
      { XDG_DATA_HOME: dir, FAKE_PROVIDER_SLOW_FLAG: "--kv-bits" }
    )
    await waitFor(() => cli.stderr().includes("[stage 2] kv=unset"), 30_000)
    expect(cli.stderr()).toContain("[stage 2] kv=unset")
    cli.child.kill("SIGINT")
    expect(await cli.exited).toBe(130)
    expect(Fs.readFileSync(cfg, "utf8")).toBe(fullConfig)
    expect(backups(dir)).toEqual([])
  })
})

/** The operator's own config for `autotune serve --config`: a --- marker, anchors, an alias, a merge key, a nested model: key. */
const servedConfig = [
  "---",
  "# my embedded provider",
  "defaults: &defaults",
  "  model: not-the-served-one   # nested: not owned",
  "  host: 127.0.0.1",
  "server:",
  "  <<: *defaults",
  "  port: 9000",
  "model: old.gguf  # the served model",
  "kv_bits_override: 4",
  "tags: [a, b]",
  ""
].join("\n")

/**
 * A temp directory with the operator's config (`servedConfig`) and a real GGUF file named `behaviour`
 * (default `ok-5`), whose base name tells the fake provider how to behave (ok, 5 ms to the first token).
 */
const fakeServedSetup = (behaviour = "ok-5") => {
  const dir = tempDir()
  const cfg = Path.join(dir, "config.yaml")
  Fs.writeFileSync(cfg, servedConfig)
  const model = Path.join(dir, behaviour)
  Fs.copyFileSync(tinyModelPath(), model)
  return { dir, cfg, model }
}

/**
 * Runs `autotune serve --config <cfg>` on a free port as the restart line does, waits (≤ 60 s) for
 * "listening on", runs `check` with the port and the log so far, then stops it (SIGTERM) and waits for its exit.
 */
const withServedConfig = async (cfg: string, check: (port: number, log: string) => Promise<void>): Promise<void> => {
  const port = await Effect.runPromise(freePort)
  const serve = ChildProcess.spawn(process.execPath, [Path.join(repoRoot, "bin", "autotune.js"), "serve", "--config", cfg, "--port", `${port}`], {
    stdio: ["ignore", "ignore", "pipe"]
  })
  let log = ""
  serve.stderr.on("data", (d) => (log += d))
  const exited = new Promise((res) => serve.once("exit", res))
  try {
    await waitFor(() => log.includes("listening on") || serve.exitCode !== null || serve.signalCode !== null, 60_000)
    if (!log.includes("listening on")) throw new Error(`serve --config ${cfg} did not start:\n${log}`)
    await check(port, log)
  } finally {
    serve.kill("SIGTERM")
    await exited
  }
}

describe("autotune tune --apply for the embedded provider, and --verify (SPEC F-4, F-6)", () => {
  it("F-4 F-5 F-6 a real tune writes serve's config byte-exactly around the owned keys, verifies it, and autotune serve --config serves the chosen model with the chosen knobs and room for a 1000-token reply", { timeout: 300_000 }, async () => {
    const dir = tempDir()
    const cfg = Path.join(dir, "config.yaml")
    Fs.writeFileSync(cfg, servedConfig)
    // Biggest first: the q8_0 file is the first that fits, so it is chosen; one Stage 2 cell (kv=8, 1 thread).
    const [a, b] = [tinyModelPath("q8_0"), tinyModelPath("q4_0")]
    const r = await runCli([
      "tune", "--provider", "embedded", "--candidate-models", `${a},${b}`, "--target-context", "256", "--max-tokens", "16",
      "--stage1-replicates", "1", "--stage2-replicates", "3", "--kv-bits-axis", "8", "--threads-axis", "1", "--reply-tokens", "1024",
      // The verification's probe is compared with the tune's: a tie band this wide (the widest allowed; verify's
      // tolerance is never below it) keeps the noise out: decode differs between processes of the same model and
      // knobs by up to 2× on the 15M (a CI machine measured 1129 then 491 tok/s, 2026-12-06).
      "--tps-tie-epsilon", "0.9", "--apply", "--config-path", cfg, "--verify", "--json", "--db-path", Path.join(dir, "runs.db")
    ], { env: { XDG_DATA_HOME: dir } })
    expect(r.code, r.stderr).toBe(0)
    const doc = JSON.parse(r.stdout) as { recommendation: { model: string; serve_command: string; knobs: { kv_bits: number; threads: number } } }
    expect(doc.recommendation.model).toBe(a)
    expect(doc.recommendation.knobs).toMatchObject({ kv_bits: 8, threads: 1 })
    const written = Fs.readFileSync(cfg, "utf8")
    const ctx = (parse(written) as Record<string, number>)["max_context_override"]!
    // Only the owned lines changed: everything else, byte for byte, in place.
    expect(written).toBe(servedConfig.replace(
      "model: old.gguf  # the served model\nkv_bits_override: 4\n",
      `model: ${a}  # the served model\nkv_bits_override: 8\n`
    ) + `max_context_override: ${ctx}\nmax_concurrency_override: 1\nthreads_override: 1\n`)
    // F-5: the context every candidate was started with, and the recipe's: a target-length prompt (+5 %) and 1024 reply tokens.
    expect(ctx).toBe(Math.ceil(256 * 1.05) + 1024)
    expect(doc.recommendation.serve_command).toContain(`--max-context ${ctx} `)
    const started = logFiles(Path.join(dir, "logs")).map((f) => Fs.readFileSync(f, "utf8").split("\n")[0]!)
    expect(started.length).toBeGreaterThan(0)
    for (const line of started) expect(line).toContain(`--max-context ${ctx} `)
    expect(Fs.readFileSync(Path.join(dir, backups(dir)[0]!), "utf8")).toBe(servedConfig)
    // The verification started the provider from the file, as the restart line says.
    expect(r.stderr).toContain(`autotune: verifying ${cfg}: starting the provider from it`)
    expect(r.stderr).toContain("holds: the recipe still passes the gate")
    expect(r.stderr).toContain(`autotune serve --config ${cfg}`)

    // And the operator's restart line serves it: the chosen model, its KV type, context and threads.
    await withServedConfig(cfg, async (port, log) => {
      const models = await (await fetch(`http://127.0.0.1:${port}/v1/models`)).json() as { data: Array<{ id: string }> }
      expect(models.data.map((m) => m.id)).toEqual([Path.basename(a, ".gguf")])
      expect(log).toContain(`context ${ctx} tokens/sequence`)
      expect(log).toContain("× 1 sequences, KV Q8_0, 1 threads")
      // F-5: a target-length prompt and a 1000-token reply fit the recommended server: nothing is cut.
      const chat = async (prompt: string, maxTokens: number) =>
        await (await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ messages: [{ role: "user", content: prompt }], max_tokens: maxTokens, temperature: 0 })
        })).json() as { usage?: { prompt_tokens: number; completion_tokens: number }; choices?: Array<{ finish_reason: string }> }
      const points = await Promise.all([20, 60].map(async (w) => [w, (await chat(promptOfWords(w), 1)).usage!.prompt_tokens] as const))
      const prompt = promptOfWords(wordsForTokens(calibrate(points[0]!, points[1]!), 256))
      const reply = await chat(prompt, 1000)
      expect(reply.usage?.prompt_tokens, JSON.stringify(reply)).toBeGreaterThanOrEqual(250)
      expect(reply.usage?.completion_tokens, JSON.stringify(reply)).toBe(1000)
      expect(reply.choices?.[0]?.finish_reason).toBe("length")
    })
  })

  it("issue 14 F-4: the embedded provider measures flash attention on and off (never off with a quantized KV cache), and the applied config serves the chosen one", { timeout: 180_000 }, async () => {
    const dir = tempDir()
    const cfg = Path.join(dir, "config.yaml")
    Fs.writeFileSync(cfg, "# mine\nflash_attn_override: null # the operator's line\n")
    const model = tinyModelPath("q4_0")
    const r = await runCli([
      "tune", "--candidate-models", model, "--target-context", "256", "--max-tokens", "16", "--stage1-replicates", "1",
      "--stage2-replicates", "2", "--max-replicates", "2", "--kv-bits-axis", "unset,8", "--threads-axis", "1", "--flash-attn-axis", "on,off",
      "--apply", "--config-path", cfg, "--json", "--db-path", Path.join(dir, "runs.db")
    ], { env: { XDG_DATA_HOME: dir } })
    expect(r.code, r.stderr).toBe(0)
    const doc = JSON.parse(r.stdout) as { run_id: string; recommendation: { serve_command: string; knobs: { kv_bits?: number; flash_attn?: string } } }
    const rows = await readRows<{ kv_bits: number | null; flash_attn: number | null; kept: number; fits: number }>(
      Path.join(dir, "runs.db"), "SELECT kv_bits, flash_attn, kept, fits FROM tune_trials WHERE stage = 2 ORDER BY started_at")
    // kv unset × on, off; kv 8 × on only (llama.cpp quantizes the V cache only with flash attention).
    expect(rows.map((t) => [t.kv_bits, t.flash_attn])).toEqual([[null, 1], [null, 0], [8, 1]])
    expect(rows.every((t) => t.fits === 1)).toBe(true)
    expect(r.stderr).toContain("[stage 2] kv=unset ctx=256 batch=1 threads=1 fa=off: fits")
    // Each cell's provider was started with what it was measured with, and says so.
    const logs = logFiles(Path.join(dir, "logs")).map((f) => Fs.readFileSync(f, "utf8"))
    const stage2 = logs.filter((l) => l.includes("flash attention") && l.split("\n")[0]!.includes("--threads 1"))
    expect(stage2.filter((l) => l.split("\n")[0]!.includes("--flash-attn off") && l.includes("flash attention off"))).toHaveLength(1)
    expect(stage2.filter((l) => l.includes("KV Q8_0") && l.includes("flash attention auto"))).toHaveLength(1)
    const kept = rows.find((t) => t.kept === 1)!
    const on = kept.flash_attn === 1
    expect(doc.recommendation.knobs.flash_attn).toBe(on ? "on" : "off")
    expect(doc.recommendation.serve_command.includes("--flash-attn off")).toBe(!on)
    // The applied config carries the measured value in place of the operator's line, and serve --config runs with it.
    const written = Fs.readFileSync(cfg, "utf8")
    expect(written).toContain(`flash_attn_override: ${on} # the operator's line\n`)
    await withServedConfig(cfg, async (_port, log) => {
      expect(log).toContain(kept.kv_bits === null ? `flash attention ${on ? "on" : "off"}` : "KV Q8_0, 1 threads, flash attention on")
    })
    // verify <run> starts the recipe's provider with its flash attention (held or regressed is the noise's call here).
    const logsBefore = logFiles(Path.join(dir, "logs")).length
    const verified = await runCli(["verify", doc.run_id, "--json", "--db-path", Path.join(dir, "runs.db")], { env: { XDG_DATA_HOME: dir } })
    const result = JSON.parse(verified.stdout) as { verdict: string; first_start: unknown }
    expect(["holds", "regressed"], verified.stderr).toContain(result.verdict)
    expect(verified.code).toBe(result.verdict === "holds" ? 0 : 1)
    // One provider start, or two where the first start's figures regressed: each with the recipe's flash attention.
    const verifyLogs = logFiles(Path.join(dir, "logs")).slice(logsBefore).map((f) => Fs.readFileSync(f, "utf8"))
    expect(verifyLogs).toHaveLength(result.first_start === null ? 1 : 2)
    for (const log of verifyLogs) expect(log.split("\n")[0]!.includes("--flash-attn off")).toBe(kept.kv_bits === null && !on)
    // F-6: a hand-edited flash_attn_override is not the recipe any more; nothing is started to say so.
    Fs.writeFileSync(cfg, written.replace(`flash_attn_override: ${on}`, `flash_attn_override: ${!on}`))
    const changed = await runCli(["verify", "--config", cfg, "--db-path", Path.join(dir, "runs.db")], { env: { XDG_DATA_HOME: dir } })
    expect(changed.code, changed.stdout + changed.stderr).toBe(1)
    expect(changed.stdout + changed.stderr).toContain("differs in flash_attn_override")
    expect(logFiles(Path.join(dir, "logs"))).toHaveLength(logsBefore + verifyLogs.length)
  })

  it("F-6 R-3 a verification start from the written config whose figures regressed is measured again: the second holding, the config stays written (exit 0), both starts said", { timeout: 120_000 }, async () => {
    // 200 ms to the first token while tuned; the first start from the written config 600 ms, the second 200 ms.
    const { cfg, dir, model } = fakeServedSetup("ok-200")
    const count = Path.join(dir, "starts")
    const r = await runCli([
      "tune", "--provider", "embedded", "--provider-bin", fake, "--candidate-models", model, "--target-context", "100",
      "--threads-axis", "1", "--gate-ttft-ms", "1500", "--max-replicates", "3", "--apply", "--config-path", cfg, "--verify",
      "--db-path", Path.join(dir, "runs.db")
    ], { env: { XDG_DATA_HOME: dir, FAKE_PROVIDER_START_TTFTS: "600,200", FAKE_PROVIDER_START_COUNT: count, FAKE_PROVIDER_START_FLAG: "--config" } })
    expect(r.code, r.stderr).toBe(0)
    expect(Fs.readFileSync(count, "utf8").trim().split("\n")).toHaveLength(2)
    expect(r.stdout).toMatch(/^ +first start: .* TTFT p95 (?:[5-9]\d\d|\d{4,}) ms over 3 replicate\(s\)(?: \(disturbed, SPEC N-3\))?, regressed \(TTFT p95 .*\): measured again in a second provider start$/m)
    expect(r.stdout).toContain("holds: the recipe still passes the gate")
    expect(Fs.readFileSync(cfg, "utf8")).not.toBe(servedConfig)
    expect(r.stdout).not.toContain("not applied:")
    // The figures judged are the second start's.
    expect(Number(/^ +now: .* TTFT p95 (\d+) ms/m.exec(r.stdout)?.[1])).toBeLessThan(500)
  })

  it("F-6 H-4 Ctrl-C twice (SIGINT to the tuner's process group) during the verification's second provider start: exit 130, the second Ctrl-C skips neither the SIGKILL of that provider (it ignores SIGTERM) nor the restore; the config put back byte for byte, the run interrupted", { timeout: 120_000 }, async () => {
    // The first start from the written config regresses (600 ms against 200); the second answers after 60 s and
    // ignores SIGTERM: its stop takes the whole 3 s grace, in which the second Ctrl-C lands.
    const { cfg, dir, model } = fakeServedSetup("ok-200")
    const [count, requests] = [Path.join(dir, "starts"), Path.join(dir, "requests")]
    const cli = startCli([
      "tune", "--provider", "embedded", "--provider-bin", fake, "--candidate-models", model, "--target-context", "100",
      // --json: the apply report goes to stderr, which the test reads.
      "--threads-axis", "1", "--gate-ttft-ms", "1500", "--max-replicates", "3", "--apply", "--config-path", cfg, "--verify", "--json",
      "--db-path", Path.join(dir, "runs.db")
    ], {
      XDG_DATA_HOME: dir, FAKE_PROVIDER_START_TTFTS: "600,60000", FAKE_PROVIDER_START_COUNT: count, FAKE_PROVIDER_START_FLAG: "--config",
      FAKE_PROVIDER_STUBBORN_FLAG: "--config", FAKE_PROVIDER_REQUEST_LOG: requests
    }, true)
    try {
      const lines = (file: string) => Fs.existsSync(file) ? Fs.readFileSync(file, "utf8").trim().split("\n").filter((l) => l !== "") : []
      await waitFor(() => lines(count).length === 2 || cli.child.exitCode !== null, 90_000)
      expect(lines(count), cli.stderr()).toHaveLength(2)
      // The second start's provider (not bin/provider-shim.mjs, which runs it with the same words); the first is gone
      // (its stop ended before the second started, SIGKILLed after its grace: it ignores SIGTERM too).
      const provider = () => ChildProcess.spawnSync("pgrep", ["-a", "-f", "--", `--config ${cfg}`], { encoding: "utf8" }).stdout.trim().split("\n")
        .filter((l) => l !== "" && !l.includes("provider-shim.mjs"))
      await waitFor(() => provider().length === 1, 10_000)
      expect(provider()).toHaveLength(1)
      const argv = provider()[0]!.split(" ")
      const [pid, port] = [Number(argv[0]), argv[argv.indexOf("--port") + 1]!]
      // A request of the tuner's in flight at the second start's provider (it would take 60 s).
      await waitFor(() => lines(requests).includes(port), 30_000)
      expect(lines(requests)).toContain(port)
      expect(Fs.readFileSync(cfg, "utf8")).not.toBe(servedConfig) // still the written config, unverified
      ctrlC(cli)
      // Its log: among the verification's provider logs (under a verify/ directory, each named
      // <model>-<port>-<unix s>-<id>.log), the newest on its port.
      const logs = Path.join(dir, "logs")
      const ignored = () => {
        const mine = (Fs.readdirSync(logs, { recursive: true, encoding: "utf8" }) as Array<string>)
          .filter((f) => f.split(Path.sep).includes("verify") && Path.basename(f).includes(`-${port}-`) && f.endsWith(".log"))
          .sort((a, b) => Number(Path.basename(a).split("-").at(-2)) - Number(Path.basename(b).split("-").at(-2)))
        return mine.length > 0 && Fs.readFileSync(Path.join(logs, mine.at(-1)!), "utf8").includes("SIGTERM ignored")
      }
      await waitFor(ignored, 10_000)
      expect(ignored()).toBe(true)
      // Stopping that provider, within its grace: not yet SIGKILLed, the tuner still running.
      expect(cli.stderr()).not.toContain(`provider pid ${pid} did not exit`)
      expect(pidAlive(pid)).toBe(true) // (the SIGKILL comes right after that line)
      expect(cli.child.exitCode).toBeNull()
      ctrlC(cli)
      expect(await cli.exited, cli.stderr()).toBe(130)
      // (The first start's provider, stopped after its verdict, ignored SIGTERM too: its own line before.)
      expect(cli.stderr()).toContain(`provider pid ${pid} did not exit within 3s of SIGTERM; sending SIGKILL`)
      expect(Fs.readFileSync(cfg, "utf8")).toBe(servedConfig)
      expect(cli.stderr()).toMatch(/not applied: +\S+config\.yaml put back from \S+, byte for byte: the run was stopped before the verification finished/)
      await waitFor(() => !pidAlive(pid), 3000)
      expect(pidAlive(pid)).toBe(false)
      const runs = await readRows<{ exit_reason: string; ended_at: number | null }>(Path.join(dir, "runs.db"), "SELECT exit_reason, ended_at FROM tune_runs")
      expect(runs).toEqual([{ exit_reason: "interrupted", ended_at: null }])
    } finally {
      // A failure before the Ctrl-C must not leave the tuner and its provider running into the next test.
      if (cli.child.exitCode === null && cli.child.signalCode === null) {
        try {
          process.kill(-cli.child.pid!, "SIGKILL")
        } catch { /* gone */ }
        await cli.exited
      }
    }
  })

  it("F-6 an applied config that misses the gate when served from the file is put back byte for byte (a created one removed) and the tune exits 6", { timeout: 120_000 }, async () => {
    const { cfg, dir, model } = fakeServedSetup()
    const args = (configPath: string) => [
      "tune", "--provider", "embedded", "--provider-bin", fake, "--candidate-models", model, "--target-context", "100",
      "--threads-axis", "1", "--gate-ttft-ms", "1500", "--max-replicates", "3", "--apply", "--config-path", configPath, "--verify",
      "--db-path", Path.join(dir, "runs.db")
    ]
    // The fake provider started with --config (as the restart line starts it) answers measured requests after 60 s: past any gate.
    const env = { XDG_DATA_HOME: dir, FAKE_PROVIDER_SLOW_FLAG: "--config", FAKE_PROVIDER_ARGV_LOG: Path.join(dir, "argv") }
    const r = await runCli(args(cfg), { env })
    expect(r.code, r.stderr).toBe(6)
    expect(Fs.readFileSync(cfg, "utf8")).toBe(servedConfig)
    expect(backups(dir)).toHaveLength(1)
    expect(r.stderr).toContain("the applied config did not verify: infeasible now")
    expect(r.stdout).toContain(`not applied:  ${cfg} put back from`)
    expect(r.stdout).toContain("recipe hash:") // the recommendation is still printed
    const starts = Fs.readFileSync(Path.join(dir, "argv"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Array<string>)
    expect(starts.at(-1)!.slice(0, 3)).toEqual(["serve", "--config", cfg])
    const runs = await readRows<{ exit_reason: string }>(Path.join(dir, "runs.db"), "SELECT exit_reason FROM tune_runs")
    expect(runs).toEqual([{ exit_reason: "apply_failed" }])

    const fresh = Path.join(dir, "new", "config.yaml")
    const r2 = await runCli(args(fresh), { env })
    expect(r2.code, r2.stderr).toBe(6)
    expect(Fs.existsSync(fresh)).toBe(false)
    expect(r2.stdout).toContain(`not applied:  ${fresh} removed again`)
  })

  it("F-6 autotune verify --config starts the provider from the applied file (default: the newest ok run) and names the keys where the file no longer holds the recipe", { timeout: 120_000 }, async () => {
    // Tuned at a TTFT of 300 ms (served from the file, the fake answers in 5 ms): verify's TTFT comparison is
    // then never a few ms of noise on a 5 ms TTFT.
    const { cfg, dir, model } = fakeServedSetup("ok-300")
    const db = Path.join(dir, "runs.db")
    const argv = Path.join(dir, "argv")
    const env = { XDG_DATA_HOME: dir, FAKE_PROVIDER_ARGV_LOG: argv }
    const tuned = await runCli([
      "tune", "--provider", "embedded", "--provider-bin", fake, "--candidate-models", model, "--target-context", "100",
      "--threads-axis", "1", "--max-replicates", "3", "--apply", "--config-path", cfg, "--db-path", db
    ], { env })
    expect(tuned.code, tuned.stderr).toBe(0)
    const held = await runCli(["verify", "--config", cfg, "--db-path", db, "--tolerance", "0.9"], { env })
    expect(held.code, held.stdout + held.stderr).toBe(0)
    expect(held.stdout).toContain("holds:")
    const starts = Fs.readFileSync(argv, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Array<string>)
    expect(starts.at(-1)!.slice(0, 3)).toEqual(["serve", "--config", cfg])

    // The operator changed a knob by hand: the file is not the recipe any more.
    Fs.writeFileSync(cfg, Fs.readFileSync(cfg, "utf8").replace("threads_override: 1", "threads_override: 2"))
    const before = starts.length
    const changed = await runCli(["verify", "--config", cfg, "--db-path", db], { env })
    expect(changed.code).toBe(1)
    expect(changed.stdout + changed.stderr).toContain("differs in threads_override")
    expect(Fs.readFileSync(argv, "utf8").trim().split("\n")).toHaveLength(before) // no provider started
    // Neither a run nor --config: a usage error.
    const bare = await runCli(["verify", "--db-path", db], { env })
    expect(bare.code).toBe(64)
  })

  it("C-1 E-5 F-4 F-6 R-3 under an ITL objective below 40 ms (38: 19 ms) the embedded provider is measured, applied and verified with half of it as its stream interval; a tune without one removes the key", { timeout: 120_000 }, async () => {
    // A TTFT of 300 ms, so that verify's comparison (TTFT p95 within --tolerance 0.9) is not a few ms of noise
    // on a 5 ms TTFT (a loaded machine once made 9 ms read as 26 ms).
    const { cfg, dir, model } = fakeServedSetup("ok-300")
    const db = Path.join(dir, "runs.db")
    const argv = Path.join(dir, "argv")
    const env = { XDG_DATA_HOME: dir, FAKE_PROVIDER_ARGV_LOG: argv }
    const starts = () => Fs.readFileSync(argv, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Array<string>)
    const interval = (a: ReadonlyArray<string>) => a[a.indexOf("--stream-interval-ms") + 1]
    const tune = (extra: ReadonlyArray<string>) =>
      runCli([
        "tune", "--provider", "embedded", "--provider-bin", fake, "--candidate-models", model, "--target-context", "100",
        "--threads-axis", "1", "--max-replicates", "3", "--apply", "--config-path", cfg, "--db-path", db, "--json", ...extra
      ], { env })
    // Under 40 ms, and far above the fake's 2–5 ms token gaps, so a stall of the loaded machine fails nothing.
    const tuned = await tune(["--slo-itl-p95-ms", "38"])
    expect(tuned.code, tuned.stderr).toBe(0)
    const doc = JSON.parse(tuned.stdout) as { run_id: string; recommendation: { serve_command: string } }
    expect(doc.recommendation.serve_command).toContain("--stream-interval-ms 19")
    expect(starts().length).toBeGreaterThan(1)
    for (const a of starts()) expect(interval(a), a.join(" ")).toBe("19")
    expect(parse(Fs.readFileSync(cfg, "utf8")).stream_interval_ms_override).toBe(19)
    // In the run's identity, so a resume measures trials run at another interval again.
    const policyOf = async (runId: string) =>
      JSON.parse((await readRows<{ identity_json: string }>(db, `SELECT identity_json FROM tune_runs WHERE run_id = '${runId}'`))[0]!.identity_json).policy
    expect((await policyOf(doc.run_id)).stream_interval_ms).toBe(19)
    // The embedded provider's pre-warm policy (D-1: the short requests warm it) is in the identity too.
    expect((await policyOf(doc.run_id)).prewarm).toBe(preWarmPolicy(true, true))
    // And how a request's throughput is taken (P-2's extension).
    expect((await policyOf(doc.run_id)).throughput).toBe(THROUGHPUT_POLICY)

    // From the run id: started as the recipe's serve command says; from the file: the file says it.
    const byRun = await runCli(["verify", doc.run_id, "--db-path", db, "--tolerance", "0.9"], { env })
    expect(byRun.code, byRun.stdout + byRun.stderr).toBe(0)
    expect(interval(starts().at(-1)!)).toBe("19")
    const byFile = await runCli(["verify", "--config", cfg, "--db-path", db, "--tolerance", "0.9"], { env })
    expect(byFile.code, byFile.stdout + byFile.stderr).toBe(0)
    expect(starts().at(-1)!.slice(0, 3)).toEqual(["serve", "--config", cfg])
    // The key removed by hand: the file no longer serves what was measured.
    Fs.writeFileSync(cfg, Fs.readFileSync(cfg, "utf8").replace(/^stream_interval_ms_override: 19\r?\n/m, ""))
    const changed = await runCli(["verify", "--config", cfg, "--db-path", db], { env })
    expect(changed.code).toBe(1)
    expect(changed.stdout + changed.stderr).toContain("differs in stream_interval_ms_override")

    // No objective: trials at the provider's default, and the applied file has no such key (an operator's goes).
    Fs.appendFileSync(cfg, "stream_interval_ms_override: 5\n")
    const before = starts().length
    const plain = await tune([])
    expect(plain.code, plain.stderr).toBe(0)
    for (const a of starts().slice(before)) expect(a).not.toContain("--stream-interval-ms")
    expect(Fs.readFileSync(cfg, "utf8")).not.toContain("stream_interval_ms_override")
    expect(await policyOf((JSON.parse(plain.stdout) as { run_id: string }).run_id)).not.toHaveProperty("stream_interval_ms")
  })

  it("F-6 H-4 Ctrl-C during the verification: exit 130, the original config put back byte for byte and said so", { timeout: 120_000 }, async () => {
    const { cfg, dir, model } = fakeServedSetup()
    // Served from the file (--config), the fake provider's measured requests hang: Ctrl-C lands in the verification.
    const cli = startCli([
      "tune", "--provider", "embedded", "--provider-bin", fake, "--candidate-models", model, "--target-context", "100",
      // --json: the apply report goes to stderr, which the test reads.
      "--threads-axis", "1", "--max-replicates", "3", "--apply", "--config-path", cfg, "--verify", "--json", "--db-path", Path.join(dir, "runs.db")
    ], { XDG_DATA_HOME: dir, FAKE_PROVIDER_SLOW_FLAG: "--config" }, true)
    await waitFor(() => cli.stderr().includes("starting the provider from it"), 60_000)
    await new Promise((r) => setTimeout(r, 1500)) // its pre-warm done, a measured request in flight
    process.kill(-cli.child.pid!, "SIGINT")
    expect(await cli.exited, cli.stderr()).toBe(130)
    expect(Fs.readFileSync(cfg, "utf8")).toBe(servedConfig)
    expect(cli.stderr()).toMatch(/not applied: +\S+config\.yaml put back from \S+, byte for byte: the run was stopped before the verification finished/)
  })
})
