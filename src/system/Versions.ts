/** Versions of this package and of node-llama-cpp (F-2 `machine.binary_version` of the embedded provider). */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))

/**
 * `version` of the first `<dir>/<relative>` package.json found from this file
 * upwards (node-llama-cpp does not export its package.json), else "unknown".
 */
const versionOf = (relative: string): string => {
  for (let dir = here; ; dir = path.dirname(dir)) {
    const file = path.join(dir, relative)
    if (fs.existsSync(file)) return (JSON.parse(fs.readFileSync(file, "utf8")) as { version?: string }).version ?? "unknown"
    if (path.dirname(dir) === dir) return "unknown"
  }
}

/** This package's version, from its package.json (one source for `--version` and the recipe). */
export const AUTOTUNE_VERSION: string = versionOf("package.json")

/** The installed node-llama-cpp version (the embedded provider's engine). */
export const NODE_LLAMA_CPP_VERSION: string = versionOf(path.join("node_modules", "node-llama-cpp", "package.json"))

/** F-2 `machine.binary_version` of the embedded provider when it is this tool itself. */
export const EMBEDDED_BINARY_VERSION = `llm-autotune ${AUTOTUNE_VERSION} (node-llama-cpp ${NODE_LLAMA_CPP_VERSION})`
