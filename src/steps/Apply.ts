/**
 * The apply step (SPEC F-3, F-4): the recommendation written into the
 * provider's config.yaml through the byte-exact editor (domain/ConfigYaml.ts),
 * after an exclusive backup, by temp file + fsync + rename; the check, before
 * a run, that the config can be edited at all; and the restore of the backup
 * when an applied config does not verify (F-6).
 */
import * as crypto from "node:crypto"
import * as Fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { TextDecoder, TextEncoder } from "node:util"
import { FileSystem } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Effect, Either } from "effect"
import { ApplyFailed, UsageError } from "../domain/AutotuneError.js"
import type { ConfigEdit } from "../domain/ConfigYaml.js"
import type { ProviderAdapter, ProviderName } from "../providers/ProviderAdapter.js"

/**
 * The edit of a config's text (SPEC F-3, F-4): the new text and the owned keys
 * it changes, or Left(reason) when the text cannot be edited byte-exactly.
 * domain/ConfigYaml.ts `editConfigText` (config.yaml), domain/PresetIni.ts
 * `editPresetText` (llama-server presets).
 */
export type ConfigEditor = (source: string) => Either.Either<ConfigEdit, string>

/**
 * What to apply, where (SPEC F-3). `nowMs`: wall clock in ms since the epoch;
 * names the backup (whole seconds). `createIfMissing`: a config that does not
 * exist yet is created (the embedded provider's, F-4: this tool owns its
 * format); otherwise a missing config is an error (another provider's file
 * must be the one it reads).
 */
export interface ApplyRequest {
  readonly configPath: string
  readonly edit: ConfigEditor
  readonly nowMs: number
  readonly createIfMissing?: boolean
}

/**
 * A finished apply (SPEC F-3). `configPath` as requested; `target`: the real
 * file written (symlinks resolved, absolute); `backupPath`: the absolute path
 * of the backup of the original bytes, next to the real file, or null when
 * the file did not exist and was created (`createIfMissing`); `changed`: the
 * owned keys whose value changed, was added or was removed, in OWNED_KEYS
 * order (empty when the file already held these values; it is still backed up
 * and rewritten, byte-identical); `mode`: the original's permission bits (a
 * created file's 0644), what a restore gives back; `writtenSha256`: hex sha256
 * of the bytes written, so a restore can tell that nobody changed the file since.
 */
export interface ApplyResult {
  readonly configPath: string
  readonly target: string
  readonly backupPath: string | null
  readonly changed: ReadonlyArray<string>
  readonly mode: number
  readonly writtenSha256: string
}

/**
 * The config `--apply` edits when `--config-path` is not given (SPEC F-3,
 * F-4): macprovider's `~/.config/macprovider/config.yaml`; the embedded
 * provider's `$XDG_CONFIG_HOME/llm-autotune/config.yaml` (default
 * `~/.config/llm-autotune/config.yaml`), what `autotune serve --config` reads.
 * Others have no default (null): their config is wherever the operator keeps it.
 */
export const defaultConfigPath = (provider: ProviderName = "macprovider"): string | null =>
  provider === "macprovider"
    ? path.join(os.homedir(), ".config", "macprovider", "config.yaml")
    : provider === "embedded"
    ? path.join(process.env["XDG_CONFIG_HOME"] || path.join(os.homedir(), ".config"), "llm-autotune", "config.yaml")
    : null

/** Backup names tried per second before giving up (`.bak-<s>-0` … `-999`). */
const MAX_BACKUPS_PER_SECOND = 1000

// ---------------------------------------------------------------------------
// Effectful part: backup, temp file, rename

const isReason = (reason: string) => (e: PlatformError) => e._tag === "SystemError" && e.reason === reason

/**
 * Writes the recommendation into the provider's config.yaml (SPEC F-3).
 *
 * Order, each step only after the previous one succeeded:
 * 1. resolve symlinks (the real file is edited, a symlink to it stays), stat
 *    and read it; decode as UTF-8 (a BOM is kept);
 * 2. compute the new text and verify it (`editConfigText`);
 * 3. back up the original bytes to `<name>.bak-<unix seconds of nowMs>-<n>` in
 *    the same directory, exclusive create (`wx`), n = 0, 1, … on EEXIST, so an
 *    existing backup is never overwritten; fsync'd; same permission bits;
 * 4. write the new text to `.<name>.tmp-<pid>-<random>` in the same directory,
 *    set the original's permission bits, fsync, close, rename over the
 *    original, fsync the directory (best effort).
 *
 * Fails with ApplyFailed, naming the path and the step: the file is missing
 * ("pass --config-path"), unreadable, not UTF-8, not valid YAML, not a block
 * mapping at the top level, or verification failed (steps 1–2: nothing is
 * written); the backup could not be written (a partial backup is removed);
 * the temp file could not be written, synced or renamed. On a failure or an
 * interruption before the rename, the temp file is removed and the original
 * file is byte-identical; the backup made in step 3 stays (it is a copy of
 * the original, harmless). The rename is the commit point and is
 * uninterruptible. Callers honour SPEC H-4 by not starting this after a
 * SIGINT/SIGTERM.
 */
