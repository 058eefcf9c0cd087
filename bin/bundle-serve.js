#!/usr/bin/env node
// Part of `npm run build`, after tsc: bundles `autotune serve` (dist/serveBin.js, the embedded
// provider the tuner starts once per candidate) into dist/serve-bundle/ with esbuild, the bundler
// tsx already brings. One file for Effect, @effect/cli and @effect/platform instead of hundreds of
// ES modules, each resolved, read and compiled on every start: the serve entry's own loading took
// 0.73–0.79 s from dist/ and 0.22–0.25 s bundled (2 cores, 2026-12-06, issue 14 part 3: an
// embedded candidate's spawn → ready at its load + 0.3 s).
//
// node-llama-cpp is bundled too (issue 14 part 3: its ~300 modules took 0.27–0.35 s to import and its
// per-start binary test 0.4 s, both on an embedded candidate's spawn → ready), where all of this holds,
// else it stays outside the bundle (imported from node_modules, testing its binary at every start) and
// the build says why:
// - Its own paths stay its own: it finds its prebuilt binaries, its llama/ folder and its package.json
//   from `import.meta.url`, which each of its modules gets back as its own file's URL, relative to the
//   bundle's root (every output holding its code must be there; no module may find its files otherwise).
// - Its binary test (a forked Node that loads the native binding before the real load, so an
//   incompatible binary cannot crash the caller) is run here, once, by node-llama-cpp itself unbundled
//   (`getLlama`, CPU only, build never: the binary every start loads), and must pass; the bundle's copy
//   answers "passed" without a fork.
// - llama.cpp starts through the bundle (its own LlamaBoot, in a child process): the packages the
//   bundled copy imports at run time (its prebuilt binaries) resolve from the bundle's folder, not only
//   from node-llama-cpp's (a nested or pnpm layout).
// The version it bundled goes into built-with.json: bin/autotune.js uses the bundle only while that
// node-llama-cpp is the one installed.
// LlamaBoot is a second entry, split into a shared chunk,
// so bin/autotune.js's early start of llama.cpp and the engine's use of it are one module instance.
// The bundle is written last, after dist/.tsbuildinfo is touched: bin/autotune.js uses it only
// while it is at least as new as that file and dist/serveBin.js (a bare `tsc` after it leaves it
// stale, and unused).
"use strict"
const { spawnSync } = require("node:child_process")
const fs = require("node:fs")
const path = require("node:path")

const root = path.join(__dirname, "..")
const dist = path.join(root, "dist")
const outdir = path.join(dist, "serve-bundle")
// Written aside, then renamed into place: a serve started while the build runs finds the old bundle,
// none (and runs from dist/), or the new one whole, never half of one.
const next = path.join(dist, `serve-bundle.next-${process.pid}`)
// Also what a build stopped midway left.
for (const d of fs.readdirSync(dist)) {
  if (/^(serve-bundle\.next-\d+|binary-test-\d+\.mjs)$/.test(d)) fs.rmSync(path.join(dist, d), { recursive: true, force: true })
}
// A bundle that cannot be made never fails the build: `autotune serve` then runs from dist/, only slower.
/**
 * Runs `lines` as an ES module file in `dir` (not `node -e`: node-llama-cpp's binary test forks with this
 * process's exec arguments, which would run an -e script again); the file is removed after. Null when it
 * exited 0, else one line of what it said (node-llama-cpp's own first) and how it ended.
 */
