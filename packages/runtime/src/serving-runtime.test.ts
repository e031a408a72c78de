import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool, Tensor } from "@coil/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { packModel } from "./pack.js";
import { ServingRuntime } from "./serving-runtime.js";

const NET = resolve(dirname(fileURLToPath(import.meta.url)), "../test/fixtures/split/net.py");
let repo: string;
let runtime: ServingRuntime;
let expected: number[];

beforeAll(async () => {
  repo = mkdtempSync(join(tmpdir(), "coil-repo-"));
  const net = join(repo, "net.coil");
  await packModel({
    target: `${NET}:build`,
    output: net,
    intern: ["helper_*"],
    python: "/usr/bin/python3",
    inputs: [{ name: "x", dtype: "float32", shape: [-1, 4] }],
    outputs: [{ name: "y", dtype: "float32", shape: [-1, 2] }],
  });
  for (const version of ["1", "2"]) {
    mkdirSync(join(repo, "versioned", version), { recursive: true });
    copyFileSync(net, join(repo, "versioned", version, "model.coil"));
  }
  writeFileSync(join(repo, "broken.coil"), "not an archive");
  expected = JSON.parse(
    execFileSync("/usr/bin/python3", [
      "-c",
      "import sys, json, torch; sys.path.insert(0, sys.argv[1]); import net\n" +
        "with torch.inference_mode(): print(json.dumps(net.build()(torch.ones(1, 4)).flatten().tolist()))",
      dirname(NET),
    ]).toString(),
  ) as number[];
  const pool = await InterpreterPool.create({ size: 2, python: "/usr/bin/python3", backend: new CpuBackend() });
  runtime = new ServingRuntime({ pool, repository: repo, queue: { batching: { maxBatchSize: 8, maxQueueDelayMicros: 2000 } } });
  await runtime.start();
}, 120_000);

afterAll(async () => {
  await runtime?.close();
});

const x = () => Tensor.from("float32", [1, 4], [1, 1, 1, 1]);

describe("ServingRuntime", () => {
  it("loads every archive of the repository, and records the ones that fail", () => {
    expect(runtime.modelIndex()).toEqual([
      { name: "broken", version: "1", state: "UNAVAILABLE", reason: expect.stringContaining("ARCHIVE_INVALID") },
      { name: "net", version: "1", state: "READY" },
      { name: "versioned", version: "1", state: "READY" },
      { name: "versioned", version: "2", state: "READY" },
    ]);
    expect(runtime.isLive()).toBe(true);
    expect(runtime.isReady()).toBe(false); // broken never loaded
    expect(runtime.model("versioned")).toMatchObject({
      versions: ["1", "2"],
      inputs: [{ name: "x", dtype: "float32", shape: [-1, 4] }],
      outputs: [{ name: "y", dtype: "float32", shape: [-1, 2] }],
    });
  });

  it("answers a request with the model's named outputs, equal to eager PyTorch", async () => {
    const response = await runtime.infer("net", undefined, { id: "r1", inputs: [{ name: "x", tensor: x() }] });
    expect(response).toMatchObject({ id: "r1", modelName: "net", modelVersion: "1" });
    expect(response.outputs.map((o) => o.name)).toEqual(["y"]);
    expect(Array.from(response.outputs[0]!.tensor.data as Float32Array)).toEqual(expected.map(Math.fround));
  });

  it("serves the newest version unless asked for another", async () => {
    expect((await runtime.infer("versioned", undefined, { inputs: [{ name: "x", tensor: x() }] })).modelVersion).toBe("2");
    expect((await runtime.infer("versioned", "1", { inputs: [{ name: "x", tensor: x() }] })).modelVersion).toBe("1");
  });

  it("batches concurrent requests", async () => {
    const before = runtime.metrics();
    const responses = await Promise.all(
      Array.from({ length: 8 }, () => runtime.infer("net", undefined, { inputs: [{ name: "x", tensor: x() }] })),
    );
    expect(responses).toHaveLength(8);
    const batches = (text: string) => Number(/coil_batches_total\{model="net",version="1"\} (\d+)/.exec(text)![1]);
    expect(batches(runtime.metrics()) - batches(before)).toBeLessThan(8);
  });

  it("refuses bad requests with typed errors, and keeps serving", async () => {
    const request = (tensor: Tensor, name = "x") => ({ inputs: [{ name, tensor }] });
    await expect(runtime.infer("nope", undefined, request(x()))).rejects.toMatchObject({ code: "MODEL_NOT_FOUND" });
    await expect(runtime.infer("net", "7", request(x()))).rejects.toMatchObject({ code: "MODEL_NOT_FOUND" });
    await expect(runtime.infer("broken", undefined, request(x()))).rejects.toMatchObject({ code: "MODEL_NOT_READY" });
    await expect(runtime.infer("net", undefined, request(Tensor.zeros("float64", [1, 4])))).rejects.toMatchObject({
      code: "UNSUPPORTED_DTYPE",
    });
    await expect(runtime.infer("net", undefined, request(Tensor.zeros("float32", [1, 5])))).rejects.toMatchObject({
      code: "SHAPE_MISMATCH",
    });
    await expect(runtime.infer("net", undefined, request(x(), "z"))).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(runtime.infer("net", undefined, { inputs: [] })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(runtime.infer("net", undefined, { ...request(x()), outputs: ["w"] })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    expect((await runtime.infer("net", undefined, request(x()))).outputs).toHaveLength(1);
  });

  it("unloads and loads models while serving", async () => {
    await runtime.unloadModel("versioned");
    expect(runtime.isModelReady("versioned", "2")).toBe(false);
    await expect(runtime.infer("versioned", undefined, { inputs: [{ name: "x", tensor: x() }] })).rejects.toMatchObject({
      code: "MODEL_NOT_READY",
    });
    await runtime.loadModel("versioned");
    expect(runtime.isModelReady("versioned")).toBe(true);
    expect((await runtime.infer("versioned", undefined, { inputs: [{ name: "x", tensor: x() }] })).modelVersion).toBe("2");
    await expect(runtime.loadModel("nope")).rejects.toMatchObject({ code: "MODEL_NOT_FOUND" });
  });

  it("exposes Prometheus metrics", () => {
    const text = runtime.metrics();
    expect(text).toContain("# TYPE coil_inference_success_total counter");
    expect(text).toMatch(/coil_inference_success_total\{model="net",version="1"\} [1-9]\d*/);
    expect(text).toMatch(/coil_inference_failure_total\{model="net",version="1"\} [1-9]\d*/);
    expect(text).toMatch(/coil_interpreter_load\{interpreter="\d+"\} \d+/);
  });
});
