/**
 * vitest global setup: compile src/ to dist/ (the CLI the tests spawn, `bin/autotune.js`, runs
 * the compiled code, so a test must never see a build older than the sources; incremental, ~3 s
 * when nothing changed), then make sure the cached synthetic test models exist
 * (test/support/models.ts).
 */
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { createRequire } from "node:module"
import { ensureTestModels, repoRoot } from "./support/models.js"

export default async function setup(): Promise<void> {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc")
  const build = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: repoRoot, encoding: "utf8" })
  if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}${build.stderr}`)
  // As `npm run build` does: the launcher compares src/ with this file's time.
  const now = new Date()
  fs.utimesSync(path.join(repoRoot, "dist", ".tsbuildinfo"), now, now)
  await Effect.runPromise(ensureTestModels())
}