const runScript = (dir, lines) => {
  const script = path.join(dir, `binary-test-${process.pid}.mjs`)
  fs.writeFileSync(script, lines.join("\n"))
  try {
    const r = spawnSync(process.execPath, [script], { cwd: root, encoding: "utf8", timeout: 120_000 })
    if (r.status === 0) return null
    const how = r.error !== undefined ? String(r.error) : r.signal !== null ? `killed by ${r.signal}` : `exit code ${r.status}`
    // What node-llama-cpp said (its own lines first: its errors name little), else the error line (Node's own
    // warnings left out), else the last words; and how it ended.
    const lines = (r.stderr ?? "").split("\n").map((l) => l.trim())
      .filter((l) => l !== "" && !/^\(node:\d+\) |^\(Use `node --trace/.test(l))
    const said = lines.find((l) => l.startsWith("[node-llama-cpp]")) ?? lines.find((l) => /^\w*Error\b.*: /.test(l)) ?? lines.slice(-2).join(" ")
    return said === "" ? how : `${said} (${how})`
  } finally {
    fs.rmSync(script, { force: true })
  }
}

/** Whether node-llama-cpp, unbundled, loads its CPU binary on this machine (its binary test included). */
const binaryPasses = () => {
  const why = runScript(dist, [
    "const m = await import(\"node-llama-cpp\")",
    "const llama = await m.getLlama({ gpu: false, build: \"never\", logLevel: m.LlamaLogLevel.error })",
    "await llama.dispose()"
  ])
  if (why !== null) process.stderr.write(`note: node-llama-cpp's binary test failed here, so the serve bundle leaves node-llama-cpp outside (it tests at every start): ${why}\n`)
  return why === null
}

const nlcDist = /[\\/]node_modules[\\/]node-llama-cpp[\\/]dist[\\/]/

/** esbuild plugin: node-llama-cpp's modules keep their own file URLs; its binary test is the one run above. */
const nodeLlamaCppInPlace = {
  name: "node-llama-cpp-in-place",
  setup(build) {
    build.onLoad({ filter: /node-llama-cpp[\\/]dist[\\/].*\.js$/ }, (args) => {
      if (!nlcDist.test(args.path)) return undefined
      if (/[\\/]bindings[\\/]utils[\\/]testBindingBinary\.js$/.test(args.path)) {
        return { loader: "js", contents: "// Tested by bin/bundle-serve.js when it made this bundle.\nexport async function testBindingBinary() { return true }\n" }
      }
      const text = fs.readFileSync(args.path, "utf8")
      // Only import.meta.url is given back; another way to its own place would be the bundle's: not bundled then.
      // (A module's own __dirname or __filename, defined from import.meta.url, follows it.)
      const other = /import\.meta\.(?!url\b)\w+/.exec(text)?.[0] ??
        ["__dirname", "__filename"].find((n) => new RegExp(`\\b${n}\\b`).test(text) && !text.includes(`const ${n} = `))
      if (other !== undefined) throw new Error(`${args.path} finds its files by ${other}, which a bundle would change`)
      const own = path.relative(next, args.path).split(path.sep).map(encodeURIComponent).join("/")
      return { loader: "js", contents: text.replaceAll("import.meta.url", `new URL(${JSON.stringify(own)}, import.meta.url).href`) }
    })
  }
}

/**
 * Makes the bundle in `next` with `esbuild`, node-llama-cpp inside it or not (`inside`); throws when what it made would
 * not serve: node-llama-cpp's code below the bundle's root (its file URLs are relative to it), its
 * package not found among the inputs, or llama.cpp not starting through the bundle's own LlamaBoot (a
 * package the bundled copy imports that resolves from node-llama-cpp's folder but not from the bundle's,
 * as in a nested or pnpm layout).
 */
const build = async (esbuild, inside) => {
  fs.rmSync(next, { recursive: true, force: true })
  const built = await esbuild.build({
    // Metafile paths relative to the package, wherever the build was started from.
    absWorkingDir: root,
    entryPoints: [path.join(dist, "serveBin.js"), path.join(dist, "serve", "LlamaBoot.js")],
    outdir: next,
    outbase: dist,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    // Native code and the prebuilt-binary packages are found at run time, from node_modules.
    external: inside ? ["@node-llama-cpp/*", "@reflink/*", "*.node"] : ["node-llama-cpp"],
    plugins: inside ? [nodeLlamaCppInPlace] : [],
    // CommonJS dependencies inside an ES module bundle call require() for Node's built-ins.
    banner: { js: "import { createRequire as __autotuneRequire } from \"node:module\"; const require = __autotuneRequire(import.meta.url);" },
    // Class and function names as in dist/ (stack traces, and any code that reads a constructor's name).
    keepNames: true,
    logLevel: "warning",
    // What went in, for the test that no tuner module did (test/serve/Serve.test.ts).
    metafile: true
  })
  fs.writeFileSync(path.join(next, "meta.json"), JSON.stringify(built.metafile))
  // The node-llama-cpp bundled, by its package.json (relative to the package) and version: the launcher
  // serves from dist/ instead once another is installed (`npm update` runs no build).
  let builtWith = []
  if (inside) {
    const deep = Object.entries(built.metafile.outputs)
      .filter(([file, o]) => Object.keys(o.inputs).some((i) => nlcDist.test(`/${i}`)) && path.dirname(path.join(root, file)) !== next)
    if (deep.length > 0) throw new Error(`node-llama-cpp's code landed below the bundle's root (${deep.map(([f]) => f).join(", ")})`)
    const index = Object.keys(built.metafile.inputs).find((i) => nlcDist.test(`/${i}`) && /[\\/]dist[\\/]index\.js$/.test(i))
    if (index === undefined) throw new Error("node-llama-cpp was not found under node_modules/ among the bundle's inputs")
    const manifest = path.join(path.dirname(path.dirname(index)), "package.json")
    builtWith = [{ package: manifest.split(path.sep).join("/"), version: JSON.parse(fs.readFileSync(path.join(root, manifest), "utf8")).version }]
    const why = runScript(next, [
      "const { bootLlama } = await import(\"./serve/LlamaBoot.js\")",
      "const booted = await bootLlama()",
      "const llama = await booted.llama.catch((e) => { for (const l of booted.earlyLog ?? []) console.error(l.message); throw e })",
      "await llama.dispose()"
    ])
    if (why !== null) throw new Error(`llama.cpp does not start through the bundle: ${why}`)
  }
  fs.writeFileSync(path.join(next, "built-with.json"), JSON.stringify(builtWith))
  fs.rmSync(outdir, { recursive: true, force: true })
  fs.renameSync(next, outdir)
}

// esbuild's plugins need its asynchronous API. With node-llama-cpp inside where its binary test passed;
// where that bundle would not serve, with it outside (tested at every start), said on stderr.
const main = async () => {
  // Without esbuild (a dev dependency) there is no bundle at all: said once, below, and nothing tested for one.
  const esbuild = require("esbuild")
  if (binaryPasses()) {
    try {
      return await build(esbuild, true)
    } catch (e) {
      process.stderr.write(`note: the serve bundle leaves node-llama-cpp outside (it tests at every start): ${e instanceof Error ? e.message : String(e)}\n`)
    }
  }
  await build(esbuild, false)
}

main().catch((e) => {
  // A bundle left from an earlier build is older than this build's .tsbuildinfo: the launcher does not use it.
  fs.rmSync(next, { recursive: true, force: true })
  process.stderr.write(`note: the serve bundle was not made (autotune serve runs from dist/): ${e instanceof Error ? e.message : String(e)}\n`)
})
