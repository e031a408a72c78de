import { CoilError } from "@coil/errors";
import { dtypeSize, elementCount, float32ToBFloat16Bits, float32ToFloat16Bits, Tensor, type DType } from "@coil/native";

import { BytesTensor, decodeBytesElements } from "./bytes-tensor.js";
import { protocolDatatype, type ServedDType, type ServedTensor } from "./datatypes.js";

/**
 * The Open Inference Protocol's input tensors, as both adapters receive them (HTTP:
 * JSON "data" and Triton's binary extension; gRPC: typed contents and raw contents):
 * shapes and their element counts, protocol values to elements within each dtype's
 * range, and raw bytes to tensors. Refusals are INVALID_ARGUMENT CoilErrors that
 * begin with `what` (`input "x"`), so a client learns which input is wrong.
 */

/** The integer dtypes whose every value a JS number holds exactly. */
const NUMBER_RANGES: Partial<Record<DType, readonly [number, number]>> = {
  uint8: [0, 255],
  uint16: [0, 65535],
  uint32: [0, 4294967295],
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-2147483648, 2147483647],
};

const BIGINT_RANGES = {
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
} as const;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function invalid(message: string): CoilError {
  return new CoilError("INVALID_ARGUMENT", message);
}

/** A value as a client would recognize it in an error message. */
function show(value: unknown): string {
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  if (Array.isArray(value)) return `[${value.map(show).join(", ")}]`;
  try {
    return JSON.stringify(value) ?? typeof value;
  } catch {
    return typeof value;
  }
}

/** `dims` as a shape: an array of non-negative safe integers. */
export function checkShape(dims: unknown, what: string): number[] {
  if (!Array.isArray(dims) || !dims.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw invalid(`${what}: shape must be an array of non-negative integers, got ${show(dims)}`);
  }
  return dims as number[];
}

/** The elements of `shape`, or Infinity once the product passes `limit`: a client's
 * dimensions can multiply past 2^53, where a count stops being exact. */
export function countElements(shape: readonly number[], limit: number): number {
  if (shape.includes(0)) return 0;
  let count = 1;
  for (const d of shape) {
    count *= d;
    if (count > limit) return Infinity;
  }
  return count;
}

/** A protobufjs Long: how a gRPC int64 arrives when the loader is not told to convert it. */
function isLong(value: unknown): value is { low: number; high: number; toString(): string } {
  const v = value as { low?: unknown; high?: unknown } | null;
  return typeof v === "object" && v !== null && typeof v.low === "number" && typeof v.high === "number";
}

/** A 64-bit integer from the wire: an integral number, a bigint, a string of decimal
 * digits (gRPC's int64s, JSON's INT64s past 2^53), or a Long; undefined otherwise. */
export function wireInteger(value: unknown): bigint | undefined {
  if (typeof value === "bigint") return value;
  if (typeof value === "number") return Number.isInteger(value) ? BigInt(value) : undefined;
  const text = typeof value === "string" ? value : isLong(value) ? value.toString() : undefined;
  return text !== undefined && /^-?\d{1,20}$/.test(text) ? BigInt(text) : undefined;
}

/**
 * Element `index` of a numeric tensor from a protocol value: a boolean for BOOL, a
 * number for floats (stored as their dtype rounds), an integral number within the
 * dtype's range for integers, and for INT64/UINT64 also any wireInteger.
 */
export function elementOf(dtype: DType, value: unknown, what: string, index: number): number | bigint {
  const mustBe = (expected: string) => invalid(`${what}: element ${index} must be ${expected}, got ${show(value)}`);
  const outOfRange = (integer: number | bigint, lo: number | bigint, hi: number | bigint) =>
    invalid(`${what}: element ${index} is out of range for ${protocolDatatype(dtype)}: ${integer} is not an integer in ${lo}..${hi}`);
  switch (dtype) {
    case "bool":
      if (typeof value !== "boolean") throw mustBe("a boolean");
      return value ? 1 : 0;
    case "float16":
      if (typeof value !== "number") throw mustBe("a number");
      return float32ToFloat16Bits(value);
    case "bfloat16":
      if (typeof value !== "number") throw mustBe("a number");
      return float32ToBFloat16Bits(value);
    case "float32":
    case "float64":
      if (typeof value !== "number") throw mustBe("a number");
      return value;
    case "int64":
    case "uint64": {
      const big = wireInteger(value);
      if (big === undefined) throw mustBe("an integer (a number, or a string of digits)");
      const [lo, hi] = BIGINT_RANGES[dtype];
      if (big < lo || big > hi) throw outOfRange(big, lo, hi);
      return big;
    }
    default: {
      const [lo, hi] = NUMBER_RANGES[dtype]!;
      if (typeof value !== "number" || !Number.isInteger(value)) throw mustBe("an integer");
      if (value < lo || value > hi) throw outOfRange(value, lo, hi);
      return value;
    }
  }
}

