import * as nodeFs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { FileSystem } from "@effect/platform"
import { SystemError } from "@effect/platform/Error"
import { NodeFileSystem } from "@effect/platform-node"
import { assert, describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Either, Exit, Fiber, Layer } from "effect"
import { parse } from "yaml"
import { ApplyFailed } from "../../src/domain/AutotuneError.js"
import { editConfigText, OWNED_KEYS, type OwnedValues, yamlEditable } from "../../src/domain/ConfigYaml.js"
import { embedded } from "../../src/providers/Embedded.js"
import { llamaServer, NO_OPTIONAL_FLAGS } from "../../src/providers/LlamaServer.js"
import { macProvider } from "../../src/providers/MacProvider.js"
import { restartInstructions } from "../../src/services/ServiceManager.js"
import { applyRecommendation, type ApplyRequest, checkApplyTarget, defaultConfigPath, pruneBackups, restoreApplied } from "../../src/steps/Apply.js"

const FIXTURES = path.join(import.meta.dirname, "..", "..", "fixtures", "config")
const fixture = (name: string) => nodeFs.readFileSync(path.join(FIXTURES, name))

/** 2025-03-04T05:06:07.890Z: backups are named after its whole seconds. */
const NOW_MS = 1_741_064_767_890
const NOW_S = 1_741_064_767

const values: OwnedValues = {
  model: "mlx-community/Qwen2.5-7B-Instruct-4bit",
  kv_bits_override: 8,
  max_context_override: 16384,
  max_concurrency_override: 2
}

/** A fresh directory under os.tmpdir(), removed when the test's scope closes. */
const tempDir = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "autotune-apply-" }))
  .pipe(Effect.provide(NodeFileSystem.layer))

/** Writes `content` as `<dir>/config.yaml` and returns its path. */
const writeConfig = (dir: string, content: Uint8Array | string, mode = 0o644) => {
  const p = path.join(dir, "config.yaml")
  nodeFs.writeFileSync(p, content)
  nodeFs.chmodSync(p, mode)
  return p
}

/** The config.yaml editor for `v` (the apply step takes an editor; domain/ConfigYaml.ts is the YAML one). */
const yamlEdit = (v: OwnedValues) => (source: string) => editConfigText(source, v)
const request = (configPath: string, v: OwnedValues = values): ApplyRequest => ({ configPath, edit: yamlEdit(v), nowMs: NOW_MS })

/** The real file system with some of its operations replaced. */
const patchedFs = (patch: (real: FileSystem.FileSystem) => Partial<FileSystem.FileSystem>) =>
  Layer.effect(FileSystem.FileSystem, Effect.map(FileSystem.FileSystem, (real) => ({ ...real, ...patch(real) })))
    .pipe(Layer.provide(NodeFileSystem.layer))

const injected = (method: string, p: string | number) =>
  new SystemError({ reason: "Unknown", module: "FileSystem", method, pathOrDescriptor: p, description: "injected EIO" })

/** `f` with some operations replaced (a File is a class instance: spreading it would drop its methods). */
const patchedFile = (f: FileSystem.File, over: Partial<FileSystem.File>): FileSystem.File => ({
  [FileSystem.FileTypeId]: FileSystem.FileTypeId,
  fd: f.fd,
  get stat() {
    return f.stat
  },
  get sync() {
    return f.sync
  },
  seek: (offset, from) => f.seek(offset, from),
  read: (b) => f.read(b),
  readAlloc: (size) => f.readAlloc(size),
  truncate: (length) => f.truncate(length),
  write: (b) => f.write(b),
  writeAll: (b) => f.writeAll(b),
  ...over
})

const isTemp = (p: string) => path.basename(p).startsWith(".config.yaml.tmp-")
const listDir = (dir: string) => nodeFs.readdirSync(dir).sort()

const OWNED_LINE = new RegExp(`^(${OWNED_KEYS.join("|")})\\s*:`)
const nonOwnedLines = (text: string) => text.split("\n").filter((l) => !OWNED_LINE.test(l))
const ownedLine = (text: string, key: string) => text.split("\n").find((l) => l.startsWith(`${key}:`))

