/**
 * Counting a prompt's tokens with the provider's own tokenizer, without a
 * prefill: llama-server's `POST /tokenize` (`{content, add_special: false}`
 * → `{tokens: [...]}`, no BOS: sent explicitly, the embedded provider's
 * default is true; `model` for a router in front of several, which the
 * others ignore), which the embedded provider serves too
 * (src/serve/Serve.ts). The pre-warm sizes the probe prompt from it (SPEC
 * P-1, issue 14 part 4: "calibrate the prompt length with the provider's
 * tokenizer where it has one … instead of a discarded full-length prefill").
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Effect, Schema } from "effect"
import type { RunningServer } from "../domain/RunningServer.js"

const Tokenized = Schema.Struct({ tokens: Schema.Array(Schema.Unknown) })

/**
 * How many tokens the provider's tokenizer makes of `content` (its text
 * alone: no chat template, no BOS), or null when it cannot say: no
 * `/tokenize` route (404), an error status, a body that is not
 * `{tokens: [...]}`, or no answer within `timeoutMs` (ms). Never fails: the
 * caller falls back to counting a request's `usage.prompt_tokens`.
 */
export const countTokens = (
  server: RunningServer,
  content: string,
  timeoutMs: number
): Effect.Effect<number | null, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const res = yield* client.execute(
      HttpClientRequest.post(`${server.baseUrl}/tokenize`).pipe(HttpClientRequest.bodyUnsafeJson({ content, add_special: false, model: server.modelId }))
    )
    if (res.status !== 200) return null
    const body = yield* res.json
    return (yield* Schema.decodeUnknown(Tokenized)(body)).tokens.length
  }).pipe(
    Effect.scoped,
    Effect.timeout(`${timeoutMs} millis`),
    Effect.orElseSucceed(() => null)
  )
