import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Real processes and real inference: tests share 2 cores, so run files one at a time
    // (parallel inference makes TTFT noise swamp what the tests assert).
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 300_000,
    globalSetup: ["test/globalSetup.ts"],
    // The quiet-machine guard (SPEC N-3) off for every tune a test starts, unless the test
    // passes --max-background-cores itself (a flag wins): what the other tests assert must not
    // depend on what else the machine runs. The guard's own tests turn it on.
    env: { AUTOTUNE_MAX_BACKGROUND_CORES: "off" }
  }
})
