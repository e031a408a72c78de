import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { Tensor } from "@coil/native";
import { afterEach, describe, expect, inject, it } from "vitest";

import { PlainPythonBackend } from "../test/plain-backend.js";
import { concatRows, splitRows } from "./batch-tensors.js";
import { ModelQueue } from "./model-queue.js";
import { InterpreterPool } from "./pool.js";
import { SignatureBinding } from "./signature-binding.js";

const PYTHON = inject("testPython");
const BATCHED = resolve(dirname(fileURLToPath(import.meta.url)), "../test/fixtures/batched.py");

let pool: InterpreterPool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

async function doubler(delay = 0) {
  pool = await InterpreterPool.create({ size: 1, python: PYTHON, backend: new PlainPythonBackend() });
  const model = pool.replicate({ file: BATCHED, factory: "Doubler", kwargs: { delay } });
  await model.materialize();
  return model;
}

const row = (...values: number[]) => Tensor.from("float32", [1, values.length], values);

describe("batch tensors", () => {
  it("stacks along dim 0 and splits back into views", () => {
    const stacked = concatRows([row(1, 2), Tensor.from("float32", [2, 2], [3, 4, 5, 6])]);
    expect(stacked.shape).toEqual([3, 2]);
    expect(Array.from(stacked.data)).toEqual([1, 2, 3, 4, 5, 6]);
    const [a, b] = splitRows(stacked, [1, 2]);
    expect(a!.shape).toEqual([1, 2]);
    expect(Array.from(b!.data)).toEqual([3, 4, 5, 6]);
    expect(b!.data.buffer).toBe(stacked.data.buffer); // no copy
    expect(() => concatRows([row(1, 2), row(1, 2, 3)])).toThrow(/cannot stack/);
    expect(() => splitRows(stacked, [1, 1])).toThrow(/first dimension is the batch/);
  });
});

