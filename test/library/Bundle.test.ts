/**
 * bin/bundle.js on stand-in packages (issue 14 parts 3 and 4): node-llama-cpp goes into the serve
 * and CLI bundles when its binary test passes at build time, each of its modules (and each of this
 * package's compiled ones) still finding its own files, and its per-start test answered without a
 * fork; when that test fails, it stays outside. better-sqlite3 stays outside the CLI bundle.
 * A fake node-llama-cpp stands in (the real bundles are checked by test/serve/Serve.test.ts and
 * test/library/Package.test.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import { repoRoot } from "../support/models.js"
import { tempDir } from "../support/cli.js"

const node = (cwd: string, env: Record<string, string>, args: ReadonlyArray<string>) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, [...args], { cwd, timeout: 60_000, env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : null, stdout, stderr })))

/**
 * A package with the real bundler, esbuild linked in, a serve entry that reports what node-llama-cpp
 * did, and a fake node-llama-cpp whose `getLlama` passes or fails (`passes`), whose `where` is its own
 * module's file path (from `import.meta.url`), and whose binary test says it forked.
 */
const standIn = (passes: boolean, nestedBinary = false, cli = false) => {
  const root = tempDir()
  fs.mkdirSync(Path.join(root, "bin"))
  for (const f of ["bundle.js", "bundle-load.js", "package.json"]) fs.copyFileSync(Path.join(repoRoot, "bin", f), Path.join(root, "bin", f))
  fs.writeFileSync(Path.join(root, "package.json"), JSON.stringify({ name: "stand-in", version: "9.9.9", type: "module" }))
  const modules = Path.join(root, "node_modules")
  fs.mkdirSync(modules)
  fs.symlinkSync(fs.realpathSync(Path.join(repoRoot, "node_modules", "esbuild")), Path.join(modules, "esbuild"))
  const nlc = Path.join(modules, "node-llama-cpp")
  fs.mkdirSync(Path.join(nlc, "dist", "bindings", "utils"), { recursive: true })
  fs.writeFileSync(Path.join(nlc, "package.json"), JSON.stringify({
    name: "node-llama-cpp",
    version: "0.0.0",
    type: "module",
    exports: { ".": "./dist/index.js" }
  }))
  if (nestedBinary) {
    // Its prebuilt binary package where only it resolves it (a nested or pnpm layout), as node-llama-cpp imports it.
    const bin = Path.join(nlc, "node_modules", "@node-llama-cpp", "linux-x64")
    fs.mkdirSync(bin, { recursive: true })
    fs.writeFileSync(Path.join(bin, "package.json"), JSON.stringify({ name: "@node-llama-cpp/linux-x64", type: "module", exports: { ".": "./index.js" } }))
    fs.writeFileSync(Path.join(bin, "index.js"), `export const binary = "found"\n`)
  }
  // Its one top-level await, as node-llama-cpp 3.22.1 reads its llama.cpp release (the build makes it a synchronous read).
  fs.writeFileSync(Path.join(nlc, "release.json"), JSON.stringify({ release: "b1234" }))
  fs.writeFileSync(Path.join(nlc, "dist", "bindings", "utils", "binariesGithubRelease.js"), [
    `import fs from "node:fs"`,
    `const binariesGithubReleasePath = new URL("../../../release.json", import.meta.url)`,
    `export async function getBinariesGithubRelease() { return JSON.parse(await fs.promises.readFile(binariesGithubReleasePath, "utf8")).release }`,
    `export const builtinLlamaCppRelease = await getBinariesGithubRelease();`
  ].join("\n"))
  fs.writeFileSync(Path.join(nlc, "dist", "index.js"), [
    `import { fileURLToPath } from "node:url"`,
    `import { testBindingBinary } from "./bindings/utils/testBindingBinary.js"`,
    `import { builtinLlamaCppRelease } from "./bindings/utils/binariesGithubRelease.js"`,
    `export const LlamaLogLevel = { error: "error" }`,
    `export const where = () => fileURLToPath(import.meta.url)`,
    `export const release = builtinLlamaCppRelease`,
    `export const getLlama = async () => {`,
    nestedBinary ? `  await import("@node-llama-cpp/linux-x64")` : ``,
    passes ? `  return { tested: await testBindingBinary(), dispose: async () => {} }` : `  throw new Error("no binary for this machine")`,
    `}`
  ].join("\n"))
  fs.writeFileSync(Path.join(nlc, "dist", "bindings", "utils", "testBindingBinary.js"), `export async function testBindingBinary() { return "forked" }\n`)
  fs.mkdirSync(Path.join(root, "dist", "serve"), { recursive: true })
  // As src/serve/LlamaBoot.ts: `bootLlama` starts llama.cpp (the build starts it through the bundle's own).
  fs.writeFileSync(Path.join(root, "dist", "serve", "LlamaBoot.js"), [
    `export const startLlama = async () => {}`,
    `export const bootLlama = async () => ({ llama: (await import("node-llama-cpp")).getLlama(), earlyLog: [] })`
  ].join("\n"))
  // (No top-level await in an entry: a CommonJS bundle holds none.)
  // (STANDIN_TOUCH: a file it dates 5 s later as it runs, as a rebuild or an edit would change the bundle meanwhile.)
  fs.writeFileSync(Path.join(root, "dist", "serveBin.js"), [
    `import * as fs from "node:fs"`,
    `import { bootLlama } from "./serve/LlamaBoot.js"`,
    `import("node-llama-cpp").then(async (m) => {`,
    `  const llama = await (await bootLlama()).llama.catch((e) => ({ tested: e.message }))`,
    `  const touch = process.env.STANDIN_TOUCH`,
    `  if (touch !== undefined) fs.utimesSync(touch, Date.now() / 1000 + 5, Date.now() / 1000 + 5)`,
    `  process.stdout.write(JSON.stringify({ where: m.where(), tested: llama.tested, release: m.release }))`,
    `})`
  ].join("\n"))
  if (cli) {
    // The whole CLI's entry (as src/bin.ts): one of this package's modules that finds its place from import.meta.url
    // (as src/providers/Embedded.ts finds bin/autotune.js), and better-sqlite3, a CommonJS package that finds its
    // native binary from its own file (here: says which file it is).
    fs.mkdirSync(Path.join(root, "dist", "providers"))
    fs.writeFileSync(Path.join(root, "dist", "providers", "Own.js"), [
      `import { fileURLToPath } from "node:url"`,
      `export const own = () => fileURLToPath(import.meta.url)`,
      // Strict, as every ES module: no \`this\` in a plain call.
      `export const strict = (function () { return this })() === undefined`
    ].join("\n"))
    const sqlite = Path.join(modules, "better-sqlite3")
    fs.mkdirSync(sqlite)
    fs.writeFileSync(Path.join(sqlite, "package.json"), JSON.stringify({ name: "better-sqlite3", main: "index.js" }))
    fs.writeFileSync(Path.join(sqlite, "index.js"), `module.exports = { where: __filename }\n`)
    // A dependency bundled like Effect: named, with its version, in what the bundle was made with.
    const dep = Path.join(modules, "@scope", "dep")
    fs.mkdirSync(dep, { recursive: true })
    fs.writeFileSync(Path.join(dep, "package.json"), JSON.stringify({ name: "@scope/dep", version: "1.2.3", type: "module", exports: { ".": "./index.js" } }))
    // It imports a package left outside by import(), as ipull imports @reflink/reflink: routed through the bundle's import.cjs.
    // And its import.meta.url is the bundle's, as in an ES module bundle (not left empty).
    fs.writeFileSync(Path.join(dep, "index.js"), [
      `export const dep = "dep"`,
      `export const later = () => import("better-sqlite3")`,
      `export const url = import.meta.url`
    ].join("\n"))
    fs.writeFileSync(Path.join(root, "dist", "bin.js"), [
      `import { bootLlama } from "./serve/LlamaBoot.js"`,
      `import { own, strict } from "./providers/Own.js"`,
      `import sqlite from "better-sqlite3"`,
      `import { dep, later, url } from "@scope/dep"`,
      `import("node-llama-cpp").then(async (m) => {`,
      `  const llama = await (await bootLlama()).llama.catch((e) => ({ tested: e.message }))`,
      `  const lazily = (await later()).default.where`,
      `  process.stdout.write(JSON.stringify({ where: m.where(), tested: llama.tested, own: own(), strict, sqlite: sqlite.where, lazily, dep, url }))`,
      `})`
    ].join("\n"))
  }
  return { root, nlcIndex: Path.join(nlc, "dist", "index.js") }
}

