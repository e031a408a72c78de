#!/usr/bin/env node
// Dynamic batching: throughput and latency of a model under concurrent load, with and
// without Coil's dynamic batcher (ModelQueue { batching }), side by side in one run.
// Closed loop: C callers, each sends a batch-1 request and waits for its answer.
// Prints a table per model and writes bench-results/batching.json. Needs the packages
// built; started without the glibc tunable, it runs itself again with it.
import { join } from "node:path";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool, ModelQueue } from "@coil/core";

import { parseFlags } from "./lib/args.mjs";
import { closedLoop } from "./lib/closed-loop.mjs";
import { formatFixed, formatMs, formatRate, formatRatio } from "./lib/format.mjs";
import { formatMachine } from "./lib/machine.mjs";
import { EXAMPLE_MODELS } from "./lib/paths.mjs";
import { formatOtherCpu } from "./lib/quiet.mjs";
import { outFlag, startResults, writeResults } from "./lib/results.mjs";
import { printTable } from "./lib/table.mjs";
import { deterministicTensor } from "./lib/tensor.mjs";
import { relaunchWithTunable } from "./lib/tunable.mjs";

await relaunchWithTunable();
const flags = parseFlags(import.meta.url, {
  seconds: { type: "number", positive: true, default: 5, help: "measured seconds per row, after 1 s of warm-up" },
  interpreters: { type: "integer", default: 2, help: "interpreters in the pool" },
  out: outFlag("batching"),
});

const WORKLOADS = [
  {
    name: "resnet18",
    input: [1, 3, 224, 224],
    callers: 16,
    batching: { maxBatchSize: 8, maxQueueDelayMicros: 2000 },
  },
  {
    name: "mlp",
    input: [1, 64],
    callers: 64,
    batching: { maxBatchSize: 32, maxQueueDelayMicros: 200 },
  },
];

const pool = await InterpreterPool.create({ size: flags.interpreters, backend: new CpuBackend() });
const torch = pool.backendInfo[0].torch;
const results = startResults({ interpreters: flags.interpreters, seconds: flags.seconds, torch, workloads: [] });
console.log(`dynamic batching, ${flags.interpreters} interpreters, torch ${torch}, ${flags.seconds} s per row after 1 s warm-up`);
console.log(`machine: ${formatMachine(results.machine)}`);
for (const w of WORKLOADS) {
  const model = pool.replicate({ file: join(EXAMPLE_MODELS, `${w.name}.py`), factory: "build" });
  await model.materialize();
  const input = deterministicTensor(w.input);
  const load = (queue) =>
    closedLoop(() => queue.infer([input]), { concurrency: w.callers, warmupMs: 1000, durationMs: flags.seconds * 1e3 });
  const off = await load(new ModelQueue(model));
  const batched = new ModelQueue(model, { batching: w.batching });
  const on = await load(batched);
  const stats = batched.stats();
  const meanBatch = stats.batchedRows / Math.max(stats.batches, 1);
  const ratio = on.callsPerSecond / off.callsPerSecond;
  results.workloads.push({ name: w.name, callers: w.callers, batching: w.batching, off, on, meanBatch, ratio });
  console.log(
    `\n== ${w.name}: ${w.callers} callers, batch-1 requests; batching maxBatchSize ${w.batching.maxBatchSize}, ` +
      `delay ${w.batching.maxQueueDelayMicros} µs`,
  );
  printTable(
    [
      ["configuration", (r) => r.label, "l"],
      ["calls/s", (r) => formatRate(r.callsPerSecond)],
      ["p50 ms", (r) => formatMs(r.p50Ms)],
      ["p99 ms", (r) => formatMs(r.p99Ms)],
      ["mean batch", (r) => formatFixed(r.meanBatch, 1)],
      ["other CPU", (r) => formatOtherCpu(r.otherCpu)],
    ],
    [
      { label: "no batching", ...off, meanBatch: 1 },
      { label: "dynamic batching", ...on, meanBatch },
    ],
  );
  console.log(`   ratio: ${formatRatio(ratio)} the throughput`);
  await model.dispose();
}
await pool.close();
console.log();
writeResults(flags.out, results);
