// Preloaded (`node --import`) by test/library/Package.test.ts: of this repository's compiled code only
// the launcher's CLI bundle (dist/cli-bundle/) may load, not a module of dist/ itself, nor node-llama-cpp
// from node_modules (the bundle holds it), so a command that answers under it is shown to run from the bundle
// (issue 14 part 4). A refused module is also written to stderr, in case the import that failed was caught.
import { register } from "node:module"

const dist = new URL("../../dist/", import.meta.url).href
const hook = `const dist = ${JSON.stringify(dist)}
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context)
  const refused = (r.url.startsWith(dist) && !r.url.startsWith(dist + "cli-bundle/")) || r.url.includes("/node_modules/node-llama-cpp/")
  if (refused) {
    process.stderr.write("not from the CLI bundle: " + r.url + "\\n")
    throw new Error("not from the CLI bundle: " + r.url)
  }
  return r
}`
register(`data:text/javascript,${encodeURIComponent(hook)}`)