/** Runs an apply that must fail and returns its ApplyFailed. */
const applyFails = (req: ApplyRequest, fsLayer: Layer.Layer<FileSystem.FileSystem> = NodeFileSystem.layer) =>
  applyRecommendation(req).pipe(Effect.provide(fsLayer), Effect.flip)

describe("apply (SPEC F-3)", () => {
  it.scoped("F-3: only the owned keys change; every other line, comment and blank line is byte-identical", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const original = fixture("full.yaml")
      const configPath = writeConfig(dir, original, 0o640)
      const result = yield* applyRecommendation(request(configPath)).pipe(Effect.provide(NodeFileSystem.layer))

      const before = original.toString("utf8")
      const after = nodeFs.readFileSync(configPath, "utf8")
      // Line by line, minus the owned-key lines: identical, in the same order.
      expect(nonOwnedLines(after)).toEqual(nonOwnedLines(before))
      // The owned lines kept their place, spacing and inline comments.
      expect(ownedLine(after, "model")).toBe("model: mlx-community/Qwen2.5-7B-Instruct-4bit   # what `serve` loads by default")
      expect(ownedLine(after, "kv_bits_override")).toBe(
        "kv_bits_override: 8 # quantized KV cache (4 or 8); remove for full precision"
      )
      expect(ownedLine(after, "max_context_override")).toBe("max_context_override: 16384")
      expect(after.indexOf("kv_bits_override")).toBeLessThan(after.indexOf("server:"))
      // The missing one is appended at the end of the mapping, after a line break.
      expect(after.endsWith(": complex value\nmax_concurrency_override: 2\n")).toBe(true)

      // Parses back to the recommendation, every other key to its old value.
      const parsedBefore = parse(before) as Record<string, unknown>
      const parsedAfter = parse(after) as Record<string, unknown>
      expect(parsedAfter).toEqual({ ...parsedBefore, ...values })
      assert.deepStrictEqual(result.changed, [...OWNED_KEYS])

      // Backup: the original bytes, next to it, named after the second; no temp file left.
      assert.strictEqual(result.configPath, configPath)
      assert.strictEqual(result.backupPath, path.join(dir, `config.yaml.bak-${NOW_S}-0`))
      assert.isTrue(nodeFs.readFileSync(result.backupPath!).equals(original))
      assert.deepStrictEqual(listDir(dir), ["config.yaml", `config.yaml.bak-${NOW_S}-0`])
      // The original's permission bits are kept.
      assert.strictEqual(nodeFs.statSync(configPath).mode & 0o777, 0o640)
    }))

  it.scoped("F-3: a nil kv-bits removes its line (other overrides too); a missing key is appended; inline comments stay", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const configPath = writeConfig(dir, fixture("overrides.yaml"))
      const result = yield* applyRecommendation(request(configPath, {
        model: "mlx-community/Llama-3.2-3B-Instruct-4bit",
        kv_bits_override: null,
        max_context_override: 4096,
        max_concurrency_override: null
      })).pipe(Effect.provide(NodeFileSystem.layer))
      assert.strictEqual(
        nodeFs.readFileSync(configPath, "utf8"),
        // model keeps its single quotes and comment; both null overrides' lines are gone.
        "model: 'mlx-community/Llama-3.2-3B-Instruct-4bit'  # previous autotune pick\n" +
          "max_context_override: 4096 # long-context experiment\n" +
          "\n" +
          "# keep the provider on loopback\n" +
          "host: 127.0.0.1\n"
      )
      assert.deepStrictEqual(result.changed, ["model", "kv_bits_override", "max_context_override", "max_concurrency_override"])

      // A file without a final line break gets one before the appended keys.
      const p2 = path.join(dir, "config.yaml")
      nodeFs.writeFileSync(p2, fixture("no-final-newline.yaml"))
      yield* applyRecommendation({ ...request(p2), nowMs: NOW_MS + 1000 }).pipe(Effect.provide(NodeFileSystem.layer))
      assert.strictEqual(
        nodeFs.readFileSync(p2, "utf8"),
        "model: mlx-community/Qwen2.5-7B-Instruct-4bit\nkv_bits_override: 8\nport: 8080\n" +
          "max_context_override: 16384\nmax_concurrency_override: 2\n"
      )
    }))

  it.scoped("F-3: CRLF line endings are kept, on edited and on appended lines", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const crlf = fixture("minimal.yaml").toString("utf8").replace(/\n/g, "\r\n")
      const configPath = writeConfig(dir, crlf)
      yield* applyRecommendation(request(configPath)).pipe(Effect.provide(NodeFileSystem.layer))
      assert.strictEqual(
        nodeFs.readFileSync(configPath, "utf8"),
        "# macprovider config: no overrides yet\r\n" +
          "model: \"mlx-community/Qwen2.5-7B-Instruct-4bit\"\r\n" +
          "port: 8080\r\n" +
          "kv_bits_override: 8\r\nmax_context_override: 16384\r\nmax_concurrency_override: 2\r\n"
      )
    }))

  it.scoped("F-3: a comment-only config counts as empty; the keys are appended after the comments", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const original = fixture("comments-only.yaml").toString("utf8")
      const configPath = writeConfig(dir, original)
      yield* applyRecommendation(request(configPath)).pipe(Effect.provide(NodeFileSystem.layer))
      const after = nodeFs.readFileSync(configPath, "utf8")
      assert.isTrue(after.startsWith(original))
      expect(parse(after)).toEqual(values)
    }))

  it("F-3: model names YAML would misread are quoted; the quoting style of the old value is kept", () => {
    for (const model of ["true", "8", "null", "my model: v2 #1", "- x", "@org/model", "it's", "tab\there", "line\nbreak"]) {
      for (const old of ["model: old\n", "model: \"old\"\n", "model: 'old'\n"]) {
        const edit = Either.getOrThrow(editConfigText(old, { ...values, model }))
        assert.strictEqual((parse(edit.text) as { model: unknown }).model, model, `${model} over ${old}`)
        assert.strictEqual(edit.text.split("\n").length, 5, "one line per key")
      }
    }
    assert.strictEqual(ownedLine(Either.getOrThrow(editConfigText("model: \"old\"\n", values)).text, "model"),
      "model: \"mlx-community/Qwen2.5-7B-Instruct-4bit\"")
    assert.strictEqual(ownedLine(Either.getOrThrow(editConfigText("model: old\n", { ...values, model: "true" })).text, "model"),
      "model: \"true\"")
  })

  it("F-3: removing the last line, with or without a final line break, then appending leaves no blank line", () => {
    const v: OwnedValues = { ...values, kv_bits_override: null, max_concurrency_override: null }
    for (const src of ["port: 1\nmodel: m\nkv_bits_override: 8 # c", "port: 1\nmodel: m\nkv_bits_override: 8 # c\n"]) {
      assert.strictEqual(Either.getOrThrow(editConfigText(src, v)).text,
        "port: 1\nmodel: mlx-community/Qwen2.5-7B-Instruct-4bit\nmax_context_override: 16384\n")
    }
  })

  it("F-3: values already in place are left byte-for-byte; a value nothing can keep safely is refused", () => {
    const same = "model: 'mlx-community/Qwen2.5-7B-Instruct-4bit' # x\nkv_bits_override: 0x8\n" +
      "max_context_override: 16384\nmax_concurrency_override: 2\n"
    const edit = Either.getOrThrow(editConfigText(same, values))
    assert.strictEqual(edit.text, same)
    assert.deepStrictEqual(edit.changed, [])
    // A non-owned key aliases the model's anchor: changing the model would change it too.
    const anchored = editConfigText(fixture("anchored.yaml").toString("utf8"), values)
    assert.isTrue(Either.isLeft(anchored))
    // Out-of-range values never reach the file.
    assert.isTrue(Either.isLeft(editConfigText(same, { ...values, kv_bits_override: 6 as 8 })))
    assert.isTrue(Either.isLeft(editConfigText(same, { ...values, max_context_override: 0 })))
    assert.isTrue(Either.isLeft(editConfigText(same, { ...values, model: "" })))
  })

  it.scoped("F-3: existing backups of the same second are never overwritten; the next counter is used", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const original = fixture("minimal.yaml")
      const configPath = writeConfig(dir, original)
      const olds = [0, 1, 2, 3].map((n) => {
        const p = path.join(dir, `config.yaml.bak-${NOW_S}-${n}`)
        nodeFs.writeFileSync(p, `old backup ${n}\n`)
        return p
      })
      const result = yield* applyRecommendation(request(configPath)).pipe(Effect.provide(NodeFileSystem.layer))
      assert.strictEqual(result.backupPath, path.join(dir, `config.yaml.bak-${NOW_S}-4`))
      assert.isTrue(nodeFs.readFileSync(result.backupPath!).equals(original))
      olds.forEach((p, n) => assert.strictEqual(nodeFs.readFileSync(p, "utf8"), `old backup ${n}\n`))
    }))

  describe("F-3: a failure after the backup leaves the original byte-identical and no temp file", () => {
    const scenarios: ReadonlyArray<readonly [string, (real: FileSystem.FileSystem) => Partial<FileSystem.FileSystem>, RegExp]> = [
      ["rename fails", () => ({ rename: (from) => Effect.fail(injected("rename", from)) }), /cannot rename .*\.config\.yaml\.tmp-.* over .*config\.yaml/],
      ["opening the temp file fails", (real) => ({
        open: (p, o) => isTemp(p) ? Effect.fail(injected("open", p)) : real.open(p, o)
      }), /cannot write temp file .*\.config\.yaml\.tmp-/],
      ["writing the temp file fails half-way (ENOSPC)", (real) => ({
        open: (p, o) =>
          Effect.map(real.open(p, o), (f) =>
            isTemp(p)
              ? patchedFile(f, { writeAll: (b) => Effect.zipRight(f.writeAll(b.subarray(0, 10)), Effect.fail(injected("writeAll", p))) })
              : f)
      }), /cannot write temp file/],
      ["fsync of the temp file fails", (real) => ({
        open: (p, o) => Effect.map(real.open(p, o), (f) => isTemp(p) ? patchedFile(f, { sync: Effect.fail(injected("sync", p)) }) : f)
      }), /cannot write temp file/]
    ]
    for (const [name, patch, message] of scenarios) {
      it.scoped(`F-3: ${name}`, () =>
        Effect.gen(function*() {
          const dir = yield* tempDir
          const original = fixture("full.yaml")
          const configPath = writeConfig(dir, original)
          const err = yield* applyFails(request(configPath), patchedFs(patch))
          assert.instanceOf(err, ApplyFailed)
          expect(err.message).toMatch(message)
          expect(err.message).toContain(`${configPath} is unchanged`)
          assert.isTrue(nodeFs.readFileSync(configPath).equals(original), "original byte-identical")
          // Only the backup (a copy of the original) may remain.
          assert.deepStrictEqual(listDir(dir), ["config.yaml", `config.yaml.bak-${NOW_S}-0`])
          assert.isTrue(nodeFs.readFileSync(path.join(dir, `config.yaml.bak-${NOW_S}-0`)).equals(original))
        }))
    }
  })

  it.scoped("F-3: a backup that cannot be written is removed and nothing else happens", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const original = fixture("full.yaml")
      const configPath = writeConfig(dir, original)
      const err = yield* applyFails(request(configPath), patchedFs((real) => ({
        open: (p, o) =>
          Effect.map(real.open(p, o), (f) =>
            p.includes(".bak-")
              ? patchedFile(f, { writeAll: (b) => Effect.zipRight(f.writeAll(b.subarray(0, 5)), Effect.fail(injected("writeAll", p))) })
              : f)
      })))
      expect(err.message).toMatch(/cannot write backup .*config\.yaml\.bak-/)
      assert.isTrue(nodeFs.readFileSync(configPath).equals(original))
      assert.deepStrictEqual(listDir(dir), ["config.yaml"])
    }))

  it.scoped("F-3 H-4: an interruption while the temp file is written removes it and leaves the original alone", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const original = fixture("full.yaml")
      const configPath = writeConfig(dir, original)
      const inTemp = yield* Deferred.make<void>()
      const fiber = yield* applyRecommendation(request(configPath)).pipe(
        Effect.provide(patchedFs((real) => ({
          open: (p, o) =>
            Effect.map(real.open(p, o), (f) =>
              isTemp(p)
                ? patchedFile(f, {
                  writeAll: (b) => f.writeAll(b).pipe(Effect.zipRight(Deferred.succeed(inTemp, undefined)), Effect.zipRight(Effect.never))
                })
                : f)
        }))),
        Effect.fork
      )
      // Fails at once (no hang) if the apply ends without writing a temp file.
      const reached = yield* Effect.raceFirst(Effect.as(Deferred.await(inTemp), true), Effect.as(Fiber.await(fiber), false))
      assert.isTrue(reached, "the apply reached the temp file write")
      assert.isTrue(listDir(dir).some((f) => f.startsWith(".config.yaml.tmp-")), "the temp file exists when interrupted")
      const exit = yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
      assert.isTrue(nodeFs.readFileSync(configPath).equals(original))
      assert.deepStrictEqual(listDir(dir), ["config.yaml", `config.yaml.bak-${NOW_S}-0`])
    }))

  it.scoped("F-3: a symlinked config: the real file is edited and backed up beside it, the link stays", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const real = path.join(dir, "dotfiles")
      nodeFs.mkdirSync(real)
      const target = path.join(real, "config.yaml")
      nodeFs.writeFileSync(target, fixture("minimal.yaml"))
      const link = path.join(dir, "config.yaml")
      nodeFs.symlinkSync(target, link)
      const result = yield* applyRecommendation(request(link)).pipe(Effect.provide(NodeFileSystem.layer))
      assert.isTrue(nodeFs.lstatSync(link).isSymbolicLink())
      expect(parse(nodeFs.readFileSync(link, "utf8"))).toMatchObject(values)
      assert.strictEqual(result.backupPath, path.join(nodeFs.realpathSync(real), `config.yaml.bak-${NOW_S}-0`))
    }))

  describe("F-3: bad input fails with ApplyFailed and touches nothing", () => {
    it.scoped("F-3: a missing config file names the path and --config-path", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const missing = path.join(dir, "config.yaml")
        const err = yield* applyFails(request(missing))
        assert.instanceOf(err, ApplyFailed)
        expect(err.message).toContain(missing)
        expect(err.message).toContain("--config-path")
        assert.deepStrictEqual(listDir(dir), [])
      }))

    for (const [file, parserSays] of [
      ["not-a-mapping.yaml", /top level is not a mapping/],
      ["invalid.yaml", /not valid YAML: .*line 4, column 3/]
    ] as const) {
      it.scoped(`F-3: ${file} names the path and the parser's error`, () =>
        Effect.gen(function*() {
          const dir = yield* tempDir
          const original = fixture(file)
          const configPath = writeConfig(dir, original)
          const err = yield* applyFails(request(configPath))
          assert.instanceOf(err, ApplyFailed)
          expect(err.message).toContain(configPath)
          expect(err.message).toMatch(parserSays)
          assert.isTrue(nodeFs.readFileSync(configPath).equals(original))
          assert.deepStrictEqual(listDir(dir), ["config.yaml"])
        }))
    }

    it.scoped("F-3: an edit that would change a non-owned key is refused before anything is written", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const original = fixture("anchored.yaml")
        const configPath = writeConfig(dir, original)
        const err = yield* applyFails(request(configPath))
        expect(err.message).toContain(configPath)
        assert.isTrue(nodeFs.readFileSync(configPath).equals(original))
        assert.deepStrictEqual(listDir(dir), ["config.yaml"])
      }))
  })

  it("F-3 F-4: the default config path is ~/.config/macprovider/config.yaml; the embedded provider's is under $XDG_CONFIG_HOME; llama-server has none", () => {
    assert.strictEqual(defaultConfigPath(), path.join(os.homedir(), ".config", "macprovider", "config.yaml"))
    const was = process.env["XDG_CONFIG_HOME"]
    try {
      process.env["XDG_CONFIG_HOME"] = "/x/conf"
      assert.strictEqual(defaultConfigPath("embedded"), "/x/conf/llm-autotune/config.yaml")
      delete process.env["XDG_CONFIG_HOME"]
      assert.strictEqual(defaultConfigPath("embedded"), path.join(os.homedir(), ".config", "llm-autotune", "config.yaml"))
    } finally {
      if (was === undefined) delete process.env["XDG_CONFIG_HOME"]
      else process.env["XDG_CONFIG_HOME"] = was
    }
    assert.isNull(defaultConfigPath("llama-server"))
  })
})

