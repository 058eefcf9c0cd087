/**
 * `autotune tune` against the fake provider process (fixtures/fake-provider.mjs)
 * through the macprovider adapter, as the gate-reason and concurrency tests run it.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { type CliResult, runCli, tempDir } from "./cli.js"
import { repoRoot } from "./models.js"

/** The fake provider's script. */
export const fakeProvider = Path.join(repoRoot, "fixtures", "fake-provider.mjs")

/**
 * Tunes fake `candidates` (behaviours, see the fixture) in a fresh directory:
 * target context 200, 8 tokens per probe, 2 Stage 1 and 1 Stage 2 replicates,
 * `--json`, then `extra`. Every start's argv is logged (`argvs`, in start order);
 * `env` is added to the run's environment.
 */
export const tuneFake = async (
  candidates: string,
  extra: ReadonlyArray<string> = [],
  env: Record<string, string> = {}
): Promise<{ readonly r: CliResult; readonly dir: string; readonly db: string; readonly argvs: Array<Array<string>> }> => {
  const dir = tempDir()
  const argvLog = Path.join(dir, "argv.jsonl")
  const db = Path.join(dir, "runs.db")
  const r = await runCli([
    "tune", "--provider", "macprovider", "--provider-bin", fakeProvider, "--candidate-models", candidates,
    "--target-context", "200", "--max-tokens", "8", "--stage1-replicates", "2", "--stage2-replicates", "1",
    "--json", "--db-path", db, ...extra
  ], { env: { FAKE_PROVIDER_ARGV_LOG: argvLog, XDG_DATA_HOME: dir, FAKE_PROVIDER_WORKER_LOG: Path.join(dir, "workers"), ...env } })
  const argvs = Fs.existsSync(argvLog)
    ? Fs.readFileSync(argvLog, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Array<string>)
    : []
  return { r, dir, db, argvs }
}
