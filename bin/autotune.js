#!/usr/bin/env node
// The `autotune` command: runs the compiled CLI in dist/ (built from src/ by
// `npm install` through the `prepare` script, or by `npm run build`), so no
// TypeScript loader starts with it.
//
// CommonJS on purpose (bin/package.json): `autotune serve`, the embedded
// provider, must run with UV_THREADPOOL_SIZE=1, and libuv reads it once, when
// its thread pool first starts, which loading an ES module entry already
// does. node-llama-cpp runs each decode on a pool thread; with the default 4
// threads successive decodes land on different pool threads and, on 2 cores,
// llama.cpp's compute threads spin in ggml_barrier (56 % of CPU samples) while
// their peer waits for a core: 15M decode at 2 threads fell from ~580 to ~70
// tokens/s (issue 14).
"use strict"
const fs = require("node:fs")
const path = require("node:path")
const { pathToFileURL } = require("node:url")

const root = path.join(__dirname, "..")
const dist = path.join(root, "dist")
const entry = path.join(dist, "bin.js")
if (!fs.existsSync(entry)) {
  process.stderr.write(`autotune: ${entry} is missing: run \`npm run build\` (npm install runs it)\n`)
  process.exit(1)
}
const helpCache = require("./help-cache.js")
// A checkout whose sources changed since the last build would run the old code: say so.
try {
  // `npm run build` (and the test setup) touch the build info after every build, changed or not.
  const built = fs.statSync(path.join(dist, ".tsbuildinfo"), { throwIfNoEntry: false }) ?? fs.statSync(entry)
  if (helpCache.newestFile(path.join(root, "src"), ".ts") > built.mtimeMs) {
    process.stderr.write("autotune: warning: src/ changed since dist/ was built; run `npm run build`\n")
  }
} catch {
  // No src/ or no build info: nothing to compare.
}
const load = (file) => import(pathToFileURL(path.join(dist, file)).href)
const { bundleUsable } = require("./bundle-use.js")
const { loadBundle } = require("./bundle-load.js")
const args = process.argv.slice(2)
/**
 * Bundle `dir`'s exports (bin/bundle.js, run by bin/bundle-load.js with its code cache): `startLlama` and
 * `run()`, which imports its entry (and so starts the command). Loaded once; an error (a build replacing it
 * right now) is the caller's, who then runs from dist/, having run nothing of the bundle's command yet.
 */
const bundles = new Map()
const bundleOf = (dir, file) => {
  if (!bundles.has(dir)) {
    // Once: what failed is not run again (the early start's failure is the run's).
    try {
      bundles.set(dir, { exports: loadBundle(path.join(dist, dir, file)).exports })
    } catch (e) {
      bundles.set(dir, { error: `${path.join("dist", dir, file)}: ${(e instanceof Error ? e.message : String(e)).split("\n")[0]}` })
    }
  }
  const b = bundles.get(dir)
  if (b.error !== undefined) throw new Error(b.error)
  return b.exports
}
/** Runs bundle `dir` (its entry), or, where it cannot be loaded, `fallback` from dist/, said on stderr as `what`. */
const runBundle = (dir, file, what, fallback) =>
  Promise.resolve().then(() => bundleOf(dir, file).run()).catch((e) => {
    // (Its first line: Node's "Cannot find module" goes on with the require stack.)
    process.stderr.write(`autotune: ${what} could not be loaded (${(e instanceof Error ? e.message : String(e)).split("\n")[0]}); ${fallback.says}\n`)
    return load(fallback.file)
  })
// Every command but a serve started alone runs the whole CLI: bundled (bin/bundle.js, dist/cli-bundle/cli.cjs,
// node-llama-cpp inside where its binary test passed at build time), `autotune history` 0.27–0.28 s
// against 0.90–1.38 s from dist/, a tune's first trial 1.0 s sooner and no forked binary test at its first
// memory estimate (2 cores, 2026-12-07). Only while it is as new as the build and the entry it was made
// from, and the packages it bundled (node-llama-cpp, Effect, …) are the ones installed; not under AUTOTUNE_CLI_BUNDLE=off.
let cliBundle
/** Whether the whole CLI runs from its bundle (decided once). */
const cliBundled = () =>
  cliBundle ??= bundleUsable(root, "cli-bundle", "cli.cjs", "bin.js", "AUTOTUNE_CLI_BUNDLE")
