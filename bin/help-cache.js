// The help cache (issue 14 part 3: `autotune --help` in under 0.3 s).
//
// What `autotune --help`, `-h`, `--version` and `autotune <command> --help`
// print is a pure function of the compiled CLI in dist/: the build (`npm run
// build`, which `npm install` runs through `prepare`) runs the CLI itself for
// each of them and keeps its exact stdout in dist/help/, styled as a terminal
// gets it (FORCE_COLOR=1). The launcher prints a kept answer, plain where the
// CLI would print it plain (`keepsAnsi`: a pipe, a file, NO_COLOR), when it is
// at least as new as every compiled file, so those
// invocations load neither Effect (0.45 s of module loading on Node 20, which
// has no compile cache) nor the CLI; any other argv, a stale or missing entry,
// or AUTOTUNE_HELP_CACHE=off runs the CLI as before. test/library/Package.test.ts
// checks every entry against the live CLI, byte for byte.
//
// CommonJS, as the launcher (bin/package.json): it is required before anything else loads.
"use strict"
const fs = require("node:fs")
const path = require("node:path")

const HELP_FLAGS = new Set(["--help", "-h"])

/**
 * The cache entry that answers `args` (the argv after `autotune`), or null
 * when it is not a pure help or version request: `help` (`--help`, `-h`),
 * `version` (`--version`), `<command>.help` (`<command> --help|-h`).
 */
const keyOf = (args) => {
  if (args.length === 1 && HELP_FLAGS.has(args[0])) return "help"
  if (args.length === 1 && args[0] === "--version") return "version"
  if (args.length === 2 && /^[a-z][a-z-]*$/.test(args[0]) && HELP_FLAGS.has(args[1])) return `${args[0]}.help`
  return null
}

/**
 * The newest modification time (ms) of the files under `dir` whose names end with `ext` (0 when none),
 * leaving out what the build derives from the compiled CLI: the kept answers (help/) and the bundles
 * (serve-bundle/, cli-bundle/ and the next ones being written, bin/bundle.js; made after the answers).
 */
const newestFile = (dir, ext) =>
  fs.readdirSync(dir, { withFileTypes: true }).reduce((newest, e) => {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) return e.name === "help" || /^(serve|cli)-bundle(\.next-\d+)?$/.test(e.name) ? newest : Math.max(newest, newestFile(p, ext))
    return e.name.endsWith(ext) ? Math.max(newest, fs.statSync(p).mtimeMs) : newest
  }, 0)

/**
 * What the answers depend on besides the compiled files, as one line: this
 * package's version (`--version`, and the help's header, read from
 * package.json at run time) and the versions of the packages that lay the
 * help out (@effect/cli, @effect/printer, @effect/printer-ansi; "none" for
 * one not installed). Kept beside the answers as `stamp`; answers under
 * another stamp are not used.
 */
const stampOf = (dist) => {
  const root = path.join(dist, "..")
  const version = (file) => JSON.parse(fs.readFileSync(file, "utf8")).version
  const installed = (name) => {
    try {
      return version(require.resolve(`${name}/package.json`, { paths: [root] }))
    } catch {
      return "none"
    }
  }
  const layout = ["@effect/cli", "@effect/printer", "@effect/printer-ansi"].map((n) => `${n} ${installed(n)}`)
  return [`llm-autotune ${version(path.join(root, "package.json"))}`, ...layout].join(", ")
}

/**
 * The kept stdout (bytes) answering `args` from `dist`, or null: not a help or
 * version request, no entry, an entry older than a compiled file, a stamp
 * that is not this package's and @effect/cli's versions, or
 * AUTOTUNE_HELP_CACHE=off.
 */
const cached = (dist, args) => {
  const key = keyOf(args)
  if (key === null || process.env.AUTOTUNE_HELP_CACHE === "off") return null
  try {
    const dir = path.join(dist, "help")
    const kept = fs.statSync(path.join(dir, `${key}.txt`), { throwIfNoEntry: false })
    if (kept === undefined || kept.mtimeMs < newestFile(dist, ".js")) return null
    if (fs.readFileSync(path.join(dir, "stamp"), "utf8") !== stampOf(dist)) return null
    return fs.readFileSync(path.join(dir, `${key}.txt`))
  } catch {
    return null
  }
}

