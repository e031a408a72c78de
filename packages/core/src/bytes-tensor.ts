import { CoilError } from "@coil/errors";
import { elementCount } from "@coil/native";

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A tensor of byte strings: the Open Inference Protocol's BYTES datatype (text,
 * encoded images, ...). Elements are row-major, like a Tensor's. It reaches a model
 * as nested Python lists of `bytes` in its shape (a `bytes` for shape []), and a model
 * returns one as nested lists (or tuples) of `bytes` or `str` (str is sent as UTF-8).
 */
export class BytesTensor {
  readonly dtype = "bytes" as const;
  readonly shape: readonly number[];
  readonly data: readonly Uint8Array[];

  constructor(shape: readonly number[], data: readonly Uint8Array[]) {
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new CoilError("INVALID_ARGUMENT", `tensor shape must be non-negative integers, got ${JSON.stringify(shape)}`);
    }
    const count = elementCount(shape);
    if (data.length !== count) {
      throw new CoilError("SHAPE_MISMATCH", `shape [${shape.join(", ")}] has ${count} elements but the data has ${data.length}`);
    }
    this.shape = Object.freeze([...shape]);
    this.data = Object.freeze([...data]);
  }

  /** Elements from strings (encoded as UTF-8) or bytes. */
  static from(shape: readonly number[], values: readonly (string | Uint8Array)[]): BytesTensor {
    return new BytesTensor(
      shape,
      values.map((v) => (typeof v === "string" ? utf8.encode(v) : v)),
    );
  }

  /**
   * A tensor from a value a model returned: nested lists of bytes (Buffers) or
   * strings, all rows the same length. undefined when `value` is not such a value.
   */
  static fromNested(value: unknown): BytesTensor | undefined {
    const shape: number[] = [];
    let probe = value;
    while (Array.isArray(probe)) {
      shape.push(probe.length);
      if (probe.length === 0) break;
      probe = probe[0];
    }
    const data: Uint8Array[] = [];
    const walk = (v: unknown, depth: number): boolean => {
      if (depth === shape.length) {
        if (typeof v === "string") data.push(utf8.encode(v));
        else if (v instanceof Uint8Array) data.push(v);
        else return false;
        return true;
      }
      return Array.isArray(v) && v.length === shape[depth] && v.every((item) => walk(item, depth + 1));
    };
    if (!walk(value, 0)) return undefined;
    return new BytesTensor(shape, data);
  }

  get size(): number {
    return this.data.length;
  }

  /** Total bytes of the elements. */
  get byteLength(): number {
    return this.data.reduce((n, d) => n + d.byteLength, 0);
  }

  /** The elements as strings; INVALID_ARGUMENT names the first that is not UTF-8. */
  strings(): string[] {
    return this.data.map((d, i) => {
      try {
        return strictUtf8.decode(d);
      } catch {
        throw new CoilError("INVALID_ARGUMENT", `element ${i} of a BYTES tensor is not UTF-8 text`);
      }
    });
  }

  /** The value handed to Python: nested arrays of Buffers in the tensor's shape. */
  toNested(): unknown {
    const buffers = this.data.map((d) => (Buffer.isBuffer(d) ? d : Buffer.from(d.buffer, d.byteOffset, d.byteLength)));
    if (this.shape.length === 0) return buffers[0];
    let index = 0;
    const build = (depth: number): unknown[] =>
      Array.from({ length: this.shape[depth]! }, () => (depth === this.shape.length - 1 ? buffers[index++] : build(depth + 1)));
    return build(0);
  }
}

/**
 * The Open Inference Protocol's binary form of BYTES elements (Triton's binary
 * tensor data extension, gRPC raw contents): each a 4-byte little-endian length,
 * then its bytes.
 */
export function encodeBytesElements(tensor: BytesTensor): Buffer {
  const out = Buffer.allocUnsafe(tensor.data.length * 4 + tensor.byteLength);
  let offset = 0;
  for (const d of tensor.data) {
    out.writeUInt32LE(d.byteLength, offset);
    out.set(d, offset + 4);
    offset += 4 + d.byteLength;
  }
  return out;
}

/** Parses `count` length-prefixed elements that must fill `bytes` exactly; the
 * elements are views of `bytes`. INVALID_ARGUMENT says where the data goes wrong. */
export function decodeBytesElements(bytes: Uint8Array, count: number, what: string): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    if (offset + 4 > bytes.byteLength) {
      throw new CoilError("INVALID_ARGUMENT", `${what}: BYTES data ends before element ${i} of ${count} (no room for its 4-byte length)`);
    }
    const length = view.getUint32(offset, true);
    offset += 4;
    if (offset + length > bytes.byteLength) {
      throw new CoilError("INVALID_ARGUMENT", `${what}: BYTES element ${i} claims ${length} bytes but only ${bytes.byteLength - offset} remain`);
    }
    out.push(bytes.subarray(offset, offset + length));
    offset += length;
  }
  if (offset !== bytes.byteLength) {
    throw new CoilError("INVALID_ARGUMENT", `${what}: ${bytes.byteLength - offset} bytes left over after ${count} BYTES elements`);
  }
  return out;
}
