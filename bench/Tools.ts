/**
 * Paths the bench runs: the project's CLI and the llama.cpp tools, resolved as
 * an operator has them (../shared/llama.cpp/README): `$LLAMA_SERVER`,
 * `$LLAMA_CPP_BIN_DIR`, PATH, then the shared build beside the project.
 */
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { findExecutable, findLlamaServer } from "../src/services/Executables.js"

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
