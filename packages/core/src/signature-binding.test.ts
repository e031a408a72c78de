import { Tensor } from "@coil/native";
import { describe, expect, it } from "vitest";

import { BytesTensor } from "./bytes-tensor.js";
import { SignatureBinding } from "./signature-binding.js";

const rows = (n: number, width = 2) => Tensor.from("float32", [n, width], Array.from({ length: n * width }, (_, i) => i));
const text = (...items: string[]) => items.map((s) => new TextEncoder().encode(s));
const bytes = (...items: string[]) => new BytesTensor([items.length], text(...items));

describe("SignatureBinding", () => {
  const binding = new SignatureBinding(
    [
      { name: "a", dtype: "float32", shape: [-1, 2] },
      { name: "b", dtype: "bytes", shape: [-1] },
    ],
    [
      { name: "scores", dtype: "float32", shape: [-1, 2] },
      { name: "labels", dtype: "bytes", shape: [-1] },
    ],
  );

  it("orders named inputs as the model takes them, and checks them against the signature", () => {
    const a = rows(1);
    const b = bytes("x");
    expect(binding.bindInputs([{ name: "b", tensor: b }, { name: "a", tensor: a }])).toEqual([a, b]);
    expect(() => binding.bindInputs([{ name: "a", tensor: a }])).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT", message: 'missing input "b"' }));
    expect(() => binding.bindInputs([{ name: "c", tensor: a }])).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(() => binding.bindInputs([{ name: "a", tensor: b }, { name: "b", tensor: b }])).toThrow(expect.objectContaining({ code: "UNSUPPORTED_DTYPE" }));
    expect(() => binding.bindInputs([{ name: "a", tensor: rows(1, 3) }, { name: "b", tensor: b }])).toThrow(
      expect.objectContaining({ code: "SHAPE_MISMATCH" }),
    );
  });

  it("without a signature, takes inputs in request order and numbers the outputs", () => {
    const plain = new SignatureBinding();
    const [a, b] = [rows(1), rows(2)];
    expect(plain.bindInputs([{ name: "q", tensor: b }, { name: "p", tensor: a }])).toEqual([b, a]);
    expect(plain.nameOutputs([a, b]).map((o) => o.name)).toEqual(["output__0", "output__1"]);
    // A list without a tensor, from a model of one (or unknown) output, is that output's rows.
    const one = plain.nameOutputs(["yes", "no"]);
    expect(one.map((o) => [o.name, o.tensor.shape])).toEqual([["output__0", [2]]]);
  });

  it("names a list of outputs by the signature, a dict by its keys, and keeps only the wanted ones", () => {
    const named = binding.nameOutputs([rows(2), ["p", "q"]]);
    expect(named.map((o) => [o.name, o.tensor.dtype, o.tensor.shape])).toEqual([
      ["scores", "float32", [2, 2]],
      ["labels", "bytes", [2]],
    ]);
    expect(binding.nameOutputs({ z: rows(1) }).map((o) => o.name)).toEqual(["z"]);
    expect(binding.nameOutputs([rows(2), ["p", "q"]], ["labels"]).map((o) => o.name)).toEqual(["labels"]);
    expect(() => binding.nameOutputs(rows(1), ["nope"])).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(() => binding.nameOutputs(null)).toThrow(expect.objectContaining({ code: "INTERNAL", message: expect.stringContaining("None") }));
  });

  it("splits a batched result by the same rule it names outputs by", () => {
    const [first, second] = binding.splitBatch([rows(3), ["a", "b", "c"]], [1, 2]) as [unknown[], unknown[]];
    expect((first[0] as Tensor).shape).toEqual([1, 2]);
    expect(Array.from((second[0] as Tensor<"float32">).data)).toEqual([2, 3, 4, 5]);
    expect([first[1], second[1]]).toEqual([["a"], ["b", "c"]]);
    // One output that is a list of rows (BYTES), from a model of one output.
    expect(new SignatureBinding().splitBatch(["a", "b", "c"], [2, 1])).toEqual([["a", "b"], ["c"]]);
    const dict = binding.splitBatch({ y: rows(2) }, [1, 1]) as Record<string, Tensor>[];
    expect(dict.map((d) => d["y"]!.shape)).toEqual([[1, 2], [1, 2]]);
    expect(() => binding.splitBatch(rows(3), [1, 1])).toThrow(expect.objectContaining({ code: "SHAPE_MISMATCH" }));
    expect(() => binding.splitBatch(7, [1, 1])).toThrow(expect.objectContaining({ code: "SHAPE_MISMATCH" }));
  });
});
