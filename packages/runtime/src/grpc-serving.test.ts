// End to end: a real ServingRuntime (CPU pool, packed archives) behind the adapter,
// called by real gRPC clients — @grpc/grpc-js in Node, and grpcio in Python.
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { CpuBackend } from "@coil/backend-cpu";
import { BytesTensor, encodeBytesElements, InterpreterPool } from "@coil/core";

import { credentials, status, type Client, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

import { GrpcAdapter, inferenceService, PROTO_PATH, type ModelInferRequest, type ModelInferResponse } from "@coil/adapter-grpc";

import { packModel } from "./pack.js";
import { ServingRuntime } from "./serving-runtime.js";

const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), "../test/fixtures/grpc");
const PYTHON = inject("testPython");
// The grpcio client stays on Debian's Python: grpcio is not in the venv stack (docs/python.md).
const GRPC_CLIENT_PYTHON = "/usr/bin/python3";

let repo: string;
let runtime: ServingRuntime;
let adapter: GrpcAdapter;
let client: Client;

type Call = (request: object, options?: { deadline?: number }) => Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A client method as a promise. */
function rpc(method: string): Call {
  const fn = (client as unknown as Record<string, Function>)[method]!.bind(client);
  return (request, options = {}) =>
    new Promise((resolve, reject) => fn(request, options, (error: ServiceError | null, response: unknown) => (error ? reject(error) : resolve(response))));
}

const infer = (request: Partial<ModelInferRequest> & { parameters?: object }) => rpc("ModelInfer")(request) as Promise<ModelInferResponse>;

beforeAll(async () => {
  repo = mkdtempSync(join(tmpdir(), "coil-grpc-repo-"));
  await packModel({ target: `${FIXTURES}/models.py:identity`, output: join(repo, "identity.coil"), python: PYTHON });
  await packModel({
    target: `${FIXTURES}/models.py:pair`,
    output: join(repo, "pair.coil"),
    python: PYTHON,
    inputs: [
      { name: "a", dtype: "float32", shape: [-1, 2] },
      { name: "b", dtype: "int64", shape: [-1, 2] },
    ],
    outputs: [
      { name: "doubled", dtype: "float32", shape: [-1, 2] },
      { name: "next", dtype: "int64", shape: [-1, 2] },
    ],
  });
  await packModel({
    target: `${FIXTURES}/models.py:tokens`,
    output: join(repo, "tokens.coil"),
    python: PYTHON,
    inputs: [{ name: "text", dtype: "bytes", shape: [-1] }],
    outputs: [
      { name: "upper", dtype: "bytes", shape: [-1] },
      { name: "length", dtype: "int64", shape: [-1] },
    ],
  });
  const pool = await InterpreterPool.create({ size: 2, python: PYTHON, backend: new CpuBackend() });
  runtime = new ServingRuntime({ pool, repository: repo, serverName: "coil-test", serverVersion: "1.2.3" });
  await runtime.start();
  adapter = new GrpcAdapter(runtime, { port: 0, maxMessageBytes: 1024 * 1024 });
  await adapter.start();
  const Client = inferenceService();
  client = new Client(adapter.address!, credentials.createInsecure());
}, 120_000);

afterAll(async () => {
  client?.close();
  await adapter?.stop();
  await runtime?.close();
  if (repo) rmSync(repo, { recursive: true, force: true });
});

const f32 = (values: number[]) => Buffer.from(new Float32Array(values).buffer);
const i64 = (values: bigint[]) => Buffer.from(new BigInt64Array(values).buffer);

