// Runs a bundle the build made (bin/bundle.js): one CommonJS file, compiled with a V8 code cache beside it, so
// that a start deserializes the bundle's functions instead of parsing and compiling ~5–7 MB of JavaScript
// (issue 14 part 3: an embedded candidate's spawn → ready at its load + 0.3 s; part 4: the tuner's own start).
// Node 20 caches no module's code (`module.enableCompileCache` is Node 22.1+); `vm.Script`'s `cachedData` does,
// for a script. Own code, not v8-compile-cache: that package keeps its cache outside the package and
// compiles through vm.Script without a dynamic-import callback, so an `import()` in the bundle would fail. So
// would one here: Node 20 gives a vm.Script an `import()` of its own only through a flag
// (--experimental-vm-modules), or through vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER, which a script
// compiled from a cache made by another process loses (v20.20.2: "A dynamic import callback was not
// specified"). So the bundle imports what it leaves outside through `import.cjs`, a file of its own beside it
// (bin/bundle.js rewrites every such `import()`).
// Shared by the launcher (bin/autotune.js), the build (which writes the first cache) and the tests. CommonJS, as the launcher.
"use strict"
const fs = require("node:fs")
const path = require("node:path")
const v8 = require("node:v8")
const vm = require("node:vm")
const { createRequire } = require("node:module")

/** The first line bin/bundle.js writes into a bundle: the SHA-256 (hex, 16 digits) of the rest of it. */
const ID_LINE = /^\/\/ llm-autotune bundle ([0-9a-f]{16})\n/

/**
 * The code cache of bundle `file` as it is now (`source`, `stats` its BigInt fstat), for this Node and its V8
 * flags: named by the digest the build wrote into the bundle, the file's size and modification time (ns), and
 * V8's tag for its version and flags (`v8.cachedDataVersionTag`). No other bundle (a rebuild, even one whose
 * timestamps a reproducible build fixed; an edit) takes it — V8 itself checks only its version, its flags and
 * the source's length, not the text — and a copy of the package that keeps modification times (`cp -a`,
 * `rsync -a`) keeps it; another copy's first start writes one where the folder can be written.
 */
const cacheFor = (file, source, stats) =>
  `${file}.${ID_LINE.exec(source)?.[1] ?? "none"}-${stats.size}-${stats.mtimeNs}-${v8.cachedDataVersionTag()}.cache`

/** Caches kept per version of a bundle, one per set of V8 flags (Node), the newest. */
const KEEP_PER_VERSION = 3

/**
 * Writes `script`'s code cache (what V8 has compiled of it so far) to `cache`, whole or not at all (a file of
 * its own first, then renamed over), unless `file` changed since it was read (`stats`: a rebuild or an edit
 * meanwhile; the cache would be named for a bundle no longer there). Then removes the caches of other
 * versions of the bundle (an edit), all but the KEEP_PER_VERSION newest of this version (other V8 flags),
 * and writes left unfinished over 10 min ago (a process killed as it wrote). Never throws (it runs as the
 * process exits, whose exit code it must not change); says nothing (a full disk, a race with a rebuild: the
 * next start compiles from the source).
 */
const writeCache = (file, stats, cache, script) => {
  const part = `${cache}.${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 10)}.part`
  let created = false
  try {
    const now = fs.statSync(file, { bigint: true })
    if (now.size !== stats.size || now.mtimeNs !== stats.mtimeNs || now.ino !== stats.ino) return
    const data = script.createCachedData()
    fs.writeFileSync(part, data, { flag: "wx" })
    created = true
    fs.renameSync(part, cache)
  } catch {
    if (created) remove(part)
    return
  }
  const dir = path.dirname(cache)
  const bundle = path.basename(file)
  // <bundle>.<digest>-<size>-<mtime ns>-<V8 tag>.cache: this version of the bundle is all but the tag.
  const versionOf = (name) => /^([^.]*)-\d+\.cache$/.exec(name.slice(bundle.length + 1))?.[1] ?? null
  const version = versionOf(path.basename(cache))
  const mine = []
  for (const f of safely(() => fs.readdirSync(dir), [])) {
    if (!f.startsWith(`${bundle}.`)) continue
    const at = path.join(dir, f)
    const v = versionOf(f)
    if (v === version) mine.push({ at, mtimeMs: safely(() => fs.statSync(at).mtimeMs, 0) })
    else if (v !== null || (f.endsWith(".part") && Date.now() - safely(() => fs.statSync(at).mtimeMs, Date.now()) > 600_000)) remove(at)
  }
  mine.sort((x, y) => y.mtimeMs - x.mtimeMs).slice(KEEP_PER_VERSION).forEach((c) => c.at !== cache && remove(c.at))
}

