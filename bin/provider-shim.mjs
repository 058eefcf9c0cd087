#!/usr/bin/env node
// Runs a candidate provider that cannot watch its tuner itself (llama-server,
// macprovider-cli) as this process's child, in the same process group, and
// kills that whole group (the provider and any worker it forked) when the tuner
// named by $AUTOTUNE_PARENT_PID is gone without having stopped it (SIGKILL,
// crash): no candidate outlives its run (SPEC §2, E-3, L-1). It kills the group
// only when it leads it (the tuner starts it so and says AUTOTUNE_GROUP_LEADER=1),
// else the provider alone.
// Signals to the group reach the provider directly, so they are ignored here;
// this process ends as the provider ends, with its exit code or signal, so
// the tuner reports the provider's own exit (SPEC E-4). Plain JS: no tsx start-up.
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"

const [command, ...args] = process.argv.slice(2)
const parent = Number(process.env.AUTOTUNE_PARENT_PID)
const startPpid = process.ppid
/** Whether this process leads its process group (/proc/self/stat pgrp; without /proc, the tuner's word). */
const leadsGroup = () => {
  if (process.env.AUTOTUNE_GROUP_LEADER !== "1") return false
  try {
    const stat = fs.readFileSync("/proc/self/stat", "utf8")
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) === process.pid
  } catch {
    return true
  }
}
// The provider does not lead the group (this shim does): it must never take the group along itself.
// NODE_EXTRA_CA_CERTS, which the tuner keeps from this Node (its start reads the whole CA bundle for TLS it
// never opens: src/services/CandidateProvider.ts ownNodeEnv) and passes as AUTOTUNE_PROVIDER_NODE_EXTRA_CA_CERTS
// (SHIM_CA_CERTS_VAR there), goes back to the provider, whose TLS it may be.
const { AUTOTUNE_GROUP_LEADER: _leader, AUTOTUNE_PROVIDER_NODE_EXTRA_CA_CERTS: caCerts, ...childEnv } = process.env
if (caCerts !== undefined) childEnv.NODE_EXTRA_CA_CERTS = caCerts
const child = spawn(command, args, { stdio: "inherit", env: childEnv })
child.on("error", (e) => {
  process.stderr.write(`could not start provider ${command}: ${e.message}\n`)
  process.exit(127)
})
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => {})
const watch = setInterval(() => {
  // Gone when reparented (no zombie or reused pid can fool this), or when the pid no longer exists.
  let gone = process.ppid !== startPpid
  try {
    process.kill(parent, 0)
  } catch {
    gone = true
  }
  if (!gone) return
  // The group: this shim, the provider and its workers (SIGKILL ends this process too).
  if (leadsGroup()) process.kill(0, "SIGKILL")
  child.kill("SIGKILL")
}, 1000)
child.on("exit", (code, signal) => {
  clearInterval(watch)
  if (signal !== null) {
    process.removeAllListeners(signal)
    process.kill(process.pid, signal)
    // A signal Node does not die of (SIGPIPE, SIGUSR1): the shell convention, never 0.
    process.exit(128 + (os.constants.signals[signal] ?? 0))
  } else process.exit(code ?? 1)
})
