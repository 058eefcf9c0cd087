#!/usr/bin/env node
// Runs a candidate provider that cannot watch its tuner itself (llama-server,
// macprovider-cli) as this process's child, in the same process group, and
// kills it when the tuner named by $AUTOTUNE_PARENT_PID is gone without having
// stopped it (SIGKILL, crash): no candidate outlives its run (SPEC §2, E-3).
// Signals to the group reach the provider directly, so they are ignored here;
// this process ends as the provider ends, with its exit code or signal, so
// the tuner reports the provider's own exit (SPEC E-4). Plain JS: no tsx start-up.
import { spawn } from "node:child_process"

const [command, ...args] = process.argv.slice(2)
const parent = Number(process.env.AUTOTUNE_PARENT_PID)
const child = spawn(command, args, { stdio: "inherit" })
child.on("error", (e) => {
  process.stderr.write(`could not start provider ${command}: ${e.message}\n`)
  process.exit(127)
})
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => {})
const watch = setInterval(() => {
  try {
    process.kill(parent, 0)
  } catch {
    child.kill("SIGKILL")
  }
}, 1000)
child.on("exit", (code, signal) => {
  clearInterval(watch)
  if (signal !== null) {
    process.removeAllListeners(signal)
    process.kill(process.pid, signal)
  } else process.exit(code ?? 1)
})
