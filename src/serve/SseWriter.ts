/**
 * The SSE writer of one streamed response: events that mark the stream (the role chunk, the
 * final chunk with usage and timings, an error, `[DONE]`) and the first content delta are written
 * at once; later content deltas are written at most once per `intervalMs`, several to one socket
 * write when tokens come faster than that (each still its own `data:` event, one per token).
 *
 * Why (issue 14, measured 2026-12-06 on 2 cores, 42M at 2 threads, 64 tokens after 512, streamed
 * to curl, 12 requests in each of two processes per setting): one socket write per token, and the
 * client waking to read it, take a core from llama.cpp's two compute threads, whose barrier then
 * waits on a descheduled peer: 92–440 tok/s per request, bimodal (process medians ~150 and ~280),
 * against 245–496 unstreamed; written at most every 20 ms, 222–467 (medians ~350). At 1 thread it
 * made no difference. A token that comes at least the interval after the last write is written at
 * once; TTFT (SPEC P-2: the first non-empty content delta) is never held; the last token is flushed
 * when generation ends (`flush`; a stream that ends on an end-of-generation token gets it one
 * decode step late, llama.cpp samples that token first). When decode is faster than the interval, a
 * client sees tokens in groups: most gaps ~0, one per group about the interval, so ITL measured on
 * it (C-1) is the interval's, not decode's. `intervalMs` 0 writes every event as it comes.
 */
import type * as http from "node:http"

/** One response's writer: `event` (at once) and `content` (coalesced), both no-ops once the socket is gone. */
export interface SseWriter {
  /** Writes what is held, then `data` (a JSON-able chunk or a literal such as `[DONE]`). */
  readonly event: (data: unknown) => void
  /**
   * A content delta: at once if it is the first with text (`hasText`: an empty delta, text held back
   * by the engine, does not count as the first) or the interval has passed since the last write, else held.
   */
  readonly content: (data: unknown, hasText: boolean) => void
  /** Writes what is held now (the end of generation). */
  readonly flush: () => void
}

const frame = (data: unknown) => `data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`

/** An SseWriter on `res` coalescing content deltas to one write per `intervalMs` (≥ 0, ms). */
export const makeSseWriter = (res: http.ServerResponse, intervalMs: number): SseWriter => {
  let held = ""
  let lastWriteMs = Number.NEGATIVE_INFINITY
  let contentSeen = false
  let timer: ReturnType<typeof setTimeout> | undefined
  const flush = () => {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    if (held.length > 0 && !res.destroyed && !res.writableEnded) res.write(held)
    held = ""
    lastWriteMs = performance.now()
  }
  return {
    event: (data) => {
      held += frame(data)
      flush()
    },
    content: (data, hasText) => {
      held += frame(data)
      const since = performance.now() - lastWriteMs
      if ((!contentSeen && hasText) || since >= intervalMs) {
        contentSeen ||= hasText
        flush()
      } else if (timer === undefined) {
        timer = setTimeout(flush, intervalMs - since)
      }
    },
    flush
  }
}
