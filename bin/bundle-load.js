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
const vm = require("node:vm")
const { createRequire } = require("node:module")

/**
 * The code cache of bundle `file` as it is now, `stats` its BigInt fstat: named by the file's inode, size and
 * modification time (ns), so that no other version of the bundle (a rebuild, an edit) ever takes it — V8 itself
 * checks only its own version, its flags and the source's length, not the text.
 */
const cacheFor = (file, stats) => `${file}.${stats.ino}-${stats.size}-${stats.mtimeNs}.cache`

/** Writes `script`'s code cache (what V8 has compiled of it so far) to `cache`, whole or not at all. */
const writeCache = (cache, script) => {
  const part = `${cache}.${process.pid}.part`
  try {
    fs.writeFileSync(part, script.createCachedData())
    fs.renameSync(part, cache)
  } catch {
    // A read-only install or a full disk: the next start compiles from the source, as this one did.
    fs.rmSync(part, { force: true })
  }
}

/**
 * Compiles and runs the CommonJS bundle `file` (an absolute path) as Node would `require` it, strict mode as
 * the bundle says, with the code cache of this very file where there is one. Returns its `exports`
 * (`startLlama`, `bootLlama`: src/serve/LlamaBoot.ts; `run()`: imports the entry it was made from, which
 * starts its command) and what became of the `cache`: "used", "rejected" by V8 (another Node or other V8
 * flags, e.g. NODE_OPTIONS=--max-old-space-size) or "none". Where it was not used, the process writes one for
 * its Node and flags when it exits (what V8 compiled by then, including what the command ran), for the next
 * start; so does the build (`produce`: no cache read, one written; bin/bundle.js runs the bundle's `--version`).
 * Throws what reading, compiling or evaluating it threw.
 */
const loadBundle = (file, produce = false) => {
  // The text and the identity of one file (a rebuild renaming another into place meanwhile changes neither).
  const fd = fs.openSync(file, "r")
  let source
  let stats
  try {
    stats = fs.fstatSync(fd, { bigint: true })
    source = fs.readFileSync(fd, "utf8")
  } finally {
    fs.closeSync(fd)
  }
  const cache = cacheFor(file, stats)
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
  if (used !== "used") process.once("exit", () => writeCache(cache, script))
  const module = { exports: {} }
  script.runInThisContext()(module.exports, createRequire(file), module, file, path.dirname(file))
  return { exports: module.exports, cache: used }
}

module.exports = { loadBundle }
