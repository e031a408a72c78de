import "reflect-metadata";

import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { CpuBackend } from "@coil/backend-cpu";
import { ACCESS_CONTROL, createCoilContainer, encodeBytesElements, BytesTensor, InterpreterPool, Tensor, TOKENS, type DType } from "@coil/core";
import { CoilError } from "@coil/errors";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";

import { MemoryService } from "../test/memory-service.js";
import { HEADER_LENGTH_HEADER } from "./codec.js";
import { HTTP_ROUTES, HttpAdapter } from "./http-adapter.js";
import { registerHttpAdapter } from "./register.js";

const PYTHON = inject("testPython");
const run = promisify(execFile);
const MODELS = resolve(dirname(fileURLToPath(import.meta.url)), "../test/fixtures/models.py");

/** Every supported datatype, with values that exercise its range. */
const DTYPES: [string, DType, (number | boolean | string)[]][] = [
  ["BOOL", "bool", [true, false, true, true]],
  ["UINT8", "uint8", [0, 1, 255, 7]],
  ["UINT16", "uint16", [0, 1, 65535, 7]],
  ["UINT32", "uint32", [0, 1, 4294967295, 7]],
  ["UINT64", "uint64", [0, "18446744073709551615", 5, 7]],
  ["INT8", "int8", [-128, 127, 0, -1]],
  ["INT16", "int16", [-32768, 32767, 1, -2]],
  ["INT32", "int32", [-2147483648, 2147483647, 3, -4]],
  ["INT64", "int64", ["-9223372036854775808", "9223372036854775807", 5, -6]],
  ["FP16", "float16", [1.5, -2, 0.1, 65504]],
  ["BF16", "bfloat16", [1.5, -2, 0.1, 3e38]],
  ["FP32", "float32", [1.5, -2.25, 0.1, 3.4e38]],
  ["FP64", "float64", [0.1, -1e300, 1.5, 2]],
];

let pool: InterpreterPool;
let service: MemoryService;
let adapter: HttpAdapter;
let url: string;

beforeAll(async () => {
  pool = await InterpreterPool.create({
    size: 1,
    python: PYTHON,
    backend: new CpuBackend({ threadsPerInterpreter: 1 }),
  });
  const object = pool.replicate({ file: MODELS, factory: "build" });
  service = new MemoryService(object)
    .add({
      name: "double",
      versions: ["1", "2"],
      method: "double",
      inputs: [{ name: "x", dtype: "float32", shape: [-1, 3] }],
      outputs: [
        { name: "y", dtype: "float32", shape: [-1, 3] },
        { name: "s", dtype: "float32", shape: [-1, 1] },
      ],
    })
    .add({
      name: "fail",
      method: "fail",
      inputs: [{ name: "x", dtype: "float32", shape: [-1] }],
      outputs: [{ name: "y", dtype: "float32", shape: [-1] }],
    })
    .add({
      name: "spin",
      method: "spin",
      inputs: [{ name: "x", dtype: "float32", shape: [-1] }],
      outputs: [{ name: "y", dtype: "float32", shape: [-1] }],
    })
    .add({
      name: "slow",
      method: "slow",
      inputs: [{ name: "x", dtype: "float32", shape: [-1] }],
      outputs: [{ name: "y", dtype: "float32", shape: [-1] }],
    });
  for (const [datatype, dtype] of [...DTYPES, ["BYTES", "bytes"] as const]) {
    service.add({
      name: `identity_${datatype}`,
      method: "identity",
      inputs: [{ name: "x", dtype, shape: [-1, -1] }],
      outputs: [{ name: "y", dtype, shape: [-1, -1] }],
    });
  }
  service.add({
    name: "upper",
    method: "upper",
    inputs: [{ name: "x", dtype: "bytes", shape: [-1] }],
    outputs: [
      { name: "y", dtype: "bytes", shape: [-1] },
      { name: "n", dtype: "int64", shape: [-1] },
    ],
  });
  adapter = new HttpAdapter(service, { host: "127.0.0.1", port: 0, maxElements: 1000, bodyLimit: 64 * 1024 });
  await adapter.start();
  url = adapter.url!;
});

afterAll(async () => {
  await adapter?.stop();
  await pool?.close();
});

// The server keeps serving after every request, good or bad.
afterEach(async () => {
  expect((await fetch(`${url}/v2/health/live`)).status).toBe(200);
});

