#!/usr/bin/env node
// Part of `npm run build`, after tsc: bundles `autotune serve` (dist/serveBin.js, the embedded
// provider the tuner starts once per candidate) into dist/serve-bundle/ with esbuild, the bundler
// tsx already brings. One file for Effect, @effect/cli and @effect/platform instead of hundreds of
// ES modules, each resolved, read and compiled on every start: the serve entry's own loading took
// 0.73–0.79 s from dist/ and 0.22–0.25 s bundled (2 cores, 2026-12-06, issue 14 part 3: an
// embedded candidate's spawn → ready at its load + 0.3 s).
//
// node-llama-cpp stays outside: it tests its native binary in a forked process and finds its
// prebuilt binaries by its own file layout. LlamaBoot is a second entry, split into a shared chunk,
// so bin/autotune.js's early start of llama.cpp and the engine's use of it are one module instance.
// The bundle is written last, after dist/.tsbuildinfo is touched: bin/autotune.js uses it only
// while it is at least as new as that file and dist/serveBin.js (a bare `tsc` after it leaves it
// stale, and unused).
"use strict"
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
  if (/^serve-bundle\.next-\d+$/.test(d)) fs.rmSync(path.join(dist, d), { recursive: true, force: true })
}
// A bundle that cannot be made never fails the build: `autotune serve` then runs from dist/, only slower.
try {
  const esbuild = require("esbuild")
  const built = esbuild.buildSync({
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
    external: ["node-llama-cpp"],
    // CommonJS dependencies inside an ES module bundle call require() for Node's built-ins.
    banner: { js: "import { createRequire as __autotuneRequire } from \"node:module\"; const require = __autotuneRequire(import.meta.url);" },
    // Class and function names as in dist/ (stack traces, and any code that reads a constructor's name).
    keepNames: true,
    logLevel: "warning",
    // What went in, for the test that no tuner module did (test/serve/Serve.test.ts).
    metafile: true
  })
  fs.writeFileSync(path.join(next, "meta.json"), JSON.stringify(built.metafile))
  fs.rmSync(outdir, { recursive: true, force: true })
  fs.renameSync(next, outdir)
} catch (e) {
  // A bundle left from an earlier build is older than this build's .tsbuildinfo: the launcher does not use it.
  fs.rmSync(next, { recursive: true, force: true })
  process.stderr.write(`note: the serve bundle was not made (autotune serve runs from dist/): ${e instanceof Error ? e.message : String(e)}\n`)
}
