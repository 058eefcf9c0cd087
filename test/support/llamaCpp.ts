/**
 * The real llama.cpp binaries for tests (../shared/llama.cpp/README): resolved
 * as an operator has them ($LLAMA_SERVER, $LLAMA_CPP_BIN_DIR), falling back to
 * the shared build next to the project. Never copied into the project.
 */
import * as Path from "node:path"
import { repoRoot } from "./models.js"

const sharedBin = Path.resolve(repoRoot, "..", "shared", "llama.cpp", "bin")

/** Path of `llama-server`. */
export const llamaServerBin = (): string =>
  process.env["LLAMA_SERVER"] ?? Path.join(process.env["LLAMA_CPP_BIN_DIR"] ?? sharedBin, "llama-server")

/** Path of `llama-bench`. */
export const llamaBenchBin = (): string => Path.join(process.env["LLAMA_CPP_BIN_DIR"] ?? sharedBin, "llama-bench")
