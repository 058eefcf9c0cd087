/**
 * A time-bounded wait that is safe inside a finalizer.
 *
 * Verified on effect 3.22.4: when the fiber running a finalizer is itself the
 * interrupted one (a request fiber whose client went away, the main fiber on
 * SIGTERM), `Effect.interruptible` inside that finalizer makes the wrapped
 * effect be interrupted before it starts, so the release silently does nothing;
 * and without it, `Effect.timeout` never fires. Racing the promise against a
 * timer in plain JavaScript needs neither.
 */
import { Effect } from "effect"

/**
 * Awaits `start()` for at most `ms` milliseconds, then moves on (the promise
 * keeps running). Never fails: rejections and sync throws are ignored.
 */
export const awaitBounded = (start: () => Promise<unknown>, ms: number): Effect.Effect<void> =>
  Effect.promise(() => {
    let timer: ReturnType<typeof setTimeout> | undefined
    const work = Promise.resolve().then(start).then(() => undefined, () => undefined)
    const limit = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms)
    })
    return Promise.race([work, limit]).finally(() => clearTimeout(timer))
  })
