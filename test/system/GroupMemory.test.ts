/** The resident memory of a process group (src/system/GroupMemory.ts, SPEC C-3), on real processes and on `ps` text. */
import { describe, expect, it } from "@effect/vitest"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import { groupResidentBytes, groupResidentBytesFromPs, groupResidentSampler, vmRssBytes } from "../../src/system/GroupMemory.js"

const MIB = 1024 * 1024

describe("a process group's resident memory (SPEC C-3)", () => {
  it("C-3 parses VmRSS in KiB, and ps's rss column by group, leaving out the pids asked", () => {
    expect(vmRssBytes("Name:\tnode\nVmPeak:\t  900 kB\nVmRSS:\t   51200 kB\nRssAnon:\t 10 kB\n")).toBe(50 * MIB)
    expect(vmRssBytes("Name:\tkthreadd\nState:\tS\n")).toBeNull()
    const ps = "  101   100  2048\n  100   100  1024\n  200   200  4096\n  garbage\n"
    expect(groupResidentBytesFromPs(ps, 100)).toBe(3072 * 1024)
    expect(groupResidentBytesFromPs(ps, 100, [100])).toBe(2048 * 1024)
    expect(groupResidentBytesFromPs(ps, 300)).toBeNull()
  })

  it("C-3 sums every live member of a real group, a forked worker too, and leaves out the shim's pid", async () => {
    // A leader of its own group that forks a worker (same group) holding ~64 MiB.
    const leader = ChildProcess.spawn(process.execPath, ["-e", `
      const w = require("node:child_process").spawn(process.execPath, ["-e", "globalThis.b = Buffer.alloc(64 * 1024 * 1024, 1); setInterval(() => {}, 1000)"], { stdio: ["ignore", "inherit", "ignore"] })
      process.stdout.write(String(w.pid) + "\\n"); setInterval(() => {}, 1000)`], { detached: true, stdio: ["ignore", "pipe", "ignore"] })
    try {
      const worker = Number(await new Promise<string>((resolve) => leader.stdout!.once("data", (d) => resolve(String(d)))))
      // Wait until the worker alone has touched its whole buffer (its RSS passes 64 MiB).
      let withoutLeader = 0
      for (let i = 0; i < 200 && !(withoutLeader > 64 * MIB); i++) {
        withoutLeader = (await groupResidentBytes(leader.pid!, [leader.pid!])) ?? 0
        await new Promise((r) => setTimeout(r, 50))
      }
      const all = await groupResidentBytes(leader.pid!)
      expect(all).toBeGreaterThan(64 * MIB)
      // The worker alone holds its buffer; the leader (another Node process, tens of MiB) adds to it.
      expect(withoutLeader).toBeGreaterThan(64 * MIB)
      expect(all! - withoutLeader).toBeGreaterThan(10 * MIB)
      expect(await groupResidentBytes(leader.pid!, [leader.pid!, worker])).toBeNull()
    } finally {
      try {
        process.kill(-leader.pid!, "SIGKILL")
      } catch { /* gone */ }
    }
  })

  it("C-3 the sampler looks for the members in all of /proc every 4th sample only, reads the members it knows in between, counts a worker forked since from the next scan, and its scan finds one at once", async () => {
    // A leader of its own group that says "up" once started, and forks a worker holding ~64 MiB when told to (a line on its stdin).
    const leader = ChildProcess.spawn(process.execPath, ["-e", `
      const cp = require("node:child_process")
      process.stdin.on("data", () => {
        const w = cp.spawn(process.execPath, ["-e", "globalThis.b = Buffer.alloc(64 * 1024 * 1024, 1); process.stdout.write('filled\\\\n'); setInterval(() => {}, 1000)"], { stdio: ["ignore", "pipe", "ignore"] })
        w.stdout.once("data", () => process.stdout.write(String(w.pid) + "\\n"))
      })
      process.stdout.write("up\\n")
      setInterval(() => {}, 1000)`], { detached: true, stdio: ["pipe", "pipe", "ignore"] })
    // Its next line; fails, saying so, if none comes within 30 s (the leader or its worker died).
    const line = () =>
      new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("the stand-in group said nothing for 30 s")), 30_000)
        leader.stdout!.once("data", (d) => {
          clearTimeout(timer)
          resolve(String(d).trim())
        })
      })
    // The leader's own VmRSS now (its part of every sample), read beside each sample.
    const leaderRss = () => vmRssBytes(Fs.readFileSync(`/proc/${leader.pid}/status`, "utf8"))!
    const gone = (pid: number) => {
      try {
        return /^State:\s+Z/m.test(Fs.readFileSync(`/proc/${pid}/status`, "utf8"))
      } catch {
        return true
      }
    }
    try {
      expect(await line()).toBe("up")
      let scans = 0
      const scanPids = async (except: ReadonlyArray<number>) => {
        scans++
        return Fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n)).map(Number).filter((p) => !except.includes(p))
      }
      const s = groupResidentSampler(leader.pid!, [], 4, scanPids)
      const near = (bytes: number | null, expected: number) => expect(Math.abs(bytes! - expected)).toBeLessThan(16 * MIB)
      near(await s.sample(), leaderRss())
      expect(scans).toBe(1)
      near(await s.sample(), leaderRss())
      expect(scans).toBe(1)
      // A worker forked now, its buffer filled (it says so).
      const fork = async () => {
        const next = line()
        leader.stdin!.write("fork\n")
        return Number(await next)
      }
      const worker = await fork()
      // Samples 3 and 4: the leader alone still (no scan since); sample 5 scans and counts the worker.
      near(await s.sample(), leaderRss())
      near(await s.sample(), leaderRss())
      expect(scans).toBe(1)
      expect(await s.sample()).toBeGreaterThan(leaderRss() + 64 * MIB)
      expect(scans).toBe(2)
      // The worker gone: counted no more, without a scan (the leader is still known).
      process.kill(worker, "SIGKILL")
      for (let i = 0; i < 250 && !gone(worker); i++) await new Promise((r) => setTimeout(r, 20))
      near(await s.sample(), leaderRss())
      expect(scans).toBe(2)
      // Another forked now: the next sample (the 7th) does not see it, a scan (a trial's last sample) does at once.
      await fork()
      near(await s.sample(), leaderRss())
      expect(scans).toBe(2)
      expect(await s.scan()).toBeGreaterThan(leaderRss() + 64 * MIB)
      expect(scans).toBe(3)
      // The leader left out (the shim's place): its worker alone.
      const without = groupResidentSampler(leader.pid!, [leader.pid!], 4, scanPids)
      const alone = await without.sample()
      expect(alone).toBeGreaterThan(64 * MIB)
      near((await s.scan())! - alone!, leaderRss())
    } finally {
      try {
        process.kill(-leader.pid!, "SIGKILL")
      } catch { /* gone */ }
    }
  })
})
