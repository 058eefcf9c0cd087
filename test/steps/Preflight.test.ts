import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import { fromPs, type ProcessInfo, ProcessTable } from "../../src/services/ProcessTable.js"
import { type JobState, ServiceManager } from "../../src/services/ServiceManager.js"
import { classifyForeground, foregroundProviders, isProviderProcess, preflight } from "../../src/steps/Preflight.js"

describe("pre-flight process matching (SPEC E-1)", () => {
  it("E-1 the executable's base name must be exactly the provider binary, with serve as a whole word", () => {
    expect(isProviderProcess(["/usr/local/bin/macprovider-cli", "serve", "--port", "8080"], "macprovider-cli")).toBe(true)
    expect(isProviderProcess(["macprovider-cli", "--verbose", "serve"], "macprovider-cli")).toBe(true)
    expect(isProviderProcess(["node", "/opt/x/macprovider-cli", "serve"], "macprovider-cli")).toBe(true)
    expect(isProviderProcess(["/usr/bin/macprovider-cli-helper", "serve"], "macprovider-cli")).toBe(false)
    expect(isProviderProcess(["macprovider-cli", "observer"], "macprovider-cli")).toBe(false)
    expect(isProviderProcess(["macprovider-cli", "--serve"], "macprovider-cli")).toBe(false)
    expect(isProviderProcess(["macprovider-cli", "serves"], "macprovider-cli")).toBe(false)
    expect(isProviderProcess(["vim", "macprovider-cli", "serve"], "macprovider-cli")).toBe(false)
    expect(isProviderProcess(["serve", "macprovider-cli"], "macprovider-cli")).toBe(false)
  })

  it("E-1 this process and its descendants are never a conflict", () => {
    const table = [
      { pid: 10, ppid: 1, argv: ["macprovider-cli", "serve"] }, // the operator's provider
      { pid: 20, ppid: 1, argv: ["node", "autotune.js", "tune"] }, // this run
      { pid: 21, ppid: 20, argv: ["macprovider-cli", "serve", "--no-join"] }, // our candidate
      { pid: 22, ppid: 21, argv: ["macprovider-cli", "serve"] } // its worker
    ]
    expect(foregroundProviders(table, "macprovider-cli", 20).map((p) => p.pid)).toEqual([10])
    expect(foregroundProviders(table.slice(1), "macprovider-cli", 20)).toEqual([])
  })

  it("E-1 E-2 the job's process tree is the job; a live tune's candidates are its own; orphaned candidates conflict", () => {
    const table = [
      { pid: 10, ppid: 1, argv: ["macprovider-cli", "serve"] }, // the service job's main process
      { pid: 13, ppid: 10, argv: ["macprovider-cli", "serve", "--worker"] }, // its child
      { pid: 11, ppid: 1, argv: ["macprovider-cli", "serve", "--port", "9000"] }, // a foreground one
      { pid: 20, ppid: 1, argv: ["node", "/x/bin/autotune.js", "tune"] }, // another tune
      { pid: 12, ppid: 20, argv: ["macprovider-cli", "serve", "--port", "9001", "--no-join"] }, // its candidate
      { pid: 14, ppid: 1, argv: ["macprovider-cli", "serve", "--port", "9002", "--no-join"] }, // an orphaned candidate
      { pid: 30, ppid: 1, argv: ["node", "/x/dist/bin.js", "tune"] }, // a tune run from the compiled entry
      { pid: 31, ppid: 30, argv: ["macprovider-cli", "serve", "--port", "9003", "--no-join"] }, // its candidate
      { pid: 40, ppid: 1, argv: ["node", "/y/tools/bin.js", "tune"] }, // some other program's bin.js
      { pid: 41, ppid: 40, argv: ["macprovider-cli", "serve", "--port", "9004", "--no-join"] } // not a tune's candidate
    ]
    const found = foregroundProviders(table, "macprovider-cli", 99)
    const c = classifyForeground(found, table, new Set([10, 13]))
    expect(c.operator.map((p) => p.pid)).toEqual([11, 14, 41])
    expect(c.candidates.map((p) => p.pid)).toEqual([12, 31])
  })
})