/** Runs bundle dist/<dir>/<file> of the package at `root` as the launcher does (bin/bundle-load.js); what it printed, and its code cache's fate. */
const runBundle = (root: string, dir: string, file: string, env: Record<string, string> = {}) =>
  node(root, env, ["-e", `const r = require(${JSON.stringify(Path.join(root, "bin", "bundle-load.js"))}).loadBundle(${
    JSON.stringify(Path.join(root, "dist", dir, file))}); process.stderr.write("cache " + r.cache + "\\n"); r.exports.run()`])

const inputsOf = (root: string) =>
  Object.keys((JSON.parse(fs.readFileSync(Path.join(root, "dist", "serve-bundle", "meta.json"), "utf8")) as { inputs: Record<string, unknown> }).inputs)

/** The size, times (ms) and inode of package `name`'s package.json under `root`, as the build records them beside its version. */
const stampOf = (root: string, name: string) => {
  const { ctimeMs, ino, mtimeMs, size } = fs.statSync(Path.join(root, "node_modules", name, "package.json"))
  return { size, mtimeMs, ctimeMs, ino }
}

const builtWithOf = (root: string) => JSON.parse(fs.readFileSync(Path.join(root, "dist", "serve-bundle", "built-with.json"), "utf8"))

/** Asserts the bundle holds no node-llama-cpp (no input of it, none recorded as bundled); what its serve entry printed. */
const servedWithNodeLlamaCppOutside = async (root: string) => {
  assert.deepStrictEqual(inputsOf(root).filter((i) => i.includes("node-llama-cpp")), [])
  assert.deepStrictEqual(builtWithOf(root), [])
  const served = await runBundle(root, "serve-bundle", "serve.cjs")
  return JSON.parse(served.stdout) as unknown
}

