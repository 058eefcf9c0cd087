// When the launcher (bin/autotune.js) runs a command from one of the build's bundles (bin/bundle.js):
// shared with the tests that must know which code a command runs. CommonJS, as the launcher.
"use strict"
const fs = require("node:fs")
const path = require("node:path")

/** Whether `file` exists and is at least as new as the newest of `than` that exist (none: false). */
const isFresh = (file, ...than) => {
  const f = fs.statSync(file, { throwIfNoEntry: false })
  const t = than.map((x) => fs.statSync(x, { throwIfNoEntry: false })?.mtimeMs).filter((x) => x !== undefined)
  return f !== undefined && t.length > 0 && f.mtimeMs >= Math.max(...t)
}

/**
 * Whether the packages bundled into `bundle` (its built-with.json, bin/bundle.js: each package.json,
 * relative to the package `root`, the version bundled, and the file's size, modification and change
 * times and inode then) are the ones installed: false once one differs or is gone, or when the file
 * cannot be read. A package.json with the same size, times and inode as at the build is that file,
 * unchanged, so it is not read (85 of them per start read and parsed: 10–12 ms of every candidate start,
 * 2 cores, 2026-12-08). The change time and inode are what make that safe: an installer may give every
 * file one fixed modification time (yarn's 1984 "safe time", a tarball's), so a new version of the
 * same length could match on size and mtime alone; no installer sets a file's change time, and a
 * rewrite changes it. Any other file is read and its version compared (a copy of the package, a
 * reinstall of the same version).
 */
const builtWithInstalled = (root, bundle) => {
  try {
    return JSON.parse(fs.readFileSync(path.join(bundle, "built-with.json"), "utf8")).every((p) => {
      const at = path.join(root, p.package)
      const now = fs.statSync(at)
      const same = now.size === p.size && now.mtimeMs === p.mtimeMs && now.ctimeMs === p.ctimeMs && now.ino === p.ino
      return same || JSON.parse(fs.readFileSync(at, "utf8")).version === p.version
    })
  } catch {
    return false
  }
}

/**
 * Whether the package at `root` runs `entry` (a compiled module, relative to dist/) from its bundle
 * dist/<dir>/<file> (bin/bundle.js): not turned off (`offVar`, e.g. AUTOTUNE_CLI_BUNDLE, set to "off"), the
 * bundle at least as new as the build (dist/.tsbuildinfo; a bare tsc since leaves it stale) and the entry
 * it was made from, and every package it bundled the one installed (`npm update` runs no build).
 */
const bundleUsable = (root, dir, file, entry, offVar) => {
  const dist = path.join(root, "dist")
  return process.env[offVar] !== "off" &&
    isFresh(path.join(dist, dir, file), path.join(dist, ".tsbuildinfo"), path.join(dist, entry)) &&
    builtWithInstalled(root, path.join(dist, dir))
}

module.exports = { bundleUsable }
