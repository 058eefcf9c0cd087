/** Per-user data and cache directories (XDG on Linux, Apple's conventions on macOS). */
import * as os from "node:os"
import * as path from "node:path"

/**
 * Per-user directories, following the XDG Base Directory spec on Linux
 * (`$XDG_DATA_HOME`, default `~/.local/share`; `$XDG_CACHE_HOME`, default
 * `~/.cache`) and Apple's conventions on macOS (`~/Library/Application Support`,
 * `~/Library/Caches`). Each ends in `llm-autotune`.
 */
const base = (xdgVar: string, xdgDefault: string, macDir: string): string =>
  path.join(
    process.platform === "darwin"
      ? path.join(os.homedir(), "Library", macDir)
      : process.env[xdgVar] || path.join(os.homedir(), xdgDefault),
    "llm-autotune"
  )

/** Where the trial database and provider logs live. */
export const dataDir = (): string => base("XDG_DATA_HOME", ".local/share", "Application Support")

/** Where generated synthetic models are cached. */
export const cacheDir = (): string => base("XDG_CACHE_HOME", ".cache", "Caches")

/** Default `--db-path`: `<data dir>/autotune.db`. */
export const defaultDbPath = (): string => path.join(dataDir(), "autotune.db")
