#!/usr/bin/env node
// Part of `npm run build`: compiles native/llama-threadpool.c into dist/native/llama-threadpool.so with the
// machine's C compiler (`$CC`, else `cc` or `gcc`), the one that builds better-sqlite3 at install. The embedded
// provider loads it before node-llama-cpp's addon (src/serve/ThreadpoolShim.ts), so each llama.cpp
// context computes on a persistent ggml threadpool instead of starting its helper threads per token
// (issue 14). Nothing of llama.cpp is compiled: node-llama-cpp's prebuilt binaries are used as they are.
//
// Never fails the build: where it cannot be made (not Linux, no compiler, another node-llama-cpp than the
// one the C file was written for), it says why and removes an earlier build's library, and `autotune
// serve` runs llama.cpp's per-graph threads, as without it (its `loaded …` line says which).
"use strict"
const { spawnSync } = require("node:child_process")
const fs = require("node:fs")
const path = require("node:path")

const root = path.join(__dirname, "..")
const source = path.join(root, "native", "llama-threadpool.c")
const outDir = path.join(root, "dist", "native")
const out = path.join(outDir, "llama-threadpool.so")
/** The node-llama-cpp whose llama.cpp (de3ff81) the C file declares `struct llama_batch` from. */
const WRITTEN_FOR = "3.22.1"

/** Why the library cannot be made here, or null. */
const obstacle = () => {
  if (process.platform !== "linux") return `${process.platform}: the shim is for Linux (glibc)`
  // (Its `exports` hide package.json from require.resolve: looked up where Node would find the package.)
  const dir = (require("node:module").createRequire(path.join(root, "x.js")).resolve.paths("node-llama-cpp") ?? [])
    .map((d) => path.join(d, "node-llama-cpp")).find((d) => fs.existsSync(path.join(d, "package.json")))
  if (dir === undefined) return "node-llama-cpp is not installed"
  const version = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")).version
  if (version !== WRITTEN_FOR) return `node-llama-cpp ${version} is installed; native/llama-threadpool.c is written for ${WRITTEN_FOR}`
  return null
}

const build = () => {
  const why = obstacle()
  if (why !== null) return why
  // `$CC` as given, else cc, then gcc (where no `cc` link is installed).
  const given = process.env.CC !== undefined && process.env.CC.trim() !== "" ? process.env.CC.trim() : null
  fs.mkdirSync(outDir, { recursive: true })
  // Written aside, then renamed into place: a serve starting during the build loads the old library or the new one.
  const next = `${out}.next-${process.pid}`
  let failed = null
  for (const cc of given !== null ? [given] : ["cc", "gcc"]) {
    const r = spawnSync(cc, ["-O2", "-shared", "-fPIC", "-o", next, source, "-ldl", "-lpthread"], { encoding: "utf8", timeout: 120_000 })
    if (r.status === 0) {
      failed = null
      break
    }
    fs.rmSync(next, { force: true })
    const said = (r.stderr ?? "").split("\n").map((l) => l.trim()).filter((l) => l !== "").slice(-1)[0]
    failed = r.error !== undefined
      ? (r.error.code === "ENOENT" ? `no C compiler (${given ?? "cc, gcc"})` : String(r.error))
      : `${cc} exited ${r.status}${said ? `: ${said}` : ""}`
    // Only a missing compiler is worth another try.
    if (r.error === undefined || r.error.code !== "ENOENT") break
  }
  if (failed !== null) return failed
  fs.renameSync(next, out)
  return null
}

for (const f of fs.existsSync(outDir) ? fs.readdirSync(outDir) : []) {
  if (/\.next-\d+$/.test(f)) fs.rmSync(path.join(outDir, f), { force: true })
}
const why = build()
if (why !== null) {
  fs.rmSync(out, { force: true })
  process.stderr.write(`note: no persistent ggml threadpool for the embedded provider (${why}): autotune serve starts llama.cpp's threads per token, slower at 2+ threads (issue 14)\n`)
}
