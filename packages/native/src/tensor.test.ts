import { isCoilError } from "@coil/errors";
import { describe, expect, it } from "vitest";

import {
  bfloat16BitsToNumber,
  DTYPES,
  dtypeSize,
  float16BitsToNumber,
  float32ToBFloat16Bits,
  float32ToFloat16Bits,
  Tensor,
} from "./tensor.js";

describe("Tensor", () => {
  it("holds dtype, shape and data", () => {
    const t = new Tensor("float32", [2, 3], new Float32Array(6));
    expect(t.size).toBe(6);
    expect(t.byteLength).toBe(24);
    expect(Object.isFrozen(t.shape)).toBe(true);
  });

  it("copies a shape it is given unless that is frozen, and checks it either way", () => {
    const mutable = [2, 3];
    const t = new Tensor("float32", mutable, new Float32Array(6));
    mutable[0] = 3;
    expect(t.shape).toEqual([2, 3]);
    const frozen = Object.freeze([3, 2]);
    expect(new Tensor("float32", frozen, new Float32Array(6)).shape).toBe(frozen);
    expect(() => new Tensor("float32", Object.freeze([-1, 2]), new Float32Array(0))).toThrow(/non-negative integers/);
  });

  it("refuses data whose length does not match the shape", () => {
    expect(() => new Tensor("float32", [2, 3], new Float32Array(5))).toThrow(/6 elements but the data has 5/);
    try {
      new Tensor("float32", [2, 3], new Float32Array(5));
    } catch (e) {
      expect(isCoilError(e, "SHAPE_MISMATCH")).toBe(true);
    }
  });

  it("refuses the wrong TypedArray for a dtype, unknown dtypes and bad shapes", () => {
    expect(() => new Tensor("int64", [1], new Int32Array(1) as never)).toThrow(/BigInt64Array/);
    expect(() => new Tensor("complex64" as never, [1], new Float32Array(1) as never)).toThrow(/unknown dtype/);
    expect(() => new Tensor("float32", [-1], new Float32Array(1))).toThrow(/non-negative integers/);
    expect(() => new Tensor("float32", [1.5], new Float32Array(1))).toThrow(/non-negative integers/);
  });

  it("builds from plain values for every dtype and reads them back", () => {
    expect(Tensor.from("int64", [2], [1, 2n]).toArray()).toEqual([1n, 2n]);
    expect(Tensor.from("bool", [3], [true, false, 1]).toArray()).toEqual([true, false, true]);
    expect(Tensor.from("float16", [3], [1.5, -2, 65504]).toArray()).toEqual([1.5, -2, 65504]);
    expect(Tensor.from("bfloat16", [2], [1.5, -256]).toArray()).toEqual([1.5, -256]);
    expect(Tensor.from("uint8", [2], [255, 7]).toArray()).toEqual([255, 7]);
    expect(() => Tensor.from("float32", [2], [1])).toThrow(/needs 2 values/);
  });

  it("fromBytes() views aligned bytes in place, for every dtype", () => {
    const memory = new Uint8Array(64);
    for (const dtype of DTYPES) {
      const size = dtypeSize(dtype);
      const bytes = memory.subarray(size, size + 3 * size); // offset = one element: aligned
      const t = Tensor.fromBytes(dtype, [3], bytes);
      expect(t.data.buffer, dtype).toBe(memory.buffer);
      expect(t.data.byteOffset, dtype).toBe(size);
      expect(t.size, dtype).toBe(3);
    }
    const values = new Float32Array([1.5, -2, 3]);
    const viewed = Tensor.fromBytes("float32", [1, 3], new Uint8Array(values.buffer));
    expect(viewed.toArray()).toEqual([1.5, -2, 3]);
    values[0] = 7; // a view: the tensor sees the change
    expect(viewed.data[0]).toBe(7);
  });

  it("fromBytes() copies bytes at an unaligned offset once, keeping their values", () => {
    const memory = new Uint8Array(1 + 16);
    memory.set(new Uint8Array(new BigInt64Array([-(2n ** 63n), 42n]).buffer), 1);
    const bytes = memory.subarray(1);
    const t = Tensor.fromBytes("int64", [2], bytes);
    expect(t.toArray()).toEqual([-(2n ** 63n), 42n]);
    expect(t.data.buffer).not.toBe(memory.buffer);
    expect(t.data.byteOffset).toBe(0);
    // One-byte elements are never unaligned.
    expect(Tensor.fromBytes("uint8", [1, 2], memory.subarray(1, 3)).data.buffer).toBe(memory.buffer);
    expect(Tensor.fromBytes("float64", [0], new Uint8Array(0)).size).toBe(0);
  });

  it("fromBytes() refuses a byte length that is not the shape's, bad shapes and unknown dtypes", () => {
    let error: unknown;
    try {
      Tensor.fromBytes("float32", [2, 2], new Uint8Array(12));
    } catch (e) {
      error = e;
    }
    expect(isCoilError(error, "SHAPE_MISMATCH")).toBe(true);
    expect((error as Error).message).toBe("shape [2, 2] of float32 needs 16 bytes, got 12");
    expect(() => Tensor.fromBytes("uint16", [3], new Uint8Array(5))).toThrow(/needs 6 bytes, got 5/);
    expect(() => Tensor.fromBytes("float32", [-1], new Uint8Array(4))).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(() => Tensor.fromBytes("complex64" as never, [1], new Uint8Array(8))).toThrow(expect.objectContaining({ code: "UNSUPPORTED_DTYPE" }));
    expect(() => Tensor.fromBytes("float32", [1], new Float32Array(1) as never)).toThrow(/must be a Uint8Array, got Float32Array/);
  });

  it("zeros() allocates the right storage", () => {
    expect(Tensor.zeros("int64", [2, 2]).data).toBeInstanceOf(BigInt64Array);
    expect(Tensor.zeros("bool", [0]).size).toBe(0);
  });
});

describe("half-precision codecs", () => {
  it("float16 encodes like IEEE 754 binary16 (round to nearest even)", () => {
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00); // overflows to +inf
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie rounds to even
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(Number.isNaN(float16BitsToNumber(float32ToFloat16Bits(NaN)))).toBe(true);
    expect(float16BitsToNumber(0x7c00)).toBe(Infinity);
    expect(Object.is(float16BitsToNumber(float32ToFloat16Bits(-0)), -0)).toBe(true);
  });

  it("every finite float16 survives decode then encode", () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7c00) === 0x7c00) continue; // inf / nan
      expect(float32ToFloat16Bits(float16BitsToNumber(bits))).toBe(bits);
    }
  });

  it("bfloat16 is the top half of float32, rounded to nearest even", () => {
    expect(float32ToBFloat16Bits(1)).toBe(0x3f80);
    expect(bfloat16BitsToNumber(0x3f80)).toBe(1);
    expect(float32ToBFloat16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie to even
    expect(float32ToBFloat16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(bfloat16BitsToNumber(float32ToBFloat16Bits(3.140625))).toBe(3.140625);
  });
});
