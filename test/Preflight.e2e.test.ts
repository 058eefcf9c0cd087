import { describe, expect, it } from "@effect/vitest"
import { readRows } from "./support/db.js"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { runCli } from "./support/cli.js"
import { candidateStarts, sandbox, sandboxEnv, sandboxTune, standIn, toolCalls } from "./support/providerSandbox.js"

describe("pre-flight against stub service managers and a stand-in provider (SPEC E-1)", () => {
  it("E-1 H-1 a running systemd user unit is a conflict: provider_conflict exit 4, nothing started, the run row says so", async () => {
    const s = sandbox()
    const r = await sandboxTune(s, ["--service-manager", "systemd", "--service-label", "macprovider.service"], {
      STUB_SYSTEMCTL_OUT: "active\\n"
    })
    expect(r.code).toBe(4)
    expect(r.stderr).toContain("systemd job macprovider.service is running")
    expect(toolCalls(s)).toContain("systemctl --user is-active macprovider.service")
    expect(candidateStarts(s)).toEqual([])
    const runs = await readRows<{ exit_reason: string; ended_at: string | null }>(s.db, "SELECT * FROM tune_runs")
    expect(runs).toEqual([expect.objectContaining({ exit_reason: "provider_conflict" })])
    expect(runs[0]!.ended_at).not.toBeNull()
    expect(await readRows(s.db, "SELECT * FROM tune_trials")).toEqual([])
  })

  it("E-1 launchd: a PID in `launchctl list` is a conflict; `-` (loaded, not running) is not", async () => {
    const s = sandbox()
    const running = await sandboxTune(s, ["--service-manager", "launchd"], {
      STUB_LAUNCHCTL_OUT: "PID\\tStatus\\tLabel\\n4242\\t0\\tlive.streamvc.macprovider\\n"
    })
    expect(running.code).toBe(4)
    expect(running.stderr).toContain("launchd job live.streamvc.macprovider is running (pid 4242)")
    expect(candidateStarts(s)).toEqual([])
    const loaded = await sandboxTune(s, ["--service-manager", "launchd"], {
      STUB_LAUNCHCTL_OUT: "PID\\tStatus\\tLabel\\n-\\t0\\tlive.streamvc.macprovider\\n123\\t0\\tcom.other\\n"
    })
    expect(loaded.code, loaded.stderr).toBe(0)
    expect(loaded.stderr).toContain("is loaded but not running")
  })

  it("E-1 a foreground `macprovider-cli serve` is a conflict naming its pid; `macprovider-cli-helper serve` is not", async () => {
    const s = sandbox()
    const helper = standIn(s, "macprovider-cli-helper")
    try {
      const ok = await sandboxTune(s, ["--service-manager", "none"])
      expect(ok.code, ok.stderr).toBe(0)
    } finally {
      helper.kill("SIGKILL")
    }
    const provider = standIn(s, "macprovider-cli")
    try {
      await new Promise((r) => setTimeout(r, 300)) // let it exec
      const r = await sandboxTune(s, ["--service-manager", "none", "--json"])
      expect(r.code).toBe(4)
      expect(r.stderr).toContain(`foreground provider pid ${provider.pid}`)
    } finally {
      provider.kill("SIGKILL")
    }
  })

  it("E-1 never this autotune process itself, even when its own argv matches the provider binary and `serve`", async () => {
    // This CLI runs as `node …/bin/autotune.js tune … --candidate-models serve`: with a provider binary
    // named autotune.js, its own argv has that base name and the word `serve`.
    const s = sandbox()
    const own = Path.join(s.bin, "autotune.js")
    Fs.copyFileSync(Path.join(s.bin, "macprovider-cli"), own)
    Fs.chmodSync(own, 0o755)
    const r = await runCli([
      "tune", "--provider", "macprovider", "--provider-bin", own, "--candidate-models", "serve", "--target-context", "100",
      "--stage1-replicates", "1", "--stage2-replicates", "1", "--service-manager", "none", "--db-path", s.db
    ], { env: sandboxEnv(s) })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).not.toContain("already running")
  })
})
