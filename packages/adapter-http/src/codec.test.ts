import { BytesTensor, Tensor } from "@coil/core";
import { describe, expect, it } from "vitest";

import { decodeInferRequest, encodeInferResponse, JSON_SLICE_ELEMENTS, jsonData, type DecodedInferRequest, type EncodedResponse } from "./codec.js";

/** A request body in Triton's binary form: the JSON header, then `pad` bytes of
 * other inputs' data, then `blob` (so `blob` lands at byte offset header + pad). */
function binaryBody(datatype: string, shape: number[], blob: Uint8Array, pad: number): { body: Buffer; headerLength: string } {
  const inputs = [{ name: "x", datatype, shape, parameters: { binary_data_size: blob.length } }];
  if (pad > 0) inputs.unshift({ name: "pad", datatype: "UINT8", shape: [pad], parameters: { binary_data_size: pad } });
  const header = Buffer.from(JSON.stringify({ inputs }));
  return { body: Buffer.concat([header, Buffer.alloc(pad), blob]), headerLength: String(header.length) };
}

const decode = (body: Buffer, headerLength?: string) => decodeInferRequest(body, headerLength, { maxElements: 1000 }).request.inputs;

/** The JSON a careful hand-written encoder gives: String(x) per element, null where
 * JSON has no spelling for the number. */
function reference(values: ArrayLike<number | bigint | boolean>): string {
  const parts = Array.from(values, (v) => (typeof v === "number" && !Number.isFinite(v) ? "null" : String(v)));
  return `[${parts.join(",")}]`;
}

describe("jsonData", () => {
  it("writes float64 elements as JavaScript writes them, with null for NaN and infinities", () => {
    const values = [0, -0, 1, -1.5, 0.1, 1 / 3, 1e21, 1e-7, 123456789012345680000, 5e-324, Number.MAX_VALUE, -Number.MIN_VALUE, NaN, Infinity, -Infinity];
    const text = jsonData(Tensor.from("float64", [values.length], values));
    expect(text).toBe(reference(values));
    expect(text).toContain("1e+21,1e-7");
    const back = JSON.parse(text) as (number | null)[];
    expect(back.slice(0, 12)).toEqual(values.slice(0, 12).map((v) => (Object.is(v, -0) ? 0 : v)));
    expect(back.slice(12)).toEqual([null, null, null]);
  });

  it("writes float32 elements as the doubles they are, and a 2-D tensor flat in row-major order", () => {
    const data = new Float32Array([Math.PI, -2.5, 1e-30, 3.4e38, 0.1, 65504]);
    const text = jsonData(new Tensor("float32", [2, 3], data));
    expect(text).toBe(reference(data));
    expect(Float32Array.from(JSON.parse(text) as number[])).toEqual(data);
  });

  it("decodes float16 and bfloat16 bits into numbers", () => {
    expect(jsonData(Tensor.from("float16", [4], [1.5, -0.5, 65504, Infinity]))).toBe("[1.5,-0.5,65504,null]");
    expect(jsonData(Tensor.from("bfloat16", [3], [1, -2, 0.5]))).toBe("[1,-2,0.5]");
  });

  it("writes integers, booleans, and every digit of 64-bit integers", () => {
    expect(jsonData(Tensor.from("int8", [3], [-128, 0, 127]))).toBe("[-128,0,127]");
    expect(jsonData(Tensor.from("uint8", [2], [0, 255]))).toBe("[0,255]");
    expect(jsonData(Tensor.from("int32", [2], [-2147483648, 2147483647]))).toBe("[-2147483648,2147483647]");
    expect(jsonData(Tensor.from("bool", [3], [true, false, true]))).toBe("[true,false,true]");
    expect(jsonData(Tensor.from("int64", [2], [-(2n ** 63n), 2n ** 63n - 1n]))).toBe("[-9223372036854775808,9223372036854775807]");
    expect(jsonData(Tensor.from("uint64", [1], [2n ** 64n - 1n]))).toBe("[18446744073709551615]");
  });

  it("writes an empty tensor as an empty array", () => {
    expect(jsonData(Tensor.zeros("float32", [0, 4]))).toBe("[]");
  });

  it("writes BYTES elements as strings, and refuses bytes that are not UTF-8", () => {
    expect(jsonData(BytesTensor.from([2], ["a\"b", "é"]))).toBe('["a\\"b","é"]');
    expect(() => jsonData(BytesTensor.from([1], [new Uint8Array([0xff, 0xfe])]), "text")).toThrow(/output "text" holds bytes that are not UTF-8/);
  });
});

