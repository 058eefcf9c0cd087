import { Schema } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { TuneDocument } from "../src/domain/TuneDocument.js"
import { runCli, sleep, startCli, tempDir, waitFor, logFiles } from "./support/cli.js"
import { readRows } from "./support/db.js"
import { llamaServerBin } from "./support/llamaCpp.js"
import { smallModelPath, tinyModelPath, unknownArchitectureCopy } from "./support/models.js"

const decodeDoc = Schema.decodeUnknownSync(Schema.parseJson(TuneDocument), { onExcessProperty: "error" })

interface Row {
  readonly stage: number
  readonly model: string
  readonly kv_bits: number | null
  readonly max_batch: number | null
  readonly fits: number
  readonly kept: number
  readonly notes: string | null
  readonly prompt_tokens: number | null
  readonly server_prompt_n: number | null
  readonly server_prompt_tps: number | null
  readonly server_decode_tps: number | null
  readonly tps: number | null
}

/** The argv each candidate was started with: the first line (`$ cmd args`) of every provider log. */
const startedArgv = (logDir: string): Array<Array<string>> =>
  Fs.existsSync(logDir)
    ? logFiles(logDir).map((f) => Fs.readFileSync(f, "utf8").split("\n")[0]!.slice(2).split(" "))
    : []

const tuneArgs = (db: string, candidates: string, extra: ReadonlyArray<string> = [], maxTokens = 16, stage1Replicates = 2) => [
  "tune", "--provider", "llama-server", "--provider-bin", llamaServerBin(), "--candidate-models", candidates,
  "--target-context", "512", "--max-tokens", `${maxTokens}`, "--stage1-replicates", `${stage1Replicates}`, "--stage2-replicates", "1",
  "--threads-axis", "2", "--json", "--db-path", db, ...extra
]