export const applyRecommendation = (req: ApplyRequest): Effect.Effect<ApplyResult, ApplyFailed, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem

    // 1. read
    const real = yield* Effect.either(fs.realPath(req.configPath))
    if (Either.isLeft(real) && isReason("NotFound")(real.left) && req.createIfMissing === true) return yield* create(fs, req)
    const target = yield* Either.match(real, {
      onLeft: (e) =>
        Effect.fail(
          isReason("NotFound")(e)
            ? new ApplyFailed({ message: `config file ${req.configPath} does not exist; pass --config-path with the provider's config.yaml` })
            : failed(`cannot read config file ${req.configPath}`)(e)
        ),
      onRight: Effect.succeed
    })
    const info = yield* fs.stat(target).pipe(Effect.mapError(failed(`cannot stat config file ${target}`)))
    if (info.type !== "File") {
      return yield* new ApplyFailed({ message: `config file ${target} is not a regular file (${info.type})` })
    }
    const original = yield* fs.readFile(target).pipe(Effect.mapError(failed(`cannot read config file ${target}`)))
    const source = yield* Effect.try({
      try: () => new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(original),
      catch: () => new ApplyFailed({ message: `config file ${target} is not valid UTF-8; nothing was written` })
    })

    // 2. compute + verify
    const edit = yield* Either.match(req.edit(source), {
      onLeft: (why) => Effect.fail(new ApplyFailed({ message: `cannot apply to ${target}: ${why}; nothing was written` })),
      onRight: Effect.succeed
    })
    const mode = info.mode & 0o7777
    const dir = path.dirname(target)
    const name = path.basename(target)

    // 3. backup
    const backupPath = yield* backup(fs, dir, name, Math.floor(req.nowMs / 1000), original, mode)

    // 4. temp file, rename
    const bytes = new TextEncoder().encode(edit.text)
    yield* writeDurably(fs, target, bytes, mode, "rename", `${target} is unchanged (backup at ${backupPath})`)
    return { configPath: req.configPath, target, backupPath, changed: edit.changed, mode, writtenSha256: sha256Hex(bytes) }
  })

/** An ApplyFailed saying `what` failed, with the platform's reason. */
const failed = (what: string) => (e: PlatformError) => new ApplyFailed({ message: `${what}: ${e.message}` })

/**
 * `bytes` put at `target` durably: written to `.<name>.tmp-<pid>-<random>`
 * beside it (exclusive create), given `mode`, fsync'd, then committed — by
 * `rename` over `target`, or by `link` (fails when `target` exists, so nothing
 * appeared meanwhile is replaced) — uninterruptibly, and the directory
 * fsync'd (best effort). The temp file never stays. Fails with ApplyFailed
 * naming the step, with `whenFailed` (what state `target` is in) appended.
 */
const writeDurably = (
  fs: FileSystem.FileSystem,
  target: string,
  bytes: Uint8Array,
  mode: number,
  commit: "rename" | "link",
  whenFailed: string
): Effect.Effect<void, ApplyFailed> => {
  const dir = path.dirname(target)
  const tmp = path.join(dir, `.${path.basename(target)}.tmp-${process.pid}-${crypto.randomBytes(6).toString("hex")}`)
  return Effect.scoped(Effect.gen(function*() {
    const file = yield* fs.open(tmp, { flag: "wx", mode: 0o600 })
    yield* file.writeAll(bytes)
    yield* fs.chmod(tmp, mode)
    yield* file.sync
  })).pipe(
    Effect.mapError(failed(`cannot write temp file ${tmp}; ${whenFailed}`)),
    Effect.zipRight(Effect.uninterruptible(commit === "rename" ? fs.rename(tmp, target) : fs.link(tmp, target)).pipe(
      Effect.mapError(failed(`cannot ${commit === "rename" ? `rename ${tmp} over` : "create"} ${target}; ${whenFailed}`))
    )),
    // After a rename the temp name is gone already; after a link (or a failure) it goes now.
    Effect.ensuring(fs.remove(tmp).pipe(Effect.ignore)),
    Effect.zipRight(syncDir(fs, dir))
  )
}

/** Hex sha256 of `bytes`. */
const sha256Hex = (bytes: Uint8Array): string => crypto.createHash("sha256").update(bytes).digest("hex")

