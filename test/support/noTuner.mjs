// Preloaded (`node --import`) by test/serve/Serve.test.ts: of this repository's compiled modules
// (dist/) only the serve entry's may load — its entry, the serve command and its options, serve/, and
// the few domain/ and system/ modules serve uses — and @effect/sql may not, so a process that serves
// under it is shown to load none of the tuner's modules (issue 14: `autotune serve` starts through
// src/serveBin.ts, not the whole CLI). A refused module is also written to stderr, in case the
// import that failed was caught.
import { register } from "node:module"
import { serveOnlyModules } from "./serveModules.mjs"

const dist = new URL("../../dist/", import.meta.url).href
const serveOnly = serveOnlyModules.join("|")
const hook = `const dist = ${JSON.stringify(dist)}
const serveOnly = new RegExp(${JSON.stringify(`^(${serveOnly})$`)})
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context)
  const refused = (r.url.startsWith(dist) && !serveOnly.test(r.url.slice(dist.length))) || r.url.includes("/node_modules/@effect/sql")
  if (refused) {
    process.stderr.write("a tuner module was loaded: " + r.url + "\\n")
    throw new Error("a tuner module was loaded: " + r.url)
  }
  return r
}`
register(`data:text/javascript,${encodeURIComponent(hook)}`)
