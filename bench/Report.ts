/**
 * The bench's one table: a row per figure (and indented rows for its parts),
 * with the figure's target, whether it met it, the baseline's value and how far
 * it moved. The bench reports; it never fails on a missed target or on noise.
 */

/** A target a figure is held to. */
export interface Target {
  readonly op: "<=" | ">=" | "=" | "<"
  readonly value: number
}

/** One row of the table. `key` is stable across runs (baseline comparison). */
export interface Figure {
  readonly key: string
  /** Row number in the issue's list (1–7; 7 is reproducibility, SPEC N-4); sub-rows carry their parent's number. */
  readonly n: number
  readonly label: string
  readonly value: number | null
  /** Unit of `value`: "×" for ratios, "s", "MB", "loads". */
  readonly unit: string
  readonly target: Target | null
  /** Where the number comes from, and its parts. */
  readonly detail: string
  /** A part of the figure above it (printed indented). */
  readonly sub?: boolean
}

/** Relative change beyond which a figure is said to have moved (run-to-run noise on a shared 2-core machine is below it). */
export const MOVED = 0.1

export const meets = (v: number | null, t: Target | null): boolean | null => {
  if (v === null || t === null) return null
  switch (t.op) {
    case "<=":
      return v <= t.value + 1e-9
    case ">=":
      return v >= t.value - 1e-9
    case "<":
      return v < t.value
    case "=":
      return Math.abs(v - t.value) < 1e-9
  }
}

const fmtValue = (v: number | null, unit: string): string => {
  if (v === null || !Number.isFinite(v)) return "n/a"
  switch (unit) {
    case "×":
      return v.toFixed(2)
    case "s":
      return `${v.toFixed(1)} s`
    case "MB":
      return `${v.toFixed(0)} MB`
    case "tok/s":
      return `${v.toFixed(1)} tok/s`
    default:
      return `${+v.toFixed(2)}${unit === "" ? "" : ` ${unit}`}`
  }
}

const fmtTarget = (t: Target | null) => (t === null ? "" : `${t.op === "<=" ? "≤" : t.op === ">=" ? "≥" : t.op} ${t.value.toFixed(2)}`)

/** "+12% moved" / "-3%" / "" against the baseline's value of the same key. */
export const vsBaseline = (v: number | null, b: number | null | undefined): string => {
  if (v === null || b === null || b === undefined || !Number.isFinite(v) || !Number.isFinite(b)) return ""
  if (b === 0) return v === 0 ? "±0%" : "new"
  const d = (v - b) / Math.abs(b)
  const pct = `${d >= 0 ? "+" : ""}${(d * 100).toFixed(0)}%`
  return Math.abs(d) > MOVED ? `${pct} moved` : pct
}

/** Renders the table; `baseline` maps keys to the baseline's values. */
export const renderTable = (figures: ReadonlyArray<Figure>, baseline: ReadonlyMap<string, number | null>): string => {
  const header = ["#", "figure", "value", "target", "met", "baseline", "vs baseline", "from / parts"]
  const rows = figures.map((f) => {
    const met = meets(f.value, f.target)
    const b = baseline.get(f.key)
    return [
      f.sub ? "" : `${f.n}`,
      `${f.sub ? "  " : ""}${f.label}`,
      fmtValue(f.value, f.unit),
      fmtTarget(f.target),
      met === null ? "" : met ? "yes" : "NO",
      b === undefined ? "" : fmtValue(b, f.unit),
      vsBaseline(f.value, b),
      f.detail
    ]
  })
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : i === 2 || i === 5 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ").trimEnd()
  return [line(header), widths.map((w) => "-".repeat(Math.min(w, 60))).join("  "), ...rows.map(line)].join("\n")
}
