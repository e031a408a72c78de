import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

import { createRuntime, type Runtime } from "./create-runtime.js";
import { packModel } from "./pack.js";

const PYTHON = inject("testPython");
const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), "../test/fixtures/isolation");
const X = { name: "x", dtype: "float32" as const, shape: [-1, 4] };
const PLUGINS = ["@coil/backend-cpu", { module: "@coil/adapter-http", options: { host: "127.0.0.1", port: 0 } }];

const runtimes: Runtime[] = [];

afterAll(async () => {
  for (const runtime of runtimes) await runtime.close();
});

async function pack(file: string, repo: string, name: string, outputs = [{ ...X, name: "y" }]): Promise<void> {
  await packModel({ target: `${FIXTURES}/${file}:build`, output: join(repo, `${name}.coil`), python: PYTHON, inputs: [X], outputs });
}

async function post(http: string, model: string, rows: number[][], timeoutUs?: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${http}/v2/models/${model}/infer`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      inputs: [{ name: "x", shape: [rows.length, 4], datatype: "FP32", data: rows.flat() }],
      ...(timeoutUs !== undefined && { parameters: { timeout: timeoutUs } }),
    }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Polls `url` until it answers `status` (readiness changes as calls run and end). */
async function until(url: string, status: number): Promise<void> {
  for (;;) {
    if ((await fetch(url)).status === status) return;
    await sleep(100);
  }
}

describe("a dynamic batch with one bad request", () => {
  let http: string;

  beforeAll(async () => {
    const repo = mkdtempSync(join(tmpdir(), "coil-faults-batch-"));
    await pack("picky.py", repo, "picky");
    // Eight rows make a batch at once; the long delay only makes sure all eight join it.
    const runtime = await createRuntime({
      repository: repo,
      python: PYTHON,
      instances: 1,
      queue: { batching: { maxBatchSize: 8, maxQueueDelayMicros: 30_000_000 } },
      plugins: PLUGINS,
    });
    runtimes.push(runtime);
    http = runtime.adapters[0]!.url!;
  }, 120_000);

  it("fails only the bad request: the batch is run again request by request", async () => {
    const rows = Array.from({ length: 8 }, (_, i) => [i, i, i, i === 5 ? -1 : i]);
    const answers = await Promise.all(rows.map((row) => post(http, "picky", [row])));
    answers.forEach((answer, i) => {
      if (i === 5) {
        expect(answer.status).toBe(500);
        expect(answer.body.error).toMatch(/negative input/);
      } else {
        expect(answer).toMatchObject({ status: 200, body: { outputs: [{ data: rows[i]!.map((v) => v * 2) }] } });
      }
    });
    const metrics = await (await fetch(`${http}/metrics`)).text();
    // One call for the batch of eight, then one per request.
    expect(metrics).toMatch(/coil_batches_total\{model="picky",version="1"\} 9\n/);
    expect(metrics).toMatch(/coil_inference_requests_total\{model="picky",version="1",outcome="success"\} 7\n/);
  }, 60_000);
});

describe("a model stuck in C code on all its interpreters", () => {
  let http: string;

  beforeAll(async () => {
    const repo = mkdtempSync(join(tmpdir(), "coil-faults-stuck-"));
    await pack("sleepy.py", repo, "sleepy");
    await pack("victim.py", repo, "victim", [{ ...X, name: "y", shape: [-1, 2] }]);
    const runtime = await createRuntime({ repository: repo, python: PYTHON, instances: 1, models: { sleepy: { instances: 2 } }, plugins: PLUGINS });
    runtimes.push(runtime);
    http = runtime.adapters[0]!.url!;
  }, 120_000);

  it("is not ready while stuck, and ready again once its calls return; another model stays ready and answers", async () => {
    await until(`${http}/v2/models/sleepy/ready`, 200);
    // Two calls, one per interpreter, past a 1 s deadline: the interrupt cannot reach time.sleep.
    const stuck = await Promise.all([post(http, "sleepy", [[1, 2, 3, 4]], 1_000_000), post(http, "sleepy", [[1, 2, 3, 4]], 1_000_000)]);
    expect(stuck.map((a) => a.status)).toEqual([504, 504]);
    await until(`${http}/v2/models/sleepy/ready`, 503);
    const metrics = await (await fetch(`${http}/metrics`)).text();
    expect([...metrics.matchAll(/coil_interpreter_stuck\{interpreter="\d+",group="sleepy"\} 1/g)]).toHaveLength(2);
    expect((await fetch(`${http}/v2/health/ready`)).status).not.toBe(200); // the server's readiness covers its models
    expect((await fetch(`${http}/v2/models/victim/ready`)).status).toBe(200);
    expect((await post(http, "victim", [[1, 2, 3, 4]])).status).toBe(200);
    // time.sleep returns, the interrupts land, the interpreters serve again.
    await until(`${http}/v2/models/sleepy/ready`, 200);
    expect((await fetch(`${http}/v2/health/ready`)).status).toBe(200);
  }, 60_000);
});
