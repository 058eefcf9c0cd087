/**
 * The persistent ggml threadpool for the embedded provider's llama.cpp contexts
 * (native/llama-threadpool.c, built by bin/native.js into dist/native/): node-llama-cpp
 * 3.22.1 attaches none, so without it every decoded token starts and joins llama.cpp's
 * helper threads anew (issue 14: decode at 2 threads on 2 cores, where that cost the 15M
 * model a quarter of its speed and made 1 thread look faster than 2).
 *
 * It must be loaded before node-llama-cpp loads its addon (LlamaBoot does, before
 * `getLlama`), with RTLD_GLOBAL, so that the addon's `llama_decode` and `llama_free`
 * resolve to it. `AUTOTUNE_THREADPOOL=off` leaves it out (the bench's side-by-side row,
 * or an operator ruling it out).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { NODE_LLAMA_CPP_VERSION } from "../system/Versions.js"

/** The built library, dist/native/ under the package root (from src/serve/ or dist/serve/ alike, and from a bundle). */
export const threadpoolShimPath = fileURLToPath(new URL("../../dist/native/llama-threadpool.so", import.meta.url))

/** What bin/native.js built it against: `{"node-llama-cpp": "<version>"}` (its `struct llama_batch`). */
const builtForPath = path.join(path.dirname(threadpoolShimPath), "built-for.json")

/** Whether the shim is in the process, or why not (for the `loaded …` line, and the bench). */
export type ThreadpoolShim =
  | { readonly loaded: true }
  | { readonly loaded: false; readonly why: string }

let state: ThreadpoolShim | undefined

/**
 * Loads the shim into this process once (later calls answer the first's outcome). Never throws:
 * a shim that is off, not built (no C compiler at build time, not Linux), built for another
 * node-llama-cpp than the installed one, or not loadable leaves
 * llama.cpp's per-graph threads, said in the result. Must run before node-llama-cpp's `getLlama`.
 */
export const loadThreadpoolShim = (): ThreadpoolShim => {
  state ??= (() => {
    if (process.env["AUTOTUNE_THREADPOOL"] === "off") return { loaded: false, why: "AUTOTUNE_THREADPOOL=off" }
    if (process.platform !== "linux") return { loaded: false, why: `not built for ${process.platform}` }
    // (An install from a package tarball runs no build: it has none.)
    if (!fs.existsSync(threadpoolShimPath)) return { loaded: false, why: "not built: npm run build makes it, or says why it cannot" }
    if (!fs.existsSync(builtForPath)) return { loaded: false, why: `${builtForPath} is missing: npm run build` }
    try {
      // Built against another node-llama-cpp than the one installed (`npm update` runs no build): its llama_batch may differ.
      const built = (JSON.parse(fs.readFileSync(builtForPath, "utf8")) as Record<string, unknown>)["node-llama-cpp"]
      // (Versions.ts read the installed one already: serve names it in --version and the recipe's identity.)
      if (built !== NODE_LLAMA_CPP_VERSION) {
        return { loaded: false, why: `built for node-llama-cpp ${String(built)}, ${NODE_LLAMA_CPP_VERSION} installed (npm run build)` }
      }
      const { RTLD_NOW, RTLD_GLOBAL } = os.constants.dlopen as { RTLD_NOW: number; RTLD_GLOBAL: number }
      process.dlopen({ exports: {} }, threadpoolShimPath, RTLD_NOW | RTLD_GLOBAL)
      return { loaded: true }
    } catch (e) {
      return { loaded: false, why: `cannot load ${threadpoolShimPath}: ${e instanceof Error ? e.message : String(e)}` }
    }
  })()
  return state
}

/**
 * How the `loaded …` line names it: `ggml threadpool persistent (attached at the first decode)`, or
 * `per graph (<why>)`. Loaded is not yet attached: the library says on stderr when it attaches a pool
 * ("autotune: a persistent ggml threadpool of N thread(s) attached …"), or that it cannot.
 */
export const threadpoolText = (s: ThreadpoolShim): string =>
  s.loaded ? "ggml threadpool persistent (attached at the first decode)" : `ggml threadpool per graph (${s.why})`
