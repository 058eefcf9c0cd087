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

const dist = path.join(__dirname, "..", "dist")
if (!fs.existsSync(path.join(dist, "bin.js"))) {
  process.stderr.write(`autotune: ${path.join(dist, "bin.js")} is missing: run \`npm run build\` (npm install runs it)\n`)
  process.exit(70)
}
const load = (file) => import(pathToFileURL(path.join(dist, file)).href)
if (process.argv.slice(2).includes("serve")) {
  process.env.UV_THREADPOOL_SIZE = "1"
  // llama.cpp's start (its binary test, a forked process) first, so that it overlaps
  // the CLI's loading (src/serve/LlamaBoot.ts); the engine reports any failure of it.
  load("serve/LlamaBoot.js").then((boot) => boot.startLlama()).catch(() => {}).then(() => load("bin.js"))
} else load("bin.js")