function postJson(path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  return fetch(`${url}${path}`, {
    method: "POST",
    ...(signal && { signal }),
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** A request in Triton's binary form: the JSON header, then the blobs in order. */
function binaryBody(header: unknown, blobs: Uint8Array[]): { body: Buffer; headers: Record<string, string> } {
  const json = Buffer.from(JSON.stringify(header));
  return {
    body: Buffer.concat([json, ...blobs]),
    headers: { "content-type": "application/octet-stream", "Inference-Header-Content-Length": String(json.length) },
  };
}

function bytesOf(tensor: Tensor): Buffer {
  return Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
}

async function postBinary(path: string, header: unknown, blobs: Uint8Array[], extra: Record<string, string> = {}) {
  const { body, headers } = binaryBody(header, blobs);
  return fetch(`${url}${path}`, { method: "POST", headers: { ...headers, ...extra }, body });
}

/** Splits a binary infer response into its JSON header and the binary outputs by name. */
async function readBinary(response: Response): Promise<{ json: any; blobs: Map<string, Buffer> }> {
  const body = Buffer.from(await response.arrayBuffer());
  const n = Number(response.headers.get(HEADER_LENGTH_HEADER));
  expect(Number.isInteger(n)).toBe(true);
  const json = JSON.parse(body.subarray(0, n).toString());
  const blobs = new Map<string, Buffer>();
  let offset = n;
  for (const output of json.outputs) {
    const size = output.parameters?.binary_data_size;
    if (size === undefined) continue;
    blobs.set(output.name, body.subarray(offset, offset + size));
    offset += size;
  }
  expect(offset).toBe(body.length);
  return { json, blobs };
}

async function expectError(response: Response, status: number, message?: RegExp): Promise<void> {
  expect(response.status).toBe(status);
  const body = (await response.json()) as { error: string };
  expect(typeof body.error).toBe("string");
  if (message) expect(body.error).toMatch(message);
}

describe("health and metadata", () => {
  it("answers liveness and readiness with empty bodies", async () => {
    const live = await fetch(`${url}/v2/health/live`);
    expect(live.status).toBe(200);
    expect(await live.text()).toBe("");
    expect((await fetch(`${url}/v2/health/ready`)).status).toBe(200);
    service.ready = false;
    try {
      const ready = await fetch(`${url}/v2/health/ready`);
      expect(ready.status).toBe(503);
      expect(await ready.text()).toBe("");
    } finally {
      service.ready = true;
    }
  });

  it("serves server metadata", async () => {
    const response = await fetch(`${url}/v2`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      name: "coil",
      version: "0.0.0-test",
      extensions: ["binary_tensor_data", "model_repository"],
    });
  });

  it("serves model metadata, by version too, with protocol datatypes", async () => {
    const expected = {
      name: "double",
      versions: ["1", "2"],
      platform: "pytorch_python",
      inputs: [{ name: "x", datatype: "FP32", shape: [-1, 3] }],
      outputs: [
        { name: "y", datatype: "FP32", shape: [-1, 3] },
        { name: "s", datatype: "FP32", shape: [-1, 1] },
      ],
    };
    expect(await (await fetch(`${url}/v2/models/double`)).json()).toEqual(expected);
    expect(await (await fetch(`${url}/v2/models/double/versions/1`)).json()).toEqual(expected);
    const bf16 = (await (await fetch(`${url}/v2/models/identity_BF16`)).json()) as any;
    expect(bf16.inputs).toEqual([{ name: "x", datatype: "BF16", shape: [-1, -1] }]);
  });

  it("answers 404 for unknown models, versions and routes", async () => {
    await expectError(await fetch(`${url}/v2/models/nope`), 404, /unknown model nope/);
    await expectError(await fetch(`${url}/v2/models/double/versions/9`), 404, /no version 9/);
    await expectError(await fetch(`${url}/v2/models/nope/ready`), 404);
    await expectError(await fetch(`${url}/v2/models/double/versions/9/ready`), 404);
    await expectError(await fetch(`${url}/v2/nowhere`), 404, /no route/);
  });

  it("answers model readiness, by version too", async () => {
    expect((await fetch(`${url}/v2/models/double/ready`)).status).toBe(200);
    expect((await fetch(`${url}/v2/models/double/versions/2/ready`)).status).toBe(200);
    await service.unloadModel("slow");
    try {
      expect((await fetch(`${url}/v2/models/slow/ready`)).status).toBe(503);
    } finally {
      await service.loadModel("slow");
    }
  });

  it("serves Prometheus metrics as text", async () => {
    const response = await fetch(`${url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await response.text()).toMatch(/^coil_infer_requests_total \d+$/m);
  });
});

describe("infer, JSON", () => {
  it("runs the model on nested or flat data and returns every output", async () => {
    for (const data of [
      [
        [1, 2, 3],
        [4, 5, 6],
      ],
      [1, 2, 3, 4, 5, 6],
    ]) {
      const response = await postJson("/v2/models/double/infer", {
        id: "req-1",
        inputs: [{ name: "x", shape: [2, 3], datatype: "FP32", data }],
      });
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/application\/json/);
      expect(await response.json()).toEqual({
        model_name: "double",
        model_version: "2",
        id: "req-1",
        outputs: [
          { name: "y", datatype: "FP32", shape: [2, 3], data: [2, 4, 6, 8, 10, 12] },
          { name: "s", datatype: "FP32", shape: [2, 1], data: [6, 15] },
        ],
      });
    }
  });

  it("returns only the outputs asked for, on a given version", async () => {
    const response = await postJson("/v2/models/double/versions/1/infer", {
      inputs: [{ name: "x", shape: [1, 3], datatype: "FP32", data: [1, 1, 1] }],
      outputs: [{ name: "s" }],
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as any;
    expect(body.outputs).toEqual([{ name: "s", datatype: "FP32", shape: [1, 1], data: [3] }]);
    expect(body).not.toHaveProperty("id");
  });

  it.each(DTYPES)("round-trips %s", async (datatype, dtype, values) => {
    const response = await postJson(`/v2/models/identity_${datatype}/infer`, {
      inputs: [{ name: "x", shape: [2, 2], datatype, data: values }],
    });
    expect(response.status).toBe(200);
    const text = await response.text();
    const body = JSON.parse(text);
    expect(body.outputs[0]).toMatchObject({ name: "y", datatype, shape: [2, 2] });
    if (dtype === "int64") {
      // Every digit survives: the JSON numbers are written from the bigints.
      expect(text).toContain('"data":[-9223372036854775808,9223372036854775807,5,-6]');
    } else if (dtype === "uint64") {
      expect(text).toContain('"data":[0,18446744073709551615,5,7]');
    } else {
      const expected = Tensor.from(dtype, [4], values as (number | boolean)[]).toArray();
      expect(body.outputs[0].data).toEqual(expected);
    }
  });

  it("refuses unknown datatypes, naming the known ones", async () => {
    await expectError(
      await postJson("/v2/models/double/infer", { inputs: [{ name: "x", shape: [1], datatype: "FP128", data: [1] }] }),
      400,
      /unknown datatype "FP128"; one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, .*BYTES/,
    );
  });

  it("carries BYTES tensors as strings, nested or flat, and returns str outputs as BYTES", async () => {
    const words = ["héllo", "", "wörld 🐍"];
    const response = await postJson("/v2/models/upper/infer", { inputs: [{ name: "x", shape: [3], datatype: "BYTES", data: words }] });
    expect(response.status).toBe(200);
    expect(((await response.json()) as any).outputs).toEqual([
      { name: "y", datatype: "BYTES", shape: [3], data: words.map((w) => w.toUpperCase()) },
      { name: "n", datatype: "INT64", shape: [3], data: words.map((w) => Buffer.byteLength(w)) },
    ]);
    const nested = await postJson("/v2/models/identity_BYTES/infer", {
      inputs: [{ name: "x", shape: [2, 2], datatype: "BYTES", data: [["a", "b"], ["c", "d"]] }],
    });
    expect(((await nested.json()) as any).outputs[0]).toEqual({ name: "y", datatype: "BYTES", shape: [2, 2], data: ["a", "b", "c", "d"] });
    const empty = await postJson("/v2/models/identity_BYTES/infer", { inputs: [{ name: "x", shape: [1, 0], datatype: "BYTES", data: [[]] }] });
    expect(((await empty.json()) as any).outputs[0]).toEqual({ name: "y", datatype: "BYTES", shape: [1, 0], data: [] });
  });

  it("answers 400 for BYTES elements that are not strings, and for non-UTF-8 bytes asked for as JSON", async () => {
    await expectError(
      await postJson("/v2/models/upper/infer", { inputs: [{ name: "x", shape: [2], datatype: "BYTES", data: ["a", 3] }] }),
      400,
      /element 1 must be a string/,
    );
    await expectError(
      await postJson("/v2/models/upper/infer", { inputs: [{ name: "x", shape: [3], datatype: "BYTES", data: ["a", "b"] }] }),
      400,
      /shape \[3\] has 3 elements but data has 2/,
    );
    const latin1 = new BytesTensor([1, 1], [Uint8Array.from([0xff, 0xfe])]);
    const response = await postBinary(
      "/v2/models/identity_BYTES/infer",
      { inputs: [{ name: "x", shape: [1, 1], datatype: "BYTES", parameters: { binary_data_size: 6 } }] },
      [encodeBytesElements(latin1)],
    );
    await expectError(response, 400, /not UTF-8 text; request it with parameters.binary_data_output: true/);
  });

  it("answers 400 for malformed JSON and bodies that are not requests", async () => {
    await expectError(await postJson("/v2/models/double/infer", '{"inputs": [}'), 400, /malformed JSON/);
    await expectError(await postJson("/v2/models/double/infer", ""), 400);
    await expectError(await postJson("/v2/models/double/infer", "[1,2]"), 400, /JSON object/);
    await expectError(await postJson("/v2/models/double/infer", { inputs: 3 }), 400, /inputs must be an array/);
    await expectError(
      await postJson("/v2/models/double/infer", { inputs: [], surprise: 1 }),
      400,
      /unknown field "surprise"/,
    );
    await expectError(
      await postJson("/v2/models/double/infer", {
        inputs: [{ name: "x", shape: [1, 3], datatype: "FP32", data: [1, 2, 3], extra: true }],
      }),
      400,
      /unknown field "extra"/,
    );
    await expectError(await postJson("/v2/models/double/infer", { inputs: [], outputs: [{ nom: "y" }] }), 400);
  });

  it("answers 400 for wrong shapes, element types and dtypes", async () => {
    const infer = (input: object) => postJson("/v2/models/double/infer", { inputs: [{ name: "x", ...input }] });
    await expectError(await infer({ shape: [2, 3], datatype: "FP32", data: [1, 2, 3] }), 400, /has 6 elements but data has 3/);
    await expectError(await infer({ shape: [1, 3], datatype: "FP32", data: [1, 2, 3, 4] }), 400, /data has more/);
    await expectError(await infer({ shape: [-1, 3], datatype: "FP32", data: [1, 2, 3] }), 400, /non-negative integers/);
    await expectError(await infer({ shape: [1.5, 3], datatype: "FP32", data: [1, 2, 3] }), 400, /non-negative integers/);
    await expectError(await infer({ shape: [1, 3], datatype: "FP32", data: [1, "2", 3] }), 400, /element 1 must be a number/);
    await expectError(await infer({ shape: [1, 3], datatype: "FP32" }), 400, /neither data nor/);
    // Valid tensors the model's signature refuses (the service's SHAPE_MISMATCH / UNSUPPORTED_DTYPE).
    await expectError(await infer({ shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] }), 400, /must have shape/);
    await expectError(await infer({ shape: [1, 3], datatype: "INT32", data: [1, 2, 3] }), 400, /must be float32/);
    // Element types per datatype.
    const typed = (datatype: string, data: unknown[]) =>
      postJson(`/v2/models/identity_${datatype}/infer`, { inputs: [{ name: "x", shape: [1, data.length], datatype, data }] });
    await expectError(await typed("BOOL", [1]), 400, /must be a boolean/);
    await expectError(await typed("INT8", [128]), 400, /integer in -128\.\.127/);
    await expectError(await typed("UINT8", [-1]), 400, /integer in 0\.\.255/);
    await expectError(await typed("INT32", [1.5]), 400, /integer/);
    await expectError(await typed("INT64", ["12x"]), 400, /INT64|integer/);
    await expectError(await typed("INT64", ["9223372036854775808"]), 400, /range/);
  });

  it("answers 400 for ragged nested data even when its count matches the shape, and still serves", async () => {
    const infer = (datatype: string, shape: number[], data: unknown[]) =>
      postJson(`/v2/models/identity_${datatype}/infer`, { inputs: [{ name: "x", shape, datatype, data }] });
    // Numbers (read in native code) and other elements (read in JavaScript) alike.
    for (const data of [[[1, 2, 3], [4]], [1, [2, 3], 4], [[1, 2], 3, 4], [[], [1, 2, 3, 4]], [[[1, 2]], [[3], [4]]]]) {
      await expectError(await infer("FP32", [2, 2], data), 400, /input "x": data is a ragged nested array/);
    }
    await expectError(await infer("BOOL", [2, 2], [[true, false, true], [false]]), 400, /ragged/);
    await expectError(await infer("BOOL", [2, 2], [[], [true, false, true, false]]), 400, /ragged/);
    await expectError(await infer("BYTES", [2, 2], [["a"], ["b", "c", "d"]]), 400, /ragged/);
    // Regular nesting of another shape with the same count is read row-major, as Triton does.
    const regular = await infer("FP32", [2, 2], [[[1], [2]], [[3], [4]]]);
    expect(regular.status).toBe(200);
    expect(((await regular.json()) as any).outputs[0].data).toEqual([1, 2, 3, 4]);
    const bools = await infer("BOOL", [2, 2], [[true, false], [false, true]]);
    expect(((await bools.json()) as any).outputs[0].data).toEqual([true, false, false, true]);
  });

  it("answers 404 for an unknown model and an unknown version", async () => {
    const body = { inputs: [{ name: "x", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] }] };
    await expectError(await postJson("/v2/models/nope/infer", body), 404, /unknown model/);
    await expectError(await postJson("/v2/models/double/versions/7/infer", body), 404, /no version 7/);
  });

  it("answers 500 with the Python message when the model raises", async () => {
    const response = await postJson("/v2/models/fail/infer", {
      inputs: [{ name: "x", shape: [2], datatype: "FP32", data: [1, 2] }],
    });
    await expectError(response, 500, /the model refuses this input: boom/);
  });

  it("cancels the model call when the client goes away, and the interpreter serves again", async () => {
    // One interpreter: were the spinning call not interrupted, the next request would never run.
    const gone = postJson("/v2/models/spin/infer", { inputs: [{ name: "x", shape: [1], datatype: "FP32", data: [1] }] }, {}, AbortSignal.timeout(200));
    await expect(gone).rejects.toThrow();
    const response = await postJson("/v2/models/double/infer", { inputs: [{ name: "x", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] }] });
    expect(response.status).toBe(200);
  });

  it("answers 503 for a model that is not loaded", async () => {
    await service.unloadModel("slow");
    try {
      const response = await postJson("/v2/models/slow/infer", {
        inputs: [{ name: "x", shape: [1], datatype: "FP32", data: [1] }],
      });
      await expectError(response, 503, /not ready/);
    } finally {
      await service.loadModel("slow");
    }
  });

  it("answers 413 for bodies over bodyLimit and inputs over maxElements", async () => {
    const big = { inputs: [{ name: "x", shape: [1, 30000], datatype: "FP32", data: new Array(30000).fill(1.25) }] };
    await expectError(await postJson("/v2/models/double/infer", big), 413);
    const many = { inputs: [{ name: "x", shape: [1000, 1000, 1000], datatype: "FP32", data: [] }] };
    await expectError(await postJson("/v2/models/double/infer", many), 413, /more than 1000 elements/);
    const binary = await postBinary(
      "/v2/models/double/infer",
      { inputs: [{ name: "x", shape: [1, 30000], datatype: "FP32", parameters: { binary_data_size: 120000 } }] },
      [new Uint8Array(120000)],
    );
    await expectError(binary, 413);
  });
});

describe("infer, binary tensor data", () => {
  it.each(DTYPES)("round-trips %s as binary in and out", async (datatype, dtype, values) => {
    const tensor = Tensor.from(
      dtype,
      [2, 2],
      values.map((v) => (typeof v === "string" ? BigInt(v) : v)),
    );
    const response = await postBinary(
      `/v2/models/identity_${datatype}/infer`,
      {
        inputs: [{ name: "x", shape: [2, 2], datatype, parameters: { binary_data_size: tensor.byteLength } }],
        parameters: { binary_data_output: true },
      },
      [bytesOf(tensor)],
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/octet-stream");
    const { json, blobs } = await readBinary(response);
    expect(json.outputs).toEqual([
      { name: "y", datatype, shape: [2, 2], parameters: { binary_data_size: tensor.byteLength } },
    ]);
    expect(blobs.get("y")!.equals(bytesOf(tensor))).toBe(true);
  });

  it("takes binary inputs and answers in JSON unless binary output is asked for, per output too", async () => {
    const x = Tensor.from("float32", [1, 3], [1, 2, 3]);
    const header = (extra: object) => ({
      inputs: [{ name: "x", shape: [1, 3], datatype: "FP32", parameters: { binary_data_size: 12 } }],
      ...extra,
    });
    const plain = await postBinary("/v2/models/double/infer", header({}), [bytesOf(x)]);
    expect(plain.status).toBe(200);
    expect(plain.headers.get(HEADER_LENGTH_HEADER)).toBeNull();
    expect(((await plain.json()) as any).outputs[1]).toEqual({ name: "s", datatype: "FP32", shape: [1, 1], data: [6] });

    const mixed = await postBinary(
      "/v2/models/double/infer",
      header({
        parameters: { binary_data_output: true },
        outputs: [{ name: "y" }, { name: "s", parameters: { binary_data_output: false } }],
      }),
      [bytesOf(x)],
    );
    expect(mixed.status).toBe(200);
    const { json, blobs } = await readBinary(mixed);
    expect(json.outputs).toEqual([
      { name: "y", datatype: "FP32", shape: [1, 3], parameters: { binary_data_size: 12 } },
      { name: "s", datatype: "FP32", shape: [1, 1], data: [6] },
    ]);
    const y = blobs.get("y")!;
    expect(Array.from(new Float32Array(y.buffer.slice(y.byteOffset, y.byteOffset + 12)))).toEqual([2, 4, 6]);
  });

  it("accepts the header-length form whatever the content-type, JSON and binary inputs mixed", async () => {
    service.add({
      name: "double_json",
      method: "double",
      inputs: [{ name: "x", dtype: "float32", shape: [-1, 3] }],
      outputs: [{ name: "y", dtype: "float32", shape: [-1, 3] }],
    });
    const x = Tensor.from("float32", [1, 3], [0.5, 1, 1.5]);
    const { body } = binaryBody(
      { inputs: [{ name: "x", shape: [1, 3], datatype: "FP32", parameters: { binary_data_size: 12 } }] },
      [bytesOf(x)],
    );
    const header = String(body.length - 12);
    for (const contentType of ["application/json", "text/plain", "application/x-whatever"]) {
      const response = await fetch(`${url}/v2/models/double_json/infer`, {
        method: "POST",
        headers: { "content-type": contentType, "Inference-Header-Content-Length": header },
        body,
      });
      expect(response.status).toBe(200);
      expect(((await response.json()) as any).outputs[0].data).toEqual([1, 2, 3]);
    }
  });

  it("round-trips BYTES as binary in and out: 4-byte lengths, any bytes", async () => {
    const elements = [Uint8Array.from([0, 255, 1]), new Uint8Array(0), Buffer.from("text"), Uint8Array.from([0xc3])];
    const blob = encodeBytesElements(new BytesTensor([2, 2], elements));
    expect(blob.length).toBe(4 * 4 + 3 + 0 + 4 + 1);
    const response = await postBinary(
      "/v2/models/identity_BYTES/infer",
      {
        inputs: [{ name: "x", shape: [2, 2], datatype: "BYTES", parameters: { binary_data_size: blob.length } }],
        parameters: { binary_data_output: true },
      },
      [blob],
    );
    expect(response.status).toBe(200);
    const { json, blobs } = await readBinary(response);
    expect(json.outputs[0]).toMatchObject({ name: "y", datatype: "BYTES", shape: [2, 2], parameters: { binary_data_size: blob.length } });
    expect(blobs.get("y")).toEqual(blob);
  });

  it("answers 400 when BYTES lengths lie", async () => {
    const lie = (blob: Buffer, shape = [2]) =>
      postBinary(
        "/v2/models/upper/infer",
        { inputs: [{ name: "x", shape, datatype: "BYTES", parameters: { binary_data_size: blob.length } }] },
        [blob],
      );
    const length = (n: number) => Buffer.from(new Uint32Array([n]).buffer);
    await expectError(await lie(Buffer.concat([length(1), Buffer.from("a"), length(9), Buffer.from("b")])), 400, /element 1 claims 9 bytes but only 1 remain/);
    await expectError(await lie(Buffer.concat([length(1), Buffer.from("a"), length(1), Buffer.from("bc")])), 400, /1 bytes left over after 2 BYTES elements/);
    await expectError(await lie(Buffer.concat([length(4), Buffer.from("abcd"), length(0)]), [3]), 400, /ends before element 2 of 3/);
    await expectError(await lie(Buffer.from([1, 0, 0])), 400, /too few for 2 BYTES elements/);
  });

  it("answers 400 when the binary sizes lie", async () => {
    const x = bytesOf(Tensor.from("float32", [1, 3], [1, 2, 3]));
    const input = (size: number) => ({
      inputs: [{ name: "x", shape: [1, 3], datatype: "FP32", parameters: { binary_data_size: size } }],
    });
    // binary_data_size disagrees with the shape.
    await expectError(await postBinary("/v2/models/double/infer", input(8), [x.subarray(0, 8)]), 400, /needs 12/);
    // More bytes than the inputs declare, and fewer.
    await expectError(await postBinary("/v2/models/double/infer", input(12), [x, x]), 400, /add up to 12 bytes but the body carries 24/);
    await expectError(await postBinary("/v2/models/double/infer", input(12), [x.subarray(0, 4)]), 400, /carries 4/);
    // A header length past the body, one that is not a number, one that cuts the JSON short.
    const { body } = binaryBody(input(12), [x]);
    const send = (length: string) =>
      fetch(`${url}/v2/models/double/infer`, {
        method: "POST",
        headers: { "content-type": "application/octet-stream", "Inference-Header-Content-Length": length },
        body,
      });
    await expectError(await send(String(body.length + 1)), 400, /body has only/);
    await expectError(await send("twelve"), 400, /non-negative integer/);
    await expectError(await send("10"), 400, /malformed JSON/);
    // binary_data_size without the header; BOOL bytes that are not 0 or 1.
    await expectError(await postJson("/v2/models/double/infer", input(12)), 400, /no Inference-Header-Content-Length/);
    const bools = await postBinary(
      "/v2/models/identity_BOOL/infer",
      { inputs: [{ name: "x", shape: [1, 2], datatype: "BOOL", parameters: { binary_data_size: 2 } }] },
      [new Uint8Array([1, 7])],
    );
    await expectError(bools, 400, /BOOL bytes must be 0 or 1/);
  });
});

describe("model repository extension", () => {
  it("lists, unloads and loads models", async () => {
    const index = await postJson("/v2/repository/index", {});
    expect(index.status).toBe(200);
    const entries = (await index.json()) as { name: string; state: string }[];
    expect(entries).toContainEqual({ name: "double", version: "2", state: "READY" });

    expect((await fetch(`${url}/v2/repository/models/slow/unload`, { method: "POST" })).status).toBe(200);
    const ready = (await (await postJson("/v2/repository/index", { ready: true })).json()) as { name: string }[];
    expect(ready.map((e) => e.name)).not.toContain("slow");
    expect(ready.map((e) => e.name)).toContain("double");
    expect((await fetch(`${url}/v2/models/slow/ready`)).status).toBe(503);

    expect((await fetch(`${url}/v2/repository/models/slow/load`, { method: "POST" })).status).toBe(200);
    expect((await fetch(`${url}/v2/models/slow/ready`)).status).toBe(200);
    await expectError(await fetch(`${url}/v2/repository/models/nope/load`, { method: "POST" }), 404);
    await expectError(await postJson("/v2/repository/index", "{oops"), 400, /malformed JSON/);
  });
});

describe("with curl", () => {
  it("answers health and metadata", async () => {
    const { stdout } = await run("curl", ["-s", "-w", "\n%{http_code}", `${url}/v2/models/double`]);
    const [body, status] = stdout.split("\n");
    expect(status).toBe("200");
    expect(JSON.parse(body!).name).toBe("double");
    const ready = await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", `${url}/v2/health/ready`]);
    expect(ready.stdout).toBe("200");
  });

  it("infers with a JSON body and with a binary body from a file", async () => {
    const json = await run("curl", [
      "-s",
      "-H",
      "content-type: application/json",
      "-d",
      '{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}',
      `${url}/v2/models/double/infer`,
    ]);
    expect(JSON.parse(json.stdout).outputs[0].data).toEqual([2, 4, 6]);

    const dir = await mkdtemp(join(tmpdir(), "coil-http-"));
    try {
      const { body, headers } = binaryBody(
        {
          inputs: [{ name: "x", shape: [1, 3], datatype: "FP32", parameters: { binary_data_size: 12 } }],
          outputs: [{ name: "y", parameters: { binary_data_output: true } }],
        },
        [bytesOf(Tensor.from("float32", [1, 3], [1, 2, 3]))],
      );
      await writeFile(join(dir, "request.bin"), body);
      const { stdout } = await run(
        "curl",
        [
          "-s",
          "-D",
          join(dir, "headers.txt"),
          "-o",
          join(dir, "response.bin"),
          "-w",
          "%{http_code}",
          "-H",
          "content-type: application/octet-stream",
          "-H",
          `Inference-Header-Content-Length: ${headers["Inference-Header-Content-Length"]}`,
          "--data-binary",
          `@${join(dir, "request.bin")}`,
          `${url}/v2/models/double/infer`,
        ],
        { encoding: "utf8" },
      );
      expect(stdout).toBe("200");
      const { readFile } = await import("node:fs/promises");
      const responseHeaders = await readFile(join(dir, "headers.txt"), "utf8");
      const n = Number(/inference-header-content-length: (\d+)/i.exec(responseHeaders)![1]);
      const response = await readFile(join(dir, "response.bin"));
      expect(JSON.parse(response.subarray(0, n).toString()).outputs).toEqual([
        { name: "y", datatype: "FP32", shape: [1, 3], parameters: { binary_data_size: 12 } },
      ]);
      const y = response.subarray(n);
      expect(Array.from(new Float32Array(y.buffer.slice(y.byteOffset, y.byteOffset + y.length)))).toEqual([2, 4, 6]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("lifecycle", () => {
  it("finishes requests in flight at stop(), then stops accepting", async () => {
    const own = new HttpAdapter(service, { host: "127.0.0.1", port: 0 });
    await own.start();
    const ownUrl = own.url!;
    const calls = service.inferCalls;
    const pending = fetch(`${ownUrl}/v2/models/slow/infer`, {
      method: "POST",
      body: JSON.stringify({ inputs: [{ name: "x", shape: [2], datatype: "FP32", data: [7, 8] }] }),
    });
    while (service.inferCalls === calls) await new Promise((r) => setTimeout(r, 10));
    await own.stop();
    const response = await pending;
    expect(response.status).toBe(200);
    expect(((await response.json()) as any).outputs[0].data).toEqual([7, 8]);
    expect(own.url).toBeUndefined();
    await expect(fetch(`${ownUrl}/v2/health/live`)).rejects.toThrow();
    await own.stop(); // idempotent
  });

  it("registers in a container under TOKENS.Adapter and serves the container's InferenceService", async () => {
    const container = registerHttpAdapter(createCoilContainer(), { host: "127.0.0.1", port: 0 });
    container.register(TOKENS.InferenceService, { useValue: service });
    const adapters = container.resolveAll(TOKENS.Adapter);
    expect(adapters).toHaveLength(1);
    const own = adapters[0] as HttpAdapter;
    expect(own).toBeInstanceOf(HttpAdapter);
    expect(own.name).toBe("http");
    expect(container.resolve(TOKENS.Adapter)).toBe(own);
    await own.start();
    try {
      expect((await fetch(`${own.url}/v2/models/double/ready`)).status).toBe(200);
    } finally {
      await own.stop();
    }
  });

  it("serves the routes other plugins register under HTTP_ROUTES, behind the same access control", async () => {
    const container = registerHttpAdapter(createCoilContainer(), { host: "127.0.0.1", port: 0 });
    container.register(TOKENS.InferenceService, { useValue: service });
    // A policy that wants a token for metadata, none for health.
    container.register(ACCESS_CONTROL, {
      useValue: {
        authorize: ({ kind, authorization }) => {
          if (kind !== "health" && authorization !== "Bearer t") throw new CoilError("UNAUTHENTICATED", "token needed");
        },
      },
    });
    container.register(HTTP_ROUTES, { useValue: async (app) => void app.get("/extra/models", async () => service.modelIndex().map((m) => m.name)) });
    container.register(HTTP_ROUTES, {
      useValue: async (app) => void app.get("/extra/open", { config: { access: "health" } }, async () => ({ open: true })),
    });
    const own = container.resolve(TOKENS.Adapter) as HttpAdapter;
    await own.start();
    try {
      expect((await fetch(`${own.url}/extra/models`)).status).toBe(401);
      const models = await fetch(`${own.url}/extra/models`, { headers: { authorization: "Bearer t" } });
      expect(await models.json()).toContain("double");
      expect(await (await fetch(`${own.url}/extra/open`)).json()).toEqual({ open: true });
    } finally {
      await own.stop();
    }
  });

  it("refuses bad options with INVALID_ARGUMENT", () => {
    for (const options of [{ port: 70000 }, { bodyLimit: 0 }, { maxElements: 1.5 }, { host: "" }]) {
      expect(() => new HttpAdapter(service, options)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
      expect(() => registerHttpAdapter(createCoilContainer(), options)).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT" }),
      );
    }
  });
});