describe("apply to the embedded provider's config, and restore (SPEC F-4, F-6)", () => {
  const withThreads: OwnedValues = { ...values, model: "/models/a.gguf", threads_override: 2 }

  it("F-4: threads_override is owned only when the values carry it; a macprovider edit leaves that line alone", () => {
    const src = "# mine\nthreads_override: 7 # operator's\nmodel: old\n"
    const mac = Either.getOrThrow(editConfigText(src, values))
    expect(mac.text).toContain("threads_override: 7 # operator's\n")
    expect(mac.changed).not.toContain("threads_override")
    const emb = Either.getOrThrow(editConfigText(src, withThreads))
    expect(emb.text).toContain("threads_override: 2 # operator's\n")
    expect(emb.changed).toContain("threads_override")
    const unset = Either.getOrThrow(editConfigText(src, { ...withThreads, threads_override: null }))
    expect(unset.text).not.toContain("threads_override")
    expect(Either.isLeft(editConfigText(src, { ...withThreads, threads_override: 0 }))).toBe(true)
  })

  it("F-4 issue 14: flash_attn_override is owned only when the values carry it: a boolean replaces the operator's line in place, null removes it", () => {
    const src = "# mine\nflash_attn_override: true # operator's\nmodel: old\n"
    const mac = Either.getOrThrow(editConfigText(src, withThreads))
    expect(mac.text).toContain("flash_attn_override: true # operator's\n")
    expect(mac.changed).not.toContain("flash_attn_override")
    const off = Either.getOrThrow(editConfigText(src, { ...withThreads, flash_attn_override: false }))
    expect(off.text).toContain("flash_attn_override: false # operator's\n")
    expect(off.changed).toContain("flash_attn_override")
    const auto = Either.getOrThrow(editConfigText(src, { ...withThreads, flash_attn_override: null }))
    expect(auto.text).not.toContain("flash_attn_override")
    const added = Either.getOrThrow(editConfigText("model: old\n", { ...withThreads, flash_attn_override: false }))
    expect(added.text.endsWith("threads_override: 2\nflash_attn_override: false\n")).toBe(true)
    expect(Either.isLeft(editConfigText(src, { ...withThreads, flash_attn_override: "off" as unknown as boolean }))).toBe(true)
    // Checked before the run (F-3): a key another one aliases cannot be edited, for the embedded provider's config only.
    const aliased = "model: /m/a.gguf\nflash_attn_override: &fa false\nmirror: *fa\n"
    expect(yamlEditable(aliased, true)).toContain("alias")
    expect(yamlEditable(aliased, false)).toBeNull()
  })

  it("F-4: a --- marker, anchors, aliases, a merge key and a nested model: key stay byte for byte", () => {
    const src = "---\n# operator's own\ndefaults: &defaults\n  model: not-mine   # nested\n  host: 127.0.0.1\nserver:\n  <<: *defaults\n  port: 9000\nmodel: old.gguf  # owned\nkv_bits_override: 4\n"
    const edit = Either.getOrThrow(editConfigText(src, withThreads))
    expect(edit.text).toBe(
      "---\n# operator's own\ndefaults: &defaults\n  model: not-mine   # nested\n  host: 127.0.0.1\nserver:\n  <<: *defaults\n  port: 9000\n" +
        "model: /models/a.gguf  # owned\nkv_bits_override: 8\nmax_context_override: 16384\nmax_concurrency_override: 2\nthreads_override: 2\n"
    )
  })

  it.scoped("F-4: a config that does not exist is created (no backup: nothing to keep); restoring removes it again", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const configPath = path.join(dir, "conf", "llm-autotune", "config.yaml")
      const result = yield* applyRecommendation({ configPath, edit: yamlEdit(withThreads), nowMs: NOW_MS, createIfMissing: true }).pipe(
        Effect.provide(NodeFileSystem.layer)
      )
      assert.isNull(result.backupPath)
      assert.strictEqual(result.target, configPath)
      expect(parse(nodeFs.readFileSync(configPath, "utf8"))).toEqual(withThreads)
      assert.deepStrictEqual(listDir(path.dirname(configPath)), ["config.yaml"])
      yield* restoreApplied(result).pipe(Effect.provide(NodeFileSystem.layer))
      assert.isFalse(nodeFs.existsSync(configPath))
      // Without createIfMissing a missing file is still an error naming --config-path.
      const e = yield* applyRecommendation({ configPath, edit: yamlEdit(withThreads), nowMs: NOW_MS }).pipe(Effect.provide(NodeFileSystem.layer), Effect.flip)
      expect(e.message).toContain("--config-path")
    }))

  it.scoped("F-6: restoring an applied config puts the original back byte for byte, with its mode; the backup stays", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const original = fixture("full.yaml")
      // 0664: a mode the umask (022) would change on a new file, so only a restore that carries it keeps it.
      const configPath = writeConfig(dir, original, 0o664)
      const result = yield* applyRecommendation(request(configPath, withThreads)).pipe(Effect.provide(NodeFileSystem.layer))
      assert.isFalse(nodeFs.readFileSync(configPath).equals(original))
      yield* restoreApplied(result).pipe(Effect.provide(NodeFileSystem.layer))
      assert.isTrue(nodeFs.readFileSync(configPath).equals(original))
      assert.strictEqual(nodeFs.statSync(configPath).mode & 0o777, 0o664)
      assert.deepStrictEqual(listDir(dir), ["config.yaml", `config.yaml.bak-${NOW_S}-0`])
      // A second apply, then an edit by someone else: the restore leaves their edit alone and says so.
      const again = yield* applyRecommendation(request(configPath, withThreads)).pipe(Effect.provide(NodeFileSystem.layer))
      nodeFs.appendFileSync(configPath, "# theirs\n")
      const refused = yield* restoreApplied(again).pipe(Effect.provide(NodeFileSystem.layer), Effect.flip)
      expect(refused.message).toContain("changed since it was written")
      expect(nodeFs.readFileSync(configPath, "utf8").endsWith("# theirs\n")).toBe(true)
    }))

  it("F-4: the up-front check accepts a missing embedded config in a writable place, refuses one in an unwritable place, and needs --config-path for llama-server", () =>
    Effect.gen(function*() {
      const dir = nodeFs.mkdtempSync(path.join(os.tmpdir(), "autotune-check-"))
      const missing = path.join(dir, "new", "config.yaml")
      assert.strictEqual(yield* checkApplyTarget(missing, embedded(null)), missing)
      const macMissing = yield* Effect.flip(checkApplyTarget(missing, macProvider("macprovider-cli")))
      assert.strictEqual(macMissing.flag, "config-path")
      const ls = llamaServer("llama-server", NO_OPTIONAL_FLAGS)
      const noDefault = yield* Effect.flip(checkApplyTarget(null, ls))
      assert.strictEqual(noDefault.flag, "apply")
      // llama-server: an existing file only; a llama-swap YAML needs the candidate's entry; YAML named .conf is no preset; a candidate
      // whose name cannot be a section is refused before the run.
      expect((yield* Effect.flip(checkApplyTarget(path.join(dir, "typo.ini"), ls))).message).toContain("no provider config")
      const swap = path.join(dir, "swap.yaml")
      nodeFs.writeFileSync(swap, "models: {}\n")
      expect((yield* Effect.flip(checkApplyTarget(swap, ls, ["/m/a.gguf"]))).message).toContain('has no model entry "a"')
      const ini = path.join(dir, "swap.conf")
      nodeFs.writeFileSync(ini, "models:\n  a: {}\n")
      expect((yield* Effect.flip(checkApplyTarget(ini, ls))).message).toContain("not a preset line")
      const preset = path.join(dir, "models.ini")
      nodeFs.writeFileSync(preset, "[*]\njinja = true\n")
      assert.strictEqual(yield* checkApplyTarget(preset, ls, ["/m/a.gguf"]), preset)
      expect((yield* Effect.flip(checkApplyTarget(preset, ls, ["/m/a]b.gguf"]))).message).toContain("cannot name a preset section")
      // A symbolic link to nothing is not a config to create.
      const dangling = path.join(dir, "dangling.yaml")
      nodeFs.symlinkSync(path.join(dir, "nowhere", "x.yaml"), dangling)
      expect((yield* Effect.flip(checkApplyTarget(dangling, embedded(null)))).message).toContain("symbolic link to nothing")
      if (process.getuid?.() !== 0) {
        nodeFs.chmodSync(dir, 0o500)
        const locked = yield* Effect.flip(checkApplyTarget(missing, embedded(null)))
        expect(locked.message).toContain("cannot be created")
        nodeFs.chmodSync(dir, 0o700)
      }
    }).pipe(Effect.runPromise))
})

