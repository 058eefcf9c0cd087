/**
 * How often the embedded provider writes a stream's tokens (`autotune serve
 * --stream-interval-ms`, SPEC E-5), and the interval a tune starts it with
 * under an inter-token-latency objective (SPEC C-1).
 */

/**
 * `--stream-interval-ms` when neither the flag nor the config's
 * `stream_interval_ms_override` gives one: 20 ms, at most 50 writes a second
 * (issue 14: per-token writes cost a 2-thread decode on 2 cores up to half
 * its speed; serve/SseWriter.ts says how the writer holds tokens).
 */
export const DEFAULT_STREAM_INTERVAL_MS = 20

/** The largest `--stream-interval-ms` / `stream_interval_ms_override` accepted, ms. */
export const MAX_STREAM_INTERVAL_MS = 1000

/**
 * The stream interval (ms) the embedded provider is started with for an ITL
 * p95 objective of `itlP95Ms` (ms, `--slo-itl-p95-ms`; null: none), or null
 * for its default. A stream written every `i` ms shows gaps of about `i` plus
 * a timer's lateness whenever it decodes faster (its ITL is the interval's,
 * not decode's), so an objective under twice the default gets half the
 * objective, rounded down (0 = every token as it comes): the other half is
 * left for the timer and for decode. Objectives from twice the default up
 * keep it.
 */
export const streamIntervalForItl = (itlP95Ms: number | null): number | null =>
  itlP95Ms === null || !(itlP95Ms < 2 * DEFAULT_STREAM_INTERVAL_MS) ? null : Math.max(0, Math.floor(itlP95Ms / 2))
