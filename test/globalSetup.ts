/**
 * vitest global setup: compile src/ to dist/ (the CLI the tests spawn, `bin/autotune.js`, runs
 * the compiled code, so a test must never see a build older than the sources; incremental, ~3 s
 * when nothing changed), make sure the cached synthetic test models exist
 * (test/support/models.ts), and give the run one temp root: `TMPDIR` points every test, every
 * process it starts and every temp file the tool makes under it at a fresh `autotune-suite-*`
 * directory of the system's temp dir, removed when the run ends (a suite used to leave ~500
 * directories in /tmp per run). A run with a failed test keeps it and says where (to read that
 * test's database or logs), as `AUTOTUNE_KEEP_TEST_TMP=1` does for any run.
 */
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type { TestProject } from "vitest/node"
import { ensureTestModels, repoRoot } from "./support/models.js"

export default async function setup(project: TestProject): Promise<() => void> {
  // The package's own build script (one definition: compile, then mark the build's time for the launcher).
  const build = spawnSync("npm", ["run", "--silent", "build"], { cwd: repoRoot, encoding: "utf8" })
  if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}${build.stderr}`)
  await Effect.runPromise(ensureTestModels())
  // Set before vitest starts its workers: they, and every process a test spawns, inherit it (os.tmpdir() reads it).
  const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "autotune-suite-"))
  process.env.TMPDIR = root
  return () => {
    // (vitest's state API, experimental in the pinned 3.2: failed tests and suites so far.)
    const failed = project.vitest.state.getCountOfFailedTests()
    if (process.env.AUTOTUNE_KEEP_TEST_TMP === "1" || failed > 0) {
      process.stdout.write(`test temp files kept in ${root}${failed > 0 ? " (tests failed)" : ""}\n`)
      return
    }
    // A process a failed test left behind may still write in it: retried, and never a reason to fail the run.
    try {
      Fs.rmSync(root, { recursive: true, force: true, maxRetries: 3 })
    } catch (e) {
      process.stderr.write(`could not remove the test temp root ${root}: ${e instanceof Error ? e.message : String(e)}\n`)
    }
  }
}
