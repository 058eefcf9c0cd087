/** Server-Sent Events of a streaming chat completion, parsed into chunks (SPEC P-3). */
import { Data, Effect, Option, Schema, Stream } from "effect"

/** Token counts a server reports on its last chunk (OpenAI `usage`). */
export interface Usage {
  readonly promptTokens: number
  readonly completionTokens: number
}

/** llama-server-style `timings` on the last chunk, when the server reports them. */
export interface ServerTimings {
  readonly promptN: number | null
  readonly promptPerSecond: number | null
  readonly predictedPerSecond: number | null
  /** Server-side prefill and decode time of the request, ms (`prompt_ms`, `predicted_ms`). */
  readonly promptMs: number | null
  readonly predictedMs: number | null
  /** Tokens the decode time covers (`predicted_n`), when reported (absent in samples recorded before). */
  readonly predictedN?: number | null
}

/**
 * One parsed `data:` payload: its content text (may be empty), usage and
 * timings when present, and the message of an `error` payload (a server that
 * fails after the headers were sent can only report it in the stream).
 */
export interface SseChunk {
  readonly text: string
  readonly usage: Usage | null
  readonly timings: ServerTimings | null
  readonly error: string | null
  /** True only on the last chunk, which stands for `data: [DONE]`. */
  readonly done: boolean
}

const Payload = Schema.Struct({
  error: Schema.optional(Schema.Union(Schema.String, Schema.Struct({ message: Schema.optional(Schema.String) }))),
  choices: Schema.optional(Schema.Array(Schema.Struct({
    delta: Schema.optional(Schema.NullOr(Schema.Struct({ content: Schema.optional(Schema.NullOr(Schema.String)) }))),
    text: Schema.optional(Schema.NullOr(Schema.String))
  }))),
  usage: Schema.optional(Schema.NullOr(Schema.Struct({
    prompt_tokens: Schema.Number,
    completion_tokens: Schema.Number
  }))),
  timings: Schema.optional(Schema.NullOr(Schema.Struct({
    prompt_n: Schema.optional(Schema.Number),
    prompt_per_second: Schema.optional(Schema.Number),
    predicted_per_second: Schema.optional(Schema.Number),
    prompt_ms: Schema.optional(Schema.Number),
    predicted_ms: Schema.optional(Schema.Number),
    // Read for P-2's plausibility check only: a provider's null here must not cost the chunk its usage.
    predicted_n: Schema.optional(Schema.NullOr(Schema.Number))
  })))
})
const decodePayload = Schema.decodeUnknownOption(Schema.parseJson(Payload))

/** What one SSE line means to the reader. */
export type SseLine =
  | { readonly _tag: "Skip" }
  | { readonly _tag: "Done" }
  | { readonly _tag: "Chunk"; readonly chunk: SseChunk }

/**
 * Classifies one line of an OpenAI-style SSE stream (SPEC P-3):
 * `data: [DONE]` ends the stream; `data: {json}` is a chunk whose text is
 * `choices[0].delta.content` (chat) or `choices[0].text` (completions);
 * comment lines (`: keep-alive`), blank lines, other fields (`event:`, `id:`)
 * and malformed `data:` payloads are skipped; an `{"error": …}` payload is a
 * chunk carrying the error's message.
 */
export const parseSseLine = (line: string): SseLine => {
  if (!line.startsWith("data:")) return { _tag: "Skip" }
  const data = line.slice(5).trim()
  if (data === "[DONE]") return { _tag: "Done" }
  return Option.match(decodePayload(data), {
    onNone: () => ({ _tag: "Skip" }),
    onSome: (p): SseLine => {
      const choice = p.choices?.[0]
      const text = choice?.delta?.content ?? choice?.text ?? ""
      const usage = p.usage ? { promptTokens: p.usage.prompt_tokens, completionTokens: p.usage.completion_tokens } : null
      const timings = p.timings
        ? {
          promptN: p.timings.prompt_n ?? null,
          promptPerSecond: p.timings.prompt_per_second ?? null,
          predictedPerSecond: p.timings.predicted_per_second ?? null,
          promptMs: p.timings.prompt_ms ?? null,
          predictedMs: p.timings.predicted_ms ?? null,
          predictedN: p.timings.predicted_n ?? null
        }
        : null
      const error = p.error === undefined
        ? null
        : typeof p.error === "string"
        ? p.error
        : p.error.message ?? "error"
      return { _tag: "Chunk", chunk: { text, usage, timings, error, done: false } }
    }
  })
}

const DONE: SseChunk = { text: "", usage: null, timings: null, error: null, done: true }

/** The longest SSE line read, in characters (1 MiB): a server sending more without a line end is broken. */
export const MAX_SSE_LINE = 1024 * 1024

/** A stream line longer than MAX_SSE_LINE: the request fails (G-1), never the run's memory. */
export class SseLineTooLong extends Data.TaggedError("SseLineTooLong")<{ readonly chars: number }> {
  get message() {
    return `the stream sent a line of more than ${this.chars} characters without an end (over the ${MAX_SSE_LINE}-character bound)`
  }
}

/**
 * Text split into lines at LF, CRLF or a bare CR (all three end an SSE line,
 * WHATWG HTML "server-sent events"), bounded: a line, finished or not, longer
 * than MAX_SSE_LINE fails the stream with SseLineTooLong. The last line is
 * emitted at the end of the text even without a line end.
 */
export const boundedLines = <E, R>(text: Stream.Stream<string, E, R>): Stream.Stream<string, E | SseLineTooLong, R> =>
  text.pipe(
    Stream.concat(Stream.make("\n")),
    // Only each new piece is split (the carried, unfinished line is joined to its first part),
    // so a long line sent in small writes costs time in proportion to its length.
    Stream.mapAccumEffect("", (carry, piece) => {
      const parts = piece.split(/\r\n|\r|\n/)
      if (parts.length === 1) {
        const line = carry + piece
        return line.length > MAX_SSE_LINE
          ? Effect.fail(new SseLineTooLong({ chars: line.length }))
          : Effect.succeed([line, [] as Array<string>] as const)
      }
      parts[0] = carry + parts[0]!
      const rest = parts.pop()!
      const long = [...parts, rest].find((l) => l.length > MAX_SSE_LINE)
      return long === undefined
        ? Effect.succeed([rest, parts] as const)
        : Effect.fail(new SseLineTooLong({ chars: long.length }))
    }),
    Stream.mapConcat((lines) => lines)
  )

/**
 * Turns a response body (bytes, any chunking) into its SSE chunks, ending on
 * `[DONE]` (emitted as a last chunk with `done: true`) or at the end of the
 * body, whichever comes first (SPEC P-3). Lines split across network chunks
 * are reassembled; LF, CRLF and bare CR end a line; a line over MAX_SSE_LINE
 * fails the stream with SseLineTooLong.
 */
export const sseChunks = <E, R>(body: Stream.Stream<Uint8Array, E, R>): Stream.Stream<SseChunk, E | SseLineTooLong, R> =>
  body.pipe(
    Stream.decodeText(),
    boundedLines,
    Stream.map(parseSseLine),
    Stream.takeUntil((l) => l._tag === "Done"),
    Stream.filterMap((l) =>
      l._tag === "Chunk" ? Option.some(l.chunk) : l._tag === "Done" ? Option.some(DONE) : Option.none()
    )
  )
