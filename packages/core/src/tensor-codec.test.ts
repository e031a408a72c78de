import { isCoilError } from "@coil/errors";
import { Tensor } from "@coil/native";
import { describe, expect, it } from "vitest";

import { BytesTensor, encodeBytesElements } from "./bytes-tensor.js";
import { checkShape, countElements, elementOf, tensorFromRawBytes, tensorFromValues, wireInteger } from "./tensor-codec.js";

const what = 'input "x"';

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (error) {
    return isCoilError(error) ? error.code : "not a CoilError";
  }
  return undefined;
}

describe("shapes", () => {
  it("accepts non-negative safe integers and names the input otherwise", () => {
    expect(checkShape([2, 0, 3], what)).toEqual([2, 0, 3]);
    expect(checkShape([], what)).toEqual([]);
    for (const bad of [[-1, 3], [1.5], [2 ** 53], ["2"], "2", null]) {
      expect(() => checkShape(bad, what), JSON.stringify(bad)).toThrow(/^input "x": shape must be an array of non-negative integers, got /);
      expect(codeOf(() => checkShape(bad, what))).toBe("INVALID_ARGUMENT");
    }
    expect(() => checkShape([-1, 2], what)).toThrow(/got \[-1, 2\]$/);
  });

  it("counts elements, giving Infinity past the limit before the product loses precision", () => {
    expect(countElements([], 10)).toBe(1);
    expect(countElements([2, 3], 6)).toBe(6);
    expect(countElements([2, 4], 6)).toBe(Infinity);
    expect(countElements([2 ** 40, 2 ** 40, 2 ** 40], Number.MAX_SAFE_INTEGER)).toBe(Infinity);
    expect(countElements([2 ** 40, 2 ** 40, 0], 10)).toBe(0); // empty wherever the zero is
  });
});

describe("wireInteger", () => {
  it("reads integral numbers, bigints, digit strings and Longs", () => {
    expect(wireInteger(-3)).toBe(-3n);
    expect(wireInteger(2n ** 64n)).toBe(2n ** 64n);
    expect(wireInteger("18446744073709551615")).toBe(2n ** 64n - 1n);
    expect(wireInteger("-9223372036854775808")).toBe(-(2n ** 63n));
    const long = { low: 1, high: 2, unsigned: false, toString: () => "8589934593" }; // protobufjs's shape
    expect(wireInteger(long)).toBe(8589934593n);
    for (const bad of [1.5, NaN, "12x", "", " 1", "1e3", "123456789012345678901", {}, null, true]) expect(wireInteger(bad), String(bad)).toBeUndefined();
  });
});

describe("elementOf", () => {
  it("converts each dtype's protocol values", () => {
    expect(elementOf("bool", true, what, 0)).toBe(1);
    expect(elementOf("bool", false, what, 0)).toBe(0);
    expect(elementOf("float16", 1.5, what, 0)).toBe(0x3e00);
    expect(elementOf("bfloat16", 1, what, 0)).toBe(0x3f80);
    expect(elementOf("float64", Math.PI, what, 0)).toBe(Math.PI);
    expect(elementOf("int8", -128, what, 0)).toBe(-128);
    expect(elementOf("uint32", 4294967295, what, 0)).toBe(4294967295);
    expect(elementOf("int64", "-9223372036854775808", what, 0)).toBe(-(2n ** 63n));
    expect(elementOf("uint64", 7, what, 0)).toBe(7n);
    expect(elementOf("uint64", "18446744073709551615", what, 0)).toBe(2n ** 64n - 1n);
  });

  it("refuses the wrong kind of value, naming the input, the element and the value", () => {
    expect(() => elementOf("bool", 1, what, 2)).toThrow('input "x": element 2 must be a boolean, got 1');
    expect(() => elementOf("float32", "1", what, 0)).toThrow('input "x": element 0 must be a number, got "1"');
    expect(() => elementOf("float16", null, what, 0)).toThrow(/must be a number, got null/);
    expect(() => elementOf("int32", 1.5, what, 0)).toThrow(/element 0 must be an integer, got 1.5/);
    expect(() => elementOf("int64", "12x", what, 0)).toThrow(/must be an integer \(a number, or a string of digits\), got "12x"/);
    expect(codeOf(() => elementOf("uint8", true, what, 0))).toBe("INVALID_ARGUMENT");
  });

  it("refuses integers outside each integer dtype's range, at both ends", () => {
    const ranges: [Parameters<typeof elementOf>[0], number | bigint, number | bigint][] = [
      ["uint8", 0, 255],
      ["uint16", 0, 65535],
      ["uint32", 0, 2 ** 32 - 1],
      ["int8", -128, 127],
      ["int16", -32768, 32767],
      ["int32", -(2 ** 31), 2 ** 31 - 1],
      ["int64", -(2n ** 63n), 2n ** 63n - 1n],
      ["uint64", 0n, 2n ** 64n - 1n],
    ];
    for (const [dtype, lo, hi] of ranges) {
      const below = typeof lo === "bigint" ? String(lo - 1n) : lo - 1;
      const above = typeof hi === "bigint" ? String(hi + 1n) : hi + 1;
      expect(elementOf(dtype, typeof lo === "bigint" ? String(lo) : lo, what, 0), dtype).toBe(lo);
      expect(elementOf(dtype, typeof hi === "bigint" ? String(hi) : hi, what, 0), dtype).toBe(hi);
      for (const v of [below, above]) {
        expect(() => elementOf(dtype, v, what, 3), `${dtype} ${v}`).toThrow(
          new RegExp(`element 3 is out of range for ${dtype.toUpperCase()}: ${v} is not an integer in ${lo}\\.\\.${hi}$`),
        );
      }
    }
  });
});

