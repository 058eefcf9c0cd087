/**
 * Stop-string detection over streamed text. Text that could still become a stop
 * string is held back, so a stop string is never emitted, even when it spans
 * several tokens (the behaviour of llama-server and the OpenAI API).
 */

/** Result of pushing one token's text: what may be sent now, and whether a stop string was hit. */
export interface ScanStep {
  readonly emit: string
  readonly stopped: boolean
}

/** A mutable scanner for one completion; `stops` empty means every push is emitted at once. */
export interface StopScanner {
  /** Adds text; returns the part that is safe to send (everything before a stop string when one completes). */
  readonly push: (text: string) => ScanStep
  /** The held-back text at the end of generation (a prefix of a stop string that never completed). */
  readonly flush: () => string
}

/** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
const heldSuffix = (text: string, stops: ReadonlyArray<string>): number => {
  let best = 0
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > best; n--) {
      if (text.endsWith(s.slice(0, n))) {
        best = n
        break
      }
    }
  }
  return best
}

/** Makes a scanner for the given stop strings (empty strings must already be removed). */
export const makeStopScanner = (stops: ReadonlyArray<string>): StopScanner => {
  let held = ""
  return {
    push: (text) => {
      if (stops.length === 0) return { emit: text, stopped: false }
      const buf = held + text
      let at = -1
      for (const s of stops) {
        const i = buf.indexOf(s)
        if (i >= 0 && (at < 0 || i < at)) at = i
      }
      if (at >= 0) {
        held = ""
        return { emit: buf.slice(0, at), stopped: true }
      }
      const keep = heldSuffix(buf, stops)
      held = buf.slice(buf.length - keep)
      return { emit: buf.slice(0, buf.length - keep), stopped: false }
    },
    flush: () => {
      const rest = held
      held = ""
      return rest
    }
  }
}
