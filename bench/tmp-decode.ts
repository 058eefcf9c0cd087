import { spawn } from "node:child_process"
import { streamChat } from "./ChatStream.js"
const [prov, model, threads, n] = process.argv.slice(2)
const port = 18000 + Math.floor(Math.random() * 1000)
const args = prov === "embedded"
  ? ["bin/autotune.js", "serve", "--model", model!, "--port", String(port), "--threads", threads!, "--max-context", "1600"]
  : ["-m", model!, "--port", String(port), "-t", threads!, "-c", "1600", "-np", "1"]
const bin = prov === "embedded" ? process.execPath : "/work/shared/llama.cpp/bin/llama-server"
const child = spawn(bin, args, { stdio: ["ignore", "ignore", "ignore"], detached: true })
const base = `http://127.0.0.1:${port}`
for (;;) { try { const r = await fetch(`${base}/health`); if (r.ok) break } catch {} ; await new Promise(r => setTimeout(r, 200)) }
const prompt = Array.from({ length: Number(process.env.WORDS ?? 480) }, (_, i) => ["alpha", "beta", "gamma", "delta"][i % 4]).join(" ")
await streamChat(base, "hi", 16)
const out: string[] = []
for (let i = 0; i < Number(n ?? 8); i++) {
  const m = await streamChat(base, prompt + " " + i, Number(process.env.MAXT ?? 128))
  out.push(`${m.clientDecodeTps?.toFixed(0)}/${m.serverDecodeTps?.toFixed(0)}`)
}
console.log(prov, threads, out.join(" "))
process.kill(-child.pid!, "SIGKILL")