/** Element `index` of a BYTES tensor: a string (sent as UTF-8) or bytes. */
export function bytesElementOf(value: unknown, what: string, index: number): Uint8Array {
  if (typeof value === "string") return Buffer.from(value, "utf8");
  if (value instanceof Uint8Array) return value;
  throw invalid(`${what}: element ${index} must be a string, got ${show(value)}`);
}

/** A tensor from protocol values in row-major order, each converted by elementOf or
 * bytesElementOf. The adapters check the count first, in their protocol's words. */
export function tensorFromValues(dtype: DType, shape: readonly number[], values: ArrayLike<unknown>, what: string): Tensor;
export function tensorFromValues(dtype: ServedDType, shape: readonly number[], values: ArrayLike<unknown>, what: string): ServedTensor;
export function tensorFromValues(dtype: ServedDType, shape: readonly number[], values: ArrayLike<unknown>, what: string): ServedTensor {
  const count = elementCount(shape);
  if (values.length !== count) {
    throw new CoilError("SHAPE_MISMATCH", `${what}: shape [${shape.join(", ")}] has ${count} elements but ${values.length} values were given`);
  }
  if (dtype === "bytes") return new BytesTensor(shape, Array.from(values, (v, i) => bytesElementOf(v, what, i)));
  const tensor = Tensor.zeros(dtype, shape);
  if (values instanceof Float64Array && (dtype === "float32" || dtype === "float64")) {
    (tensor.data as Float32Array | Float64Array).set(values); // numbers already; the store rounds as element-wise stores do
    return tensor;
  }
  const out = tensor.data as unknown as { [i: number]: number | bigint };
  for (let i = 0; i < values.length; i++) out[i] = elementOf(dtype, values[i], what, i);
  return tensor;
}

/**
 * A tensor from the protocol's raw bytes (Triton's binary data, gRPC raw contents):
 * BYTES as 4-byte little-endian lengths each followed by its bytes; other dtypes as
 * little-endian elements, viewed in place when aligned and copied once when not
 * (Tensor.fromBytes). BOOL bytes must be 0 or 1.
 */
export function tensorFromRawBytes(dtype: DType, shape: readonly number[], bytes: Uint8Array, what: string): Tensor;
export function tensorFromRawBytes(dtype: ServedDType, shape: readonly number[], bytes: Uint8Array, what: string): ServedTensor;
export function tensorFromRawBytes(dtype: ServedDType, shape: readonly number[], bytes: Uint8Array, what: string): ServedTensor {
  if (dtype === "bytes") return new BytesTensor(shape, decodeBytesElements(bytes, elementCount(shape), what));
  const size = dtypeSize(dtype);
  const needed = elementCount(shape) * size;
  if (bytes.byteLength !== needed) {
    throw invalid(`${what}: the raw data has ${bytes.byteLength} bytes but shape [${shape.join(", ")}] of ${protocolDatatype(dtype)} needs ${needed}`);
  }
  // The protocol's bytes are little-endian; a TypedArray's are the host's.
  if (!LITTLE_ENDIAN && size > 1) throw new CoilError("INTERNAL", "raw tensor data needs a little-endian host");
  const tensor = Tensor.fromBytes(dtype, shape, bytes);
  if (dtype === "bool") {
    const b = tensor.data as Uint8Array;
    for (let i = 0; i < b.length; i++) {
      if (b[i]! > 1) throw invalid(`${what}: BOOL bytes must be 0 or 1, element ${i} is ${b[i]}`);
    }
  }
  return tensor;
}
