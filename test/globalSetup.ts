/**
 * vitest global setup: compile src/ to dist/ (the CLI the tests spawn, `bin/autotune.js`, runs
 * the compiled code, so a test must never see a build older than the sources; incremental, ~3 s
 * when nothing changed), then make sure the cached synthetic test models exist
 * (test/support/models.ts).
 */
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { ensureTestModels, repoRoot } from "./support/models.js"

export default async function setup(): Promise<void> {
  // The package's own build script (one definition: compile, then mark the build's time for the launcher).
  const build = spawnSync("npm", ["run", "--silent", "build"], { cwd: repoRoot, encoding: "utf8" })
  if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}${build.stderr}`)
  await Effect.runPromise(ensureTestModels())
}
