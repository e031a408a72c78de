import { CoilError } from "@coil/errors";

/** Element types that cross between Node and Python. Each reaches Python as a torch
 * tensor, except uint16/uint32/uint64 where torch has no such dtype (before torch
 * 2.3): those arrive as numpy arrays over the same memory, and return from either. */
export type DType =
  | "float16"
  | "bfloat16"
  | "float32"
  | "float64"
  | "int8"
  | "int16"
  | "int32"
  | "int64"
  | "uint8"
  | "uint16"
  | "uint32"
  | "uint64"
  | "bool";

/** The TypedArray that holds each dtype's bytes. float16 and bfloat16 are raw bits
 * (Node 20 has no Float16Array); bool is one byte per element, 0 or 1. */
export interface TypedArrayOf {
  float16: Uint16Array;
  bfloat16: Uint16Array;
  float32: Float32Array;
  float64: Float64Array;
  int8: Int8Array;
  int16: Int16Array;
  int32: Int32Array;
  int64: BigInt64Array;
  uint8: Uint8Array;
  uint16: Uint16Array;
  uint32: Uint32Array;
  uint64: BigUint64Array;
  bool: Uint8Array;
}

type TypedArrayConstructor =
  | Uint16ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int8ArrayConstructor
  | Int16ArrayConstructor
  | Int32ArrayConstructor
  | BigInt64ArrayConstructor
  | Uint8ArrayConstructor
  | Uint32ArrayConstructor
  | BigUint64ArrayConstructor;

const STORAGE: Record<DType, TypedArrayConstructor> = {
  float16: Uint16Array,
  bfloat16: Uint16Array,
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
};

export const DTYPES = Object.freeze(Object.keys(STORAGE) as DType[]);

export function isDType(value: unknown): value is DType {
  return typeof value === "string" && Object.hasOwn(STORAGE, value);
}

