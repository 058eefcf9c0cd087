#!/usr/bin/env node
// Part of `npm run build`, after tsc: bundles the launcher's two entries with esbuild, the bundler
// tsx already brings. One CommonJS file for Effect, @effect/cli and @effect/platform instead of hundreds of
// ES modules, each resolved, read and compiled on every start, and a V8 code cache beside it, written by
// running the bundle once here (bin/bundle-load.js runs it with that cache: ~0.1 s less per start, below):
// - dist/serve-bundle/serve.cjs: `autotune serve` (dist/serveBin.js, the embedded provider the tuner starts once
//   per candidate). The serve entry's own loading took 0.73–0.79 s from dist/ and 0.22–0.25 s bundled
//   (2 cores, 2026-12-06, issue 14 part 3: an embedded candidate's spawn → ready at its load + 0.3 s).
// - dist/cli-bundle/cli.cjs: every other command (dist/bin.js, the whole CLI; better-sqlite3, a native addon
//   that finds its binary from its own folder, stays outside, and must resolve from the bundle's folder as
//   from the package that imports it: not so in a pnpm layout, which then gets no CLI bundle). `autotune
//   history` took 0.90–1.38 s from dist/ and 0.35–0.52 s bundled as ES modules, and a tune reached its first trial 1.0 s sooner; its first memory
//   estimate no longer imports node-llama-cpp's ~300 modules nor forks its binary test (2 cores,
//   2026-12-07, issue 14 part 4: the tune's own start-up and the gaps between trials).
// CommonJS (not ES modules, as until 2026-12-07) for the code cache: Node 20 keeps none for ES modules. With
// it, the 130M's spawn → ready beyond its load 0.21–0.28 s against 0.34–0.37 s, `autotune history` 0.27–0.28 s
// against 0.37–0.40 s (2 cores, 2026-12-07). Each bundle is one file exporting LlamaBoot's `startLlama` and
// `bootLlama` and `run()`, which imports its entry (evaluated then, not before): the launcher's early start of
// llama.cpp and the engine's use of it are one module instance. It runs in strict mode, as its ES modules did
// (and the CommonJS packages inside them, which the ES module bundles ran strict too). Any package's other
// `import.meta.url` is the bundle's own URL, as it was in those; an `import.meta` otherwise left empty, or an
// `import()` the bundle could not run (bin/bundle-load.js), fails that bundle (said).
//
// node-llama-cpp is bundled too (issue 14 part 3: its ~300 modules took 0.27–0.35 s to import and its
// per-start binary test 0.4 s, both on an embedded candidate's spawn → ready), where all of this holds,
// else it stays outside the bundles (imported from node_modules, testing its binary at every start) and
// the build says why:
// - Its own paths stay its own: it finds its prebuilt binaries, its llama/ folder and its package.json
//   from `import.meta.url`, which each of its modules gets back as its own file's URL, relative to the
//   bundle's file (no module may find its files otherwise). The compiled modules of this package (dist/)
//   get their own URLs back the same way (they find bin/autotune.js, bin/provider-shim.mjs and package.json from them).
// - Its one top-level await (node-llama-cpp 3.22.1 reads its llama.cpp release from a JSON file with it),
//   which CommonJS cannot hold, becomes the same read made synchronously; another one fails the bundle.
// - Its binary test (a forked Node that loads the native binding before the real load, so an
//   incompatible binary cannot crash the caller) is run here, once, by node-llama-cpp itself unbundled
//   (`getLlama`, CPU only, build never: the binary every start loads), and must pass; the bundle's copy
//   answers "passed" without a fork.
// - llama.cpp starts through each bundle (its own LlamaBoot, in a child process): the packages the
//   bundled copy imports at run time (its prebuilt binaries) resolve from the bundle's folder, not only
//   from node-llama-cpp's (a nested or pnpm layout).
// What a bundle imports at run time from outside it (node-llama-cpp's prebuilt binaries, or node-llama-cpp
// itself left outside) it imports through its own import.cjs (bin/bundle-load.js says why).
// The version of every package a bundle holds from node_modules (node-llama-cpp, Effect, …) goes into its
// built-with.json, with its package.json's size, times and inode (bin/bundle-use.js reads only a file that
// changed since): bin/autotune.js uses a bundle only while those are the ones installed (`npm update`
// runs no build).
// The bundles are written last, after dist/.tsbuildinfo is touched: bin/autotune.js uses one only
// while it is at least as new as that file and the entry it was made from (a bare `tsc` after it
// leaves it stale, and unused). An entry not compiled (a dist/ without it) gets no bundle.
"use strict"
const { spawnSync } = require("node:child_process")
const fs = require("node:fs")
const path = require("node:path")