const ANSI = /\u001b\[[0-9;]*m/g

/** Values of FORCE_COLOR that force styling, as Node's own `tty.getColorDepth` reads them (others, "0" and "false", turn it off). */
const FORCING = new Set(["", "1", "2", "3", "true"])

/**
 * Whether text written to `stream` keeps its ANSI styling: FORCE_COLOR, when set, decides first, read
 * as Node's `tty.WriteStream.getColorDepth` reads it ("", "1", "2", "3", "true" keep it; "0", "false"
 * or another value drops it); else NO_COLOR set and non-empty (https://no-color.org),
 * NODE_DISABLE_COLORS set or TERM=dumb drops it; else it is kept on a terminal and dropped for a
 * pipe or a file. The CLI's rule is the same
 * (src/cli/PlainText.ts `keepsAnsi`; test/cli/PlainText.test.ts checks both on one table).
 */
const keepsAnsi = (stream, env = process.env) => {
  if (env.FORCE_COLOR !== undefined) return FORCING.has(env.FORCE_COLOR)
  if ((env.NO_COLOR ?? "") !== "" || env.NODE_DISABLE_COLORS !== undefined || env.TERM === "dumb") return false
  return stream.isTTY === true
}

/** A kept answer (bytes, styled) as `stream` should get it: as kept, or without its SGR sequences (`keepsAnsi`). */
const forStream = (kept, stream) => (keepsAnsi(stream) ? kept : Buffer.from(kept.toString("utf8").replace(ANSI, ""), "utf8"))

/**
 * The environment the build runs the CLI in to keep its answers: styled, as a terminal gets them
 * (FORCE_COLOR=1; `forStream` makes them plain for a pipe or a file, as the CLI itself then does), and
 * without NO_COLOR and NODE_DISABLE_COLORS, which Node would warn about beside FORCE_COLOR on stderr
 * (a run with anything on stderr is not kept). Not the cache's own switch.
 */
const captureEnv = (env) => {
  const { NO_COLOR: _n, NODE_DISABLE_COLORS: _d, ...inherited } = env
  return { ...inherited, AUTOTUNE_HELP_CACHE: "off", FORCE_COLOR: "1" }
}

/**
 * Writes dist/help/: runs `node dist/bin.js` for `--help`, `-h`, `--version`
 * and each command the top-level help lists (`<command> --help`, `-h`), two
 * at a time, in `captureEnv` (styled), and keeps each stdout of a run that
 * exited 0 with nothing on stderr, with the `stamp` it was made under. Skipped when the stamp holds
 * and every kept entry is newer than every compiled file. A run that fails
 * leaves its entry out (the launcher then runs the CLI) and is reported;
 * it never fails the build, which only loses the shortcut.
 */
const build = async (dist) => {
  const { execFile } = require("node:child_process")
  const dir = path.join(dist, "help")
  const newest = newestFile(dist, ".js")
  const stamp = stampOf(dist)
  const fresh = (file) => (fs.statSync(path.join(dir, file), { throwIfNoEntry: false })?.mtimeMs ?? 0) >= newest
  const run = (args) =>
    new Promise((resolve) => {
      const env = captureEnv(process.env)
      // A CLI that hangs costs the build a minute per run (at most 8 minutes), not forever.
      const options = { env, encoding: "buffer", maxBuffer: 16 << 20, timeout: 60_000 }
      execFile(process.execPath, [path.join(dist, "bin.js"), ...args], options, (error, stdout, stderr) =>
        resolve({ args, ok: error === null && stderr.length === 0, stdout, stderr: stderr.toString("utf8") }))
    })
  // Nothing compiled since the last cache, under the same versions.
  const kept = fs.existsSync(dir) ? fs.readdirSync(dir) : []
  const stampHolds = kept.includes("stamp") && fs.readFileSync(path.join(dir, "stamp"), "utf8") === stamp
  if (stampHolds && kept.includes("help.txt") && kept.every(fresh)) return
  fs.rmSync(dir, { recursive: true, force: true })
  const top = await run(["--help"])
  if (!top.ok) {
    process.stderr.write(`help cache: autotune --help failed, so nothing is kept (the CLI answers): ${top.stderr.trim()}\n`)
    return
  }
  const commands = [...top.stdout.toString("utf8").replace(ANSI, "").matchAll(/^ {2}- ([a-z][a-z-]*)\b/gm)].map((m) => m[1])
  const wanted = [["-h"], ["--version"], ...commands.flatMap((c) => [[c, "--help"], [c, "-h"]])]
  // Each alias is run too (not assumed equal): the cache keeps what the CLI printed for it.
  const runs = [top]
  for (let i = 0; i < wanted.length; i += 2) runs.push(...(await Promise.all(wanted.slice(i, i + 2).map(run))))
  // Written aside and renamed into place whole, so a launcher never reads a half-written cache.
  const staging = `${dir}.${process.pid}`
  fs.rmSync(staging, { recursive: true, force: true })
  fs.mkdirSync(staging, { recursive: true })
  for (const r of runs) {
    if (!r.ok) {
      process.stderr.write(`help cache: autotune ${r.args.join(" ")} failed; it will run the CLI: ${r.stderr.trim()}\n`)
      continue
    }
    const key = keyOf(r.args)
    // `-h` and `--help` share an entry: the CLI must have printed the same for both.
    const file = path.join(staging, `${key}.txt`)
    if (fs.existsSync(file) && !fs.readFileSync(file).equals(r.stdout)) {
      fs.rmSync(file)
      process.stderr.write(`help cache: autotune ${r.args.join(" ")} differs from its alias; it will run the CLI\n`)
      continue
    }
    fs.writeFileSync(file, r.stdout)
  }
  fs.writeFileSync(path.join(staging, "stamp"), stamp)
  fs.rmSync(dir, { recursive: true, force: true })
  fs.renameSync(staging, dir)
}

module.exports = { cached, captureEnv, forStream, keepsAnsi, keyOf, newestFile, build }

if (require.main === module) {
  // Never fails the build: without a cache the launcher runs the CLI for these too.
  build(path.join(__dirname, "..", "dist")).catch((e) => {
    process.stderr.write(`help cache: not built (the CLI answers --help itself): ${e.message}\n`)
  })
}