describe("decodeInferRequest", () => {
  it("views binary inputs in the body when aligned and copies them once when not", () => {
    const blob = new Uint8Array(new Float32Array([1.5, -2, 3, 4]).buffer);
    for (let pad = 0; pad < 8; pad++) {
      const { body, headerLength } = binaryBody("FP32", [2, 2], blob, pad);
      const x = decode(body, headerLength).find((i) => i.name === "x")!.tensor as Tensor;
      expect(x.toArray(), `pad ${pad}`).toEqual([1.5, -2, 3, 4]);
      const offset = body.byteOffset + body.length - blob.length;
      expect(x.data.buffer === body.buffer, `pad ${pad}`).toBe(offset % 4 === 0);
    }
  });

  it("converts JSON data by each datatype's rules and names the element it refuses", () => {
    const json = (datatype: string, data: unknown[]) => Buffer.from(JSON.stringify({ inputs: [{ name: "x", datatype, shape: [data.length], data }] }));
    expect((decode(json("INT64", ["9223372036854775807", -1]))[0]!.tensor as Tensor).toArray()).toEqual([2n ** 63n - 1n, -1n]);
    expect((decode(json("UINT16", [0, 65535]))[0]!.tensor as Tensor).toArray()).toEqual([0, 65535]);
    expect((decode(json("BOOL", [true, false]))[0]!.tensor as Tensor).toArray()).toEqual([true, false]);
    expect(() => decode(json("UINT16", [1, 65536]))).toThrow('input "x": element 1 is out of range for UINT16: 65536 is not an integer in 0..65535');
    expect(() => decode(json("FP32", [1, true]))).toThrow('input "x": element 1 must be a number, got true');
    expect(() => decode(json("BYTES", ["a", 1]))).toThrow('input "x": element 1 must be a string, got 1');
  });
});

describe("encodeInferResponse", () => {
  const asJson: DecodedInferRequest = { request: { inputs: [] }, binaryByDefault: false, binaryOutputs: new Map() };
  const response = (tensor: Tensor | BytesTensor) => ({ modelName: "m", modelVersion: "1", outputs: [{ name: "y", tensor }] });

  async function text(encoded: EncodedResponse): Promise<string> {
    if (typeof encoded.body === "string" || Buffer.isBuffer(encoded.body)) return encoded.body.toString();
    const chunks: Buffer[] = [];
    for await (const chunk of encoded.body) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    expect(body.length).toBe(encoded.contentLength);
    return body.toString("utf8");
  }

  it("encodes large outputs a slice at a time, returning to the event loop between slices, into the same JSON", async () => {
    const n = 2 * JSON_SLICE_ELEMENTS + 5;
    const floats = Float32Array.from({ length: n }, (_, i) => i / 7 - 1000);
    const int64s = BigInt64Array.from({ length: n }, (_, i) => BigInt(i) * 3_000_000_007n - 2n ** 62n);
    const words = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? `é${i}` : String(i)));
    for (const tensor of [new Tensor("float32", [n], floats), new Tensor("int64", [n], int64s), BytesTensor.from([n], words)]) {
      let turns = 0;
      let encoding = true;
      const tick = () => {
        turns++;
        if (encoding) setImmediate(tick);
      };
      setImmediate(tick);
      const encoded = await encodeInferResponse(response(tensor), asJson);
      encoding = false;
      expect(turns, tensor.dtype).toBeGreaterThanOrEqual(2); // one per slice boundary, at least
      expect(typeof encoded.body).not.toBe("string"); // over 1 MiB: streamed in parts
      const body = await text(encoded);
      expect(body.slice(body.indexOf('"data":') + 7, -3), tensor.dtype).toBe(jsonData(tensor));
      expect(JSON.parse(body)).toMatchObject({ model_name: "m", outputs: [{ name: "y", shape: [n] }] });
    }
  });

  it("refuses a JSON body over maxJsonBytes with RESPONSE_TOO_LARGE, and sends small ones in one piece", async () => {
    const tensor = new Tensor("float32", [3 * JSON_SLICE_ELEMENTS], new Float32Array(3 * JSON_SLICE_ELEMENTS).fill(0.125));
    await expect(encodeInferResponse(response(tensor), asJson, { maxJsonBytes: 100_000 })).rejects.toMatchObject({
      code: "RESPONSE_TOO_LARGE",
      message: expect.stringContaining("parameters.binary_data_output: true"),
    });
    // Binary, the same tensor is not JSON and passes.
    const binary = await encodeInferResponse(response(tensor), { ...asJson, binaryByDefault: true }, { maxJsonBytes: 100_000 });
    expect(binary.headerLength).toBeGreaterThan(0);
    const small = await encodeInferResponse(response(new Tensor("float32", [2], new Float32Array([1.5, -2]))), asJson);
    expect(small.body).toBe('{"model_name":"m","model_version":"1","outputs":[{"name":"y","datatype":"FP32","shape":[2],"data":[1.5,-2]}]}');
  });
});
