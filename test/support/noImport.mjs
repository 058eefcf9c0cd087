// Preloaded (`node --import`) by test/library/Package.test.ts: every ES module import but the
// entry point fails, so a launcher that answers without loading the CLI (the help cache) is told apart
// from one that loads it.
import { register } from "node:module"

// The entry point itself (no parent) and Node's own modules still load.
const hook = `export async function resolve(specifier, context, next) {
  if (context.parentURL === undefined || specifier.startsWith("node:")) return next(specifier, context)
  throw new Error("no module may be loaded here: " + specifier)
}`
register(`data:text/javascript,${encodeURIComponent(hook)}`)
