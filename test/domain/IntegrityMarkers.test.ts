import { describe, expect, it } from "vitest"
import { classifyPreWarmFailure } from "../../src/domain/IntegrityMarkers.js"

/**
 * Real error output, captured from the loaders named (see IntegrityMarkers.ts
 * for where each marker comes from). Each case: reason, provider output tail.
 */
const integrity: ReadonlyArray<readonly [string, string, string]> = [
  [
    "autotune serve, bad magic (node-llama-cpp)",
    "provider exited while starting (exit code 1)",
    `autotune: cannot load model /tmp/badmagic.gguf: Invalid GGUF magic. Expected "GGUF" but got "XXXX".`
  ],
  [
    "autotune serve, truncated tensor data (llama.cpp loader log)",
    "provider exited while starting (exit code 1)",
    "autotune: cannot load model /tmp/trunc.gguf: Failed to load model\nllama.cpp log (last lines):\n" +
    "[error] llama_model_load: error loading model: tensor 'output.weight' data is not within the file bounds, model is corrupted or incomplete\n" +
    "[error] llama_model_load_from_file_impl: failed to load model"
  ],
  [
    "llama-server, bad magic",
    "provider exited while starting (exit code 1)",
    "0.00.003.722 E gguf_init_from_reader: invalid magic characters: 'XXXX', expected 'GGUF'\n" +
    "0.00.003.847 E llama_model_load: error loading model: llama_model_loader: failed to load model from /tmp/badmagic.gguf\n" +
    "0.00.003.916 E srv    load_model: failed to load model, '/tmp/badmagic.gguf'\n" +
    "0.00.004.676 E srv  llama_server: exiting due to model loading error"
  ],
  [
    "llama-server, truncated file",
    "provider exited while starting (exit code 1)",
    "0.00.011.054 E llama_model_load: error loading model: tensor 'output.weight' data is not within the file bounds, model is corrupted or incomplete\n" +
    "0.00.011.508 E srv  llama_server: exiting due to model loading error"
  ],
  [
    "this tool's pre-load header check",
    "pre-load check of /m/x.gguf: tensor 'output.weight' data is not within the file bounds (bytes 100..200, file has 150): the model is corrupted or incomplete",
    ""
  ],
  [
    "autotune serve, a tensor shape changed (llama.cpp gguf.cpp via node-llama-cpp's log)",
    "provider exited while starting (exit code 1)",
    "[error] gguf_init_from_reader: failed to read tensor data\n" +
    "[error] gguf_init_from_reader: tensor 'blk.1.attn_norm.weight' has offset 3706368, expected 3678720\n" +
    "[error] llama_model_load: error loading model: llama_model_loader: failed to load model from /tmp/shape.gguf"
  ],
  ["macprovider, missing tokenizer (SPEC D-2)", "pre-warm: HTTP 500", "Error: Required configuration file missing: tokenizer.json"],
  ["MLX safetensors header (SPEC D-2)", "provider exited while starting (exit code 1)", "ValueError: [load_safetensors] Invalid json header length"],
  ["checksum (SPEC D-2)", "provider exited while starting (exit code 1)", "download: SHA256 checksum mismatch for model.safetensors"],
  ["hash (SPEC D-2)", "provider exited while starting (exit code 1)", "error: sha256 hash mismatch: expected 1a2b…, got 3c4d…"],
  ["signature (SPEC D-2)", "provider exited while starting (exit code 1)", "weights signature mismatch for mlx-community/x"]
]

const transient: ReadonlyArray<readonly [string, string, string]> = [
  ["cache index (SPEC D-2: 'corrupted' here is not the weights)", "provider exited while starting (exit code 1)", "cache index invalid or corrupted; rebuild cache"],
  ["incomplete metadata (SPEC D-2)", "pre-warm: HTTP 502", "incomplete metadata in API response; retry later"],
  ["rate limit", "pre-warm: HTTP 429", "rate limit exceeded, retry in 30 s"],
  ["network", "provider exited while starting (exit code 1)", "error: getaddrinfo ENOTFOUND huggingface.co"],
  ["timeout", "provider not ready after 300000 ms", ""],
  [
    "llama.cpp out of memory: 'failed to load model' alone is not integrity",
    "provider exited while starting (exit code 1)",
    "E ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 93458432000\n" +
    "E llama_model_load: error loading model: unable to allocate CPU buffer\n" +
    "E llama_model_load_from_file_impl: failed to load model"
  ],
  ["node-llama-cpp context failure", "provider exited while starting (exit code 1)", "autotune: Failed to create context"],
  ["a provider killed by the OOM killer", "provider exited while starting (SIGKILL)", ""],
  ["an older llama.cpp reading a newer valid GGUF (tensor count)", "provider exited while starting (exit code 1)",
    "llama_model_load: error loading model: done_getting_tensors: wrong number of tensors; expected 292, got 291"],
  ["an older llama.cpp reading a newer valid GGUF (shape)", "provider exited while starting (exit code 1)",
    "llama_model_load: error loading model: check_tensor_dims: tensor 'output.weight' has wrong shape; expected 4096, 128256, got 4096, 128257"],
  ["llama-server checkpoint size (not a checksum)", "pre-warm: HTTP 500", "checkpoint size mismatch: expected 10, got 12"],
  ["missing model file is the operator's path, not corrupt weights", "provider exited while starting (exit code 1)",
    "E gguf_init_from_file: failed to open GGUF file '/tmp/nonexist.gguf' (No such file or directory)"]
]

describe("pre-warm failure classification (SPEC D-2)", () => {
  for (const [name, reason, tail] of integrity) {
    it(`D-2 integrity: ${name}`, () => {
      expect(classifyPreWarmFailure(reason, tail).kind).toBe("integrity")
    })
  }
  for (const [name, reason, tail] of transient) {
    it(`D-2 transient, never an abort: ${name}`, () => {
      expect(classifyPreWarmFailure(reason, tail)).toEqual({ kind: "transient", marker: null })
    })
  }
  it("D-2 the marker is matched case-insensitively and names its source", () => {
    const c = classifyPreWarmFailure("", "REQUIRED CONFIGURATION FILE MISSING: config.json")
    expect(c.kind).toBe("integrity")
    expect(c.marker?.source).toContain("SPEC D-2")
  })
})
