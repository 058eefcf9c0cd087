/** The committed baseline (`bench/baseline.json`) the bench's figures are compared with. */
import * as fs from "node:fs"

/**
 * The figures of the baseline at `file` by key, and a line saying where it was
 * measured; an empty map and "no baseline" when the file is missing.
 */
export const readBaseline = (file: string): { readonly figures: Map<string, number | null>; readonly note: string } => {
  if (!fs.existsSync(file)) return { figures: new Map(), note: "no baseline (bench/baseline.json missing)" }
  const b = JSON.parse(fs.readFileSync(file, "utf8")) as {
    measured_at?: string
    machine?: { cpu_model?: string; cores?: number }
    figures?: ReadonlyArray<{ key: string; value: number | null }>
  }
  return {
    figures: new Map((b.figures ?? []).map((f) => [f.key, f.value])),
    note: `baseline: ${b.measured_at ?? "?"} on ${b.machine?.cpu_model ?? "?"} × ${b.machine?.cores ?? "?"} cores`
  }
}
