// Preloaded (`node --import`) by test/serve/Serve.test.ts: the tuner's modules (the whole command
// tree, the pipeline and its steps, the live services, @effect/sql) fail to load, so a process that
// serves under it is shown to load none of them (issue 14: `autotune serve` starts through
// src/serveBin.ts, not the whole CLI).
import { register } from "node:module"

const hook = `export async function resolve(specifier, context, next) {
  const r = await next(specifier, context)
  if (/\\/dist\\/(Cli|Live|Pipeline|TunePlan)\\.js$|\\/dist\\/(steps|services)\\/|\\/node_modules\\/@effect\\/sql/.test(r.url)) {
    throw new Error("a tuner module was loaded: " + r.url)
  }
  return r
}`
register(`data:text/javascript,${encodeURIComponent(hook)}`)