describe("tensorFromValues", () => {
  it("builds every kind of tensor from values in row-major order", () => {
    expect(tensorFromValues("float32", [2, 2], new Float64Array([0.1, 2, 3, 4]), what)).toEqual(new Tensor("float32", [2, 2], new Float32Array([0.1, 2, 3, 4])));
    expect(tensorFromValues("int16", [3], new Float64Array([-1, 0, 1]), what).toArray()).toEqual([-1, 0, 1]);
    expect(tensorFromValues("bool", [2], [true, false], what).toArray()).toEqual([true, false]);
    expect(tensorFromValues("int64", [2], ["9007199254740993", 5], what).toArray()).toEqual([9007199254740993n, 5n]);
    expect(tensorFromValues("float16", [1], new Float64Array([65504]), what).toArray()).toEqual([65504]);
    const text = tensorFromValues("bytes", [1, 2], ["é", Buffer.from([0xff])], what) as BytesTensor;
    expect(text.data.map((d) => [...d])).toEqual([[0xc3, 0xa9], [0xff]]);
    expect(tensorFromValues("bytes", [0], new Float64Array(0), what)).toEqual(new BytesTensor([0], []));
  });

  it("refuses a bad element, and a count that is not the shape's", () => {
    expect(() => tensorFromValues("uint8", [2], new Float64Array([1, 256]), what)).toThrow(/element 1 is out of range for UINT8/);
    expect(() => tensorFromValues("bytes", [1], new Float64Array([1]), what)).toThrow('input "x": element 0 must be a string, got 1');
    expect(codeOf(() => tensorFromValues("float32", [2], [1], what))).toBe("SHAPE_MISMATCH");
  });
});

describe("tensorFromRawBytes", () => {
  it("views aligned little-endian bytes in place, copies unaligned ones once", () => {
    const memory = new Uint8Array(17);
    memory.set(new Uint8Array(new Float64Array([1.5, -2]).buffer), 0);
    const aligned = tensorFromRawBytes("float64", [2], memory.subarray(0, 16), what);
    expect(aligned.toArray()).toEqual([1.5, -2]);
    expect(aligned.data.buffer).toBe(memory.buffer);
    memory.copyWithin(1, 0, 16);
    const unaligned = tensorFromRawBytes("float64", [2, 1], memory.subarray(1), what);
    expect(unaligned.toArray()).toEqual([1.5, -2]);
    expect(unaligned.data.buffer).not.toBe(memory.buffer);
  });

  it("decodes BYTES elements as views of the bytes", () => {
    const raw = encodeBytesElements(BytesTensor.from([2], ["ab", ""]));
    const tensor = tensorFromRawBytes("bytes", [2], raw, what) as BytesTensor;
    expect(tensor.strings()).toEqual(["ab", ""]);
    expect(tensor.data[0]!.buffer).toBe(raw.buffer);
    expect(() => tensorFromRawBytes("bytes", [2], raw.subarray(0, 6), what)).toThrow(/^input "x": BYTES data ends before element 1 of 2/);
  });

  it("refuses a byte length that is not the shape's, and BOOL bytes other than 0 and 1", () => {
    expect(() => tensorFromRawBytes("float32", [1, 2], new Uint8Array(12), what)).toThrow(
      'input "x": the raw data has 12 bytes but shape [1, 2] of FP32 needs 8',
    );
    expect(codeOf(() => tensorFromRawBytes("int16", [1], new Uint8Array(1), what))).toBe("INVALID_ARGUMENT");
    expect(tensorFromRawBytes("bool", [3], new Uint8Array([1, 0, 1]), what).toArray()).toEqual([true, false, true]);
    expect(() => tensorFromRawBytes("bool", [3], new Uint8Array([1, 0, 2]), what)).toThrow('input "x": BOOL bytes must be 0 or 1, element 2 is 2');
  });
});
