/**
 * The GGUF v3 container format, write side: header, metadata key/values and
 * tensor infos, with tensor offsets laid out at the file's alignment.
 *
 * Layout (ggml/docs/gguf.md; all integers little-endian):
 * `"GGUF"` · u32 version · u64 tensor_count · u64 kv_count · kv* · tensor_info* ·
 * padding to `general.alignment` · tensor data (each tensor starts at an aligned
 * offset relative to the start of the data section).
 * A string is u64 byte length + UTF-8 bytes; an array is u32 element type + u64 count + elements.
 */

/** GGUF metadata value type ids (gguf.md `gguf_metadata_value_type`). */
const ValueType = { UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10 } as const

/** A metadata value with its GGUF type. */
export type GgufValue =
  | { readonly type: "u32"; readonly value: number }
  | { readonly type: "u64"; readonly value: number }
  | { readonly type: "i32"; readonly value: number }
  | { readonly type: "f32"; readonly value: number }
  | { readonly type: "bool"; readonly value: boolean }
  | { readonly type: "string"; readonly value: string }
  | { readonly type: "string[]"; readonly value: ReadonlyArray<string> }
  | { readonly type: "f32[]"; readonly value: Float32Array }
  | { readonly type: "i32[]"; readonly value: Int32Array }

/** One tensor to be written: dims innermost first (ggml `ne`), its ggml type id and data bytes. */
export interface GgufTensorSpec {
  readonly name: string
  readonly dims: ReadonlyArray<number>
  readonly type: number
  readonly bytes: number
}

/** The encoded header and where each tensor's data goes. */
export interface GgufLayout {
  /** Header, metadata, tensor infos and padding: the file's first `header.length` bytes. */
  readonly header: Uint8Array
  /** Offset of each tensor's data relative to the data section (aligned). */
  readonly offsets: ReadonlyArray<number>
  /** Length of the data section, up to the end of the last tensor (no trailing padding). */
  readonly dataBytes: number
}

/** GGUF format version written. */
export const GGUF_VERSION = 3

/** Rounds `n` up to a multiple of `alignment`. */
export const alignUp = (n: number, alignment: number): number => Math.ceil(n / alignment) * alignment

class ByteBuilder {
  private buf = new Uint8Array(1 << 16)
  private view = new DataView(this.buf.buffer)
  length = 0
  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.length + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.length))
    this.buf = next
    this.view = new DataView(next.buffer)
  }
  u32(v: number): void { this.ensure(4); this.view.setUint32(this.length, v, true); this.length += 4 }
  i32(v: number): void { this.ensure(4); this.view.setInt32(this.length, v, true); this.length += 4 }
  f32(v: number): void { this.ensure(4); this.view.setFloat32(this.length, v, true); this.length += 4 }
  u64(v: number): void { this.ensure(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8 }
  u8(v: number): void { this.ensure(1); this.buf[this.length++] = v }
  bytes(b: Uint8Array): void { this.ensure(b.length); this.buf.set(b, this.length); this.length += b.length }
  string(s: string): void { const b = encoder.encode(s); this.u64(b.length); this.bytes(b) }
  result(): Uint8Array { return this.buf.slice(0, this.length) }
}
const encoder = new TextEncoder()

const writeValue = (w: ByteBuilder, v: GgufValue): void => {
  switch (v.type) {
    case "u32": w.u32(ValueType.UINT32); return w.u32(v.value)
    case "u64": w.u32(ValueType.UINT64); return w.u64(v.value)
    case "i32": w.u32(ValueType.INT32); return w.i32(v.value)
    case "f32": w.u32(ValueType.FLOAT32); return w.f32(v.value)
    case "bool": w.u32(ValueType.BOOL); return w.u8(v.value ? 1 : 0)
    case "string": w.u32(ValueType.STRING); return w.string(v.value)
    case "string[]":
      w.u32(ValueType.ARRAY); w.u32(ValueType.STRING); w.u64(v.value.length)
      for (const s of v.value) w.string(s)
      return
    case "f32[]":
      w.u32(ValueType.ARRAY); w.u32(ValueType.FLOAT32); w.u64(v.value.length)
      for (const x of v.value) w.f32(x)
      return
    case "i32[]":
      w.u32(ValueType.ARRAY); w.u32(ValueType.INT32); w.u64(v.value.length)
      for (const x of v.value) w.i32(x)
      return
  }
}

/**
 * Encodes a GGUF v3 header for `metadata` (in the given order) and `tensors`, laying
 * tensor data out at offsets aligned to `alignment` bytes (which must also be stored
 * as `general.alignment` in `metadata` when it is not the default 32).
 */
export const encodeGgufHeader = (metadata: ReadonlyArray<readonly [string, GgufValue]>,
  tensors: ReadonlyArray<GgufTensorSpec>, alignment: number): GgufLayout => {
  const w = new ByteBuilder()
  w.bytes(encoder.encode("GGUF"))
  w.u32(GGUF_VERSION)
  w.u64(tensors.length)
  w.u64(metadata.length)
  for (const [key, value] of metadata) {
    w.string(key)
    writeValue(w, value)
  }
  const offsets: Array<number> = []
  let offset = 0
  for (const t of tensors) {
    offset = alignUp(offset, alignment)
    offsets.push(offset)
    w.string(t.name)
    w.u32(t.dims.length)
    for (const d of t.dims) w.u64(d)
    w.u32(t.type)
    w.u64(offset)
    offset += t.bytes
  }
  while (w.length % alignment !== 0) w.u8(0)
  return { header: w.result(), offsets, dataBytes: offset }
}
