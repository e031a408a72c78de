#!/usr/bin/env node
// Dynamic batching: throughput and latency of a model under concurrent load, with and
// without Coil's dynamic batcher (ModelQueue { batching }), side by side in one run.
// Closed loop: C callers, each sends a batch-1 request and waits for its answer.
//
//   GLIBC_TUNABLES=glibc.rtld.nns=16 node tools/bench/batching.mjs [--seconds 5] [--interpreters 2]
// Prints a table and writes bench-results/batching.json. Needs the packages built.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool, ModelQueue, Tensor } from "@coil/core";

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    interpreters: { type: "string", default: "2" },
    out: { type: "string", default: resolve(here, "../../bench-results/batching.json") },
  },
});
const seconds = Number(args.seconds);
const size = Number(args.interpreters);

const WORKLOADS = [
  {
    name: "resnet18",
    file: join(here, "../../examples/models/resnet18.py"),
    input: () => Tensor.from("float32", [1, 3, 224, 224], Array.from({ length: 3 * 224 * 224 }, (_, i) => Math.sin(i))),
    callers: 16,
    batching: { maxBatchSize: 8, maxQueueDelayMicros: 2000 },
  },
  {
    name: "mlp",
    file: join(here, "../../examples/models/mlp.py"),
    input: () => Tensor.from("float32", [1, 64], Array.from({ length: 64 }, (_, i) => Math.sin(i))),
    callers: 64,
    batching: { maxBatchSize: 32, maxQueueDelayMicros: 200 },
  },
];

async function measure(queue, input, callers) {
  const latencies = [];
  const warmUntil = performance.now() + 1000;
  const until = warmUntil + seconds * 1000;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        await queue.infer([input]);
        if (t0 >= warmUntil) latencies.push(performance.now() - t0);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  return { callsPerSecond: latencies.length / seconds, p50Ms: pct(0.5), p99Ms: pct(0.99) };
}

const pool = await InterpreterPool.create({ size, backend: new CpuBackend() });
const results = { interpreters: size, seconds, torch: pool.backendInfo[0].torch, workloads: [] };
console.log(`dynamic batching, ${size} interpreters, torch ${results.torch}, ${seconds} s per row after 1 s warm-up`);
for (const w of WORKLOADS) {
  const model = pool.replicate({ file: w.file, factory: "build" });
  await model.materialize();
  const input = w.input();
  const plain = new ModelQueue(model);
  const batched = new ModelQueue(model, { batching: w.batching });
  const off = await measure(plain, input, w.callers);
  const on = await measure(batched, input, w.callers);
  const stats = batched.stats();
  const meanBatch = stats.batchedRows / Math.max(stats.batches, 1);
  results.workloads.push({ name: w.name, callers: w.callers, batching: w.batching, off, on, meanBatch, ratio: on.callsPerSecond / off.callsPerSecond });
  console.log(`\n== ${w.name}: ${w.callers} callers, batch-1 requests; batching maxBatchSize ${w.batching.maxBatchSize}, delay ${w.batching.maxQueueDelayMicros} µs`);
  console.log("   configuration        calls/s     p50 ms     p99 ms   mean batch");
  const line = (label, r, batch) =>
    console.log(`   ${label.padEnd(18)} ${r.callsPerSecond.toFixed(0).padStart(9)} ${r.p50Ms.toFixed(2).padStart(10)} ${r.p99Ms.toFixed(2).padStart(10)} ${batch.padStart(12)}`);
  line("no batching", off, "1");
  line("dynamic batching", on, meanBatch.toFixed(1));
  console.log(`   ratio: ${(on.callsPerSecond / off.callsPerSecond).toFixed(2)}x the throughput`);
  await model.dispose();
}
await pool.close();
mkdirSync(dirname(args.out), { recursive: true });
writeFileSync(args.out, JSON.stringify(results, null, 2));
console.log(`\nresults written to ${args.out}`);
