import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { Knobs } from "../../src/domain/Knobs.js"
import { embedded } from "../../src/providers/Embedded.js"
import { repoRoot } from "../support/models.js"

const spec = (knobs: Partial<ConstructorParameters<typeof Knobs>[0]>) => ({
  model: "/m/model.gguf",
  port: 4321,
  targetContext: 512,
  replyTokens: 1024,
  knobs: new Knobs({ kvBits: null, maxContext: null, maxBatch: null, threads: null, ...knobs })
})

describe("embedded provider adapter (SPEC E-5)", () => {
  it("E-5 a candidate and a config-started provider run through the launcher, bin/autotune.js (one libuv pool thread; issue 14)", () => {
    const launcher = Path.join(repoRoot, "bin", "autotune.js")
    const a = embedded(null).argv(spec({ threads: 2 }), true)
    expect(a.command).toBe(process.execPath)
    expect(a.args.slice(0, 2)).toEqual([launcher, "serve"])
    expect(a.args).toContain("--threads")
    const fromFile = embedded(null).config!.launchFrom!("/etc/autotune.yaml").argv(spec({}), true)
    expect(fromFile.command).toBe(process.execPath)
    expect(fromFile.args.slice(0, 4)).toEqual([launcher, "serve", "--config", "/etc/autotune.yaml"])
  })
})