describe("pre-flight for llama-server (SPEC E-1, E-5)", () => {
  it("E-1 F-6 a live tune's or verify's llama-server under its shim, and the model server a router candidate started, are that run's; an orphaned router's is the operator's", () => {
    const ls = "/opt/bin/llama-server"
    const table = [
      { pid: 20, ppid: 1, argv: ["node", "/x/bin/autotune.js", "tune"] },
      { pid: 21, ppid: 20, argv: ["node", "/x/bin/provider-shim.mjs", ls, "-m", "a.gguf"] },
      { pid: 22, ppid: 21, argv: [ls, "-m", "a.gguf", "--port", "9001"] }, // a plain candidate
      { pid: 30, ppid: 1, argv: ["node", "/x/bin/autotune.js", "verify", "run-1"] },
      { pid: 31, ppid: 30, argv: ["node", "/x/bin/provider-shim.mjs", ls, "--models-preset", "p.ini"] },
      { pid: 32, ppid: 31, argv: [ls, "--models-preset", "p.ini", "--port", "9002"] }, // a router candidate
      { pid: 33, ppid: 32, argv: [ls, "--model", "a.gguf", "--port", "40001"] }, // the model server it started
      { pid: 40, ppid: 1, argv: [ls, "--models-preset", "mine.ini"] }, // the operator's router
      { pid: 41, ppid: 40, argv: [ls, "--model", "a.gguf", "--port", "40002"] }, // and its model server
      { pid: 50, ppid: 1, argv: ["node", "/x/bin/provider-shim.mjs", ls, "--models-preset", "p.ini"] }, // a dead tune's shim
      { pid: 51, ppid: 50, argv: [ls, "--models-preset", "p.ini", "--port", "9003"] }, // its orphaned router
      { pid: 52, ppid: 51, argv: [ls, "--model", "a.gguf", "--port", "40003"] } // and model server
    ]
    const c = classifyForeground(foregroundProviders(table, "llama-server", 99, null), table, new Set())
    expect(c.candidates.map((p) => p.pid)).toEqual([22, 32, 33])
    expect(c.operator.map((p) => p.pid)).toEqual([40, 41, 51, 52])
  })

  it("E-1 a llama-server is a provider by its executable alone; macprovider still needs `serve`", () => {
    expect(isProviderProcess(["/usr/local/bin/llama-server", "-m", "x.gguf", "--port", "8080"], "llama-server", null)).toBe(true)
    expect(isProviderProcess(["/bin/sh", "/opt/bin/llama-server", "-m", "x.gguf"], "llama-server", null)).toBe(true)
    expect(isProviderProcess(["/usr/local/bin/llama-server-helper", "-m", "x.gguf"], "llama-server", null)).toBe(false)
    expect(isProviderProcess(["/usr/local/bin/llama-server", "-m", "x.gguf"], "llama-server")).toBe(false)
  })
})

describe("pre-flight through its services (SPEC E-1), with a stand-in service manager and process table", () => {
  const options = { serviceManager: "auto" as const, serviceLabel: "live.streamvc.macprovider", providerBinary: "macprovider-cli", providerSubcommand: "serve" }
  const operator = { pid: 31337, ppid: 1, argv: ["/usr/local/bin/macprovider-cli", "serve", "--port", "8080"] }
  const run = (job: JobState, table: ReadonlyArray<ProcessInfo>, drain = false) =>
    preflight(options, drain).pipe(
      Effect.provide(Layer.merge(ServiceManager.Stub("systemd", job), ProcessTable.Stub(table))),
      Effect.either
    )

  it.effect("E-1 a quiet machine passes: no job, no provider process", () =>
    Effect.gen(function*() {
      const r = yield* run({ _tag: "Absent" }, [])
      assert.deepStrictEqual(r, Either.right({ kind: "systemd", label: options.serviceLabel, jobRunning: false, jobPid: null, foreground: [] }))
    }))

  it.effect("E-1 a job loaded but not running is no conflict; a running one is, naming its label and pid", () =>
    Effect.gen(function*() {
      assert.isTrue(Either.isRight(yield* run({ _tag: "Loaded" }, [])))
      const r = yield* run({ _tag: "Running", pid: 4321 }, [])
      assert.isTrue(Either.isLeft(r))
      if (Either.isLeft(r)) {
        assert.strictEqual(r.left._tag, "ProviderConflict")
        assert.include(r.left.message, "systemd job live.streamvc.macprovider is running (pid 4321)")
      }
    }))

  it.effect("E-1 a foreground provider is a conflict, unless it is the running job's own process; --drain returns it instead", () =>
    Effect.gen(function*() {
      const r = yield* run({ _tag: "Absent" }, [operator])
      assert.isTrue(Either.isLeft(r) && r.left.message.includes(`foreground provider pid ${operator.pid}`))
      assert.isTrue(Either.isLeft(r) && r.left.message.includes("pass --drain"))
      const asJob = yield* run({ _tag: "Running", pid: operator.pid }, [operator], true)
      assert.deepStrictEqual(Either.map(asJob, (f) => [f.jobRunning, f.foreground.length]), Either.right([true, 0]))
      const drained = yield* run({ _tag: "Absent" }, [operator], true)
      assert.deepStrictEqual(Either.map(drained, (f) => f.foreground.map((p) => p.pid)), Either.right([operator.pid]))
    }))
})

describe("the process table on macOS, from ps (SPEC E-1)", () => {
  it("E-1 an executable path with spaces stays whole in argv[0], so the provider's base name still matches", () => {
    const table = fromPs(
      "  101     1 /Applications/Mac Provider.app/Contents/MacOS/macprovider-cli\n  202   101 /bin/sh\n",
      "  101 /Applications/Mac Provider.app/Contents/MacOS/macprovider-cli serve --port 8080\n  202 /bin/sh -c sleep 5\n"
    )
    expect(table).toEqual([
      { pid: 101, ppid: 1, argv: ["/Applications/Mac Provider.app/Contents/MacOS/macprovider-cli", "serve", "--port", "8080"] },
      { pid: 202, ppid: 101, argv: ["/bin/sh", "-c", "sleep", "5"] }
    ])
    expect(foregroundProviders(table, "macprovider-cli", 999).map((p) => p.pid)).toEqual([101])
  })
})
