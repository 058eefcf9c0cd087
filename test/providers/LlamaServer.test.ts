import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { Knobs } from "../../src/domain/Knobs.js"
import { llamaServer, NO_OPTIONAL_FLAGS } from "../../src/providers/LlamaServer.js"
import { adapterCommand, adapterExecutable } from "../../src/providers/ProviderAdapter.js"
import { findLlamaServer } from "../../src/system/Executables.js"
import { runCli, tempDir } from "../support/cli.js"

const spec = (knobs: Partial<ConstructorParameters<typeof Knobs>[0]>, port: number | null = 4321) => ({
  model: "/m/x.gguf", port, targetContext: 2048, replyTokens: 64,
  knobs: new Knobs({ kvBits: null, maxContext: null, maxBatch: null, threads: null, ...knobs })
})

describe("llama-server adapter (SPEC E-5)", () => {
  it("E-5 argv: -m, loopback host and port, total context over --parallel slots, no --no-join", () => {
    const { args, command } = llamaServer("/bin/llama-server", { cacheRam: true }).argv(spec({ maxBatch: 2, threads: 2 }), true)
    expect(command).toBe("/bin/llama-server")
    // per slot: ceil(2048 × 1.05) + 64 = 2215 tokens; two slots share --ctx-size
    expect(args).toEqual(["-m", "/m/x.gguf", "--host", "127.0.0.1", "--port", "4321", "--cache-ram", "0", "--ctx-size", "4430", "--parallel", "2", "--threads", "2"])
  })
  it("E-5 kv-bits 4 and 8 set both cache types with flash attention on; the max-context knob sizes the context", () => {
    expect(llamaServer("/bin/llama-server", { cacheRam: false }).argv(spec({}), true).args).not.toContain("--cache-ram")
    const a8 = llamaServer("ls", NO_OPTIONAL_FLAGS).argv(spec({ kvBits: 8, maxContext: 4096 }), true).args
    expect(a8.join(" ")).toContain("--ctx-size 4365 --parallel 1 --cache-type-k q8_0 --cache-type-v q8_0 --flash-attn on")
    const a4 = llamaServer("ls", NO_OPTIONAL_FLAGS).argv(spec({ kvBits: 4 }), true).args
    expect(a4.join(" ")).toContain("--cache-type-k q4_0 --cache-type-v q4_0 --flash-attn on")
  })
  it("F-1 E-5 the serve command has no port and no host, and quotes paths", () => {
    const cmd = llamaServer("/opt/llama server/llama-server", { cacheRam: true }).serveCommand({ ...spec({ kvBits: 8, threads: 1 }, null), model: "/m/my model.gguf" })
    expect(cmd).toBe("'/opt/llama server/llama-server' -m '/m/my model.gguf' --ctx-size 2215 --parallel 1 --cache-type-k q8_0 --cache-type-v q8_0 --flash-attn on --threads 1")
  })
  it("E-5 readiness: /health before /v1/models", () => {
    expect(llamaServer("ls", NO_OPTIONAL_FLAGS).healthPath).toBe("/health")
  })
})

describe("finding llama-server (issue: llama-server)", () => {
  const dir = tempDir()
  const exe = (p: string) => {
    Fs.mkdirSync(Path.dirname(p), { recursive: true })
    Fs.writeFileSync(p, "#!/bin/sh\n")
    Fs.chmodSync(p, 0o755)
    return Fs.realpathSync(p)
  }
  const fromEnv = exe(Path.join(dir, "env", "llama-server"))
  const fromBinDir = exe(Path.join(dir, "bindir", "llama-server"))
  it("--provider-bin, then $LLAMA_SERVER, then $LLAMA_CPP_BIN_DIR, then PATH", () => {
    expect(findLlamaServer(fromBinDir, { LLAMA_SERVER: fromEnv }).found).toBe(fromBinDir)
    expect(findLlamaServer(null, { LLAMA_SERVER: fromEnv, LLAMA_CPP_BIN_DIR: Path.dirname(fromBinDir) }).found).toBe(fromEnv)
    // A $LLAMA_SERVER that is set but wrong is reported, never skipped for the next place.
    expect(findLlamaServer(null, { LLAMA_SERVER: Path.join(dir, "nope"), LLAMA_CPP_BIN_DIR: Path.dirname(fromBinDir) }).found).toBeNull()
    // A directory is no executable.
    expect(findLlamaServer(Path.dirname(fromBinDir), {}).found).toBeNull()
    expect(findLlamaServer(null, { LLAMA_CPP_BIN_DIR: Path.dirname(fromBinDir) }).found).toBe(fromBinDir)
  })
  it("B-1 a missing llama-server exits 64 naming every place it looked", async () => {
    const r = await runCli(["tune", "--provider", "llama-server", "--candidate-models", "x.gguf", "--db-path", Path.join(dir, "db")], {
      env: { LLAMA_SERVER: Path.join(dir, "nope"), LLAMA_CPP_BIN_DIR: Path.join(dir, "nothing"), PATH: "/usr/bin:/bin" }
    })
    expect(r.code).toBe(64)
    expect(r.stderr).toContain(`$LLAMA_SERVER=${Path.join(dir, "nope")}`)
    const r2 = await runCli(["tune", "--provider", "llama-server", "--candidate-models", "x.gguf", "--db-path", Path.join(dir, "db")], {
      env: { LLAMA_SERVER: "", LLAMA_CPP_BIN_DIR: Path.join(dir, "nothing"), PATH: "/usr/bin:/bin" }
    })
    expect(r2.code).toBe(64)
    expect(r2.stderr).toContain("$LLAMA_CPP_BIN_DIR/llama-server=")
    expect(r2.stderr).toContain("llama-server on PATH")
    expect(Fs.existsSync(Path.join(dir, "db"))).toBe(false)
  })

  it("F-6 started from a llama-swap config: a candidate runs its entry's cmd on its port; a model-less launch (run lock, pre-flight, identity) is the tuned llama-server", () => {
    const file = Path.join(tempDir(), "config.yaml")
    Fs.writeFileSync(file, "models:\n  x:\n    cmd: /opt/swap/llama-server --port ${PORT} -m /m/x.gguf -c 100\n")
    const fromFile = llamaServer("/opt/bin/llama-server", NO_OPTIONAL_FLAGS).config!.launchFrom!(file)
    expect(fromFile.argv(spec({}, 5000), true)).toEqual({ command: "/opt/swap/llama-server", args: ["--port", "5000", "-m", "/m/x.gguf", "-c", "100"] })
    expect(adapterCommand(fromFile).command).toBe("/opt/bin/llama-server")
    expect(adapterExecutable(fromFile)).toBe("/opt/bin/llama-server")
  })
})
