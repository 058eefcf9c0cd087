#!/usr/bin/env node
// Part of `npm run build`: compiles native/llama-threadpool.c into dist/native/llama-threadpool.so with the
// machine's C compiler (`$CC`, else `cc` or `gcc`), the one that builds better-sqlite3 at install. The embedded
// provider loads it before node-llama-cpp's addon (src/serve/ThreadpoolShim.ts), so each llama.cpp
// context computes on a persistent ggml threadpool instead of starting its helper threads per token
// (issue 14). Nothing of llama.cpp is compiled: node-llama-cpp's prebuilt binaries are used as they are.
//
// Never fails the build (whatever goes wrong is said): where it cannot be made (not Linux, no compiler, another node-llama-cpp than the
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
const builtFor = path.join(outDir, "built-for.json")
/** The node-llama-cpp whose llama.cpp (de3ff81) the C file declares `struct llama_batch` from. */
const WRITTEN_FOR = "3.22.1"

/** The node-llama-cpp version where Node would find the package from `dir`, or null. */
const nodeLlamaCppVersion = (dir) => {
  // (Its `exports` hide package.json from require.resolve: looked up where Node would find the package.)
  const found = (require("node:module").createRequire(path.join(dir, "x.js")).resolve.paths("node-llama-cpp") ?? [])
    .map((d) => path.join(d, "node-llama-cpp", "package.json")).find((f) => fs.existsSync(f))
  return found === undefined ? null : JSON.parse(fs.readFileSync(found, "utf8")).version
}

/** Why the library cannot be made here, or null. */
const obstacle = () => {
  if (process.platform !== "linux") return `${process.platform}: the shim is for Linux (glibc)`
  const version = nodeLlamaCppVersion(root)
  if (version === null) return "node-llama-cpp is not installed"
  if (version !== WRITTEN_FOR) return `node-llama-cpp ${version} is installed; native/llama-threadpool.c is written for ${WRITTEN_FOR}`
  return null
}

const build = () => {
  const why = obstacle()
  if (why !== null) return why
  // `$CC` as given (split as make would run it: `ccache gcc`), else cc, then gcc (where no `cc` link is installed).
  const given = process.env.CC !== undefined && process.env.CC.trim() !== "" ? process.env.CC.trim().split(/\s+/) : null
  fs.mkdirSync(outDir, { recursive: true })
  // Written aside, then renamed into place: a serve starting during the build loads the old library or the new one.
  const next = `${out}.next-${process.pid}`
  let failed = null
  for (const cc of given !== null ? [given] : [["cc"], ["gcc"]]) {
    const r = spawnSync(cc[0], [...cc.slice(1), "-O2", "-shared", "-fPIC", "-o", next, source, "-ldl", "-lpthread"], { encoding: "utf8", timeout: 120_000 })
    if (r.status === 0) {
      failed = null
      break
    }
    fs.rmSync(next, { force: true })
    const said = (r.stderr ?? "").split("\n").map((l) => l.trim()).filter((l) => l !== "").slice(-1)[0]
    failed = r.error !== undefined
      ? (r.error.code === "ENOENT" ? `no C compiler (${given?.join(" ") ?? "cc, gcc"})` : String(r.error))
      : `${cc.join(" ")} ${r.signal !== null ? `killed by ${r.signal}` : `exited ${r.status}`}${said ? `: ${said}` : ""}`
    // Only a missing compiler is worth another try.
    if (r.error === undefined || r.error.code !== "ENOENT") break
  }
  if (failed !== null) return failed
  // What it was built against, in place first (src/serve/ThreadpoolShim.ts loads the library only with that
  // node-llama-cpp installed): a serve starting between the two renames finds the old library or none.
  fs.writeFileSync(`${builtFor}.next-${process.pid}`, `${JSON.stringify({ "node-llama-cpp": WRITTEN_FOR })}\n`)
  fs.renameSync(`${builtFor}.next-${process.pid}`, builtFor)
  fs.renameSync(next, out)
  return null
}

/** Whether a process `pid` exists (EPERM: it does, another user's). */
const alive = (pid) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return e.code === "EPERM"
  }
}

let why
try {
  // What a build stopped midway left (not another build's, still running, in the same tree).
  for (const f of fs.existsSync(outDir) ? fs.readdirSync(outDir) : []) {
    const pid = /\.next-(\d+)$/.exec(f)?.[1]
    if (pid !== undefined && !alive(Number(pid))) fs.rmSync(path.join(outDir, f), { force: true })
  }
  why = build()
} catch (e) {
  why = e instanceof Error ? e.message : String(e)
}
if (why !== null) {
  for (const f of [out, builtFor]) {
    try {
      fs.rmSync(f, { force: true })
    } catch { /* said below either way */ }
  }
  process.stderr.write(`note: no persistent ggml threadpool for the embedded provider (${why}): autotune serve starts llama.cpp's threads per token, slower at 2+ threads (issue 14)\n`)
}
