/** The bench's fixed settings (bench/README.md): the tune's inputs and the throughput request. */

/** The bench's fixed settings: the tune's inputs and the throughput request. Units: tokens, ms. */
export const SETTINGS = {
  /** 1024 tokens of prompt per probe. */
  targetContext: 1024,
  /**
   * TTFT gate per provider, ms, fixed so runs compare: between the 130M's slowest
   * cell and the 1.1B's fastest TTFT at 1024 tokens, measured here (README, "gate"):
   * llama-server 2.9 s (kv=8 threads=1) vs ~9 s; embedded 2.1 s vs ~4.6 s (its
   * bundled llama.cpp prefills twice as fast as the shared AVX2 build on this CPU).
   */
  gateTtftMs: { "llama-server": 5000, embedded: 3000 },
  maxTokens: 64,
  kvBitsAxis: "unset,8",
  threadsAxis: "1,2",
  stage1Replicates: 3,
  stage2Replicates: 3,
  throughput: { contextTokens: 2048, promptWords: 570, maxTokens: 64, warmup: 1, requests: 5 }
} as const

/** A provider the bench tunes. */
export type Provider = keyof typeof SETTINGS.gateTtftMs
