// Preloaded (`node --import`) by test/serve/Serve.test.ts: of the project's compiled modules only
// the serve entry's may load (its entry, the serve command and its options, serve/, domain/, system/),
// and not @effect/sql, so a process that serves under it is shown to load none of the tuner's
// modules (issue 14: `autotune serve` starts through src/serveBin.ts, not the whole CLI). A refused
// module is also written to stderr, in case the import that failed was caught.
import { register } from "node:module"

const hook = `const serveOnly = /\\/dist\\/(serveBin\\.js|cli\\/(Root|RunProcess|ServeCommand|CliOptions)\\.js|(serve|domain|system)\\/[^/]+\\.js)$/
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context)
  const ours = r.url.includes("/dist/") && !r.url.includes("/node_modules/")
  if ((ours && !serveOnly.test(r.url)) || r.url.includes("/node_modules/@effect/sql")) {
    process.stderr.write("a tuner module was loaded: " + r.url + "\\n")
    throw new Error("a tuner module was loaded: " + r.url)
  }
  return r
}`
register(`data:text/javascript,${encodeURIComponent(hook)}`)
