/**
 * The OpenAI-compatible wire format of `autotune serve`: request schemas, the
 * fixed prompt template, and the response / SSE chunk shapes (SPEC E-5, P-3).
 */
import { Schema } from "effect"

/** One part of an array-form message content (`{type:"text", text}`); other part types are ignored. */
const ContentPart = Schema.Struct({ type: Schema.String, text: Schema.optional(Schema.String) })

/** One chat message; `content` may be a string, an array of parts, or null. */
export class ChatMessage extends Schema.Class<ChatMessage>("ChatMessage")({
  role: Schema.String,
  content: Schema.optionalWith(Schema.NullOr(Schema.Union(Schema.String, Schema.Array(ContentPart))), {
    default: () => null
  })
}) {}

const PositiveInt = Schema.Int.pipe(Schema.positive())

/**
 * Body of `POST /v1/chat/completions`. `max_tokens` (or its newer alias
 * `max_completion_tokens`) counts generated tokens; absent means "up to the
 * end of the sequence's context". `temperature` absent or 0 is greedy.
 * `model` is accepted and ignored (one model per process).
 */
export class ChatRequest extends Schema.Class<ChatRequest>("ChatRequest")({
  model: Schema.optional(Schema.NullOr(Schema.String)),
  messages: Schema.NonEmptyArray(ChatMessage),
  max_tokens: Schema.optional(Schema.NullOr(PositiveInt)),
  max_completion_tokens: Schema.optional(Schema.NullOr(PositiveInt)),
  stream: Schema.optional(Schema.NullOr(Schema.Boolean)),
  temperature: Schema.optional(Schema.NullOr(Schema.Number.pipe(Schema.between(0, 2)))),
  seed: Schema.optional(Schema.NullOr(Schema.Int)),
  stop: Schema.optional(Schema.NullOr(Schema.Union(Schema.String, Schema.Array(Schema.String))))
}) {}

/** Body of `POST /tokenize` (llama-server compatible): `add_special` prepends BOS (default true). */
export class TokenizeRequest extends Schema.Class<TokenizeRequest>("TokenizeRequest")({
  content: Schema.String,
  add_special: Schema.optionalWith(Schema.Boolean, { default: () => true })
}) {}

/** The text of a message's content: array parts are joined by their `text`. */
const contentText = (c: ChatMessage["content"]): string =>
  c === null ? "" : typeof c === "string" ? c : c.map((p) => p.text ?? "").join("")

/**
 * The fixed prompt template: `"<role>: <content>\n"` per message, then
 * `"assistant:"`. Deliberately independent of the model's chat template, so the
 * token count of a prompt depends only on the tokenizer.
 */
export const renderPrompt = (messages: ReadonlyArray<ChatMessage>): string =>
  messages.map((m) => `${m.role}: ${contentText(m.content)}\n`).join("") + "assistant:"

/** The stop strings of a request, empty strings dropped. */
export const stopStrings = (stop: ChatRequest["stop"]): ReadonlyArray<string> =>
  (stop === undefined || stop === null ? [] : typeof stop === "string" ? [stop] : stop).filter((s) => s.length > 0)

/** Why generation ended: `length` = max_tokens reached, `stop` = end-of-generation token or stop string. */
export type FinishReason = "length" | "stop"

/** Token counts of one completion (OpenAI `usage`). */
export interface Usage {
  readonly prompt_tokens: number
  readonly completion_tokens: number
  readonly total_tokens: number
}

/**
 * llama-server-style timings of one completion. `prompt_ms` runs from the start
 * of evaluation (after a sequence was free) to the first generated token;
 * `predicted_ms` from the first to the last generated token, so
 * `predicted_per_second` = (predicted_n − 1) / predicted_ms × 1000 (0 when
 * fewer than 2 tokens were generated).
 */
export interface Timings {
  readonly prompt_n: number
  readonly prompt_ms: number
  readonly prompt_per_second: number
  readonly predicted_n: number
  readonly predicted_ms: number
  readonly predicted_per_second: number
}

/** Identity of one completion, shared by all of its chunks. */
export interface CompletionIds {
  readonly id: string
  readonly created: number
  readonly model: string
}

/** `GET /v1/models` body for the one served model. */
export const modelList = (modelId: string) => ({
  object: "list",
  data: [{ id: modelId, object: "model", created: 0, owned_by: "llm-autotune" }]
})

/** OpenAI-style error body; `type` is `invalid_request_error` for 4xx, `server_error` for 5xx. */
export const errorBody = (status: number, message: string, code: string | null = null) => ({
  error: { message, type: status >= 500 ? "server_error" : "invalid_request_error", param: null, code }
})

/** One `chat.completion.chunk` carrying `delta` (and, on the last chunk, `finish_reason`, `usage`, `timings`). */
export const chunk = (
  ids: CompletionIds,
  delta: { readonly role?: "assistant"; readonly content?: string },
  end?: { readonly finishReason: FinishReason; readonly usage: Usage; readonly timings: Timings }
) => ({
  id: ids.id,
  object: "chat.completion.chunk",
  created: ids.created,
  model: ids.model,
  choices: [{ index: 0, delta, finish_reason: end?.finishReason ?? null }],
  ...(end ? { usage: end.usage, timings: end.timings } : {})
})

/** The non-streaming `chat.completion` object. */
export const completion = (
  ids: CompletionIds,
  text: string,
  finishReason: FinishReason,
  usage: Usage,
  timings: Timings
) => ({
  id: ids.id,
  object: "chat.completion",
  created: ids.created,
  model: ids.model,
  choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: finishReason }],
  usage,
  timings
})
