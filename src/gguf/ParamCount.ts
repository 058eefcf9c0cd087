/** A parameter count read from text: "15M", "1.1B", or a size token in a model id (SPEC A-4). */
import { Option } from "effect"

/**
 * Parses a parameter-count token such as `15M`, `130m`, `1.1B`, `7b`
 * (SPEC A-4's `\d+(\.\d+)?[BbMm]`) into an absolute count. None when it does not match.
 */
export const parseParamCount = (s: string): Option.Option<number> => {
  const m = /^(\d+(?:\.\d+)?)([BbMm])$/.exec(s.trim())
  if (m === null) return Option.none()
  const n = Number(m[1]) * (m[2]!.toLowerCase() === "b" ? 1e9 : 1e6)
  return n > 0 ? Option.some(Math.round(n)) : Option.none()
}

/**
 * The parameter count named in a model id or file name, e.g.
 * `Llama-3.2-1B-4bit` → 1e9, `synth-130m-q4_0.gguf` → 1.3e8 (SPEC A-4 fallback
 * when no metadata). The first `\d+(\.\d+)?[BbMm]` token not followed by a letter or digit.
 */
export const paramCountFromId = (id: string): Option.Option<number> => {
  const m = /(?:^|[^A-Za-z0-9.])(\d+(?:\.\d+)?[BbMm])(?![A-Za-z0-9])/.exec(id)
  return m === null ? Option.none() : parseParamCount(m[1]!)
}
