import { describe, expect, it } from "@effect/vitest"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { runCli, tempDir } from "./support/cli.js"
import { repoRoot } from "./support/models.js"

const fake = Path.join(repoRoot, "fixtures", "fake-provider.mjs")

/**
 * A temp dir holding: `macprovider-cli` (a copy of the fake provider, used as
 * --provider-bin), stub `launchctl` and `systemctl` executables that record
 * their argv and print canned answers from the environment.
 */
const sandbox = () => {
  const dir = tempDir()
  const bin = Path.join(dir, "bin")
  Fs.mkdirSync(bin)
  Fs.copyFileSync(fake, Path.join(bin, "macprovider-cli"))
  Fs.chmodSync(Path.join(bin, "macprovider-cli"), 0o755)
  for (const tool of ["launchctl", "systemctl"]) {
    Fs.writeFileSync(
      Path.join(bin, tool),
      `#!/bin/sh\necho "${tool} $*" >> "${dir}/tools.log"\nprintf '%b' "$STUB_${tool.toUpperCase()}_OUT"\n`,
      { mode: 0o755 }
    )
  }
  return { dir, bin, db: Path.join(dir, "runs.db"), argvLog: Path.join(dir, "argv.jsonl") }
}

const tune = (s: ReturnType<typeof sandbox>, extra: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  runCli([
    "tune", "--provider", "macprovider", "--provider-bin", Path.join(s.bin, "macprovider-cli"), "--candidate-models",
    "ok-5", "--target-context", "100", "--stage1-replicates", "1", "--stage2-replicates", "1", "--db-path", s.db, ...extra
  ], {
    env: { PATH: `${s.bin}:${process.env.PATH}`, XDG_DATA_HOME: s.dir, FAKE_PROVIDER_ARGV_LOG: s.argvLog, ...env }
  })

/** Starts a long-running stand-in process `<name> serve` from the sandbox's bin; returns it. */
const standIn = (s: ReturnType<typeof sandbox>, name: string) => {
  const file = Path.join(s.bin, name)
  if (!Fs.existsSync(file)) Fs.copyFileSync(Path.join(s.bin, "macprovider-cli"), file)
  return ChildProcess.spawn(file, ["serve", "--model", "ok-5", "--port", "0"], { stdio: "ignore" })
}

const startedNothing = (s: ReturnType<typeof sandbox>) => {
  const argvs = Fs.existsSync(s.argvLog) ? Fs.readFileSync(s.argvLog, "utf8").trim().split("\n") : []
  return argvs.filter((l) => l.includes("--no-join")).length === 0 && !Fs.existsSync(s.db)
}

describe("pre-flight against stub service managers and a stand-in provider (SPEC E-1)", () => {
  it("E-1 a running systemd user unit is a conflict: provider_conflict exit 4, nothing started, no row", async () => {
    const s = sandbox()
    const r = await tune(s, ["--service-manager", "systemd", "--service-label", "macprovider.service"], {
      STUB_SYSTEMCTL_OUT: "active\\n"
    })
    expect(r.code).toBe(4)
    expect(r.stderr).toContain("systemd job macprovider.service is running")
    expect(Fs.readFileSync(Path.join(s.dir, "tools.log"), "utf8")).toContain("systemctl --user is-active macprovider.service")
    expect(startedNothing(s)).toBe(true)
  })

  it("E-1 launchd: a PID in `launchctl list` is a conflict; `-` (loaded, not running) is not", async () => {
    const s = sandbox()
    const running = await tune(s, ["--service-manager", "launchd"], {
      STUB_LAUNCHCTL_OUT: "PID\\tStatus\\tLabel\\n4242\\t0\\tlive.streamvc.macprovider\\n"
    })
    expect(running.code).toBe(4)
    expect(running.stderr).toContain("launchd job live.streamvc.macprovider is running (pid 4242)")
    expect(startedNothing(s)).toBe(true)
    const loaded = await tune(s, ["--service-manager", "launchd"], {
      STUB_LAUNCHCTL_OUT: "PID\\tStatus\\tLabel\\n-\\t0\\tlive.streamvc.macprovider\\n123\\t0\\tcom.other\\n"
    })
    expect(loaded.code, loaded.stderr).toBe(0)
    expect(loaded.stderr).toContain("is loaded but not running")
  })

  it("E-1 a foreground `macprovider-cli serve` is a conflict naming its pid; `macprovider-cli-helper serve` is not", async () => {
    const s = sandbox()
    const helper = standIn(s, "macprovider-cli-helper")
    try {
      const ok = await tune(s, ["--service-manager", "none"])
      expect(ok.code, ok.stderr).toBe(0)
    } finally {
      helper.kill("SIGKILL")
    }
    const provider = standIn(s, "macprovider-cli")
    try {
      await new Promise((r) => setTimeout(r, 300)) // let it exec
      const r = await tune(s, ["--service-manager", "none", "--json"])
      expect(r.code).toBe(4)
      expect(r.stderr).toContain(`foreground provider pid ${provider.pid}`)
    } finally {
      provider.kill("SIGKILL")
    }
  })
})
