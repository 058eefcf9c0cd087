import * as Fs from "node:fs"
import * as Path from "node:path"
import { parse } from "yaml"
import { describe, expect, it } from "vitest"
import { runCli, startCli, tempDir, waitFor } from "./support/cli.js"
import { readRows } from "./support/db.js"
import { repoRoot } from "./support/models.js"

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
    const emb = await runCli(["tune", "--provider", "embedded", "--candidate-models", "x.gguf", "--apply", "--db-path", Path.join(dir, "e.db")], {
      env: { XDG_DATA_HOME: dir }
    })
    expect(emb.code).toBe(64)
    expect(emb.stderr).toContain("the embedded provider does not read it")
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
