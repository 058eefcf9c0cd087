import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Real processes and real inference: tests share 2 cores, so run files one at a time
    // (parallel inference makes TTFT noise swamp what the tests assert).
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 300_000,
    globalSetup: ["test/globalSetup.ts"]
  }
})