const root = path.join(__dirname, "..")
const dist = path.join(root, "dist")
/**
 * The bundles: their folder under dist/ and file in it, the entry it runs (a compiled module, relative to
 * dist/), what stays outside besides native code, and how the notes name them.
 */
const BUNDLES = [
  { dir: "serve-bundle", file: "serve.cjs", entry: "serveBin.js", external: [], label: "serve", runs: "autotune serve runs from dist/" },
  // better-sqlite3 finds its native binary from its own folder (the `bindings` package reads its caller's file path).
  { dir: "cli-bundle", file: "cli.cjs", entry: "bin.js", external: ["better-sqlite3"], label: "CLI", runs: "the other commands run from dist/" }
]
/** What each bundle exports (bin/bundle-load.js): LlamaBoot's starts, and its entry, evaluated when run. */
const entryOf = (b) => [
  `export { startLlama, bootLlama } from "./serve/LlamaBoot.js"`,
  `export const run = () => import(${JSON.stringify(`./${b.entry}`)})`
].join("\n")
// Written aside, then renamed into place: a command started while the build runs finds the old bundle,
// none (and runs from dist/), or the new one whole, never half of one.
const nextOf = (b) => path.join(dist, `${b.dir}.next-${process.pid}`)
// Also what a build stopped midway left.
for (const d of fs.readdirSync(dist)) {
  if (/^((serve|cli)-bundle\.next-\d+|binary-test-\d+\.mjs)$/.test(d)) fs.rmSync(path.join(dist, d), { recursive: true, force: true })
}
// A bundle that cannot be made never fails the build: what it bundles then runs from dist/, only slower.
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

/**
 * Whether node-llama-cpp, unbundled, loads its CPU binary on this machine (its binary test included),
 * the binary it tried first: where it fell back (a local build that failed its test, then the prebuilt
 * one: node-llama-cpp 3.22.1 says "Falling back to …"), the bundle's test, which always passes, would
 * load the one that failed.
 */
const binaryPasses = () => {
  const why = runScript(dist, [
    "const said = []",
    "for (const k of [\"info\", \"warn\", \"error\"]) { const f = console[k]; console[k] = (...a) => { said.push(a.join(\" \")); f(...a) } }",
    "const m = await import(\"node-llama-cpp\")",
    "const llama = await m.getLlama({ gpu: false, build: \"never\", logLevel: m.LlamaLogLevel.error })",
    "await llama.dispose()",
    "const fell = said.find((l) => /falling back/i.test(l))",
    "if (fell !== undefined) { console.error(fell.trim()); process.exit(1) }"
  ])
  if (why !== null) process.stderr.write(`note: node-llama-cpp's binary test failed here, so the bundles leave node-llama-cpp outside (it tests at every start): ${why}\n`)
  return why === null
}

const nlcDist = /[\\/]node_modules[\\/]node-llama-cpp[\\/]dist[\\/]/

/** A compiled module of this package (under dist/, not a bundle's own output). */
const ownDist = (file) => !path.relative(dist, file).startsWith("..") && !/^(serve|cli)-bundle/.test(path.relative(dist, file))

/** Whether `spec` is one of esbuild's `external` patterns (a trailing `*` matches any rest). */
const matches = (external, spec) => external.some((e) => e.endsWith("*") ? spec.startsWith(e.slice(0, -1)) : spec === e)

// node-llama-cpp 3.22.1's one top-level await (bindings/utils/binariesGithubRelease.js), and the same read
// made synchronously (its `fs` is fs-extra, which has readFileSync): CommonJS holds no top-level await.
const releaseAwait = "export const builtinLlamaCppRelease = await getBinariesGithubRelease();"
const releaseRead = "export const builtinLlamaCppRelease = JSON.parse(fs.readFileSync(binariesGithubReleasePath, \"utf8\")).release;"

/**
 * esbuild plugin for the bundle file `file`, `external` left outside it: node-llama-cpp's modules and this
 * package's compiled ones keep their own file URLs, and import what is left outside through the bundle's
 * import.cjs (bin/bundle-load.js); node-llama-cpp's binary test is the one run above, its top-level await a read.
 */
