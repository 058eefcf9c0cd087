/**
 * The library's examples (examples/*.ts) run as an operator runs them — a
 * script outside src/ importing "llm-autotune" — against the real embedded
 * provider (and llama-server) on tiny synthetic models. `npm test` type-checks
 * them under strict (tsconfig includes examples/).
 */
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { type CliResult, tempDir } from "./support/cli.js"
import { llamaServerBin } from "./support/llamaCpp.js"
import { mediumModelPath, repoRoot, smallModelPath, tinyModelPath, unknownArchitectureCopy } from "./support/models.js"

/**
 * Bound of one example test: each runs real tunes and scripts (each killed by its
 * own timer: 240 s per CLI run, 180 s per script), so the bound is theirs, not
 * the suite's 120 s default, which a slower CI machine once ran out of.
 */
const EXAMPLE_TIMEOUT_MS = 600_000

/** Runs `examples/<name>.ts <args>` with tsx, as `npx tsx` would. */
const runExample = (name: string, args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    const child = ChildProcess.spawn(process.execPath, ["--import", "tsx", Path.join(repoRoot, "examples", `${name}.ts`), ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    const timer = setTimeout(() => child.kill("SIGKILL"), 180_000)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

describe("examples: scripts over the library entry point (issue: library surface)", () => {
  it("A-1 biggest-fit.ts keeps the given order, names the first that fits and why each larger one failed; exit 2 when none does", { timeout: EXAMPLE_TIMEOUT_MS }, async () => {
    const common = ["--target-context", "256", "--max-tokens", "8", "--replicates", "1"]
    const r = await runExample("biggest-fit", [...common, smallModelPath(), tinyModelPath()])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^biggest fit: .*synth-60M-q4_0\.gguf \(61\.\dM\)/m)
    // A larger model this provider cannot load is listed with its reason.
    const broken = Path.join(tempDir(), "other-arch-130M.gguf")
    unknownArchitectureCopy(mediumModelPath(), broken)
    const withFailure = await runExample("biggest-fit", [...common, broken, tinyModelPath()])
    expect(withFailure.code, withFailure.stderr).toBe(0)
    expect(withFailure.stdout).toMatch(/^biggest fit: .*synth-15M-q4_0\.gguf/m)
    expect(withFailure.stdout).toMatch(/^ +larger, failed: .*other-arch-130M\.gguf \(1\d\d(\.\d)?M\): provider exited while starting \(exit code 1\)/m)
    const none = await runExample("biggest-fit", [...common, "--gate-ttft-ms", "1", tinyModelPath(), smallModelPath()])
    expect(none.code).toBe(2)
    expect(none.stdout).toMatch(/nothing fits: every candidate is infeasible; even .*synth-15M.*TTFT .*> 1 ms gate/)
  })

  it("E-5 compare-providers.ts runs the same model and knobs on embedded and llama-server side by side", { timeout: EXAMPLE_TIMEOUT_MS }, async () => {
    const r = await runExample("compare-providers", [
      "--model", tinyModelPath(), "--llama-server", llamaServerBin(), "--target-context", "256", "--max-tokens", "16",
      "--replicates", "2", "--threads", "2"
    ])
    expect(r.code, r.stderr).toBe(0)
    const rows = r.stdout.split("\n").filter((l) => /^(embedded|llama-server) /.test(l))
    expect(rows).toHaveLength(2)
    for (const row of rows) expect(row).toMatch(/ +\d+\.\d +\d+ +\d+ +\d+\.\d +\d+\.\d +fits$/)
  })
})
