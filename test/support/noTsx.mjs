// Preloaded (`node --import`) by test/library/Package.test.ts: loading tsx, by import or by
// require, fails, so a launcher that still needs a TypeScript loader exits non-zero.
import Module, { register } from "node:module"

const hook = `export async function resolve(specifier, context, next) {
  if (specifier === "tsx" || specifier.startsWith("tsx/")) throw new Error("tsx must not be loaded: " + specifier)
  return next(specifier, context)
}`
register(`data:text/javascript,${encodeURIComponent(hook)}`)
const resolve = Module._resolveFilename
Module._resolveFilename = function(request, ...rest) {
  if (request === "tsx" || request.startsWith("tsx/")) throw new Error(`tsx must not be loaded: ${request}`)
  return resolve.call(this, request, ...rest)
}
