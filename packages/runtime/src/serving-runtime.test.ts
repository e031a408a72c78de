import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { CpuBackend } from "@coil/backend-cpu";
import { BytesTensor, InterpreterPool, Tensor } from "@coil/core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

import { packModel } from "./pack.js";
import { ServingRuntime } from "./serving-runtime.js";

const PYTHON = inject("testPython");
const NET = resolve(dirname(fileURLToPath(import.meta.url)), "../test/fixtures/split/net.py");
const TOKENS = resolve(dirname(fileURLToPath(import.meta.url)), "../test/fixtures/grpc/models.py");
let repo: string;
let runtime: ServingRuntime;
let expected: number[];
const logged: { level: string; fields: Record<string, unknown>; message: string }[] = [];
const logger = {
  warn: (fields: Record<string, unknown>, message: string) => logged.push({ level: "warn", fields, message }),
  info: (fields: Record<string, unknown>, message: string) => logged.push({ level: "info", fields, message }),
};

beforeAll(async () => {
  repo = mkdtempSync(join(tmpdir(), "coil-repo-"));
  const net = join(repo, "net.coil");
  await packModel({
    target: `${NET}:build`,
    output: net,
    intern: ["helper_*"],
    python: PYTHON,
    inputs: [{ name: "x", dtype: "float32", shape: [-1, 4] }],
    outputs: [{ name: "y", dtype: "float32", shape: [-1, 2] }],
  });
  for (const version of ["1", "2"]) {
    mkdirSync(join(repo, "versioned", version), { recursive: true });
    copyFileSync(net, join(repo, "versioned", version, "model.coil"));
  }
  writeFileSync(join(repo, "broken.coil"), "not an archive");
  await packModel({
    target: `${TOKENS}:tokens`,
    output: join(repo, "tokens.coil"),
    python: PYTHON,
    inputs: [{ name: "text", dtype: "bytes", shape: [-1] }],
    outputs: [
      { name: "upper", dtype: "bytes", shape: [-1] },
      { name: "length", dtype: "int64", shape: [-1] },
    ],
  });
  expected = JSON.parse(
    execFileSync(PYTHON, [
      "-c",
      "import sys, json, torch; sys.path.insert(0, sys.argv[1]); import net\n" +
        "with torch.inference_mode(): print(json.dumps(net.build()(torch.ones(1, 4)).flatten().tolist()))",
      dirname(NET),
    ]).toString(),
  ) as number[];
  const pool = await InterpreterPool.create({ size: 2, python: PYTHON, backend: new CpuBackend() });
  runtime = new ServingRuntime({ pool, repository: repo, queue: { batching: { maxBatchSize: 8, maxQueueDelayMicros: 2000 } }, logger });
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
      { name: "tokens", version: "1", state: "READY" },
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

  it("logs start-up progress and one line per model loaded, with its load time and memory", () => {
    const loading = logged.filter((l) => l.message === "model: loading").map((l) => l.fields);
    expect(loading).toEqual([1, 2, 3, 4, 5].map((step) => expect.objectContaining({ step, of: 5 })));
    const loaded = logged.filter((l) => l.message === "model: loaded").map((l) => l.fields);
    // The four versions that loaded, not the broken archive.
    expect(loaded.map((f) => `${f.model}/${f.version}`).sort()).toEqual(["net/1", "tokens/1", "versioned/1", "versioned/2"]);
    for (const fields of loaded) {
      expect(fields.loadMs).toBeGreaterThan(0);
      expect(Number.isInteger(fields.rssAddedMb)).toBe(true);
    }
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

  it("batches BYTES requests, and gives each its own rows back", async () => {
    const before = runtime.metrics();
    const texts = Array.from({ length: 8 }, (_, i) => (i % 2 ? [`word ${i}`] : [`w${i}`, "ü"]));
    const responses = await Promise.all(
      texts.map((words) => runtime.infer("tokens", undefined, { inputs: [{ name: "text", tensor: BytesTensor.from([words.length], words) }] })),
    );
    responses.forEach((response, i) => {
      const [upper, length] = response.outputs;
      expect(upper!.name).toBe("upper");
      expect((upper!.tensor as BytesTensor).strings()).toEqual(texts[i]!.map((w) => w.toUpperCase()));
      expect(length!.tensor.shape).toEqual([texts[i]!.length]);
    });
    const batches = (text: string) => Number(/coil_batches_total\{model="tokens",version="1"\} (\d+)/.exec(text)?.[1] ?? 0);
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

  it("loses no request in flight while a model is reloaded and unloaded under traffic", async () => {
    const outcomes = { ok: 0, notReady: 0, other: [] as unknown[] };
    let stop = false;
    const client = async () => {
      while (!stop) {
        try {
          const r = await runtime.infer("versioned", undefined, { inputs: [{ name: "x", tensor: x() }] });
          expect(Array.from(r.outputs[0]!.tensor.data as Float32Array)).toEqual(expected.map(Math.fround));
          outcomes.ok++;
        } catch (error) {
          if ((error as { code?: string }).code === "MODEL_NOT_READY") outcomes.notReady++;
          else outcomes.other.push(error);
          await new Promise((r) => setTimeout(r, 1));
        }
      }
    };
    const clients = Array.from({ length: 40 }, client); // more than two batches of 8: some wait in the queue
    const okAt = async (n: number) => {
      while (outcomes.ok < n) await new Promise((r) => setTimeout(r, 5));
    };
    await okAt(50);
    await runtime.loadModel("versioned"); // reload: the old versions serve until the new ones take over
    expect(outcomes.notReady).toBe(0);
    await okAt(outcomes.ok + 50);
    await runtime.unloadModel("versioned"); // accepted requests finish; later ones are refused
    const notReadyAfterUnload = outcomes.notReady;
    await new Promise((r) => setTimeout(r, 50));
    expect(outcomes.notReady).toBeGreaterThan(notReadyAfterUnload);
    await runtime.loadModel("versioned");
    const okBefore = outcomes.ok;
    await okAt(okBefore + 50);
    stop = true;
    await Promise.all(clients);
    expect(outcomes.other).toEqual([]); // no request failed any other way: none lost, none cut off
  }, 60_000);

  it("keeps serving the old versions when a reload fails", async () => {
    const archive = join(repo, "versioned", "2", "model.coil");
    const good = readFileSync(archive);
    writeFileSync(archive, "no longer an archive");
    try {
      await expect(runtime.loadModel("versioned")).rejects.toMatchObject({ code: "ARCHIVE_INVALID" });
      expect(runtime.isModelReady("versioned", "2")).toBe(true);
      expect((await runtime.infer("versioned", undefined, { inputs: [{ name: "x", tensor: x() }] })).modelVersion).toBe("2");
    } finally {
      writeFileSync(archive, good);
    }
  });

  it("exposes Prometheus metrics: outcomes, queue and compute time, batch sizes, interpreter busy time", () => {
    const text = runtime.metrics();
    const value = (pattern: RegExp) => {
      const match = pattern.exec(text);
      expect(match, String(pattern)).not.toBeNull();
      return Number(match![1]);
    };
    expect(text).toContain("# TYPE coil_inference_requests_total counter");
    const ok = value(/coil_inference_requests_total\{model="net",version="1",outcome="success"\} (\d+)/);
    expect(ok).toBeGreaterThanOrEqual(10);
    expect(value(/coil_inference_requests_total\{model="net",version="1",outcome="SHAPE_MISMATCH"\} (\d+)/)).toBeGreaterThan(0);

    expect(text).toContain("# TYPE coil_request_duration_seconds histogram");
    expect(text).toContain("# TYPE coil_queue_duration_seconds histogram");
    const requests = value(/coil_queue_duration_seconds_count\{model="net",version="1"\} (\d+)/);
    expect(value(/coil_queue_duration_seconds_bucket\{model="net",version="1",le="\+Inf"\} (\d+)/)).toBe(requests);
    const calls = value(/coil_compute_duration_seconds_count\{model="net",version="1"\} (\d+)/);
    expect(value(/coil_compute_duration_seconds_sum\{model="net",version="1"\} ([\d.e-]+)/)).toBeGreaterThan(0);
    expect(value(/coil_batches_total\{model="net",version="1"\} (\d+)/)).toBe(calls);
    expect(calls).toBeLessThan(requests); // the 8 concurrent requests shared calls
    expect(value(/coil_batch_requests_sum\{model="net",version="1"\} (\d+)/)).toBe(requests);
    expect(value(/coil_batch_requests_bucket\{model="net",version="1",le="1"\} (\d+)/)).toBeLessThan(calls);

    const busy = [...text.matchAll(/coil_interpreter_busy_seconds_total\{interpreter="\d+",group="shared"\} ([\d.e-]+)/g)].map((m) => Number(m[1]));
    expect(busy).toHaveLength(2);
    for (const seconds of busy) expect(seconds).toBeGreaterThan(0);
    expect(text).toMatch(/coil_interpreter_load\{interpreter="\d+",group="shared"\} \d+/);
  });
});

describe("ServingRuntime readiness", () => {
  it("stays ready when a model is unloaded on purpose, not when one fails to load; refuses loads once closed", async () => {
    const single = mkdtempSync(join(tmpdir(), "coil-ready-"));
    copyFileSync(join(repo, "net.coil"), join(single, "net.coil"));
    const pool = await InterpreterPool.create({ size: 1, python: PYTHON, backend: new CpuBackend() });
    const own = new ServingRuntime({ pool, repository: single });
    try {
      await own.start();
      expect(own.isReady()).toBe(true);
      await own.unloadModel("net");
      expect(own.isReady()).toBe(true); // unloaded on purpose: not expected to serve
      writeFileSync(join(single, "net.coil"), "not an archive");
      await expect(own.loadModel("net")).rejects.toMatchObject({ code: "ARCHIVE_INVALID" });
      expect(own.isReady()).toBe(false); // it should serve, and cannot
    } finally {
      await own.close();
    }
    await expect(own.loadModel("net")).rejects.toMatchObject({ code: "CLOSED" });
  }, 60_000);

  it("loads and unloads asked for while start() runs take their turn: each version listed once, and served", async () => {
    // start() loads a1, a2, a3 before z; loadModel("z") is done long before start() gets
    // there, and loadModel("a1") asks for a1 while start() loads it.
    const many = mkdtempSync(join(tmpdir(), "coil-start-race-"));
    for (const name of ["a1", "a2", "a3", "z"]) copyFileSync(join(repo, "net.coil"), join(many, `${name}.coil`));
    const pool = await InterpreterPool.create({ size: 1, python: PYTHON, backend: new CpuBackend() });
    const own = new ServingRuntime({ pool, repository: many });
    try {
      const starting = own.start();
      const loads = [own.loadModel("z"), own.loadModel("a1"), own.unloadModel("a2").catch((e: unknown) => e)];
      await Promise.all([starting, ...loads]);
      expect(own.modelIndex()).toEqual([
        { name: "a1", version: "1", state: "READY" },
        { name: "a2", version: "1", state: "READY" }, // unknown when unloadModel ran: MODEL_NOT_FOUND, then start() loaded it
        { name: "a3", version: "1", state: "READY" },
        { name: "z", version: "1", state: "READY" },
      ]);
      expect(await loads[2]).toMatchObject({ code: "MODEL_NOT_FOUND" });
      for (const name of ["a1", "z"]) {
        const out = await own.infer(name, undefined, { inputs: [{ name: "x", tensor: x() }] });
        expect(Array.from(out.outputs[0]!.tensor.data as Float32Array)).toEqual(expected.map(Math.fround));
      }
    } finally {
      await own.close();
    }
  }, 120_000);
});