const inPlace = (file, external) => ({
  name: "own-file-urls",
  setup(build) {
    // `import.meta.url` as the module's own file's URL, relative to the bundle's (the package may move);
    // `import("x")` of a package left outside through the bundle's own importer (the banner's).
    // (Text, not syntax: one in a comment or a string is rewritten too, harmlessly. A call it leaves, an
    // external's with options say, or one whose specifier is computed, fails the bundle below.)
    const importsOutside = (text) =>
      text.replace(/(?<![\w$.])import\s*\(\s*(["'])([^"'\s]+)\1\s*\)/g, (call, q, spec) => matches(external, spec) ? `__autotuneImport(${q}${spec}${q})` : call)
    const own = (input, text) => {
      const rel = path.relative(path.dirname(file), input).split(path.sep).map(encodeURIComponent).join("/")
      return { loader: "js", contents: importsOutside(text.replaceAll("import.meta.url", `new URL(${JSON.stringify(rel)}, __autotuneBundleUrl).href`)) }
    }
    build.onLoad({ filter: /node-llama-cpp[\\/]dist[\\/].*\.js$/ }, (args) => {
      if (!nlcDist.test(args.path)) return undefined
      if (/[\\/]bindings[\\/]utils[\\/]testBindingBinary\.js$/.test(args.path)) {
        return { loader: "js", contents: "// Tested by bin/bundle.js when it made this bundle.\nexport async function testBindingBinary() { return true }\n" }
      }
      const text = fs.readFileSync(args.path, "utf8").replace(releaseAwait, releaseRead)
      // Only import.meta.url is given back; another way to its own place would be the bundle's: not bundled then.
      // (A module's own __dirname or __filename, defined from import.meta.url, follows it.)
      const other = /import\.meta\.(?!url\b)\w+/.exec(text)?.[0] ??
        ["__dirname", "__filename"].find((n) => new RegExp(`\\b${n}\\b`).test(text) && !text.includes(`const ${n} = `))
      if (other !== undefined) throw new Error(`${args.path} finds its files by ${other}, which a bundle would change`)
      return own(args.path, text)
    })
    build.onLoad({ filter: /\.js$/ }, (args) => {
      if (!ownDist(args.path)) return undefined
      const text = fs.readFileSync(args.path, "utf8")
      const other = /import\.meta\.(?!url\b)\w+/.exec(text)?.[0]
      if (other !== undefined) throw fatal(`${args.path} finds its files by ${other}, which a bundle would change`)
      return text.includes("import.meta.url") || /\bimport\s*\(/.test(text) ? own(args.path, text) : undefined
    })
    // Any other package's `import()` of one left outside (ipull's of @reflink/reflink).
    build.onLoad({ filter: /[\\/]node_modules[\\/].*\.(m?js|cjs)$/ }, (args) => {
      const text = fs.readFileSync(args.path, "utf8")
      if (!/\bimport\s*\(/.test(text)) return undefined
      const contents = importsOutside(text)
      return contents === text ? undefined : { loader: "js", contents }
    })
  }
})

/** The file `pkg` resolves to from a module in `dir`, or null. */
const resolveFrom = (dir, pkg) => {
  try {
    return require("node:module").createRequire(path.join(dir, "x.js")).resolve(pkg)
  } catch {
    return null
  }
}

/** A failure no other bundle of the same entry would avoid: said, and that bundle is not made. */
const fatal = (message) => Object.assign(new Error(message), { fatal: true })

// The bundle's own importer (bin/bundle-load.js: a script compiled from a code cache has no import() of its own in Node 20).
const importer = [
  "// Imports, for the bundle beside this file (bin/bundle.js), what it leaves outside: resolved from this folder, as from the bundle.",
  "module.exports = (specifier) => import(specifier)",
  ""
].join("\n")

/**
 * Makes bundle `b` (one of BUNDLES) with `esbuild`, node-llama-cpp inside it or not (`inside`), and its code
 * cache (bin/bundle-load.js) by running it once (its `--version`); throws when what it made would not serve:
 * node-llama-cpp's package not found among the inputs, a top-level await or an `import.meta` other than its
 * URL left in it (CommonJS has neither), an `import()` left in it (of a package left outside that was not
 * routed through import.cjs, or of a computed specifier), llama.cpp not starting through its own LlamaBoot (a
 * package the bundled copy imports that resolves from node-llama-cpp's folder but not from the bundle's, as
 * in a nested or pnpm layout), or the bundle not running its `--version` or writing no code cache.
 * Throws `fatal` (no bundle of this entry would serve) when one of this package's modules finds its files
 * otherwise than by import.meta.url, or a package left outside resolves otherwise from the bundle than
 * from the module importing it.
 */
const build = async (esbuild, inside, b) => {
  const next = nextOf(b)
  fs.rmSync(next, { recursive: true, force: true })
  const file = path.join(next, b.file)
  // Native code and the prebuilt-binary packages are found at run time, from node_modules.
  const external = [...(inside ? ["@node-llama-cpp/*", "@reflink/*", "*.node"] : ["node-llama-cpp"]), ...b.external]

  const built = await esbuild.build({
    // Metafile paths relative to the package, wherever the build was started from.
    absWorkingDir: root,
    stdin: { contents: entryOf(b), resolveDir: dist, sourcefile: `bundle-of-${b.entry}`, loader: "js" },
    outfile: file,
    bundle: true,
    format: "cjs",
    platform: "node",
    target: "node20",
    external,
    plugins: [inPlace(file, external)],
    // Strict mode, as every ES module and the ES module bundles before (esbuild adds no directive to a CommonJS
    // file); the bundle's own URL (what its modules' file URLs are relative to) and importer (import.cjs, above).
    banner: { js: "\"use strict\";\nconst __autotuneBundleUrl = require(\"node:url\").pathToFileURL(__filename).href, __autotuneImport = require(\"./import.cjs\");" },
    // Any other package's import.meta.url: the bundle's, as in the ES module bundles (esbuild would leave it empty).
    define: { "import.meta.url": "__autotuneBundleUrl" },
    // Class and function names as in dist/ (stack traces, and any code that reads a constructor's name).
    keepNames: true,
    logLevel: "warning",
    // What went in, for the tests of what each holds (test/serve/Serve.test.ts, test/library/Package.test.ts).
    metafile: true
  })
  fs.writeFileSync(path.join(next, "import.cjs"), importer)
  fs.writeFileSync(path.join(next, "meta.json"), JSON.stringify(built.metafile))
  // esbuild leaves any other `import.meta` (`dirname`, `filename`, …) empty in CommonJS, as `import_meta = {}`,
  // and says so only outside node_modules (node-llama-cpp's: not bundled then).
  const output = fs.readFileSync(file, "utf8")
  const empty = /\bimport_meta\d*\s*=\s*\{\s*\}/.exec(output)
  if (empty !== null) throw new Error(`a bundled module uses import.meta otherwise than for its URL, which a CommonJS bundle leaves empty (${empty[0]})`)
  // esbuild turns every import() of a bundled module into a call of its own; one left (a computed specifier,
  // which the metafile below does not list) would fail when it runs (bin/bundle-load.js). (One of a literal,
  // a JSDoc type `import('x')` in a comment say, is the metafile's to judge.)
  const left = /^.*(?<![\w$.])import\s*\((?!\s*(["'])[^"'\n]*\1\s*\)).*$/m.exec(output)
  if (left !== null) throw new Error(`an import() the bundle cannot run is left in it: ${left[0].trim().slice(0, 120)}`)
  // Its digest, first (bin/bundle-load.js names the code cache by it).
  fs.writeFileSync(file, `// llm-autotune bundle ${require("node:crypto").createHash("sha256").update(output).digest("hex").slice(0, 16)}\n${output}`)
  for (const [input, o] of Object.entries(built.metafile.inputs)) {
    for (const imp of o.imports ?? []) {
      if (!imp.external) continue
      if (imp.kind === "dynamic-import") throw new Error(`${input} imports ${imp.path} by import(), which a script compiled from a code cache cannot (bin/bundle-load.js)`)
      // What stays outside (besides node-llama-cpp's binaries) must resolve from the bundle's folder to the file
      // it resolved to from the module that imports it (not so in a nested or pnpm layout).
      if (!b.external.includes(imp.path)) continue
      const want = resolveFrom(path.dirname(path.join(root, input)), imp.path)
      const got = resolveFrom(next, imp.path)
      if (want !== got) throw fatal(`${imp.path}, imported by ${input}, resolves otherwise from the bundle (${got ?? "not at all"}) than from there (${want ?? "not at all"})`)
    }
  }
  // Every package bundled from node_modules, by its package.json (relative to the package) and version: the
  // launcher runs from dist/ instead once another is installed (`npm update` runs no build).
  // (Absolute paths: a package built inside another's node_modules sees its hoisted siblings as ../x/.)
  const roots = new Set(Object.keys(built.metafile.inputs)
    .map((i) => /^(.*[\\/]node_modules[\\/](?:@[^\\/]+[\\/])?[^\\/]+)[\\/]/.exec(path.resolve(root, i))?.[1])
    .filter((r) => r !== undefined))
  const builtWith = [...roots].sort().flatMap((r) => {
    const manifest = path.relative(root, path.join(r, "package.json")).split(path.sep).join("/")
    const read = (() => {
      try {
        const at = path.join(root, manifest)
        const { ctimeMs, ino, mtimeMs, size } = fs.statSync(at)
        return { version: JSON.parse(fs.readFileSync(at, "utf8")).version, size, mtimeMs, ctimeMs, ino }
      } catch {
        return undefined
      }
    })()
    // With the file's size, times and inode, which the launcher compares first (bin/bundle-use.js).
    return read?.version === undefined ? [] : [{ package: manifest, ...read }]
  })
  if (inside && !Object.keys(built.metafile.inputs).some((i) => nlcDist.test(`/${i}`) && /[\\/]dist[\\/]index\.js$/.test(i))) {
    throw new Error("node-llama-cpp was not found under node_modules/ among the bundle's inputs")
  }
  // Run once as the launcher runs it (bin/bundle-load.js), writing its code cache as it exits: llama.cpp
  // started through its own LlamaBoot (node-llama-cpp inside), then its entry's `--version` (every module
  // evaluated, the command line parsed). Only where that fails, a run of llama.cpp's start alone says which
  // step did (a package the bundled copy imports that resolves from node-llama-cpp's folder but not the bundle's).
  const run = (produce, steps) => runScript(next, [
    "import { createRequire } from \"node:module\"",
    `const { loadBundle } = createRequire(import.meta.url)(${JSON.stringify(path.join(__dirname, "bundle-load.js"))})`,
    `const bundle = loadBundle(${JSON.stringify(file)}, ${produce}).exports`,
    ...steps
  ])
  const boot = inside
    ? [
      "const booted = await bundle.bootLlama()",
      "const llama = await booted.llama.catch((e) => { for (const l of booted.earlyLog ?? []) console.error(l.message); throw e })",
      "await llama.dispose()"
    ]
    : []
  const why = run(true, [...boot, `process.argv = [process.execPath, ${JSON.stringify(file)}, "--version"]`, "await bundle.run()"])
  if (why !== null) {
    const booting = inside ? run(false, boot) : null
    throw new Error(booting !== null ? `llama.cpp does not start through the bundle: ${booting}` : `the bundle does not run its --version: ${why}`)
  }
  if (!fs.readdirSync(next).some((f) => f.startsWith(`${b.file}.`) && f.endsWith(".cache"))) throw new Error("the bundle's code cache was not written")
  fs.writeFileSync(path.join(next, "built-with.json"), JSON.stringify(builtWith))
  const outdir = path.join(dist, b.dir)
  fs.rmSync(outdir, { recursive: true, force: true })
  fs.renameSync(next, outdir)
}

// esbuild's plugins need its asynchronous API. Each bundle whose entry was compiled, with node-llama-cpp
// inside where its binary test passed; where that bundle would not serve, with it outside (tested at every
// start), said on stderr; one that cannot be made at all, said, and its entry runs from dist/.
const main = async () => {
  // Without esbuild (a dev dependency) there is no bundle at all: said once, below, and nothing tested for one.
  const esbuild = require("esbuild")
  const bundles = BUNDLES.filter((b) => fs.existsSync(path.join(dist, b.entry)))
  const passes = bundles.length > 0 && binaryPasses()
  for (const b of bundles) {
    try {
      if (passes) {
        try {
          await build(esbuild, true, b)
          continue
        } catch (e) {
          // (esbuild keeps what a plugin threw as an error's `detail`.)
          if (e.fatal === true || e.errors?.some((m) => m.detail?.fatal === true)) throw e
          process.stderr.write(`note: the ${b.label} bundle leaves node-llama-cpp outside (it tests at every start): ${e instanceof Error ? e.message : String(e)}\n`)
        }
      }
      await build(esbuild, false, b)
    } catch (e) {
      // A bundle left from an earlier build is older than this build's .tsbuildinfo: the launcher does not use it.
      fs.rmSync(nextOf(b), { recursive: true, force: true })
      process.stderr.write(`note: the ${b.label} bundle was not made (${b.runs}): ${e instanceof Error ? e.message : String(e)}\n`)
    }
  }
}

main().catch((e) => {
  for (const b of BUNDLES) fs.rmSync(nextOf(b), { recursive: true, force: true })
  process.stderr.write(`note: no bundle was made (autotune runs from dist/): ${e instanceof Error ? e.message : String(e)}\n`)
})