/** fsync of a directory, so a rename or create in it is durable; best effort. */
const syncDir = (fs: FileSystem.FileSystem, dir: string) =>
  Effect.scoped(Effect.flatMap(fs.open(dir, { flag: "r" }), (d) => d.sync)).pipe(Effect.ignore)

/**
 * `applyRecommendation` for a config that does not exist yet (F-4, the
 * embedded provider's): its directory made, the owned keys written to a temp
 * file (mode 0644), fsync'd and linked into place only if nothing appeared
 * there meanwhile (`link` fails on an existing name, so a file created by
 * someone else is never replaced). No backup: there was nothing to keep.
 */
const create = (fs: FileSystem.FileSystem, req: ApplyRequest): Effect.Effect<ApplyResult, ApplyFailed> =>
  Effect.gen(function*() {
    const target = path.resolve(req.configPath)
    const dir = path.dirname(target)
    const edit = yield* Either.match(req.edit(""), {
      onLeft: (why) => Effect.fail(new ApplyFailed({ message: `cannot write ${target}: ${why}; nothing was written` })),
      onRight: Effect.succeed
    })
    yield* fs.makeDirectory(dir, { recursive: true }).pipe(Effect.mapError(failed(`cannot create the directory of ${target}`)))
    const bytes = new TextEncoder().encode(edit.text)
    yield* writeDurably(fs, target, bytes, 0o644, "link", `${target} was not created`)
    return { configPath: req.configPath, target, backupPath: null, changed: edit.changed, mode: 0o644, writtenSha256: sha256Hex(bytes) }
  })

/**
 * Undoes an apply (SPEC F-6: an applied config that did not verify): the
 * backup's bytes put back over the config by temp file + fsync + rename, so
 * the config is byte-identical to what it was before the apply, with its
 * permission bits; a config the apply created is removed (the directories it
 * made stay). The backup stays. Fails with ApplyFailed naming
 * the file when the restore cannot be done (the backup path is in the message,
 * so the operator can put it back by hand), or when the file is no longer what
 * the apply wrote (someone edited it meanwhile: their edit is not overwritten).
 */
export const restoreApplied = (applied: ApplyResult): Effect.Effect<void, ApplyFailed, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const now = yield* fs.readFile(applied.target).pipe(Effect.mapError(failed(`cannot read ${applied.target}`)))
    if (sha256Hex(now) !== applied.writtenSha256) {
      return yield* new ApplyFailed({ message: `${applied.target} changed since it was written; it is left as it is now` })
    }
    if (applied.backupPath === null) {
      yield* fs.remove(applied.target).pipe(Effect.mapError(failed(`cannot remove ${applied.target}, which the apply created`)))
      return yield* syncDir(fs, path.dirname(applied.target))
    }
    const backupPath = applied.backupPath
    const bytes = yield* fs.readFile(backupPath).pipe(Effect.mapError(failed(`cannot read the backup ${backupPath}`)))
    yield* writeDurably(fs, applied.target, bytes, applied.mode, "rename", `put ${backupPath} back over ${applied.target} by hand`)
  })

/** Step 3 of `applyRecommendation`: the first free `<name>.bak-<seconds>-<n>`, written and fsync'd. */
const backup = (
  fs: FileSystem.FileSystem,
  dir: string,
  name: string,
  seconds: number,
  original: Uint8Array,
  mode: number
): Effect.Effect<string, ApplyFailed> =>
  Effect.gen(function*() {
    for (let n = 0; n < MAX_BACKUPS_PER_SECOND; n++) {
      const p = path.join(dir, `${name}.bak-${seconds}-${n}`)
      const made = yield* Effect.scoped(Effect.gen(function*() {
        const file = yield* fs.open(p, { flag: "wx", mode }).pipe(
          Effect.map((f) => f as FileSystem.File | null),
          Effect.catchIf(isReason("AlreadyExists"), () => Effect.succeed(null))
        )
        if (file === null) return false
        yield* file.writeAll(original).pipe(
          Effect.zipRight(file.sync),
          Effect.onError(() => fs.remove(p).pipe(Effect.ignore))
        )
        return true
      })).pipe(Effect.mapError((e) => new ApplyFailed({ message: `cannot write backup ${p}: ${e.message}; nothing was changed` })))
      if (made) return p
    }
    return yield* new ApplyFailed({
      message: `cannot back up ${path.join(dir, name)}: ${name}.bak-${seconds}-0 … -${MAX_BACKUPS_PER_SECOND - 1} all exist`
    })
  })