describe("the llama-server provider against the real llama-server (SPEC E-5, P-1, P-2)", () => {
  it("E-5 A-1 B-2: two candidates and Stage 2 over --parallel and KV-cache types, with the server's own timings recorded", async () => {
    const dir = tempDir()
    const db = Path.join(dir, "runs.db")
    const r = await runCli(
      tuneArgs(db, `${smallModelPath()},${tinyModelPath()}`, ["--kv-bits-axis", "unset,8", "--max-batch-axis", "1,2"]),
      { env: { XDG_DATA_HOME: dir } }
    )
    expect(r.code, r.stderr).toBe(0)
    const doc = decodeDoc(r.stdout)
    expect(doc.recommendation?.model).toBe(smallModelPath())
    expect(doc.alternates).toEqual([tinyModelPath()])
    expect(doc.machine.binary_version).toMatch(/version/)
    // F-1 E-5: the serve command is in llama-server's own syntax, with the chosen knobs
    const serve = doc.recommendation!.serve_command
    expect(serve.startsWith(`${Fs.realpathSync(llamaServerBin())} -m ${smallModelPath()} --ctx-size `)).toBe(true)
    expect(serve).toContain(`--parallel ${doc.recommendation!.knobs.max_concurrency_override}`)
    expect(serve).toContain("--threads 2")
    expect(serve).not.toContain("--no-join")
    // E-5: each cell started with its flags on loopback; the small candidate was never started
    const argvs = startedArgv(Path.join(dir, "logs"))
    expect(argvs).toHaveLength(5)
    for (const a of argvs) {
      expect(a[a.indexOf("-m") + 1]).toBe(smallModelPath())
      expect(a[a.indexOf("--cache-ram") + 1]).toBe("0") // this build has the flag
      expect(a[a.indexOf("--host") + 1]).toBe("127.0.0.1")
    }
    const kv8 = argvs.filter((a) => a.includes("--cache-type-k"))
    expect(kv8).toHaveLength(2)
    for (const a of kv8) {
      expect(a[a.indexOf("--cache-type-k") + 1]).toBe("q8_0")
      expect(a[a.indexOf("--cache-type-v") + 1]).toBe("q8_0")
      expect(a[a.indexOf("--flash-attn") + 1]).toBe("on")
    }
    expect(argvs.filter((a) => a[a.indexOf("--parallel") + 1] === "2")).toHaveLength(2)
    // P-1 P-2: every trial fits, with the server's timings beside the client's tok/s and the prompt within 5 %
    const rows = await readRows<Row>(db, "SELECT * FROM tune_trials ORDER BY trial_id")
    expect(rows.map((x) => [x.stage, x.kv_bits, x.max_batch])).toEqual([
      [1, null, null], [2, null, 1], [2, null, 2], [2, 8, 1], [2, 8, 2]
    ])
    for (const row of rows) {
      expect(row.fits, row.notes ?? "").toBe(1)
      expect(Math.abs(row.prompt_tokens! - 512)).toBeLessThanOrEqual(0.05 * 512)
      expect(row.server_prompt_n).toBeGreaterThan(0.9 * 512)
      expect(row.server_prompt_tps).toBeGreaterThan(0)
      expect(row.server_decode_tps).toBeGreaterThan(0)
      expect(row.tps).toBeGreaterThan(0)
    }
    expect(rows.filter((x) => x.kept === 1)).toHaveLength(1)
  })

  it("C-1 C-3 issue 17 part 3: at 2 users a tune measures --flash-attn-axis on,off × --ubatch-axis cells and records them in the rows, the progress lines and the serve command", async () => {
    const dir = tempDir()
    const db = Path.join(dir, "runs.db")
    const r = await runCli(
      tuneArgs(db, tinyModelPath(), ["--concurrency", "2", "--kv-bits-axis", "unset,8", "--flash-attn-axis", "on,off", "--ubatch-axis", "128,512"]),
      { env: { XDG_DATA_HOME: dir } }
    )
    expect(r.code, r.stderr).toBe(0)
    const doc = decodeDoc(r.stdout)
    // A quantized KV cache needs flash attention: its "off" cells are not in the grid.
    const rows = await readRows<Row & { flash_attn: number | null; ubatch: number | null; streams: number; peak_rss_bytes: number | null }>(
      db, "SELECT * FROM tune_trials ORDER BY trial_id")
    expect(rows.map((x) => [x.stage, x.kv_bits, x.max_batch, x.flash_attn, x.ubatch])).toEqual([
      [1, null, 2, null, null],
      [2, null, 2, 1, 128], [2, null, 2, 1, 512], [2, null, 2, 0, 128], [2, null, 2, 0, 512],
      [2, 8, 2, 1, 128], [2, 8, 2, 1, 512]
    ])
    for (const row of rows) {
      expect(row.fits, row.notes ?? "").toBe(1)
      expect(row.streams).toBe(2)
      // C-3: llama-server's own resident memory (the shim left out) is measured: it holds the model and two slots.
      expect(row.peak_rss_bytes).toBeGreaterThan(10 * 1024 * 1024)
    }
    // Each cell started with its flags.
    const argvs = startedArgv(Path.join(dir, "logs"))
    expect(argvs).toHaveLength(7)
    const flag = (a: ReadonlyArray<string>, f: string) => (a.includes(f) ? a[a.indexOf(f) + 1] : null)
    // (Logs are listed by name, not start order: compared as a set.)
    const started = argvs.map((a) => JSON.stringify([flag(a, "--cache-type-k"), flag(a, "--flash-attn"), flag(a, "--ubatch-size"), flag(a, "--parallel")]))
    expect(started.sort()).toEqual([
      [null, null, null, "2"],
      [null, "on", "128", "2"], [null, "on", "512", "2"], [null, "off", "128", "2"], [null, "off", "512", "2"],
      ["q8_0", "on", "128", "2"], ["q8_0", "on", "512", "2"]
    ].map((x) => JSON.stringify(x)).sort())
    expect(r.stderr).toContain("[stage 2] kv=unset ctx=512 batch=2 threads=2 fa=off ubatch=128: fits, goodput ")
    // The recommendation carries both knobs, and its serve command starts llama-server with them.
    const knobs = doc.recommendation!.knobs
    expect(knobs.flash_attn).toMatch(/^(on|off)$/)
    expect([128, 512]).toContain(knobs.ubatch_size)
    expect(doc.recommendation!.serve_command).toContain(`--flash-attn ${knobs.flash_attn}`)
    expect(doc.recommendation!.serve_command).toContain(`--ubatch-size ${knobs.ubatch_size}`)
    expect(doc.inputs.concurrency).toBe(2)
  })

  it("E-4 a model llama-server cannot load is infeasible at once with its exit code and error line; the next candidate is tried", async () => {
    const dir = tempDir()
    const db = Path.join(dir, "runs.db")
    const bad = Path.join(dir, "unknown-arch-15M.gguf")
    unknownArchitectureCopy(tinyModelPath(), bad)
    const started = Date.now()
    const r = await runCli(tuneArgs(db, `${bad},${tinyModelPath()}`), { env: { XDG_DATA_HOME: dir } })
    expect(r.code, r.stderr).toBe(0)
    const doc = decodeDoc(r.stdout)
    expect(doc.recommendation?.model).toBe(tinyModelPath())
    expect(doc.infeasible).toEqual([{
      model: bad, rank: 1,
      reason: expect.stringMatching(/^provider exited while starting \(exit code 1\): .*unknown model architecture: 'llamx'/),
      marginal: false,
      disturbed: false
    }])
    // D-2: an unknown architecture is not corrupt weights: the run goes on
    expect(doc.exit_reason).toBe("ok")
    expect(Date.now() - started).toBeLessThan(60_000)
    const first = await readRows<Row>(db, "SELECT * FROM tune_trials ORDER BY trial_id LIMIT 1")
    expect(first[0]?.notes).toContain("unknown model architecture")
  })

  /**
   * Requests a Stage 1 pre-warm sends on llama-server (steps/PreWarm.ts): the two short ones, the prompt sized by
   * `/tokenize`; no full-length one (issue 14).
   */
  const PRE_WARM_REQUESTS = 2

  /**
   * Whether the llama-server logging to `file` has begun a measured request: it logs "processing task" as each
   * request takes its slot, so the one after the pre-warm's is the first probe.
   */
  const probing = (file: string | undefined) =>
    file !== undefined && Fs.readFileSync(file, "utf8").split("processing task").length - 1 > PRE_WARM_REQUESTS

  it("G-1 E-4 a llama-server killed mid-probe fails that trial as a provider death, and the tune goes on", async () => {
    const dir = tempDir()
    const db = Path.join(dir, "runs.db")
    // Long replies so the measured requests are in flight long enough to be interrupted.
    const cli = startCli(
      tuneArgs(db, `${smallModelPath()},${tinyModelPath()}`, ["--kv-bits-axis", "unset"], 400, 3),
      { XDG_DATA_HOME: dir }
    )
    const logs = Path.join(dir, "logs")
    const log = () => logFiles(logs)[0]
    // Stage 1's pre-warm is done and its first probe has its slot.
    await waitFor(() => probing(log()), 60_000)
    expect(probing(log())).toBe(true)
    // This run's server: the port is in its log file's name (<model>-<port>-<ts>-<uuid8>.log, SPEC E-3).
    const port = Path.basename(log()!).split("-").at(-3)
    // The server itself, not the shim that runs it (whose argv starts with node).
    const pid = Number(ChildProcess.execFileSync("pgrep", ["-f", "--", `^[^ ]*llama-server -m .*--port ${port} `]).toString().trim().split("\n")[0])
    expect(pid).toBeGreaterThan(0)
    await sleep(300)
    process.kill(pid, "SIGKILL")
    const code = await cli.exited
    expect(code, cli.stderr()).toBe(0)
    const rows = await readRows<Row>(db, "SELECT * FROM tune_trials WHERE stage = 1 ORDER BY trial_id")
    expect(rows.map((x) => [x.model, x.fits, x.notes])).toEqual([[smallModelPath(), 0, expect.anything()], [tinyModelPath(), 1, null]])
    expect(rows[0]!.notes).toMatch(/died|exited/)
    expect(rows[0]!.notes).toContain("SIGKILL")
    // Killed in a probe, not in its pre-warm.
    expect(rows[0]!.notes).not.toMatch(/^pre-warm/)
  })

  /** Starts a tune whose Stage 1 probes are long, and resolves once its llama-server is measuring; returns the server's pid. */
  const tuneInProbe = async (dir: string) => {
    const db = Path.join(dir, "runs.db")
    const cli = startCli(tuneArgs(db, smallModelPath(), ["--kv-bits-axis", "unset"], 400, 3), { XDG_DATA_HOME: dir })
    const logs = Path.join(dir, "logs")
    const log = () => logFiles(logs)[0]
    await waitFor(() => probing(log()), 60_000)
    const port = Path.basename(log()!).split("-").at(-3)
    const pid = Number(ChildProcess.execFileSync("pgrep", ["-f", "--", `^[^ ]*llama-server -m .*--port ${port} `]).toString().trim().split("\n")[0])
    return { cli, db, pid, port: Number(port) }
  }
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }

  it("H-4 SIGHUP (the session went away) stops the run like SIGTERM: exit 130, llama-server stopped, row interrupted", async () => {
    const dir = tempDir()
    const { cli, db, pid } = await tuneInProbe(dir)
    expect(alive(pid)).toBe(true)
    cli.child.kill("SIGHUP")
    expect(await cli.exited).toBe(130)
    await waitFor(() => !alive(pid), 15_000)
    expect(alive(pid)).toBe(false)
    const runs = await readRows<{ exit_reason: string; ended_at: string | null }>(db, "SELECT exit_reason, ended_at FROM tune_runs")
    expect(runs).toEqual([{ exit_reason: "interrupted", ended_at: null }])
  })

  it("E-3 a tuner killed outright (SIGKILL) leaves no llama-server behind: the shim stops it", async () => {
    const dir = tempDir()
    const { cli, pid } = await tuneInProbe(dir)
    cli.child.kill("SIGKILL")
    await cli.exited
    await waitFor(() => !alive(pid), 15_000)
    expect(alive(pid)).toBe(false)
  })

  it("E-1 E-5 an operator's own llama-server is a conflict (exit 4) before anything starts", async () => {
    const dir = tempDir()
    const own = Path.join(dir, "bin", "llama-server")
    Fs.mkdirSync(Path.dirname(own))
    Fs.writeFileSync(own, "#!/bin/sh\nsleep 60\n") // the shell stays, with argv `sh …/llama-server -m …`
    Fs.chmodSync(own, 0o755)
    const operator = ChildProcess.spawn(own, ["-m", "mine.gguf", "--port", "8080"], { stdio: "ignore" })
    try {
      await sleep(300)
      const r = await runCli(tuneArgs(Path.join(dir, "runs.db"), tinyModelPath()), { env: { XDG_DATA_HOME: dir } })
      expect(r.code, r.stderr).toBe(4)
      expect(r.stderr).toMatch(new RegExp(`llama-server.*pid ${operator.pid}|pid ${operator.pid}.*llama-server`))
      expect(Fs.existsSync(Path.join(dir, "logs"))).toBe(false)
    } finally {
      ChildProcess.spawnSync("pkill", ["-KILL", "-P", `${operator.pid}`])
      operator.kill("SIGKILL")
    }
  })

  it("F-4 F-6 --apply writes the chosen model's section into a router preset byte-exactly, and --verify serves it from the real llama-server --models-preset", async () => {
    const dir = tempDir()
    const preset = Path.join(dir, "models.ini")
    const mine = "; my router\nversion = 1\n\n[*]\njinja = true\n\n[other-model]\nmodel = /models/other.gguf\nc = 8192   ; keep\n"
    Fs.writeFileSync(preset, mine)
    const model = tinyModelPath("q8_0")
    // --tps-tie-epsilon 0.9 (the widest allowed; verify's tolerance is never below it): the 15M's decode differs
    // between llama-server processes of the same knobs by up to 2× (a CI machine: Stage 2 1129, verify 491 tok/s).
    const r = await runCli(
      tuneArgs(Path.join(dir, "runs.db"), model, ["--kv-bits-axis", "8", "--tps-tie-epsilon", "0.9", "--apply", "--config-path", preset, "--verify"]),
      { env: { XDG_DATA_HOME: dir } }
    )
    expect(r.code, r.stderr).toBe(0)
    const doc = decodeDoc(r.stdout)
    const ctx = /--ctx-size (\d+)/.exec(doc.recommendation!.serve_command)![1]
    // The operator's lines stay byte for byte; the recipe is a section of its own, named after the model file.
    expect(Fs.readFileSync(preset, "utf8")).toBe(
      `${mine}\n[synth-15M-q8_0]\nmodel = ${model}\nctx-size = ${ctx}\nparallel = 1\ncache-type-k = q8_0\ncache-type-v = q8_0\nflash-attn = on\nthreads = 2\n`
    )
    expect(r.stderr).toContain("holds: the recipe still passes the gate")
    expect(r.stderr).toContain(`${llamaServerBin()} --models-preset ${preset}`)
    // The verification ran the real router from the file: it started the section's server with the recipe's options
    // (twice where the first start's figures regressed and a second start held, R-3: the last start is the one that held).
    const verifyDir = Path.join(dir, "logs", doc.run_id, "verify")
    const verifyLogs = Fs.readdirSync(verifyDir).sort().map((f) => Path.join(verifyDir, f))
    expect(verifyLogs).toHaveLength(r.stderr.includes("first start:") ? 2 : 1)
    const log = Fs.readFileSync(verifyLogs.at(-1)!, "utf8")
    // Exactly the restart line, plus the candidate's host and port.
    expect(log.split("\n")[0]).toBe(`$ ${llamaServerBin()} --models-preset ${preset} --host 127.0.0.1 --port ${/--port (\d+)/.exec(log)![1]}`)
    expect(log).toContain("spawning server instance with name=synth-15M-q8_0")
    // The router logs the model server's arguments one per line: the section's options, as the recipe has them.
    const spawned = [...log.matchAll(/load: {3}(\S+)$/gm)].map((m) => m[1]!)
    const arg = (flag: string) => spawned[spawned.indexOf(flag) + 1]
    expect([arg("--ctx-size"), arg("--parallel"), arg("--cache-type-k"), arg("--cache-type-v"), arg("--flash-attn"), arg("--threads"), arg("--model")])
      .toEqual([ctx, "1", "q8_0", "q8_0", "on", "2", model])
    // E-3: the router and the model server it forked are stopped with the verification (the tune has exited).
    const routerPort = Number(/--port (\d+)/.exec(log)![1])
    const childPort = Number(arg("--port"))
    const left = ChildProcess.spawnSync("pgrep", ["-f", "--", `--port (${routerPort}|${childPort})( |$)`])
    expect(left.status, left.stderr.toString()).toBe(1) // 1: no process matched (2 would be a bad pattern)
    expect(left.stdout.toString().trim()).toBe("")
  })

  it("F-4 F-6 --apply rewrites the flags of the model's llama-swap entry cmd in place, and --verify starts that cmd", async () => {
    const dir = tempDir()
    const swap = Path.join(dir, "config.yaml")
    const model = tinyModelPath("q8_0")
    const mine = [
      "# llama-swap",
      "macros:",
      `  ls: ${llamaServerBin()}`,
      "models:",
      "  synth-15M-q8_0:",
      "    cmd: |",
      "      ${ls} --port ${PORT}",
      `      -m ${model} -c 4096 --jinja`,
      "    ttl: 60",
      ""
    ].join("\n")
    Fs.writeFileSync(swap, mine)
    const r = await runCli(
      tuneArgs(Path.join(dir, "runs.db"), model, ["--kv-bits-axis", "8", "--tps-tie-epsilon", "0.9", "--apply", "--config-path", swap, "--verify"]),
      { env: { XDG_DATA_HOME: dir } }
    )
    expect(r.code, r.stderr).toBe(0)
    const doc = decodeDoc(r.stdout)
    const ctx = /--ctx-size (\d+)/.exec(doc.recommendation!.serve_command)![1]
    expect(Fs.readFileSync(swap, "utf8")).toBe(mine.replace(
      `-m ${model} -c 4096 --jinja`,
      `-m ${model} -c ${ctx} --jinja --parallel 1 --cache-type-k q8_0 --cache-type-v q8_0 --flash-attn on --threads 2`
    ))
    expect(r.stderr).toContain("holds: the recipe still passes the gate")
    expect(r.stderr).toContain(`llama-swap --config ${swap}`)
    const verifyDir = Path.join(dir, "logs", doc.run_id, "verify")
    const log = Fs.readFileSync(Path.join(verifyDir, Fs.readdirSync(verifyDir)[0]!), "utf8")
    const port = /--port (\d+)/.exec(log)![1]
    expect(log.split("\n")[0]).toBe(
      `$ ${llamaServerBin()} --port ${port} -m ${model} -c ${ctx} --jinja --parallel 1 --cache-type-k q8_0 --cache-type-v q8_0 --flash-attn on --threads 2`
    )
  })
})
