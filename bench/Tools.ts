/**
 * Paths the bench runs: the project's CLI and the llama.cpp tools, resolved as
 * an operator has them (../shared/llama.cpp/README): `$LLAMA_SERVER`,
 * `$LLAMA_CPP_BIN_DIR`, PATH, then the shared build beside the project.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { findExecutable, findLlamaServer } from "../src/system/Executables.js"

/** The repository root. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** The project's CLI launcher (`node bin/autotune.js …`). */
export const autotuneBin = path.join(repoRoot, "bin", "autotune.js")

/** The shared llama.cpp build for tests and benchmarks (never copied into the project). */
const sharedBinDir = path.resolve(repoRoot, "..", "shared", "llama.cpp", "bin")

/** `llama-server`: as the tune resolves it (findLlamaServer), else the shared build. */
export const llamaServerPath = (): string => findLlamaServer(null).found ?? path.join(sharedBinDir, "llama-server")

/** `llama-bench`: `$LLAMA_CPP_BIN_DIR/llama-bench`, PATH, else beside the llama-server in use. */
export const llamaBenchPath = (): string =>
  (process.env["LLAMA_CPP_BIN_DIR"] ? findExecutable(path.join(process.env["LLAMA_CPP_BIN_DIR"], "llama-bench")) : null) ??
    findExecutable("llama-bench") ??
    path.join(path.dirname(llamaServerPath()), "llama-bench")

/** Whether `p` is an existing executable regular file. */
const isExecutableFile = (p: string): boolean => {
  try {
    fs.accessSync(p, fs.constants.X_OK)
    return fs.statSync(p).isFile()
  } catch {
    return false
  }
}

/**
 * The llama.cpp tools that do not resolve to an existing executable file (empty
 * when both do), and the places they are looked for, for the bench's error.
 */
export const missingTools = (): { readonly missing: ReadonlyArray<string>; readonly looked: ReadonlyArray<string> } => {
  const env = (name: string) => (process.env[name] ? `$${name}=${process.env[name]}` : `$${name} (not set)`)
  return {
    missing: [["llama-server", llamaServerPath()], ["llama-bench", llamaBenchPath()]]
      .filter(([, p]) => !isExecutableFile(p!))
      .map(([name, p]) => `${name} (resolved to ${p}: not an executable file)`),
    looked: [env("LLAMA_SERVER"), env("LLAMA_CPP_BIN_DIR"), `PATH=${process.env["PATH"] ?? ""}`, `../shared/llama.cpp/bin (${sharedBinDir})`]
  }
}