describe("ModelQueue", () => {
  it("refuses a request past its bound at once, with QUEUE_FULL", async () => {
    const queue = new ModelQueue(await doubler(0.3), { maxQueueSize: 2 });
    const running = [queue.infer([row(1)]), queue.infer([row(2)])];
    await expect(queue.infer([row(3)])).rejects.toMatchObject({ code: "QUEUE_FULL" });
    expect(queue.stats().refusedFull).toBe(1);
    await Promise.all(running);
    expect(queue.pending).toBe(0);
    expect(Array.from(((await queue.infer([row(4)])) as Tensor<"float32">).data)).toEqual([8]);
  });

  it("lets a request expire while it waits, without ever running it", async () => {
    const model = await doubler(0.3);
    const queue = new ModelQueue(model);
    const first = queue.infer([row(1)]);
    await expect(queue.infer([row(2)], { timeoutMs: 50 })).rejects.toMatchObject({ code: "DEADLINE_EXCEEDED" });
    await first;
    expect(await model.callMethod("seen")).toEqual([1]);
  });

  it("batches requests that arrive together, and gives each its own rows", async () => {
    const model = await doubler();
    const queue = new ModelQueue<Tensor<"float32">>(model, { batching: { maxBatchSize: 8, maxQueueDelayMicros: 50_000 } });
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => queue.infer([row(i, 10 * i)])));
    results.forEach((r, i) => {
      expect(r.shape).toEqual([1, 2]);
      expect(Array.from(r.data)).toEqual([2 * i, 20 * i]);
    });
    expect(await model.callMethod("seen")).toEqual([8]);
    expect(queue.stats()).toMatchObject({ batches: 1, batchedRequests: 8, batchedRows: 8 });
  });

  it("keeps requests of different shapes in separate batches", async () => {
    const model = await doubler();
    const queue = new ModelQueue(model, { batching: { maxBatchSize: 8, maxQueueDelayMicros: 20_000 } });
    await Promise.all([queue.infer([row(1, 2)]), queue.infer([row(1, 2, 3)]), queue.infer([row(3, 4)]), queue.infer([row(4, 5, 6)])]);
    expect(((await model.callMethod("seen")) as number[]).sort()).toEqual([2, 2]);
  });

  it("splits list outputs, and refuses outputs without the batch dimension", async () => {
    const model = await doubler();
    const pairs = new ModelQueue<Tensor<"float32">[]>(model, { method: "pair", batching: { maxBatchSize: 4, maxQueueDelayMicros: 20_000 } });
    const [a, b] = await Promise.all([pairs.infer([row(1, 2)]), pairs.infer([row(3, 4)])]);
    expect(a!.map((t) => Array.from(t.data))).toEqual([[2, 4], [3]]);
    expect(b!.map((t) => Array.from(t.data))).toEqual([[6, 8], [7]]);
    const sums = new ModelQueue(model, { method: "not_batched", batching: { maxBatchSize: 4, maxQueueDelayMicros: 20_000 } });
    const outcomes = await Promise.allSettled([sums.infer([row(1)]), sums.infer([row(2)])]);
    for (const o of outcomes) expect(o).toMatchObject({ status: "rejected", reason: { code: "SHAPE_MISMATCH" } });
  });

  it("splits a single output returned in a tuple, as the runtime names it", async () => {
    const model = await doubler();
    const queue = new ModelQueue<Tensor<"float32">[]>(model, {
      method: "single_tuple",
      binding: new SignatureBinding([], [{ name: "y", dtype: "float32", shape: [-1] }]),
      batching: { maxBatchSize: 4, maxQueueDelayMicros: 20_000 },
    });
    const [a, b] = await Promise.all([queue.infer([row(1, 2)]), queue.infer([row(3, 4)])]);
    expect(a!.map((t) => Array.from(t.data))).toEqual([[2, 4]]);
    expect(b!.map((t) => Array.from(t.data))).toEqual([[6, 8]]);
  });

  it("takes a timeout past what a Node timer can wait as no deadline", async () => {
    const model = await doubler();
    for (const queue of [new ModelQueue(model), new ModelQueue(model, { batching: { maxBatchSize: 2, maxQueueDelayMicros: 1000 } })]) {
      const result = (await queue.infer([row(1)], { timeoutMs: 3e12 })) as Tensor<"float32">;
      expect(Array.from(result.data)).toEqual([2]);
    }
    expect(() => new ModelQueue(model, { batching: { maxBatchSize: 2, maxQueueDelayMicros: Infinity } })).toThrow(/maxQueueDelayMicros/);
  });

  it("runs a failed batch again request by request: only the bad request fails, with the model's error", async () => {
    const model = await doubler();
    const queue = new ModelQueue<Tensor<"float32">>(model, { method: "picky", batching: { maxBatchSize: 4, maxQueueDelayMicros: 30_000_000 } });
    const outcomes = await Promise.allSettled([queue.infer([row(1)]), queue.infer([row(-1)]), queue.infer([row(2)]), queue.infer([row(3)])]);
    expect(outcomes.map((o) => (o.status === "fulfilled" ? Array.from(o.value.data) : o.reason.pythonType))).toEqual([[2], "ValueError", [4], [6]]);
    // The batch of four, then each request alone.
    expect(await model.callMethod("seen")).toEqual([4, 1, 1, 1, 1]);
    expect(queue.stats()).toMatchObject({ batches: 5, batchedRequests: 8 });
  });

  it("gives every request of a failed batch the model's error", async () => {
    const model = await doubler();
    const queue = new ModelQueue(model, { method: "fail", batching: { maxBatchSize: 4, maxQueueDelayMicros: 20_000 } });
    const outcomes = await Promise.allSettled([queue.infer([row(1)]), queue.infer([row(2)])]);
    for (const o of outcomes) {
      expect(o).toMatchObject({ status: "rejected", reason: { code: "PYTHON_ERROR", pythonType: "ValueError" } });
    }
  });

  it("expires a request waiting for its batch to fill", async () => {
    const model = await doubler();
    const queue = new ModelQueue(model, { batching: { maxBatchSize: 100, maxQueueDelayMicros: 5_000_000 } });
    await expect(queue.infer([row(1)], { timeoutMs: 50 })).rejects.toMatchObject({ code: "DEADLINE_EXCEEDED" });
    expect(queue.stats().expiredInQueue).toBe(1);
    expect(await model.callMethod("seen")).toEqual([]);
    await queue.close();
  });

  it("runs what is still queued when it closes, without waiting out the delay, and refuses new requests", async () => {
    const model = await doubler();
    const queue = new ModelQueue<Tensor<"float32">>(model, { batching: { maxBatchSize: 100, maxQueueDelayMicros: 5_000_000 } });
    const waiting = [queue.infer([row(1)]), queue.infer([row(2)])];
    const started = performance.now();
    await queue.close();
    expect(performance.now() - started).toBeLessThan(4_000); // not the 5 s delay
    expect((await Promise.all(waiting)).map((t) => Array.from(t.data))).toEqual([[2], [4]]);
    expect(await model.callMethod("seen")).toEqual([2]); // one batch of both
    await expect(queue.infer([row(2)])).rejects.toMatchObject({ code: "CLOSED" });
  });

  it("rejects what is still queued when closed without draining", async () => {
    const model = await doubler();
    const queue = new ModelQueue(model, { batching: { maxBatchSize: 100, maxQueueDelayMicros: 5_000_000 } });
    const waiting = queue.infer([row(1)]);
    await queue.close({ drain: false });
    await expect(waiting).rejects.toMatchObject({ code: "CLOSED" });
    expect(await model.callMethod("seen")).toEqual([]);
  });

  it("measures queue time, compute time and batch sizes", async () => {
    const model = await doubler(0.05);
    const plain = new ModelQueue(model);
    await Promise.all([plain.infer([row(1)]), plain.infer([row(2)])]); // one interpreter: the second waits
    const stats = plain.stats();
    expect(stats.batchRequests).toMatchObject({ count: 2, sum: 2, cumulative: [2, 2, 2, 2, 2, 2, 2, 2] });
    expect(stats.computeSeconds.count).toBe(2);
    expect(stats.computeSeconds.sum).toBeGreaterThanOrEqual(0.1); // two calls of >= 50 ms
    expect(stats.queueSeconds.count).toBe(2);
    expect(stats.queueSeconds.sum).toBeGreaterThanOrEqual(0.05); // behind the first call

    const batched = new ModelQueue(model, { batching: { maxBatchSize: 4, maxQueueDelayMicros: 20_000 } });
    await Promise.all([1, 2, 3, 4].map((i) => batched.infer([row(i)])));
    const b = batched.stats();
    expect(b.batchRequests).toMatchObject({ count: 1, sum: 4 });
    expect(b.batchRequests.cumulative.slice(0, 3)).toEqual([0, 0, 1]); // le=1, le=2: none; le=4: the batch
    expect(b.queueSeconds.count).toBe(4);
    expect(b.computeSeconds.count).toBe(1);
  });

  it("checks its options and its inputs", async () => {
    const model = await doubler();
    expect(() => new ModelQueue(model, { maxQueueSize: 0 })).toThrow(/maxQueueSize/);
    expect(() => new ModelQueue(model, { batching: { maxBatchSize: 0 } })).toThrow(/maxBatchSize/);
    const queue = new ModelQueue(model, { batching: { maxBatchSize: 4 } });
    await expect(queue.infer([Tensor.from("float32", [], [1])])).rejects.toMatchObject({ code: "SHAPE_MISMATCH" });
    await expect(queue.infer([row(1), Tensor.from("float32", [2, 1], [1, 2])])).rejects.toMatchObject({ code: "SHAPE_MISMATCH" });
  });
});
