/**
 * One streaming chat completion, measured from both sides (figure 3): the
 * client's clock around the SSE stream and the `timings` the server reports on
 * its last chunk (llama-server and the embedded provider both send them).
 */

/** What one request measured. Times in ms, rates in tokens/s; null where not reported. */
export interface ChatMeasure {
  /** Prompt tokens as the server counted them (`usage.prompt_tokens`). */
  readonly promptTokens: number | null
  /** Generated tokens (`usage.completion_tokens`, else content chunks). */
  readonly completionTokens: number
  /** Request sent → first content chunk. */
  readonly ttftMs: number
  /** Client prefill rate: prompt tokens ÷ TTFT (so HTTP, templating and the first decode step are in it). */
  readonly clientPrefillTps: number | null
  /** Client decode rate: (tokens − 1) ÷ (last content chunk − first content chunk). */
  readonly clientDecodeTps: number | null
  /** Server's `timings.prompt_per_second` and `timings.predicted_per_second`. */
  readonly serverPrefillTps: number | null
  readonly serverDecodeTps: number | null
  /** Server's `timings.prompt_n`: tokens it actually prefilled (a cached prefix is skipped). */
  readonly serverPromptN: number | null
}

interface Payload {
  readonly choices?: ReadonlyArray<{ readonly delta?: { readonly content?: string | null } | null }>
  readonly usage?: { readonly prompt_tokens?: number; readonly completion_tokens?: number } | null
  readonly timings?: {
    readonly prompt_n?: number
    readonly prompt_per_second?: number
    readonly predicted_per_second?: number
  } | null
}

/** Sends `prompt` as one user message with `max_tokens` = `maxTokens`, temperature 0, streaming with usage. */
export const streamChat = async (baseUrl: string, prompt: string, maxTokens: number): Promise<ChatMeasure> => {
  const t0 = performance.now()
  const res = await fetch(`${baseUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      messages: [{ role: "user", content: prompt }],
      max_tokens: maxTokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true }
    }),
    signal: AbortSignal.timeout(300_000)
  })
  if (!res.ok || res.body === null) throw new Error(`HTTP ${res.status}: ${await res.text()}`)
  let first: number | null = null
  let last: number | null = null
  let chunks = 0
  let usage: Payload["usage"] = null
  let timings: Payload["timings"] = null
  let buf = ""
  const decoder = new TextDecoder()
  for await (const bytes of res.body) {
    buf += decoder.decode(bytes, { stream: true })
    let nl: number
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim()
      buf = buf.slice(nl + 1)
      if (!line.startsWith("data:")) continue
      const data = line.slice(5).trim()
      if (data === "[DONE]") continue
      const p = JSON.parse(data) as Payload
      if ((p.choices?.[0]?.delta?.content ?? "") !== "") {
        const t = performance.now()
        first ??= t
        last = t
        chunks++
      }
      if (p.usage) usage = p.usage
      if (p.timings) timings = p.timings
    }
  }
  if (first === null || last === null) throw new Error("stream ended without content")
  const n = usage?.completion_tokens ?? chunks
  const ttftMs = first - t0
  const promptTokens = usage?.prompt_tokens ?? null
  return {
    promptTokens,
    completionTokens: n,
    ttftMs,
    clientPrefillTps: promptTokens === null ? null : (promptTokens * 1000) / ttftMs,
    clientDecodeTps: n > 1 && last > first ? ((n - 1) * 1000) / (last - first) : null,
    serverPrefillTps: timings?.prompt_per_second ?? null,
    serverDecodeTps: timings?.predicted_per_second ?? null,
    serverPromptN: timings?.prompt_n ?? null
  }
}