/** `f()`, or `otherwise` where it throws (a file gone meanwhile). */
const safely = (f, otherwise) => {
  try {
    return f()
  } catch {
    return otherwise
  }
}

/** Removes `file`, if it is still there. */
const remove = (file) => safely(() => fs.rmSync(file, { force: true }), undefined)

/**
 * Compiles and runs the CommonJS bundle `file` (an absolute path) as Node would `require` it, strict mode as
 * the bundle says, with the code cache of this very file, Node and V8 flags where there is one. Returns its
 * `exports` (`startLlama`, `bootLlama`: src/serve/LlamaBoot.ts; `run()`: imports the entry it was made from,
 * which starts its command) and what became of the `cache`: "used", "rejected" by V8, or "none". Where it
 * was not used and the bundle's folder can be written, the process writes one when it exits (what V8
 * compiled by then, including what the command ran; not if the bundle changed meanwhile), for the next
 * start: the first start under other V8 flags (NODE_OPTIONS=--max-old-space-size=…) or another Node pays the
 * compile once, and up to KEEP_PER_VERSION such caches are kept (the most recently used). So does the build
 * (`produce`: none read; bin/bundle.js runs the bundle's `--version`). Throws what reading, compiling or
 * evaluating it threw (then nothing is written).
 */
const loadBundle = (file, produce = false) => {
  // The text and the identity of one file (a rebuild renaming another into place meanwhile changes neither).
  const fd = fs.openSync(file, "r")
  let source
  let stats
  try {
    stats = fs.fstatSync(fd, { bigint: true })
    // Bytes, then text: Node 20's readFileSync with an encoding took 48–55 ms for the 5 MB serve bundle
    // against 33–36 ms this way (4 interleaved runs each, 2 cores, 2026-12-08).
    source = fs.readFileSync(fd).toString("utf8")
  } finally {
    fs.closeSync(fd)
  }
  const cache = cacheFor(file, source, stats)
  let cachedData
  if (!produce) {
    try {
      cachedData = fs.readFileSync(cache)
    } catch {
      // None yet for this file, Node and flags.
    }
  }
  // Node's own CommonJS wrapper, on the source's first line (its line numbers stay the bundle's).
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, cachedData })
  const used = cachedData === undefined ? "none" : script.cachedDataRejected ? "rejected" : "used"
  // A cache in use is kept as the newest of its version's (writeCache keeps KEEP_PER_VERSION by time).
  if (used === "used") safely(() => fs.utimesSync(cache, new Date(), new Date()), undefined)
  const module = { exports: {} }
  script.runInThisContext()(module.exports, createRequire(file), module, file, path.dirname(file))
  // (After the evaluation, which defines the bundle's modules and evaluates LlamaBoot's, before its entry
  // runs: before any exit listener of the command's.)
  if (used !== "used" && writable(path.dirname(file))) process.once("exit", () => writeCache(file, stats, cache, script))
  return { exports: module.exports, cache: used }
}

/** Whether this process may write in `dir` (a read-only install: no cache is serialized in vain at every exit). */
const writable = (dir) => {
  try {
    fs.accessSync(dir, fs.constants.W_OK)
    return true
  } catch {
    return false
  }
}

module.exports = { loadBundle }
