/** Quotes an argument for a POSIX shell when it needs it (single quotes; `'` as `'\''`). */
export const shellQuote = (s: string): string => (/^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`)
