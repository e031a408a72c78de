#!/usr/bin/env node
// Coil's main job for now: start a pool of isolated CPython interpreters, run a
// small torch model on every one of them, print the results and the throughput.
//
//   npm run demo [-- --interpreters N] [--seconds S]
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool, Tensor } from "@coil/core";
import { interpreterBudget } from "@coil/native";

const { values: args } = parseArgs({
  options: {
    interpreters: { type: "string", default: String(Math.min(availableParallelism(), interpreterBudget())) },
    seconds: { type: "string", default: "3" },
  },
});
const size = Number(args.interpreters);
const seconds = Number(args.seconds);
const model = join(dirname(fileURLToPath(import.meta.url)), "mlp.py");

let started = performance.now();
const pool = await InterpreterPool.create({ size, backend: new CpuBackend() });
const info = pool.backendInfo[0];
console.log(
  `pool: ${pool.size} interpreters up in ${(performance.now() - started).toFixed(0)} ms ` +
    `(Python ${info.python} at ${pool.python.executable}, torch ${info.torch}, ` +
    `${info.threads} intra-op thread(s) each, ${info.cores} cores)`,
);

const mlp = pool.replicate({ file: model, factory: "build", kwargs: { seed: 0 } });
started = performance.now();
await mlp.materialize();
console.log(`model: instantiated in every interpreter in ${(performance.now() - started).toFixed(0)} ms`);

// As many calls as interpreters, all at once: the scheduler gives each a free
// interpreter, and each answers from its own thread.
const x = Tensor.from("float32", [8, 64], Array.from({ length: 8 * 64 }, (_, i) => Math.sin(i)));
const answers = await Promise.all(pool.interpreters.map(() => mlp.callMethod("where", [x])));
for (const [i, answer] of answers.entries()) {
  console.log(`  interpreter ${i} (thread ${answer.thread}): classes [${Array.from(answer.classes.data).join(", ")}]`);
}
const same = answers.every((a) => a.classes.data.join() === answers[0].classes.data.join());
console.log(`  every interpreter agrees: ${same}`);

// Throughput: a closed loop with two callers per interpreter.
const callers = pool.size * 2;
const latencies = [];
const until = performance.now() + seconds * 1000;
started = performance.now();
await Promise.all(
  Array.from({ length: callers }, async () => {
    while (performance.now() < until) {
      const t0 = performance.now();
      await mlp.call([x]);
      latencies.push(performance.now() - t0);
    }
  }),
);
const elapsed = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(3);
console.log(
  `throughput: ${(latencies.length / elapsed).toFixed(0)} calls/s over ${elapsed.toFixed(1)} s ` +
    `with ${callers} concurrent callers; latency p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms`,
);
await pool.close();
if (!same) process.exitCode = 1;
