/**
 * vitest global setup: compile src/ to dist/ (the CLI the tests spawn, `bin/autotune.js`, runs
 * the compiled code, so a test must never see a build older than the sources; incremental, ~3 s
 * when nothing changed), make sure the cached synthetic test models exist
 * (test/support/models.ts), and give the run one temp root: `TMPDIR` points every test, every
 * process it starts and every temp file the tool makes under it at a fresh `autotune-suite-*`
 * directory of the system's temp dir, removed when the run ends (a suite used to leave ~500
 * directories in /tmp per run). A failed run (a failed test, an error outside any test) keeps it and
 * says where (to read that test's database or logs), as `AUTOTUNE_KEEP_TEST_TMP=1` does for any run;
 * an interrupted run's root (Ctrl-C ends vitest without its teardown) is removed by the next run.
 */
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type { TestProject } from "vitest/node"
import { pidAlive } from "../src/system/Pids.js"
import { ensureTestModels, repoRoot } from "./support/models.js"

/** A run's temp root: `<system temp>/autotune-suite-<pid of the vitest process>-<random>`. */
const ROOT_PREFIX = "autotune-suite-"
/** A root's name, capturing its vitest process's pid. */
const ROOT_NAME = new RegExp(`^${ROOT_PREFIX}(\\d+)-`)
/** The file a run writes into a root it keeps on purpose (a failure, AUTOTUNE_KEEP_TEST_TMP). */
const KEPT = "KEPT"

/**
 * Removes the roots of earlier runs that ended without their teardown (Ctrl-C: vitest exits without it; a
 * crash): their vitest process is gone and they were not kept on purpose. A root of a live run, or a kept
 * one, stays.
 */
const removeAbandonedRoots = (): void => {
  for (const name of Fs.readdirSync(Os.tmpdir())) {
    const pid = Number(ROOT_NAME.exec(name)?.[1] ?? Number.NaN)
    if (Number.isNaN(pid) || pidAlive(pid)) continue
    const dir = Path.join(Os.tmpdir(), name)
    if (Fs.existsSync(Path.join(dir, KEPT))) continue
    try {
      Fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
    } catch {
      // Another user's, or going away by itself: not this run's business.
    }
  }
}

export default async function setup(project: TestProject): Promise<() => void> {
  // The package's own build script (one definition: compile, then mark the build's time for the launcher).
  const build = spawnSync("npm", ["run", "--silent", "build"], { cwd: repoRoot, encoding: "utf8" })
  if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}${build.stderr}`)
  await Effect.runPromise(ensureTestModels())
  // Set before vitest starts its workers: they, and every process a test spawns, inherit it (os.tmpdir() reads it).
  removeAbandonedRoots()
  const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), `${ROOT_PREFIX}${process.pid}-`))
  process.env.TMPDIR = root
  return () => {
    // (vitest's state API, experimental in the pinned 3.2: failed tests, suites and files, and errors outside
    // any test such as a crashed worker's.)
    const state = project.vitest.state
    const failed = state.getCountOfFailedTests() + state.getUnhandledErrors().length > 0
    if (process.env.AUTOTUNE_KEEP_TEST_TMP === "1" || failed) {
      Fs.writeFileSync(Path.join(root, KEPT), "")
      process.stdout.write(`test temp files kept in ${root}${failed ? " (the run failed)" : ""}\n`)
      return
    }
    // A process a test left behind may still write in it: retried, and never a reason to fail the run.
    try {
      Fs.rmSync(root, { recursive: true, force: true, maxRetries: 3 })
    } catch (e) {
      process.stderr.write(`could not remove the test temp root ${root}: ${e instanceof Error ? e.message : String(e)}\n`)
    }
  }
}
