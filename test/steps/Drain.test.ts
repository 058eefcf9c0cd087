/**
 * The drain of a service job through a stand-in service manager (SPEC E-2):
 * stopped before the tune, started again exactly once when the run's scope
 * closes, on success and on failure. Foreground providers are drained for real
 * in test/Drain.e2e.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Ref, Scope } from "effect"
import { Exec } from "../../src/services/Exec.js"
import { ServiceManager } from "../../src/services/ServiceManager.js"
import { drain } from "../../src/steps/Drain.js"
import type { Findings } from "../../src/steps/Preflight.js"

const jobRunning: Findings = { kind: "systemd", label: "provider.service", jobRunning: true, jobPid: 99, foreground: [] }

describe("drain of a service job (SPEC E-2)", () => {
  for (const [name, ending] of [["a finished run", Exit.void], ["a failed run", Exit.fail("boom")]] as const) {
    it.effect(`E-2 the job is stopped for the run and started again once when ${name} closes its scope`, () =>
      Effect.gen(function*() {
        const journal = yield* Ref.make<ReadonlyArray<string>>([])
        const scope = yield* Scope.make()
        const comesBack = yield* drain(jobRunning, false).pipe(
          Scope.extend(scope),
          Effect.provide(Layer.merge(ServiceManager.Stub("systemd", { _tag: "Running", pid: 99 }, journal), Exec.Default))
        )
        assert.isTrue(comesBack)
        assert.deepStrictEqual(yield* Ref.get(journal), ["stop provider.service"])
        yield* Scope.close(scope, ending)
        assert.deepStrictEqual(yield* Ref.get(journal), ["stop provider.service", "start provider.service"])
      }))
  }
})