describe("GrpcAdapter over a ServingRuntime", () => {
  it("answers the health and metadata RPCs", async () => {
    expect(await rpc("ServerLive")({})).toEqual({ live: true });
    expect(await rpc("ServerReady")({})).toEqual({ ready: true });
    expect(await rpc("ModelReady")({ name: "pair" })).toEqual({ ready: true });
    expect(await rpc("ModelReady")({ name: "pair", version: "1" })).toEqual({ ready: true });
    expect(await rpc("ServerMetadata")({})).toEqual({ name: "coil-test", version: "1.2.3", extensions: ["binary_tensor_data", "model_repository"] });
    expect(await rpc("ModelMetadata")({ name: "pair" })).toEqual({
      name: "pair",
      versions: ["1"],
      platform: "coil",
      inputs: [
        { name: "a", datatype: "FP32", shape: ["-1", "2"] },
        { name: "b", datatype: "INT64", shape: ["-1", "2"] },
      ],
      outputs: [
        { name: "doubled", datatype: "FP32", shape: ["-1", "2"] },
        { name: "next", datatype: "INT64", shape: ["-1", "2"] },
      ],
    });
  });

  it("infers from raw_input_contents, in input order, and answers raw_output_contents", async () => {
    const response = await infer({
      model_name: "pair",
      id: "r1",
      // b before a: raw contents follow `inputs`, the runtime orders by signature.
      inputs: [
        { name: "b", datatype: "INT64", shape: ["1", "2"] },
        { name: "a", datatype: "FP32", shape: ["1", "2"] },
      ],
      raw_input_contents: [i64([41n, -(2n ** 40n)]), f32([1.5, -3])],
    });
    expect(response).toMatchObject({ model_name: "pair", model_version: "1", id: "r1" });
    expect(response.outputs).toEqual([
      { name: "doubled", datatype: "FP32", shape: ["1", "2"], parameters: {}, contents: null },
      { name: "next", datatype: "INT64", shape: ["1", "2"], parameters: {}, contents: null },
    ]);
    const [doubled, next] = response.raw_output_contents;
    expect(Array.from(new Float32Array(new Uint8Array(doubled!).buffer))).toEqual([3, -6]);
    expect(Array.from(new BigInt64Array(new Uint8Array(next!).buffer))).toEqual([42n, -(2n ** 40n) + 1n]);
  });

  it("infers from typed contents, answers typed contents when asked, and returns only requested outputs", async () => {
    const request = {
      model_name: "pair",
      inputs: [
        { name: "a", datatype: "FP32", shape: ["2", "2"], contents: { fp32_contents: [1, 2, 3, 4] } },
        { name: "b", datatype: "INT64", shape: ["2", "2"], contents: { int64_contents: ["1", "2", "-3", "9007199254740993"] } },
      ],
      parameters: { binary_data_output: { bool_param: false } },
    };
    const response = await infer(request);
    expect(response.raw_output_contents).toEqual([]);
    expect(response.outputs.map((o) => [o.name, o.contents?.fp32_contents, o.contents?.int64_contents])).toEqual([
      ["doubled", [2, 4, 6, 8], []],
      ["next", [], ["2", "3", "-2", "9007199254740994"]],
    ]);
    const only = await infer({ ...request, outputs: [{ name: "next" }] });
    expect(only.outputs.map((o) => o.name)).toEqual(["next"]);
  });

  const SAMPLES: [string, Buffer, string | undefined, unknown[]][] = [
    ["BOOL", Buffer.from([1, 0, 0, 1]), "bool_contents", [true, false, false, true]],
    ["UINT8", Buffer.from([0, 7, 128, 255]), "uint_contents", [0, 7, 128, 255]],
    ["UINT16", Buffer.from(new Uint16Array([0, 7, 32768, 65535]).buffer), "uint_contents", [0, 7, 32768, 65535]],
    ["UINT32", Buffer.from(new Uint32Array([0, 7, 2 ** 31, 2 ** 32 - 1]).buffer), "uint_contents", [0, 7, 2 ** 31, 2 ** 32 - 1]],
    ["UINT64", Buffer.from(new BigUint64Array([0n, 7n, 2n ** 63n, 2n ** 64n - 1n]).buffer), "uint64_contents", ["0", "7", "9223372036854775808", "18446744073709551615"]],
    ["INT8", Buffer.from(new Int8Array([-128, -1, 0, 127]).buffer), "int_contents", [-128, -1, 0, 127]],
    ["INT16", Buffer.from(new Int16Array([-32768, -2, 3, 32767]).buffer), "int_contents", [-32768, -2, 3, 32767]],
    ["INT32", Buffer.from(new Int32Array([-(2 ** 31), -5, 6, 2 ** 31 - 1]).buffer), "int_contents", [-(2 ** 31), -5, 6, 2 ** 31 - 1]],
    ["INT64", i64([-(2n ** 63n), -1n, 0n, 2n ** 63n - 1n]), "int64_contents", ["-9223372036854775808", "-1", "0", "9223372036854775807"]],
    ["FP16", Buffer.from(new Uint16Array([0x3c00, 0xc000, 0x0000, 0x7c00]).buffer), undefined, []], // 1, -2, 0, inf
    ["BF16", Buffer.from(new Uint16Array([0x3f80, 0xc000, 0x4049, 0xff80]).buffer), undefined, []], // 1, -2, ~3.14, -inf
    ["FP32", f32([1.5, -2.25, 0, 2 ** 100]), "fp32_contents", [1.5, -2.25, 0, 2 ** 100]],
    ["FP64", Buffer.from(new Float64Array([Math.PI, -1e300, 0, 5e-324]).buffer), "fp64_contents", [Math.PI, -1e300, 0, 5e-324]],
  ];

  it.each(SAMPLES)("round-trips %s through an identity model, raw and typed", async (datatype, bytes, field, values) => {
    const input = { name: "x", datatype, shape: ["2", "2"] };
    const raw = await infer({ model_name: "identity", inputs: [input], raw_input_contents: [bytes] });
    expect(raw.outputs).toMatchObject([{ datatype, shape: ["2", "2"] }]);
    expect(Buffer.from(raw.raw_output_contents[0]!)).toEqual(bytes);
    if (!field) {
      // FP16/BF16 have no typed field: refused as contents, and always answered raw.
      await expect(infer({ model_name: "identity", inputs: [{ ...input, contents: { fp32_contents: [1, 2, 3, 4] } }] })).rejects.toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: expect.stringContaining("raw_input_contents"),
      });
      const typedAsked = await infer({ model_name: "identity", inputs: [input], raw_input_contents: [bytes], parameters: { binary_data_output: { bool_param: false } } });
      expect(Buffer.from(typedAsked.raw_output_contents[0]!)).toEqual(bytes);
      return;
    }
    const typed = await infer({
      model_name: "identity",
      inputs: [{ ...input, contents: { [field]: values } }],
      parameters: { binary_data_output: { bool_param: false } },
    });
    expect(typed.raw_output_contents).toEqual([]);
    expect((typed.outputs[0]!.contents as Record<string, unknown>)[field]).toEqual(values);
    // Typed in, raw out (the default) gives the same bytes as raw in.
    const mixed = await infer({ model_name: "identity", inputs: [{ ...input, contents: { [field]: values } }] });
    expect(Buffer.from(mixed.raw_output_contents[0]!)).toEqual(bytes);
  });

  it("carries BYTES tensors in bytes_contents and in raw contents (4-byte lengths)", async () => {
    const typed = await infer({
      model_name: "tokens",
      inputs: [{ name: "text", datatype: "BYTES", shape: ["3"], contents: { bytes_contents: ["héllo", "", "a b"].map((t) => Buffer.from(t)) } }],
      parameters: { binary_data_output: { bool_param: false } },
    });
    expect(typed.raw_output_contents).toEqual([]);
    expect(typed.outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([
      ["upper", "BYTES", ["3"]],
      ["length", "INT64", ["3"]],
    ]);
    expect(typed.outputs[0]!.contents!.bytes_contents!.map((b) => Buffer.from(b).toString())).toEqual(["HÉLLO", "", "A B"]);
    expect(typed.outputs[1]!.contents!.int64_contents).toEqual(["6", "0", "3"]);

    const raw = await infer({
      model_name: "tokens",
      inputs: [{ name: "text", datatype: "BYTES", shape: ["2"] }],
      raw_input_contents: [encodeBytesElements(BytesTensor.from([2], ["x", "yz"]))],
    });
    expect(Buffer.from(raw.raw_output_contents[0]!)).toEqual(encodeBytesElements(BytesTensor.from([2], ["X", "YZ"])));
    await expect(
      infer({ model_name: "tokens", inputs: [{ name: "text", datatype: "BYTES", shape: ["2"] }], raw_input_contents: [Buffer.from([1, 0, 0, 0, 65])] }),
    ).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringMatching(/ends before element 1 of 2/) });
  });

  it("maps errors to gRPC statuses and keeps answering", async () => {
    const a = { name: "a", datatype: "FP32", shape: ["1", "2"] };
    const b = { name: "b", datatype: "INT64", shape: ["1", "2"] };
    const good = { model_name: "pair", inputs: [a, b], raw_input_contents: [f32([1, 2]), i64([1n, 2n])] };
    const cases: [string, object, status, string][] = [
      ["unknown model", { ...good, model_name: "nope" }, status.NOT_FOUND, "nope"],
      ["unknown version", { ...good, model_version: "9" }, status.NOT_FOUND, "9"],
      ["no model name", { ...good, model_name: "" }, status.INVALID_ARGUMENT, "model_name"],
      ["bad shape", { ...good, inputs: [{ ...a, shape: ["1", "3"] }, b], raw_input_contents: [f32([1, 2, 3]), i64([1n, 2n])] }, status.INVALID_ARGUMENT, "shape"],
      ["wrong dtype", { ...good, inputs: [{ ...a, datatype: "FP64" }, b], raw_input_contents: [Buffer.alloc(16), i64([1n, 2n])] }, status.INVALID_ARGUMENT, "float32"],
      ["raw size lies", { ...good, raw_input_contents: [f32([1, 2, 3]), i64([1n, 2n])] }, status.INVALID_ARGUMENT, "needs 8"],
      ["raw count lies", { ...good, raw_input_contents: [f32([1, 2])] }, status.INVALID_ARGUMENT, "raw_input_contents"],
      ["typed count lies", { model_name: "pair", inputs: [{ ...a, contents: { fp32_contents: [1] } }, { ...b, contents: { int64_contents: ["1", "2"] } }] }, status.INVALID_ARGUMENT, "needs 2"],
      ["typed in wrong field", { model_name: "pair", inputs: [{ ...a, contents: { int_contents: [1, 2] } }, { ...b, contents: { int64_contents: ["1", "2"] } }] }, status.INVALID_ARGUMENT, "fp32_contents"],
      ["UINT16 out of range", { model_name: "identity", inputs: [{ name: "x", datatype: "UINT16", shape: ["1"], contents: { uint_contents: [70000] } }] }, status.INVALID_ARGUMENT, "out of range"],
      ["int out of range", { model_name: "identity", inputs: [{ name: "x", datatype: "INT8", shape: ["1"], contents: { int_contents: [300] } }] }, status.INVALID_ARGUMENT, "out of range"],
      ["negative dim", { ...good, inputs: [{ ...a, shape: ["-1", "2"] }, b] }, status.INVALID_ARGUMENT, "non-negative"],
      ["huge shape", { ...good, inputs: [{ ...a, shape: ["100000000", "100000000"] }, b] }, status.INVALID_ARGUMENT, "larger than"],
      ["unknown datatype", { model_name: "identity", inputs: [{ name: "x", datatype: "FP8", shape: ["1"] }], raw_input_contents: [Buffer.alloc(1)] }, status.INVALID_ARGUMENT, "unknown datatype"],
      ["raw and typed both", { model_name: "identity", inputs: [{ name: "x", datatype: "UINT8", shape: ["1"], contents: { uint_contents: [1] } }], raw_input_contents: [Buffer.alloc(1)] }, status.INVALID_ARGUMENT, "cannot both"],
      ["unknown input", { ...good, inputs: [a, { ...b, name: "c" }] }, status.INVALID_ARGUMENT, "c"],
      ["unknown output", { ...good, outputs: [{ name: "w" }] }, status.INVALID_ARGUMENT, "w"],
      ["over the message limit", { ...good, raw_input_contents: [Buffer.alloc(2 * 1024 * 1024), i64([1n, 2n])] }, status.RESOURCE_EXHAUSTED, ""],
    ];
    for (const [what, request, code, text] of cases) {
      const error = await infer(request).then(
        () => undefined,
        (e: ServiceError) => e,
      );
      expect(error, what).toBeDefined();
      expect({ what, code: error!.code }).toEqual({ what, code });
      expect(error!.details, what).toContain(text);
      expect(await rpc("ServerLive")({}), what).toEqual({ live: true });
    }
    await expect(rpc("ModelReady")({ name: "nope" })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(rpc("ModelMetadata")({ name: "nope" })).rejects.toMatchObject({ code: status.NOT_FOUND });
    expect((await infer(good)).outputs).toHaveLength(2);
  });

  it("serves concurrent calls", async () => {
    const responses = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        infer({ model_name: "pair", id: String(i), inputs: [{ name: "a", datatype: "FP32", shape: ["1", "2"] }, { name: "b", datatype: "INT64", shape: ["1", "2"] }], raw_input_contents: [f32([i, i]), i64([BigInt(i), 0n])] }),
      ),
    );
    responses.forEach((r, i) => {
      expect(r.id).toBe(String(i));
      expect(Array.from(new Float32Array(new Uint8Array(r.raw_output_contents[0]!).buffer))).toEqual([2 * i, 2 * i]);
    });
  });

  it("answers a Python grpcio client using stubs generated from the same .proto", async () => {
    try {
      execFileSync(GRPC_CLIENT_PYTHON, ["-c", "import grpc, grpc_tools"], { stdio: "pipe" });
    } catch {
      throw new Error(`this test needs grpcio and grpc_tools for ${GRPC_CLIENT_PYTHON}: apt-get install -y --no-install-recommends python3-grpcio python3-grpc-tools`);
    }
    const stubs = mkdtempSync(join(tmpdir(), "coil-grpc-stubs-"));
    try {
      execFileSync(GRPC_CLIENT_PYTHON, ["-m", "grpc_tools.protoc", `-I${dirname(PROTO_PATH)}`, `--python_out=${stubs}`, `--grpc_python_out=${stubs}`, PROTO_PATH], { stdio: "pipe" });
      const { stdout } = await promisify(execFile)(GRPC_CLIENT_PYTHON, [join(FIXTURES, "client.py"), stubs, adapter.address!], { timeout: 30_000 });
      expect(JSON.parse(stdout)).toEqual({
        live: true,
        id: "py-1",
        model: "pair",
        outputs: {
          doubled: { datatype: "FP32", shape: [2, 2], data: [3, -4, 6.5, 0] },
          next: { datatype: "INT64", shape: [2, 2], data: [2, -1, 2 ** 40 + 1, 8] },
          upper: { datatype: "BYTES", shape: [2], data: ["GRPC", "BYTES ✓"] },
        },
        missing: "NOT_FOUND",
      });
    } finally {
      rmSync(stubs, { recursive: true, force: true });
    }
  });
});