/** Bytes per element. */
export function dtypeSize(dtype: DType): number {
  return STORAGE[dtype].BYTES_PER_ELEMENT;
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkDTypeAndShape(dtype: DType, shape: readonly number[]): void {
  if (!isDType(dtype)) {
    throw new CoilError("UNSUPPORTED_DTYPE", `unknown dtype ${String(dtype)}; one of ${DTYPES.join(", ")}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new CoilError("INVALID_ARGUMENT", `tensor shape must be non-negative integers, got ${JSON.stringify(shape)}`);
  }
}

/**
 * A dense, contiguous, row-major tensor in Node's memory. Passed to Python, it
 * becomes a torch tensor over the same bytes (no copy) for the length of the call;
 * returned from Python, its bytes were copied once into memory Node owns.
 */
export class Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: TypedArrayOf[D];

  constructor(dtype: D, shape: readonly number[], data: TypedArrayOf[D]) {
    checkDTypeAndShape(dtype, shape);
    if (!(data instanceof STORAGE[dtype])) {
      throw new CoilError(
        "INVALID_ARGUMENT",
        `${dtype} tensor data must be a ${STORAGE[dtype].name}, got ${(data as object)?.constructor?.name ?? typeof data}`,
      );
    }
    const count = elementCount(shape);
    if (data.length !== count) {
      throw new CoilError(
        "SHAPE_MISMATCH",
        `shape [${shape.join(", ")}] has ${count} elements but the data has ${data.length}`,
        { details: { shape: [...shape], elements: data.length } },
      );
    }
    this.dtype = dtype;
    // A frozen shape can be shared as it is (the result decoder's are): freezing costs a
    // call into V8's runtime, more than the rest of making a tensor.
    this.shape = Object.isFrozen(shape) ? shape : Object.freeze(shape.slice());
    this.data = data;
  }

  /** A zero-filled tensor. */
  static zeros<D extends DType>(dtype: D, shape: readonly number[]): Tensor<D> {
    const Storage = STORAGE[dtype];
    return new Tensor(dtype, shape, new Storage(elementCount(shape)) as TypedArrayOf[D]);
  }

  /**
   * A tensor over `bytes`, its elements in this host's byte order: a view of the same
   * memory when `bytes.byteOffset` is a multiple of the element size, else one copy
   * (a TypedArray cannot start at an unaligned offset). SHAPE_MISMATCH unless the
   * byte length is exactly the shape's element count times the element size.
   */
  static fromBytes<D extends DType>(dtype: D, shape: readonly number[], bytes: Uint8Array): Tensor<D> {
    checkDTypeAndShape(dtype, shape);
    if (!(bytes instanceof Uint8Array)) {
      throw new CoilError("INVALID_ARGUMENT", `tensor bytes must be a Uint8Array, got ${(bytes as object)?.constructor?.name ?? typeof bytes}`);
    }
    const Storage = STORAGE[dtype];
    const size = Storage.BYTES_PER_ELEMENT;
    const needed = elementCount(shape) * size;
    if (bytes.byteLength !== needed) {
      throw new CoilError(
        "SHAPE_MISMATCH",
        `shape [${shape.join(", ")}] of ${dtype} needs ${needed} bytes, got ${bytes.byteLength}`,
        { details: { shape: [...shape], bytes: bytes.byteLength } },
      );
    }
    const aligned = bytes.byteOffset % size === 0 ? bytes : new Uint8Array(bytes); // new Uint8Array(view) copies
    const View = Storage as unknown as new (buffer: ArrayBufferLike, byteOffset: number, length: number) => TypedArrayOf[D];
    return new Tensor(dtype, shape, new View(aligned.buffer, aligned.byteOffset, aligned.byteLength / size));
  }

  /** A tensor from plain values: numbers (floats are rounded to float16/bfloat16),
   * bigints or numbers for int64, booleans or numbers for bool. */
  static from<D extends DType>(dtype: D, shape: readonly number[], values: ArrayLike<number | bigint | boolean>): Tensor<D> {
    const t = Tensor.zeros(dtype, shape);
    if (values.length !== t.data.length) {
      throw new CoilError("SHAPE_MISMATCH", `shape [${shape.join(", ")}] needs ${t.data.length} values, got ${values.length}`);
    }
    const data = t.data as unknown as { [i: number]: number | bigint };
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (dtype === "int64" || dtype === "uint64") data[i] = BigInt(v as number | bigint);
      else if (dtype === "float16") data[i] = float32ToFloat16Bits(Number(v));
      else if (dtype === "bfloat16") data[i] = float32ToBFloat16Bits(Number(v));
      else if (dtype === "bool") data[i] = v ? 1 : 0;
      else data[i] = Number(v);
    }
    return t;
  }

  get size(): number {
    return this.data.length;
  }

  get byteLength(): number {
    return this.data.byteLength;
  }

  /** The elements as plain JS values: numbers (float16/bfloat16 decoded), bigints
   * for int64 and uint64, booleans for bool. */
  toArray(): number[] | bigint[] | boolean[] {
    switch (this.dtype) {
      case "float16":
        return Array.from(this.data as Uint16Array, float16BitsToNumber);
      case "bfloat16":
        return Array.from(this.data as Uint16Array, bfloat16BitsToNumber);
      case "bool":
        return Array.from(this.data as Uint8Array, (b) => b !== 0);
      case "int64":
      case "uint64":
        return Array.from(this.data as BigInt64Array);
      default:
        return Array.from(this.data as Float32Array);
    }
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bfloat16BitsToNumber(bits: number): number {
  u32[0] = bits << 16;
  return f32[0]!;
}

/** Round-to-nearest-even, as torch does. */
export function float32ToBFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  if (Number.isNaN(value)) return 0x7fc0;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function float16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** Round-to-nearest-even, overflow to infinity. */
export function float32ToFloat16Bits(value: number): number {
  if (Number.isNaN(value)) return 0x7e00;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const v = Math.abs(value);
  if (v >= 65520) return sign | 0x7c00; // rounds past the largest finite half
  if (v < 2 ** -24 / 2) return sign; // rounds to zero
  let exponent = Math.floor(Math.log2(v));
  if (exponent < -14) {
    // subnormal: units of 2^-24
    return sign | roundHalfEven(v / 2 ** -24);
  }
  if (2 ** exponent > v) exponent -= 1; // log2 rounding guard
  let mantissa = roundHalfEven((v / 2 ** exponent - 1) * 1024);
  if (mantissa === 1024) {
    mantissa = 0;
    exponent += 1;
  }
  if (exponent > 15) return sign | 0x7c00;
  return sign | ((exponent + 15) << 10) | mantissa;
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
