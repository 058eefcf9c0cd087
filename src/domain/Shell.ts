/** Quotes an argument for a POSIX shell when it needs it (single quotes; `'` as `'\''`). */
export const shellQuote = (s: string): string => (/^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`)

/** Splits a command line as `shellQuote` wrote it into its words (single-quoted ones unquoted). */
export const shellWords = (cmd: string): Array<string> =>
  [...cmd.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/'\\''/g, "'") : m[2]!))
