/**
 * The package as another program gets it (issue 14): `package.json` `exports` point at the
 * compiled library in dist/ with its types, so plain `node` imports it with no TypeScript loader,
 * and the `autotune` launcher runs the compiled CLI.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as Path from "node:path"
import { repoRoot } from "../support/models.js"

const node = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = process.env) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, [...args], { cwd: repoRoot, env, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : null, stdout, stderr })))

describe("the installed package (issue 14)", () => {
  it("node imports llm-autotune with no loader: the exports are compiled JS with types", async () => {
    // No tsx anywhere: NODE_OPTIONS cleared, so only what package.json exports can load.
    const { NODE_OPTIONS: _o, ...env } = process.env
    const r = await node(["-e", "import('llm-autotune').then((m) => console.log(typeof m.tune, typeof m.stage1))"], env)
    assert.notMatch(r.stderr, /error/i)
    assert.strictEqual(r.stdout.trim(), "function function")
    const pkg = JSON.parse(fs.readFileSync(Path.join(repoRoot, "package.json"), "utf8"))
    assert.deepStrictEqual(pkg.exports["."], { types: "./dist/index.d.ts", default: "./dist/index.js" })
    assert.isTrue(fs.existsSync(Path.join(repoRoot, "dist", "index.d.ts")))
  })

  it("the autotune launcher runs the compiled CLI: --version answers without a TypeScript loader", async () => {
    const { NODE_OPTIONS: _o, ...env } = process.env
    const r = await node(["--import", Path.join(repoRoot, "test", "support", "noTsx.mjs"), Path.join(repoRoot, "bin", "autotune.js"), "--version"], env)
    assert.strictEqual(r.code, 0, r.stderr)
    assert.strictEqual(r.stdout.trim(), JSON.parse(fs.readFileSync(Path.join(repoRoot, "package.json"), "utf8")).version)
  })
})
