// Runs a bundle the build made (bin/bundle.js): one CommonJS file, compiled with the V8 code cache the build
// wrote beside it, so that a start deserializes the bundle's functions instead of parsing and compiling ~5–7 MB
// of JavaScript (issue 14 part 3: an embedded candidate's spawn → ready at its load + 0.3 s; part 4: the
// tuner's own start). Node 20 caches no module's code (`module.enableCompileCache` is Node 22.1+); `vm.Script`'s
// `cachedData` does, for a script. Own code, not v8-compile-cache: that package writes its cache when a
// process exits (a candidate is stopped by a signal), in a folder outside the package, and a script compiled
// from a cache made by another process has no dynamic-import callback in Node 20 (v20.20.2 fails "A dynamic
// import callback was not specified"), so the bundle's `import()`s of packages left outside go through
// `import.cjs`, a file of its own beside it (bin/bundle.js).
// Shared by the launcher (bin/autotune.js), the build (which writes the cache) and the tests. CommonJS, as the launcher.
"use strict"
const fs = require("node:fs")
const path = require("node:path")
const vm = require("node:vm")
const { createRequire } = require("node:module")

/** The V8 code cache of bundle `file` (bin/bundle.js writes it when it makes the bundle). */
const cacheOf = (file) => `${file}.cache`

/**
 * Compiles and runs the CommonJS bundle `file` (an absolute path) as Node would `require` it, with its code
 * cache where that is at least as new as the bundle (V8 itself checks its version, its flags and the source's
 * length, not its text: a bundle edited since is compiled afresh). Returns its `exports` (`startLlama`,
 * `bootLlama`: src/serve/LlamaBoot.ts; `run()`: imports the entry it was made from, which starts its
 * command) and what became of the `cache`: "used", "rejected" by V8, or "none" (none as new as the bundle).
 * With `produce`, no cache is read, and the process writes one when it exits (what V8 compiled by then:
 * the build runs the bundle's `--version`). Throws what reading, compiling or evaluating it threw.
 */
const loadBundle = (file, produce = false) => {
  const source = fs.readFileSync(file, "utf8")
  const cache = cacheOf(file)
  let cachedData
  if (!produce) {
    try {
      if (fs.statSync(cache).mtimeMs >= fs.statSync(file).mtimeMs) cachedData = fs.readFileSync(cache)
    } catch {
      // No cache: compiled from its source.
    }
  }
  // Node's own CommonJS wrapper, on the source's first line (its line numbers stay the bundle's).
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, cachedData })
  const module = { exports: {} }
  script.runInThisContext()(module.exports, createRequire(file), module, file, path.dirname(file))
  if (produce) process.once("exit", () => fs.writeFileSync(cache, script.createCachedData()))
  return { exports: module.exports, cache: cachedData === undefined ? "none" : script.cachedDataRejected ? "rejected" : "used" }
}

module.exports = { loadBundle, cacheOf }
