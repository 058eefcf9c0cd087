/**
 * The package as another program gets it (issue 14): `package.json` `exports` point at the
 * compiled library in dist/ with its types, so plain `node` imports it with no TypeScript loader,
 * and the `autotune` launcher runs the compiled CLI.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as Path from "node:path"
import { stripVTControlCharacters } from "node:util"
import { Knobs } from "../../src/domain/Knobs.js"
import { embedded } from "../../src/providers/Embedded.js"
import { repoRoot, tinyModelPath } from "../support/models.js"
import { tempDir } from "../support/cli.js"

const node = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = process.env) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, [...args], { cwd: repoRoot, env, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : null, stdout, stderr })))

/**
 * A stand-in package for the launcher: the real bin/autotune.js (and its help cache) over a dist/ whose two
 * entries say which one answered (dist/bin.js "whole", dist/serveBin.js "serve-only", each with the libuv pool
 * size it ran with: `says`). `installed(version)` puts a stand-in node-llama-cpp in node_modules; `buildInfo` is
 * where the build's mark goes (not made here); `at` dates a file (s); `launch` runs the launcher with extra
 * environment variables, `run` gives what it printed.
 */
const launcherStandIn = () => {
  const root = tempDir()
  fs.mkdirSync(Path.join(root, "bin"))
  for (const f of ["autotune.js", "bundle-load.js", "bundle-use.js", "help-cache.js", "package.json"]) fs.copyFileSync(Path.join(repoRoot, "bin", f), Path.join(root, "bin", f))
  fs.mkdirSync(Path.join(root, "dist"))
  fs.writeFileSync(Path.join(root, "package.json"), JSON.stringify({ name: "stand-in", version: "9.9.9" }))
  const says = (who: string) => `process.stdout.write(${JSON.stringify(who)} + " " + process.env.UV_THREADPOOL_SIZE)\n`
  fs.writeFileSync(Path.join(root, "dist", "bin.js"), says("whole"))
  fs.writeFileSync(Path.join(root, "dist", "serveBin.js"), says("serve-only"))
  const installed = (version: string) => {
    fs.mkdirSync(Path.join(root, "node_modules", "node-llama-cpp"), { recursive: true })
    fs.writeFileSync(Path.join(root, "node_modules", "node-llama-cpp", "package.json"), JSON.stringify({ name: "node-llama-cpp", version }))
  }
  const { UV_THREADPOOL_SIZE: _pool, ...env } = process.env
  const launch = (args: ReadonlyArray<string>, extra: Record<string, string> = {}) =>
    node([Path.join(root, "bin", "autotune.js"), ...args], { ...env, ...extra })
  const buildInfo = Path.join(root, "dist", ".tsbuildinfo")
  const at = (file: string, s: number) => fs.utimesSync(file, s, s)
  /**
   * A bundle as the build leaves it (bin/bundle.js): dist/<dir>/<file>, CommonJS, whose `run` says `who` and
   * whose `startLlama` (the launcher's early start of llama.cpp) writes "early " first, made with the
   * node-llama-cpp installed (3.0.0), as new as the build info and the entry it was made from (all dated
   * 1 000 000 s). Its file.
   */
  const freshBundle = (dir: string, file: string, entry: string, who: string) => {
    const bundle = Path.join(root, "dist", dir)
    fs.mkdirSync(bundle, { recursive: true })
    fs.writeFileSync(Path.join(bundle, file), [
      `exports.startLlama = async () => { process.stdout.write("early ") }`,
      `exports.run = async () => { ${says(who)} }`
    ].join("\n"))
    installed("3.0.0")
    fs.writeFileSync(Path.join(bundle, "built-with.json"), JSON.stringify([{ package: "node_modules/node-llama-cpp/package.json", version: "3.0.0" }]))
    fs.writeFileSync(buildInfo, "")
    for (const f of [buildInfo, Path.join(root, "dist", entry), Path.join(bundle, file)]) at(f, 1_000_000)
    return Path.join(bundle, file)
  }
  return { root, says, installed, buildInfo, at, freshBundle, launch, run: async (...args: Array<string>) => (await launch(args)).stdout }
}

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

  it("issue 14 the bundles are not packed: they are made by the build on the machine that runs them (node-llama-cpp's paths and binary test are that machine's)", async () => {
    // --ignore-scripts: no build (`prepare`) in the middle of the suite.
    const r = await new Promise<string>((resolve, reject) =>
      execFile("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: repoRoot, timeout: 60_000 }, (err, stdout) =>
        err === null ? resolve(stdout) : reject(err)))
    const files = (JSON.parse(r) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path)
    assert.include(files, "dist/serveBin.js")
    assert.includeMembers(files, ["dist/bin.js", "bin/bundle.js"])
    assert.deepStrictEqual(files.filter((f) => /^dist\/(serve|cli)-bundle/.test(f)), [])
  })

  it("the autotune launcher runs the compiled CLI: --version answers without a TypeScript loader", async () => {
    const { NODE_OPTIONS: _o, ...env } = process.env
    // The help cache off: the CLI itself answers.
    const r = await node(["--import", Path.join(repoRoot, "test", "support", "noTsx.mjs"), Path.join(repoRoot, "bin", "autotune.js"), "--version"], {
      ...env,
      AUTOTUNE_HELP_CACHE: "off"
    })
    assert.strictEqual(r.code, 0, r.stderr)
    assert.strictEqual(r.stdout.trim(), JSON.parse(fs.readFileSync(Path.join(repoRoot, "package.json"), "utf8")).version)
  })

  it("issue 14 --help, --version and each command's --help are the CLI's own answer, kept by the build and printed without loading it", async () => {
    const launcher = Path.join(repoRoot, "bin", "autotune.js")
    const kept = fs.readdirSync(Path.join(repoRoot, "dist", "help")).map((f) => f.replace(/\.txt$/, "")).sort()
    const commands = kept.filter((k) => k.endsWith(".help")).map((k) => k.slice(0, -".help".length))
    // Every command the CLI lists has its entry (the build read them from the top-level help).
    assert.includeMembers(commands, ["tune", "serve", "verify", "history", "report", "restore", "synth"])
    assert.includeMembers(kept, ["help", "version"])
    // Each kept answer is byte for byte what the CLI prints with the cache off, styled as a terminal gets it
    // (FORCE_COLOR), two at a time (2 cores).
    // The runner's own colour settings left out (a CI's TERM=dumb or NODE_DISABLE_COLORS would turn a terminal's styling off).
    const { FORCE_COLOR: _f, NO_COLOR: _n, NODE_DISABLE_COLORS: _d, TERM: _t, ...plainEnv } = process.env
    const styled = { ...plainEnv, FORCE_COLOR: "1" }
    const argvs = [["--help"], ["--version"], ...commands.map((c) => [c, "--help"])]
    for (let i = 0; i < argvs.length; i += 2) {
      await Promise.all(argvs.slice(i, i + 2).map(async (argv) => {
        const live = await node([launcher, ...argv], { ...styled, AUTOTUNE_HELP_CACHE: "off" })
        assert.strictEqual(live.code, 0, live.stderr)
        const key = argv.length === 1 ? argv[0]!.slice(2) : `${argv[0]}.help`
        assert.strictEqual(fs.readFileSync(Path.join(repoRoot, "dist", "help", `${key}.txt`), "utf8"), live.stdout, argv.join(" "))
      }))
    }
    // The launcher prints them, `-h` as `--help` (the build kept it only because the CLI printed the same).
    const keptVerify = fs.readFileSync(Path.join(repoRoot, "dist", "help", "verify.help.txt"), "utf8")
    const short = await node([launcher, "verify", "-h"], styled)
    assert.strictEqual(short.code, 0, short.stderr)
    assert.strictEqual(short.stdout, keptVerify)
    assert.strictEqual(short.stderr, "")
    // To a pipe (as here, no FORCE_COLOR) or under NO_COLOR, plain: kept or live, the same text without escape sequences.
    assert.match(keptVerify, /\u001b\[/)
    for (const env of [plainEnv, { ...plainEnv, AUTOTUNE_HELP_CACHE: "off" }, { ...styled, FORCE_COLOR: "0" }]) {
      const piped = await node([launcher, "verify", "--help"], env)
      assert.strictEqual(piped.code, 0, piped.stderr)
      assert.strictEqual(piped.stdout, stripVTControlCharacters(keptVerify), JSON.stringify({ cache: env.AUTOTUNE_HELP_CACHE, FORCE_COLOR: env.FORCE_COLOR }))
    }
    // On a terminal (a pty, through util-linux's `script`): styled, kept or live; plain under NO_COLOR.
    const quote = (p: string) => `'${p.replace(/'/g, "'\\''")}'`
    const onTerminal = (env: NodeJS.ProcessEnv) =>
      spawnSync("script", ["-qec", `${quote(process.execPath)} ${quote(launcher)} verify --help`, "/dev/null"], {
        env: { ...env, TERM: "xterm" },
        encoding: "utf8",
        timeout: 60_000
      })
    const terminals: ReadonlyArray<readonly [NodeJS.ProcessEnv, boolean]> = [
      [plainEnv, true],
      [{ ...plainEnv, AUTOTUNE_HELP_CACHE: "off" }, true],
      [{ ...plainEnv, NO_COLOR: "1" }, false],
      [{ ...plainEnv, NO_COLOR: "1", AUTOTUNE_HELP_CACHE: "off" }, false]
    ]
    for (const [env, styledThere] of terminals) {
      const tty = onTerminal(env)
      // util-linux's script(1) (Debian's bsdutils, an essential package) gives the CLI a pseudo-terminal.
      assert.isUndefined(tty.error, `script(1): ${tty.error?.message}`)
      assert.strictEqual(tty.status, 0, tty.stderr)
      assert.include(tty.stdout, "--gate-ttft-ms")
      assert.strictEqual(tty.stdout.includes("\u001b["), styledThere, JSON.stringify({ cache: env.AUTOTUNE_HELP_CACHE, NO_COLOR: env.NO_COLOR }))
    }
    // Answered without loading any module: with every import failing, the kept answer still comes, and the CLI does not.
    const noImport = ["--import", Path.join(repoRoot, "test", "support", "noImport.mjs")]
    // (The CLI bundle off: it is compiled from its file, which no import hook sees, so a launcher that fell
    // through to the CLI would load dist/'s modules and be refused.)
    const fast = await node([...noImport, launcher, "tune", "--help"], { ...process.env, AUTOTUNE_CLI_BUNDLE: "off" })
    assert.strictEqual(fast.code, 0, fast.stderr)
    assert.include(fast.stdout, "--candidate-models")
    const live = await node([...noImport, launcher, "tune", "--help"], { ...process.env, AUTOTUNE_HELP_CACHE: "off", AUTOTUNE_CLI_BUNDLE: "off" })
    assert.notStrictEqual(live.code, 0)
    assert.include(live.stderr, "no module may be loaded here")
  }, 120_000)

  it("issue 14 the launcher runs `serve` through the serve-only entry, and through the whole CLI for @effect/cli's built-in flags and every other command", async () => {
    const { at, buildInfo, freshBundle, installed, launch, root, run } = launcherStandIn()
    assert.strictEqual(await run("serve", "--port", "1"), "serve-only 1")
    assert.strictEqual(await run("serve", "--no-join", "--threads", "2"), "serve-only 1")
    // As the tuner starts an embedded candidate, from flags or from a config (llama.cpp's early start first, absent here).
    const spec = { model: "/m/model.gguf", port: 4321, targetContext: 512, replyTokens: 1024, knobs: new Knobs({ kvBits: 8, maxContext: null, maxBatch: 2, threads: 2, flashAttn: true }) }
    for (const adapter of [embedded(null), embedded(null).config!.launchFrom!("/etc/autotune.yaml")]) {
      const argv = adapter.argv(spec, true).args.slice(1)
      assert.strictEqual(await run(...argv), "serve-only 1", argv.join(" "))
    }
    assert.strictEqual(await run("serve", "--model=/nowhere/m.gguf"), "serve-only 1")
    // Built-in flags answer from the whole tree (its help, wizard, completions), still on one pool thread.
    for (const flag of ["--help", "-h", "--version", "--wizard", "--completions", "--completions=bash", "--log-level", "--log-level=debug", "--HELP", "--Completions"]) {
      assert.strictEqual(await run("serve", "--port", "1", flag), "whole 1", flag)
    }
    // Not serve, or serve after a root option: the whole CLI.
    assert.strictEqual(await run("tune", "--port", "1"), "whole undefined")
    assert.strictEqual(await run("--log-level", "debug", "serve"), "whole 1")
    // With the serve bundle (bin/bundle.js) at least as new as the build: the bundle serves, from flags or a
    // config; built-in flags still answer from the whole tree.
    // What it bundled of node_modules (bin/bundle.js): a stand-in node-llama-cpp, as installed. (Compared with the
    // newest of the build info and the serve entry the bundle was made from.)
    const bundle = freshBundle("serve-bundle", "serve.cjs", "serveBin.js", "bundled")
    const builtWith = Path.join(Path.dirname(bundle), "built-with.json")
    assert.strictEqual(await run("serve", "--port", "1"), "bundled 1")
    // As a candidate starts: the bundle's own LlamaBoot is the one started early (the stand-in's writes a mark first).
    for (const adapter of [embedded(null), embedded(null).config!.launchFrom!("/etc/autotune.yaml")]) {
      assert.strictEqual(await run(...adapter.argv(spec, true).args.slice(1)), "early bundled 1")
    }
    assert.strictEqual(await run("serve", "--port", "1", "--help"), "whole 1")
    // Another node-llama-cpp installed since (`npm update` runs no build), or none: the bundle is stale.
    installed("3.0.1")
    assert.strictEqual(await run("serve", "--port", "1"), "serve-only 1")
    fs.rmSync(Path.join(root, "node_modules"), { recursive: true })
    assert.strictEqual(await run("serve", "--port", "1"), "serve-only 1")
    installed("3.0.0")
    assert.strictEqual(await run("serve", "--port", "1"), "bundled 1")
    // A bundle that does not say what it bundled (made before it did) is not used either.
    const said = fs.readFileSync(builtWith)
    fs.rmSync(builtWith)
    assert.strictEqual(await run("serve", "--port", "1"), "serve-only 1")
    // What the build records (bin/bundle.js): each package.json's version with its size, times and inode then. That
    // file, unchanged, is not read again (a version it no longer says still passes); any other is read, and its
    // version decides.
    const manifest = Path.join(root, "node_modules", "node-llama-cpp", "package.json")
    const stamped = (version: string, changed: Partial<{ mtimeMs: number; ctimeMs: number; ino: number }> = {}) => {
      const { ctimeMs, ino, mtimeMs, size } = fs.statSync(manifest)
      fs.writeFileSync(builtWith, JSON.stringify([{ package: "node_modules/node-llama-cpp/package.json", version, size, mtimeMs, ctimeMs, ino, ...changed }]))
    }
    stamped("3.0.0")
    assert.strictEqual(await run("serve", "--port", "1"), "bundled 1")
    stamped("9.9.9")
    assert.strictEqual(await run("serve", "--port", "1"), "bundled 1")
    for (const changed of [{ mtimeMs: fs.statSync(manifest).mtimeMs - 1000 }, { ctimeMs: 1 }, { ino: 1 }]) {
      stamped("9.9.9", changed)
      assert.strictEqual(await run("serve", "--port", "1"), "serve-only 1", JSON.stringify(changed))
      stamped("3.0.0", changed)
      assert.strictEqual(await run("serve", "--port", "1"), "bundled 1", JSON.stringify(changed))
    }
    // An installer that gives every file one fixed time (yarn's 1984 "safe time"): a new version of the same
    // length, its modification time set back to the one recorded, is still read (its change time moved).
    // (A launch between the build's record and the rewrite: the change time has moved on by then on Linux's file
    // systems, whose timestamps are finer than a launch.)
    at(manifest, 1_000_000)
    stamped("3.0.0")
    assert.strictEqual(await run("serve", "--port", "1"), "bundled 1")
    installed("3.0.1")
    at(manifest, 1_000_000)
    assert.strictEqual(fs.statSync(manifest).mtimeMs, (JSON.parse(fs.readFileSync(builtWith, "utf8")) as Array<{ mtimeMs: number }>)[0]!.mtimeMs)
    assert.strictEqual(await run("serve", "--port", "1"), "serve-only 1")
    installed("3.0.0")
    fs.writeFileSync(builtWith, said)
    // Turned off, or one that cannot be loaded (a build replacing it right now): the serve entry from dist/.
    const off = async (...args: Array<string>) => (await launch(args, { AUTOTUNE_SERVE_BUNDLE: "off" })).stdout
    assert.strictEqual(await off("serve", "--port", "1"), "serve-only 1")
    const good = fs.readFileSync(bundle)
    fs.writeFileSync(bundle, `require("./chunk-gone.cjs")\n`)
    at(bundle, 1_000_000)
    const unloadable = await launch(["serve", "--port", "1"])
    assert.strictEqual(unloadable.stdout, "serve-only 1")
    assert.match(unloadable.stderr, /^autotune: the serve bundle could not be loaded \(.*chunk-gone\.cjs.*\); serving from dist\/$/m)
    // As a candidate starts (the bundle's LlamaBoot first, which cannot load either; dist/'s absent here): the same.
    assert.strictEqual(await run("serve", "--model", "/m/model.gguf"), "serve-only 1")
    fs.writeFileSync(bundle, good)
    // Without build info, the bundle is compared with the serve entry it was made from.
    fs.rmSync(buildInfo)
    at(Path.join(root, "dist", "serveBin.js"), 1_000_000)
    at(bundle, 1_000_000)
    assert.strictEqual(await run("serve", "--port", "1"), "bundled 1")
    at(Path.join(root, "dist", "serveBin.js"), 1_000_001)
    assert.strictEqual(await run("serve", "--port", "1"), "serve-only 1")
    // A build newer than the bundle (a bare tsc since): the bundle is stale and not used; so is one older than
    // the serve entry though newer than the build info (an emit that left the build info alone).
    fs.writeFileSync(buildInfo, "")
    at(buildInfo, 1_000_001)
    at(Path.join(root, "dist", "serveBin.js"), 1_000_000)
    assert.strictEqual(await run("serve", "--port", "1"), "serve-only 1")
    at(buildInfo, 999_999)
    at(Path.join(root, "dist", "serveBin.js"), 1_000_001)
    assert.strictEqual(await run("serve", "--port", "1"), "serve-only 1")
    at(Path.join(root, "dist", "serveBin.js"), 999_999)
    assert.strictEqual(await run("serve", "--port", "1"), "bundled 1")
    // A dist/ built before the serve entry existed: the whole CLI serves.
    fs.rmSync(Path.join(root, "dist", "serveBin.js"))
    assert.strictEqual(await run("serve", "--port", "1"), "whole 1")
  })

  it("issue 14 the build bundles the whole CLI with node-llama-cpp inside and better-sqlite3 outside; the launcher runs a tune's commands from it", async () => {
    // The bundle the test setup's build made (this fails where esbuild could not run: the build only notes it).
    const bundle = Path.join(repoRoot, "dist", "cli-bundle")
    assert.isAtLeast(fs.statSync(Path.join(bundle, "cli.cjs")).mtimeMs, fs.statSync(Path.join(repoRoot, "dist", ".tsbuildinfo")).mtimeMs)
    const inputs = Object.keys((JSON.parse(fs.readFileSync(Path.join(bundle, "meta.json"), "utf8")) as { inputs: Record<string, unknown> }).inputs)
    assert.includeMembers(inputs, ["dist/bin.js", "dist/Pipeline.js", "dist/gguf/MemoryEstimate.js", "node_modules/node-llama-cpp/dist/index.js"],
      "node-llama-cpp is not in the CLI bundle: see what `npm run build` noted")
    assert.deepStrictEqual(inputs.filter((i) => i.includes("better-sqlite3")), [])
    // Under an import hook that refuses dist/'s own modules and node-llama-cpp from node_modules, a command that
    // opens the SQLite database, and one that estimates a model's memory (node-llama-cpp loaded), still answer.
    const { NODE_OPTIONS: _o, ...env } = process.env
    const hook = ["--import", Path.join(repoRoot, "test", "support", "onlyCliBundle.mjs")]
    const dir = tempDir()
    const model = tinyModelPath()
    const tune = await node([
      ...hook, Path.join(repoRoot, "bin", "autotune.js"), "tune", "--candidate-models", model, "--target-context", "128", "--max-tokens", "8",
      "--stage1-replicates", "1", "--stage2-replicates", "1", "--threads-axis", "1", "--kv-bits-axis", "unset", "--db-path", Path.join(dir, "tune.db"),
      "--json"
    ], env)
    assert.strictEqual(tune.code, 0, tune.stderr)
    assert.notInclude(tune.stderr, "not from the CLI bundle")
    assert.include(tune.stderr, "[stage 1] #1")
    // Its memory estimates were made through the bundled node-llama-cpp (a failed one says so and measures instead).
    assert.notInclude(tune.stderr, "no memory estimate")
    const history = await node([...hook, Path.join(repoRoot, "bin", "autotune.js"), "history", "--db-path", Path.join(dir, "tune.db")], env)
    assert.strictEqual(history.code, 0, history.stderr)
    assert.notInclude(history.stderr, "not from the CLI bundle")
    assert.include(history.stdout, "15M")
    // From dist/ (an install from a packed tarball has no bundle, nor does a build without esbuild): the same tune,
    // its candidates served from dist/ too.
    const fromDist = await node([
      Path.join(repoRoot, "bin", "autotune.js"), "tune", "--candidate-models", model, "--target-context", "128", "--max-tokens", "8",
      "--stage1-replicates", "1", "--stage2-replicates", "1", "--threads-axis", "1", "--kv-bits-axis", "unset", "--db-path", Path.join(dir, "dist.db"),
      "--json"
    ], { ...env, AUTOTUNE_CLI_BUNDLE: "off", AUTOTUNE_SERVE_BUNDLE: "off" })
    assert.strictEqual(fromDist.code, 0, fromDist.stderr)
    assert.include(fromDist.stderr, "[stage 1] #1")
    assert.notInclude(fromDist.stderr, "no memory estimate")
    // The same hook refuses the CLI from dist/ (the hook can fail).
    const off = await node([...hook, Path.join(repoRoot, "bin", "autotune.js"), "history", "--db-path", Path.join(dir, "tune.db")], { ...env, AUTOTUNE_CLI_BUNDLE: "off" })
    assert.notStrictEqual(off.code, 0)
    assert.include(off.stderr, "not from the CLI bundle")
  }, 120_000)

  it("issue 14 the launcher runs every other command through the CLI bundle while it is as new as the build and bundled the installed node-llama-cpp; else, turned off or unloadable, from dist/", async () => {
    // A stand-in package: the real launcher over a dist/ whose entries and CLI bundle say which one answered.
    const { at, buildInfo, freshBundle, installed, launch, root, run } = launcherStandIn()
    const bundle = freshBundle("cli-bundle", "cli.cjs", "bin.js", "cli-bundled")
    const builtWith = Path.join(Path.dirname(bundle), "built-with.json")
    assert.strictEqual(await run("tune", "--port", "1"), "cli-bundled undefined")
    assert.strictEqual(await run("history"), "cli-bundled undefined")
    // serve with a built-in flag, or after a root option: the whole CLI, bundled, on one pool thread; serve alone: its own entry.
    assert.strictEqual(await run("serve", "--port", "1", "--help"), "cli-bundled 1")
    assert.strictEqual(await run("--log-level", "debug", "serve"), "cli-bundled 1")
    assert.strictEqual(await run("serve", "--port", "1"), "serve-only 1")
    // Through the whole CLI with a model, llama.cpp is started early from the CLI bundle's own LlamaBoot (the one its engine uses).
    assert.strictEqual(await run("--log-level", "debug", "serve", "--model", "/m/model.gguf"), "early cli-bundled 1")
    // Turned off: dist/.
    assert.strictEqual((await launch(["tune"], { AUTOTUNE_CLI_BUNDLE: "off" })).stdout, "whole undefined")
    // Another version of any package it bundled installed since (`npm update` runs no build), or none: stale.
    const effect = Path.join(root, "node_modules", "effect")
    fs.mkdirSync(effect, { recursive: true })
    fs.writeFileSync(Path.join(effect, "package.json"), JSON.stringify({ name: "effect", version: "3.1.0" }))
    fs.writeFileSync(builtWith, JSON.stringify([
      { package: "node_modules/effect/package.json", version: "3.1.0" },
      { package: "node_modules/node-llama-cpp/package.json", version: "3.0.0" }
    ]))
    assert.strictEqual(await run("tune"), "cli-bundled undefined")
    fs.writeFileSync(Path.join(effect, "package.json"), JSON.stringify({ name: "effect", version: "3.2.0" }))
    assert.strictEqual(await run("tune"), "whole undefined")
    fs.writeFileSync(Path.join(effect, "package.json"), JSON.stringify({ name: "effect", version: "3.1.0" }))
    installed("3.0.1")
    assert.strictEqual(await run("tune"), "whole undefined")
    fs.rmSync(Path.join(root, "node_modules", "node-llama-cpp"), { recursive: true })
    assert.strictEqual(await run("tune"), "whole undefined")
    installed("3.0.0")
    assert.strictEqual(await run("tune"), "cli-bundled undefined")
    // A build newer than the bundle (a bare tsc since), or an entry newer than it: stale.
    at(buildInfo, 1_000_001)
    assert.strictEqual(await run("tune"), "whole undefined")
    at(buildInfo, 1_000_000)
    at(Path.join(root, "dist", "bin.js"), 1_000_001)
    assert.strictEqual(await run("tune"), "whole undefined")
    at(Path.join(root, "dist", "bin.js"), 1_000_000)
    assert.strictEqual(await run("tune"), "cli-bundled undefined")
    // One that cannot be loaded (a build replacing it right now): the CLI from dist/, said.
    fs.writeFileSync(bundle, `require("./chunk-gone.cjs")\n`)
    at(bundle, 1_000_000)
    const unloadable = await launch(["tune"])
    assert.strictEqual(unloadable.stdout, "whole undefined")
    assert.match(unloadable.stderr, /^autotune: the CLI bundle could not be loaded \(.*chunk-gone\.cjs.*\); running from dist\/$/m)
  })

  it("issue 14 `autotune serve` through its own entry answers bad input as the whole CLI does: the same exit code and stderr", async () => {
    const cases = [[], ["--flash-attn", "maybe"], ["--stream-interval-ms", "1001"], ["--bogus"], ["--port", "0"], ["--kv-bits", "8", "--flash-attn", "off", "--model", "/nowhere/m.gguf"]]
    for (const args of cases) {
      const [alone, whole] = await Promise.all([
        node([Path.join(repoRoot, "bin", "autotune.js"), "serve", ...args]),
        node([Path.join(repoRoot, "dist", "bin.js"), "serve", ...args])
      ])
      assert.strictEqual(alone.code, 64, `${args.join(" ")}: ${alone.stderr}`)
      assert.deepStrictEqual({ code: alone.code, stdout: alone.stdout, stderr: alone.stderr }, { code: whole.code, stdout: whole.stdout, stderr: whole.stderr }, args.join(" "))
    }
  })

  it("issue 14 a kept answer older than a compiled file is not printed: the CLI answers (a build not run after tsc)", async () => {
    // A stand-in package: the real launcher over a dist/ whose CLI says which one answered.
    const root = tempDir()
    fs.mkdirSync(Path.join(root, "bin"))
    for (const f of ["autotune.js", "bundle-load.js", "bundle-use.js", "help-cache.js", "package.json"]) fs.copyFileSync(Path.join(repoRoot, "bin", f), Path.join(root, "bin", f))
    const dist = Path.join(root, "dist")
    fs.mkdirSync(Path.join(dist, "help"), { recursive: true })
    fs.writeFileSync(Path.join(dist, "bin.js"), "process.stdout.write(\"live \" + process.argv.slice(2).join(\" \"))\n")
    fs.writeFileSync(Path.join(dist, "help", "help.txt"), "kept help")
    fs.writeFileSync(Path.join(dist, "help", "version.txt"), "kept version")
    // The versions the answers were made under: this package's and @effect/cli's.
    fs.writeFileSync(Path.join(root, "package.json"), JSON.stringify({ name: "stand-in", version: "9.9.9" }))
    for (const [name, version] of [["cli", "1.2.3"], ["printer", "4.5.6"], ["printer-ansi", "7.8.9"]]) {
      fs.mkdirSync(Path.join(root, "node_modules", "@effect", name!), { recursive: true })
      fs.writeFileSync(Path.join(root, "node_modules", "@effect", name!, "package.json"), JSON.stringify({ name: `@effect/${name}`, version }))
    }
    fs.writeFileSync(Path.join(dist, "help", "stamp"), "llm-autotune 9.9.9, @effect/cli 1.2.3, @effect/printer 4.5.6, @effect/printer-ansi 7.8.9")
    const at = (file: string, s: number) => fs.utimesSync(file, s, s)
    const t = Math.floor(Date.now() / 1000) - 100
    at(Path.join(dist, "bin.js"), t)
    at(Path.join(dist, "help", "help.txt"), t + 10)
    at(Path.join(dist, "help", "version.txt"), t + 10)
    const run = async (...args: Array<string>) => (await node([Path.join(root, "bin", "autotune.js"), ...args])).stdout
    assert.strictEqual(await run("--help"), "kept help")
    assert.strictEqual(await run("-h"), "kept help")
    // Only exact help and version requests are answered from the cache.
    assert.strictEqual(await run("--help", "--log-level", "info"), "live --help --log-level info")
    assert.strictEqual(await run("tune", "--help"), "live tune --help") // no entry kept for it
    // A new version (`npm version`, whose build compiles nothing new) or another @effect/cli: the CLI answers.
    fs.writeFileSync(Path.join(root, "package.json"), JSON.stringify({ name: "stand-in", version: "9.9.10" }))
    assert.strictEqual(await run("--version"), "live --version")
    fs.writeFileSync(Path.join(root, "package.json"), JSON.stringify({ name: "stand-in", version: "9.9.9" }))
    assert.strictEqual(await run("--version"), "kept version")
    // A compiled file newer than the kept answers (tsc run without the build script): the CLI answers.
    fs.mkdirSync(Path.join(dist, "cli"))
    fs.writeFileSync(Path.join(dist, "cli", "TuneCommand.js"), "")
    at(Path.join(dist, "cli", "TuneCommand.js"), t + 20)
    assert.strictEqual(await run("--version"), "live --version")
    assert.strictEqual(await run("--help"), "live --help")
  })
})