/**
 * Runs the whole CLI. A bundle that cannot be loaded (a build replacing it right now) has run nothing
 * yet (its entry starts the command when `run` imports it): the CLI from dist/, said on stderr.
 */
const loadCli = () =>
  cliBundled() ? runBundle("cli-bundle", "cli.cjs", "the CLI bundle", { file: "bin.js", says: "running from dist/" }) : load("bin.js")
// `--help`, `--version`, `<command> --help`: what the build kept of the CLI's own answer (bin/help-cache.js),
// styled, printed plain where the CLI would print it plain (a pipe, a file, NO_COLOR).
const kept = helpCache.cached(dist, args)
// @effect/cli's built-in flags (matched as it does, case-insensitively). After `serve` only --completions
// answers differently in the serve-only tree (a script for it alone); all go to the whole tree, to be safe.
const textOnly = (a) => ["--help", "-h", "--version", "--wizard"].includes(a.toLowerCase()) || /^--completions(=|$)/i.test(a)
const builtIn = (a) => textOnly(a) || /^--log-level(=|$)/i.test(a)
// The subcommand: the tuner starts candidates as `autotune.js serve …`.
if (kept !== null) process.stdout.write(helpCache.forStream(kept, process.stdout))
else if (args.find((a, i) => !a.startsWith("-") && args[i - 1]?.toLowerCase() !== "--log-level") === "serve") {
  process.env.UV_THREADPOOL_SIZE = "1"
  // `serve` alone (src/serveBin.ts) loads none of the tuner's modules: ~0.2 s less per candidate start
  // (15M spawn → ready 1.25–1.30 s against 1.45–1.55 s, 2 cores). A dist/ built before it existed: the whole CLI.
  const alone = args[0] === "serve" && !args.some(builtIn) && fs.existsSync(path.join(dist, "serveBin.js"))
  // Bundled (bin/bundle.js), node-llama-cpp inside where its binary test passed at build time and
  // llama.cpp started through the bundle: spawn → ready beyond the model's load 0.21–0.28 s with the
  // bundle's code cache (130M, 2 cores, 2026-12-07; 0.34–0.37 s bundled as ES modules, without one), against
  // 1.15–1.34 s for the 15M with node-llama-cpp outside the bundle (2026-12-06), itself 0.14 s faster than
  // dist/. Only while it is as new as the build it came from (a bare tsc since leaves it stale), and not
  // under AUTOTUNE_SERVE_BUNDLE=off. Nor once another version of a package it bundled is installed (`npm update` runs no build).
  const bundled = alone && bundleUsable(root, "serve-bundle", "serve.cjs", "serveBin.js", "AUTOTUNE_SERVE_BUNDLE")
  // The bundle whose LlamaBoot the engine will use: the serve bundle's, the CLI bundle's (serve through the
  // whole CLI), or none (dist/'s).
  const from = alone ? (bundled ? ["serve-bundle", "serve.cjs"] : null) : cliBundled() ? ["cli-bundle", "cli.cjs"] : null
  // A bundle that cannot be loaded (a build replacing it right now): the serve entry from dist/, said
  // on stderr (it costs a second start of llama.cpp: dist/ has its own LlamaBoot). A bundle that fails
  // has served nothing yet: its entry starts serving when `run` imports it.
  const start = () =>
    alone
      ? (bundled ? runBundle("serve-bundle", "serve.cjs", "the serve bundle", { file: "serveBin.js", says: "serving from dist/" }) : load("serveBin.js"))
      : loadCli()
  if (args.some((a) => /^--(model|config)(=|$)/.test(a)) && !args.some(textOnly)) {
    // llama.cpp's start first, so that it overlaps the serve entry's loading (src/serve/LlamaBoot.ts;
    // from dist/ it includes node-llama-cpp's binary test, a forked process); the engine reports any failure of it.
    // (The bundle's LlamaBoot: the one module instance its serve entry uses.)
    Promise.resolve()
      .then(() => from === null ? load("serve/LlamaBoot.js") : bundleOf(...from))
      .then((boot) => boot.startLlama()).catch(() => {}).then(start)
  } else start()
} else loadCli()