describe("the bundles' build (issue 14 parts 3 and 4)", () => {
  it("issue 14 node-llama-cpp passing its binary test at build time is bundled: its modules find their own files, its test answers without a fork, its top-level await is a read; the bundle runs with the build's code cache", async () => {
    const { nlcIndex, root } = standIn(true)
    const built = await node(root, {}, [Path.join(root, "bin", "bundle.js")])
    assert.strictEqual(built.code, 0, built.stderr)
    assert.strictEqual(built.stderr, "")
    assert.include(inputsOf(root), "node_modules/node-llama-cpp/dist/index.js")
    // What it bundled, for the launcher to compare with what is installed (bin/autotune.js).
    assert.deepStrictEqual(builtWithOf(root), [{ package: "node_modules/node-llama-cpp/package.json", version: "0.0.0", ...stampOf(root, "node-llama-cpp") }])
    // One CommonJS file (its digest first), its V8 code cache (written by running it once, named by that digest,
    // the file's size and time, and V8's tag for this Node and its flags) and its importer of what it leaves outside.
    const folder = Path.join(root, "dist", "serve-bundle")
    const caches = () => fs.readdirSync(folder).filter((f) => f.startsWith("serve.cjs.")).sort()
    assert.deepStrictEqual(fs.readdirSync(folder).filter((f) => !f.startsWith("serve.cjs.")).sort(), ["built-with.json", "import.cjs", "meta.json", "serve.cjs"])
    assert.strictEqual(caches().length, 1)
    assert.match(caches()[0]!, /^serve\.cjs\.[0-9a-f]{16}-\d+-\d+-\d+\.cache$/)
    const bundle = Path.join(folder, "serve.cjs")
    assert.match(fs.readFileSync(bundle, "utf8"), /^\/\/ llm-autotune bundle [0-9a-f]{16}\n"use strict";\n/)
    const served = await runBundle(root, "serve-bundle", "serve.cjs")
    assert.strictEqual(served.code, 0, served.stderr)
    assert.strictEqual(served.stderr, "cache used\n")
    // Its own file, not the bundle's; the release its top-level await read.
    assert.deepStrictEqual(JSON.parse(served.stdout), { where: nlcIndex, tested: true, release: "b1234" })
    // Other V8 flags: V8 would not take that cache; one of their own is made as the process exits, and the first stays.
    const flags = { NODE_OPTIONS: "--max-old-space-size=600" }
    assert.strictEqual((await runBundle(root, "serve-bundle", "serve.cjs", flags)).stderr, "cache none\n")
    assert.strictEqual((await runBundle(root, "serve-bundle", "serve.cjs", flags)).stderr, "cache used\n")
    assert.strictEqual(caches().length, 2, caches().join(" "))
    assert.strictEqual((await runBundle(root, "serve-bundle", "serve.cjs")).stderr, "cache used\n")
    // A bundle edited since its caches were made, to the same length (V8 checks only that): compiled afresh, the
    // edit runs, and a cache made for it as the process exits replaces those of the old version.
    const text = fs.readFileSync(bundle, "utf8")
    assert.include(text, "return true")
    fs.writeFileSync(bundle, text.replace("return true", `return "ok"`))
    const edited = await runBundle(root, "serve-bundle", "serve.cjs")
    assert.strictEqual(edited.stderr, "cache none\n")
    assert.deepStrictEqual(JSON.parse(edited.stdout), { where: nlcIndex, tested: "ok", release: "b1234" })
    assert.strictEqual((await runBundle(root, "serve-bundle", "serve.cjs")).stderr, "cache used\n")
    assert.strictEqual(caches().length, 1, caches().join(" "))
    // A cache V8 does not take (a damaged file): compiled afresh, the same answer, and replaced.
    fs.writeFileSync(Path.join(folder, caches()[0]!), "not a code cache")
    const rejected = await runBundle(root, "serve-bundle", "serve.cjs")
    assert.strictEqual(rejected.stderr, "cache rejected\n")
    assert.deepStrictEqual(JSON.parse(rejected.stdout), { where: nlcIndex, tested: "ok", release: "b1234" })
    assert.strictEqual((await runBundle(root, "serve-bundle", "serve.cjs")).stderr, "cache used\n")
    fs.writeFileSync(bundle, text)
    assert.strictEqual((await runBundle(root, "serve-bundle", "serve.cjs")).stderr, "cache none\n")
    // The digest first in the bundle is the build's of the rest of it; another bundle of the same size and
    // time (a reproducible build's fixed timestamps) but another digest does not take this one's cache.
    const digest = (t: string) => createHash("sha256").update(t.slice(t.indexOf("\n") + 1)).digest("hex").slice(0, 16)
    assert.strictEqual(text.slice(0, text.indexOf("\n")), `// llm-autotune bundle ${digest(text)}`)
    fs.utimesSync(bundle, 1_000_000, 1_000_000)
    assert.strictEqual((await runBundle(root, "serve-bundle", "serve.cjs")).stderr, "cache none\n")
    assert.strictEqual((await runBundle(root, "serve-bundle", "serve.cjs")).stderr, "cache used\n")
    const other = text.replace(/^\/\/ llm-autotune bundle [0-9a-f]{16}/, `// llm-autotune bundle ${digest(text) === "0".repeat(16) ? "1".repeat(16) : "0".repeat(16)}`)
    assert.strictEqual(other.length, text.length)
    fs.writeFileSync(bundle, other)
    fs.utimesSync(bundle, 1_000_000, 1_000_000)
    assert.strictEqual((await runBundle(root, "serve-bundle", "serve.cjs")).stderr, "cache none\n")
    fs.writeFileSync(bundle, text)
    assert.strictEqual((await runBundle(root, "serve-bundle", "serve.cjs")).stderr, "cache none\n")
    // Moved with the package: its cache still its own, and each module's file its own.
    const moved = `${root}-moved`
    fs.renameSync(root, moved)
    const again = await runBundle(moved, "serve-bundle", "serve.cjs")
    assert.strictEqual(again.stderr, "cache used\n")
    assert.deepStrictEqual(JSON.parse(again.stdout), { where: nlcIndex.replace(root, moved), tested: true, release: "b1234" })
    fs.rmSync(moved, { recursive: true, force: true })
  })

  it("issue 14 a bundle keeps the 3 most recently used code caches of its version (one per set of V8 flags), none of another version, no write left unfinished over 10 minutes ago, and none from a process that ran it while it changed", async () => {
    const { root } = standIn(true)
    const built = await node(root, {}, [Path.join(root, "bin", "bundle.js")])
    assert.strictEqual(built.code, 0, built.stderr)
    const folder = Path.join(root, "dist", "serve-bundle")
    const [made] = fs.readdirSync(folder).filter((f) => f.endsWith(".cache"))
    const version = made!.slice("serve.cjs.".length).replace(/-\d+\.cache$/, "")
    // Three of this version for other flags, used long ago; one of another version; writes left by processes
    // killed as they wrote, one an hour ago, one just now (another process may be writing it).
    const old = Date.now() / 1000 - 3600
    const seed = (name: string, at?: number) => {
      fs.writeFileSync(Path.join(folder, name), "x")
      if (at !== undefined) fs.utimesSync(Path.join(folder, name), at, at)
    }
    for (const tag of [1, 2, 3]) seed(`serve.cjs.${version}-${tag}.cache`, old + tag)
    seed("serve.cjs.0000000000000000-1-1-7.cache")
    seed(`serve.cjs.${version}-9.cache.1-1-a.part`, old)
    seed(`serve.cjs.${version}-9.cache.2-2-b.part`)
    // The build's cache used now (it stays the newest of the old ones); then a start under other flags writes its own.
    assert.strictEqual((await runBundle(root, "serve-bundle", "serve.cjs")).stderr, "cache used\n")
    assert.strictEqual((await runBundle(root, "serve-bundle", "serve.cjs", { NODE_OPTIONS: "--max-old-space-size=600" })).stderr, "cache none\n")
    const left = fs.readdirSync(folder).filter((f) => f.startsWith("serve.cjs.")).sort()
    const caches = left.filter((f) => f.endsWith(".cache"))
    assert.strictEqual(caches.length, 3, left.join(" "))
    assert.include(caches, made)
    assert.include(caches, `serve.cjs.${version}-3.cache`)
    assert.isTrue(caches.every((f) => f.startsWith(`serve.cjs.${version}-`)), left.join(" "))
    assert.deepStrictEqual(left.filter((f) => f.endsWith(".part")), [`serve.cjs.${version}-9.cache.2-2-b.part`])
    assert.strictEqual((await runBundle(root, "serve-bundle", "serve.cjs", { NODE_OPTIONS: "--max-old-space-size=600" })).stderr, "cache used\n")
    // A bundle changed while a process ran it (a rebuild, an edit): that process writes no cache at its exit
    // (it would be named for a bundle no longer there).
    for (const f of fs.readdirSync(folder).filter((x) => x.startsWith("serve.cjs."))) fs.rmSync(Path.join(folder, f))
    const touched = await runBundle(root, "serve-bundle", "serve.cjs", { STANDIN_TOUCH: Path.join(folder, "serve.cjs") })
    assert.strictEqual(touched.stderr, "cache none\n")
    assert.strictEqual(JSON.parse(touched.stdout).tested, true)
    assert.deepStrictEqual(fs.readdirSync(folder).filter((x) => x.startsWith("serve.cjs.")), [])
    // Unchanged: it writes one.
    assert.strictEqual((await runBundle(root, "serve-bundle", "serve.cjs")).stderr, "cache none\n")
    assert.strictEqual(fs.readdirSync(folder).filter((x) => x.startsWith("serve.cjs.")).length, 1)
    fs.rmSync(root, { recursive: true, force: true })
  })

  it("issue 14 the whole CLI is bundled beside serve: node-llama-cpp inside, tested at build time; this package's modules find their own files; better-sqlite3 stays outside", async () => {
    const { nlcIndex, root } = standIn(true, false, true)
    const built = await node(root, {}, [Path.join(root, "bin", "bundle.js")])
    assert.strictEqual(built.code, 0, built.stderr)
    assert.strictEqual(built.stderr, "")
    assert.deepStrictEqual(fs.readdirSync(Path.join(root, "dist")).sort(), ["bin.js", "cli-bundle", "providers", "serve", "serve-bundle", "serveBin.js"])
    const inputs = Object.keys((JSON.parse(fs.readFileSync(Path.join(root, "dist", "cli-bundle", "meta.json"), "utf8")) as { inputs: Record<string, unknown> }).inputs)
    assert.includeMembers(inputs, ["dist/bin.js", "dist/providers/Own.js", "node_modules/node-llama-cpp/dist/index.js"])
    assert.deepStrictEqual(inputs.filter((i) => i.includes("better-sqlite3")), [])
    // Every package it holds from node_modules, with the version bundled (the launcher compares them with what is installed).
    assert.deepStrictEqual(JSON.parse(fs.readFileSync(Path.join(root, "dist", "cli-bundle", "built-with.json"), "utf8")), [
      { package: "node_modules/@scope/dep/package.json", version: "1.2.3", ...stampOf(root, "@scope/dep") },
      { package: "node_modules/node-llama-cpp/package.json", version: "0.0.0", ...stampOf(root, "node-llama-cpp") }
    ])
    const expected = (r: string) => ({
      where: nlcIndex.replace(root, r),
      tested: true,
      own: Path.join(r, "dist", "providers", "Own.js"),
      sqlite: Path.join(r, "node_modules", "better-sqlite3", "index.js"),
      strict: true,
      lazily: Path.join(r, "node_modules", "better-sqlite3", "index.js"),
      dep: "dep",
      url: pathToFileURL(Path.join(r, "dist", "cli-bundle", "cli.cjs")).href
    })
    const ran = await runBundle(root, "cli-bundle", "cli.cjs")
    assert.strictEqual(ran.code, 0, ran.stderr)
    assert.deepStrictEqual(JSON.parse(ran.stdout), expected(root))
    // Moved with the package: still their own files.
    const moved = `${root}-moved`
    fs.renameSync(root, moved)
    const again = await runBundle(moved, "cli-bundle", "cli.cjs")
    assert.deepStrictEqual(JSON.parse(again.stdout), expected(moved))
    fs.rmSync(moved, { recursive: true, force: true })
  })

  it("issue 14 node-llama-cpp finding its files by another way than import.meta.url, with a top-level await the build does not know, or with its binary package only in its own folder, stays outside the bundle, said", async () => {
    const cases = [
      {
        standIn: () => {
          const s = standIn(true)
          fs.appendFileSync(s.nlcIndex, `\nexport const dir = () => import.meta.dirname\n`)
          return s
        },
        why: /index\.js finds its files by import\.meta\.dirname, which a bundle would change/
      },
      // A top-level await other than the one read it makes synchronous: a CommonJS bundle cannot hold it.
      {
        standIn: () => {
          const s = standIn(true)
          fs.appendFileSync(s.nlcIndex, `\nexport const later = await Promise.resolve(1)\n`)
          return s
        },
        why: /Top-level await is currently not supported with the "cjs" output format/
      },
      // A nested (or pnpm) layout: the bundled copy, resolving from the bundle's folder, would not find it.
      { standIn: () => standIn(true, true), why: /llama\.cpp does not start through the bundle: .*@node-llama-cpp\/linux-x64/ }
    ]
    for (const c of cases) {
      const { nlcIndex, root } = c.standIn()
      const built = await node(root, {}, [Path.join(root, "bin", "bundle.js")])
      assert.strictEqual(built.code, 0, built.stderr)
      assert.match(built.stderr, /^note: the serve bundle leaves node-llama-cpp outside \(it tests at every start\): /m)
      assert.match(built.stderr, c.why, built.stderr)
      // And that bundle serves, with node-llama-cpp's own test.
      assert.deepStrictEqual(await servedWithNodeLlamaCppOutside(root), { where: nlcIndex, tested: "forked", release: "b1234" })
      assert.deepStrictEqual(fs.readdirSync(Path.join(root, "dist")).sort(), ["serve", "serve-bundle", "serveBin.js"])
      fs.rmSync(root, { recursive: true, force: true })
    }
  })

  it("issue 14 node-llama-cpp that falls back from the binary it tried first stays outside the bundles, said: the bundled test, which always passes, would load that one", async () => {
    const { nlcIndex, root } = standIn(true)
    // As node-llama-cpp 3.22.1 says when a local build fails its test and the prebuilt binary loads instead.
    fs.appendFileSync(nlcIndex, `\nconsole.warn("[node-llama-cpp] The local build binary was not built in the current system and is incompatible with it")\nconsole.warn("[node-llama-cpp] Falling back to prebuilt binaries")\n`)
    const built = await node(root, {}, [Path.join(root, "bin", "bundle.js")])
    assert.strictEqual(built.code, 0, built.stderr)
    assert.match(built.stderr, /^note: node-llama-cpp's binary test failed here, so the bundles leave node-llama-cpp outside \(it tests at every start\): \[node-llama-cpp\] The local build binary was not built in the current system/m)
    assert.deepStrictEqual(await servedWithNodeLlamaCppOutside(root), { where: nlcIndex, tested: "forked", release: "b1234" })
    fs.rmSync(root, { recursive: true, force: true })
  })

  it("issue 14 a compiled module of this package that finds its files by import.meta.dirname gets no CLI bundle, said; serve still gets its own", async () => {
    const { root } = standIn(true, false, true)
    fs.appendFileSync(Path.join(root, "dist", "providers", "Own.js"), `\nexport const dir = () => import.meta.dirname\n`)
    const built = await node(root, {}, [Path.join(root, "bin", "bundle.js")])
    assert.strictEqual(built.code, 0, built.stderr)
    assert.match(built.stderr, /^note: the CLI bundle was not made \(the other commands run from dist\/\): [\s\S]*Own\.js finds its files by import\.meta\.dirname/m)
    // Not tried again without node-llama-cpp: that would not change it.
    assert.notInclude(built.stderr, "leaves node-llama-cpp outside")
    assert.deepStrictEqual(fs.readdirSync(Path.join(root, "dist")).sort(), ["bin.js", "providers", "serve", "serve-bundle", "serveBin.js"])
    fs.rmSync(root, { recursive: true, force: true })
  })

  it("issue 14 a bundled package whose code a CommonJS bundle run from its code cache would break gets no CLI bundle, said: an import.meta other than its URL, an import() with a computed specifier, or one of a package left outside in a form the build does not route", async () => {
    const cases = [
      { code: `export const dir = import.meta.dirname`, why: /uses import\.meta otherwise than for its URL/ },
      { code: `const which = ["better", "sqlite3"].join("-")\nexport const computed = () => import(which)`, why: /an import\(\) the bundle cannot run is left in it: .*import\(which\)/ },
      { code: `export const withOptions = () => import("better-sqlite3", { with: {} })`, why: /an import\(\) the bundle cannot run is left in it: .*import\("better-sqlite3", \{ with/ }
    ]
    for (const c of cases) {
      const { root } = standIn(true, false, true)
      fs.appendFileSync(Path.join(root, "node_modules", "@scope", "dep", "index.js"), `\n${c.code}\n`)
      // Used by the CLI (else esbuild would leave it out).
      fs.appendFileSync(Path.join(root, "dist", "bin.js"), `\nimport * as all from "@scope/dep"\nglobalThis.all = all\n`)
      const built = await node(root, {}, [Path.join(root, "bin", "bundle.js")])
      assert.strictEqual(built.code, 0, built.stderr)
      assert.match(built.stderr, /^note: the CLI bundle was not made \(the other commands run from dist\/\): /m, `${c.code}: ${built.stderr}`)
      assert.match(built.stderr, c.why, built.stderr)
      // serve's bundle (which does not hold that package) is made; the CLI runs from dist/.
      assert.deepStrictEqual(fs.readdirSync(Path.join(root, "dist")).sort(), ["bin.js", "providers", "serve", "serve-bundle", "serveBin.js"])
      fs.rmSync(root, { recursive: true, force: true })
    }
  })

  it("issue 14 better-sqlite3 that only a bundled package's own folder resolves (a nested layout) gets no CLI bundle, said: from the bundle it would not load", async () => {
    const { root } = standIn(true, false, true)
    const modules = Path.join(root, "node_modules")
    const nested = Path.join(modules, "@scope", "dep", "node_modules")
    fs.mkdirSync(nested, { recursive: true })
    fs.renameSync(Path.join(modules, "better-sqlite3"), Path.join(nested, "better-sqlite3"))
    fs.writeFileSync(Path.join(modules, "@scope", "dep", "index.js"), `import sqlite from "better-sqlite3"\nexport const dep = sqlite.where\nexport const later = () => import("better-sqlite3")\nexport const url = ""\n`)
    // The CLI's own import of it goes through the package that nests it, as @effect/sql-sqlite-node imports better-sqlite3.
    const bin = Path.join(root, "dist", "bin.js")
    fs.writeFileSync(bin, fs.readFileSync(bin, "utf8").replace(`import sqlite from "better-sqlite3"`, `const sqlite = { where: null }`))
    const built = await node(root, {}, [Path.join(root, "bin", "bundle.js")])
    assert.strictEqual(built.code, 0, built.stderr)
    assert.match(built.stderr, /^note: the CLI bundle was not made \(the other commands run from dist\/\): better-sqlite3, imported by node_modules\/@scope\/dep\/index\.js, resolves otherwise from the bundle \(/m)
    assert.notInclude(built.stderr, "leaves node-llama-cpp outside")
    assert.deepStrictEqual(fs.readdirSync(Path.join(root, "dist")).sort(), ["bin.js", "providers", "serve", "serve-bundle", "serveBin.js"])
    fs.rmSync(root, { recursive: true, force: true })
  })

  it("issue 14 without esbuild (a dev dependency) no bundle is made, said once, and nothing is tested for one", async () => {
    const { root } = standIn(false)
    fs.rmSync(Path.join(root, "node_modules", "esbuild"))
    const built = await node(root, {}, [Path.join(root, "bin", "bundle.js")])
    assert.strictEqual(built.code, 0, built.stderr)
    assert.match(built.stderr, /^note: no bundle was made \(autotune runs from dist\/\): Cannot find module 'esbuild'/)
    assert.strictEqual(built.stderr.trim().split("\n").filter((l) => l.startsWith("note:")).length, 1, built.stderr)
    assert.notInclude(built.stderr, "binary test")
    assert.deepStrictEqual(fs.readdirSync(Path.join(root, "dist")).sort(), ["serve", "serveBin.js"])
    fs.rmSync(root, { recursive: true, force: true })
  })

  it("issue 14 node-llama-cpp failing its binary test at build time stays outside the bundle, and tests at every start", async () => {
    const { nlcIndex, root } = standIn(false)
    const built = await node(root, {}, [Path.join(root, "bin", "bundle.js")])
    assert.strictEqual(built.code, 0, built.stderr)
    assert.match(built.stderr, /^note: node-llama-cpp's binary test failed here, so the bundles leave node-llama-cpp outside.*no binary for this machine/m)
    assert.deepStrictEqual(await servedWithNodeLlamaCppOutside(root), { where: nlcIndex, tested: "no binary for this machine", release: "b1234" })
    // Nothing of the test left behind.
    assert.deepStrictEqual(fs.readdirSync(Path.join(root, "dist")).sort(), ["serve", "serve-bundle", "serveBin.js"])
    fs.rmSync(root, { recursive: true, force: true })
  })
})