/**
 * The config file `--apply` will edit (SPEC F-3, F-4): `--config-path`, else
 * the provider's default (`defaultConfigPath`). Checked before anything runs,
 * so an hours-long tune does not end in a config that cannot be written: it
 * must be an existing regular file that the editor can edit as it stands
 * (valid YAML, a top-level mapping, nothing that would be broken by a change
 * of the owned keys), in a directory this process can write (backup and temp
 * file go there). The embedded provider's config may not exist yet: then the
 * nearest existing directory on its path must be writable (the apply creates
 * it). The apply checks again at the end, in case the file changed meanwhile.
 * What can be edited is the adapter's to say (`config.editable`: trial edits
 * setting and removing every owned key, for each of `models`, the
 * candidates as the provider takes them). A path that cannot be read, or a
 * symbolic link to nothing, is refused.
 * Fails with UsageError naming `--config-path` and the parser's reason, or
 * `--apply` when the provider has no default config and none is given.
 */
export const checkApplyTarget = (
  configPath: string | null,
  adapter: ProviderAdapter,
  models: ReadonlyArray<string> = [],
  extraArgs: ReadonlyArray<string> = []
): Effect.Effect<string, UsageError> => {
  const provider = adapter.name
  const fallback = defaultConfigPath(provider)
  if (configPath === null && fallback === null) {
    return Effect.fail(new UsageError({ flag: "apply", message: `--apply with --provider ${provider} needs --config-path <file>: it has no default config` }))
  }
  const file = path.resolve(configPath ?? fallback!)
  const bad = (why: string) => Effect.fail(new UsageError({ flag: "config-path", message: `--apply: ${why}` }))
  const statOf = (p: string, link: boolean) => {
    try {
      return (link ? Fs.lstatSync : Fs.statSync)(p, { throwIfNoEntry: false }) ?? null
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e))
    }
  }
  const stat = statOf(file, false)
  if (stat instanceof Error) return bad(`cannot read ${file}: ${stat.message}`)
  if (stat === null && statOf(file, true) !== null) return bad(`${file} is a symbolic link to nothing`)
  if (stat === null && adapter.config?.createIfMissing === true) {
    let dir = path.dirname(file)
    while (statOf(dir, false) === null && path.dirname(dir) !== dir) dir = path.dirname(dir)
    const at = statOf(dir, false)
    if (!(at instanceof Fs.Stats) || !at.isDirectory()) return bad(`${file} cannot be created: ${dir} is not a directory`)
    try {
      Fs.accessSync(dir, Fs.constants.W_OK)
    } catch {
      return bad(`${file} does not exist and cannot be created (${dir} is not writable)`)
    }
    return Effect.succeed(file)
  }
  if (stat?.isFile() !== true) {
    return bad(`no provider config at ${file}${configPath === null ? " (the default); pass --config-path <file>" : ""}`)
  }
  try {
    Fs.accessSync(path.dirname(Fs.realpathSync(file)), Fs.constants.W_OK)
  } catch {
    return bad(`cannot write in the directory of ${file} (its backup and the new file go there)`)
  }
  let source: string
  try {
    source = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(Fs.readFileSync(file))
  } catch (e) {
    return bad(`cannot read ${file} as UTF-8 text: ${e instanceof Error ? e.message : String(e)}`)
  }
  // Trial edits setting and removing every owned key: the editor refuses what it cannot edit byte-exactly.
  const why = adapter.config?.editable(source, models, file, extraArgs) ?? null
  return why === null ? Effect.succeed(file) : bad(`${file} cannot be edited: ${why}`)
}

/**
 * Retention of config backups (SPEC S-4, L-3): of the backups `<name>.bak-<s>-<n>`
 * beside `backupPath` (the real config's directory), keeps the newest `keep`
 * (by seconds, then counter) and deletes the rest; `keep` 0 keeps all.
 * Returns the paths deleted. Never fails: a backup that cannot be deleted stays.
 */
export const pruneBackups = (backupPath: string, keep: number): ReadonlyArray<string> => {
  if (keep <= 0) return []
  const dir = path.dirname(backupPath)
  const m = /^(.*)\.bak-\d+-\d+$/.exec(path.basename(backupPath))
  if (m === null) return []
  const name = m[1]!
  let entries: Array<string>
  try {
    entries = Fs.readdirSync(dir)
  } catch {
    return []
  }
  const backups = entries.flatMap((e) => {
    const b = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.bak-(\\d+)-(\\d+)$`).exec(e)
    return b === null ? [] : [{ file: path.join(dir, e), seconds: Number(b[1]), n: Number(b[2]) }]
  }).sort((a, b) => b.seconds - a.seconds || b.n - a.n)
  return backups.slice(keep).flatMap((b) => {
    try {
      Fs.unlinkSync(b.file)
      return [b.file]
    } catch {
      return []
    }
  })
}