describe("restart instructions (SPEC F-3)", () => {
  const serve = "macprovider-cli serve --model mlx-community/Qwen2.5-7B-Instruct-4bit --kv-bits 8"
  it("F-3: launchd kickstarts the job in the user's GUI domain", () => {
    const text = restartInstructions("launchd", "live.streamvc.macprovider", serve, 501)
    expect(text.split("\n")).toContain("  launchctl kickstart -k gui/501/live.streamvc.macprovider")
    expect(text).not.toContain("systemctl")
  })
  it("F-3: systemd restarts the user unit", () => {
    const text = restartInstructions("systemd", "macprovider.service", serve, 1000)
    expect(text.split("\n")).toContain("  systemctl --user restart macprovider.service")
    expect(text).not.toContain("launchctl")
  })
  it("F-3: without a service manager, the operator restarts it, e.g. with the serve command", () => {
    const text = restartInstructions("none", "live.streamvc.macprovider", serve, 501)
    expect(text).toMatch(/^restart your provider/)
    expect(text.split("\n")).toContain(`  ${serve}`)
    expect(text).not.toMatch(/launchctl|systemctl/)
  })
  it("F-3: a label with shell metacharacters is quoted", () => {
    expect(restartInstructions("systemd", "my unit", serve, 1000)).toContain("systemctl --user restart 'my unit'")
  })
})

describe("config backup retention (SPEC S-4, L-3)", () => {
  it("S-4 keeps the newest N backups of that config (by seconds, then counter), never another file's", () => {
    const dir = nodeFs.mkdtempSync(path.join(os.tmpdir(), "autotune-backups-"))
    const names = ["config.yaml.bak-100-0", "config.yaml.bak-100-1", "config.yaml.bak-99-5", "config.yaml.bak-200-0", "other.yaml.bak-1-0", "config.yaml"]
    for (const n of names) nodeFs.writeFileSync(path.join(dir, n), n)
    const removed = pruneBackups(path.join(dir, "config.yaml.bak-200-0"), 2)
    expect(removed.map((f) => path.basename(f)).sort()).toEqual(["config.yaml.bak-100-0", "config.yaml.bak-99-5"])
    expect(nodeFs.readdirSync(dir).sort()).toEqual(["config.yaml", "config.yaml.bak-100-1", "config.yaml.bak-200-0", "other.yaml.bak-1-0"])
    expect(pruneBackups(path.join(dir, "config.yaml.bak-200-0"), 0)).toEqual([])
  })
})
