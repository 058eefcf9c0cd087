/** Executables on PATH, and where llama-server is looked for (SPEC E-5). */
import * as fs from "node:fs"
import * as path from "node:path"

/**
 * `command` as an absolute, symlink-free path of an executable file: looked up
 * on PATH when it has no slash, else resolved from the working directory.
 * null when there is no such executable.
 */
export const findExecutable = (command: string): string | null => {
  const candidates = command.includes("/")
    ? [path.resolve(command)]
    : (process.env.PATH ?? "").split(path.delimiter).filter((d) => d !== "").map((d) => path.join(d, command))
  for (const c of candidates) {
    try {
      fs.accessSync(c, fs.constants.X_OK)
      if (!fs.statSync(c).isFile()) continue // a directory is "executable" too
      return fs.realpathSync(c)
    } catch {
      // not this one
    }
  }
  return null
}

/** Where a provider binary was looked for, in order, and what was found. */
export interface BinaryLookup {
  /** Absolute path of the executable, or null when none of the places had one. */
  readonly found: string | null
  /** Each place looked, as the operator would name it (for the error message). */
  readonly looked: ReadonlyArray<string>
}

/**
 * Resolves llama.cpp's `llama-server` as an operator installs it (issue
 * "llama-server" and ../shared/llama.cpp/README): `--provider-bin` when given
 * (only that), else `$LLAMA_SERVER`, else `$LLAMA_CPP_BIN_DIR/llama-server`,
 * else `llama-server` on PATH. Never fails; the caller turns `found: null`
 * into a usage error that lists `looked`.
 */
export const findLlamaServer = (providerBin: string | null, env: NodeJS.ProcessEnv = process.env): BinaryLookup => {
  if (providerBin !== null) return { found: findExecutable(providerBin), looked: [`--provider-bin ${providerBin}`] }
  const places: Array<readonly [string, string]> = []
  // A variable the operator set is used or reported, never skipped for the next place.
  if (env["LLAMA_SERVER"]) return { found: findExecutable(env["LLAMA_SERVER"]), looked: [`$LLAMA_SERVER=${env["LLAMA_SERVER"]}`] }
  else places.push(["$LLAMA_SERVER (not set)", ""])
  if (env["LLAMA_CPP_BIN_DIR"]) {
    const p = path.join(env["LLAMA_CPP_BIN_DIR"], "llama-server")
    places.push([`$LLAMA_CPP_BIN_DIR/llama-server=${p}`, p])
  } else places.push(["$LLAMA_CPP_BIN_DIR (not set)", ""])
  places.push(["llama-server on PATH", "llama-server"])
  for (const [, p] of places) {
    const found = p === "" ? null : findExecutable(p)
    if (found !== null) return { found, looked: places.map(([l]) => l) }
  }
  return { found: null, looked: places.map(([l]) => l) }
}
