import { BytesTensor, Tensor } from "@coil/core";
import { describe, expect, it } from "vitest";

import type { InputTensorMessage } from "./messages.js";
import { decodeInputs, parseShape } from "./tensors.js";

const MAX_BYTES = 1024;

describe("parseShape", () => {
  it("reads int64 dimensions as strings, numbers or Longs", () => {
    const long = { low: 3, high: 0, unsigned: false, toString: () => "3" };
    expect(parseShape(["2", 4, long], "float32", MAX_BYTES, 'input "x"')).toEqual({ shape: [2, 4, 3], count: 24 });
  });

  it("refuses negative dimensions, and shapes whose bytes pass the limit", () => {
    expect(() => parseShape(["-1", "2"], "float32", MAX_BYTES, 'input "x"')).toThrow('input "x": shape must be an array of non-negative integers, got [-1, 2]');
    expect(parseShape(["256"], "float32", MAX_BYTES, 'input "x"').count).toBe(256);
    expect(() => parseShape(["257"], "float32", MAX_BYTES, 'input "x"')).toThrow(/shape \[257\] is larger than this server accepts \(1024 bytes\)/);
    expect(() => parseShape(["4294967296", "4294967296"], "uint8", MAX_BYTES, 'input "x"')).toThrow(/larger than/);
  });
});

describe("decodeInputs", () => {
  const input = (datatype: string, shape: string[], contents?: InputTensorMessage["contents"]): InputTensorMessage => ({ name: "x", datatype, shape, contents });

  it("views aligned raw contents in the message's memory, and copies unaligned ones once", () => {
    const memory = Buffer.alloc(9);
    memory.writeInt32LE(-7, 1);
    memory.writeInt32LE(9, 5);
    const [unaligned] = decodeInputs([input("INT32", ["2"])], [memory.subarray(1)], MAX_BYTES);
    expect((unaligned!.tensor as Tensor).toArray()).toEqual([-7, 9]);
    expect((unaligned!.tensor as Tensor).data.buffer).not.toBe(memory.buffer);
    const aligned = Buffer.from(new Int32Array([-7, 9]).buffer);
    const [viewed] = decodeInputs([input("INT32", ["2"])], [aligned], MAX_BYTES);
    expect((viewed!.tensor as Tensor).data.buffer).toBe(aligned.buffer);
  });

  it("converts typed contents, 64-bit integers from strings included", () => {
    const [u64, b, bytes] = decodeInputs(
      [
        input("UINT64", ["2"], { uint64_contents: ["18446744073709551615", "0"] }),
        { ...input("BOOL", ["2"], { bool_contents: [true, false] }), name: "b" },
        { ...input("BYTES", ["1"], { bytes_contents: [Buffer.from("hé")] }), name: "s" },
      ],
      [],
      MAX_BYTES,
    );
    expect((u64!.tensor as Tensor).toArray()).toEqual([2n ** 64n - 1n, 0n]);
    expect((b!.tensor as Tensor).toArray()).toEqual([true, false]);
    expect((bytes!.tensor as BytesTensor).strings()).toEqual(["hé"]);
  });

  it("refuses typed values outside the datatype's range and raw contents of the wrong size", () => {
    expect(() => decodeInputs([input("INT16", ["1"], { int_contents: [40000] })], [], MAX_BYTES)).toThrow(
      'input "x": element 0 is out of range for INT16: 40000 is not an integer in -32768..32767',
    );
    expect(() => decodeInputs([input("FP32", ["1", "2"])], [Buffer.alloc(12)], MAX_BYTES)).toThrow(
      'input "x": the raw data has 12 bytes but shape [1, 2] of FP32 needs 8',
    );
    expect(() => decodeInputs([input("FP16", ["1"], { fp32_contents: [1] })], [], MAX_BYTES)).toThrow(/FP16 tensors must be sent in raw_input_contents/);
  });
});
