#!/usr/bin/env node
// Coil's main job for now: start a pool of isolated CPython interpreters, run a
// small torch model on every one of them, print the results and the throughput.
//
//   npm run demo [-- --interpreters N] [--seconds S]
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool, Tensor } from "@coil/core";
import { interpreterBudget } from "@coil/native";

import { parseFlags } from "../bench/lib/args.mjs";
import { closedLoop } from "../bench/lib/closed-loop.mjs";
import { relaunchWithTunable } from "../bench/lib/tunable.mjs";

await relaunchWithTunable();
const flags = parseFlags(import.meta.url, {
  interpreters: {
    type: "integer",
    default: Math.min(availableParallelism(), interpreterBudget()),
    defaultHelp: "the cores, at most 15",
    max: interpreterBudget(),
    help: "interpreters in the pool",
  },
  seconds: { type: "number", positive: true, default: 3, help: "seconds of the throughput run" },
});
const model = join(dirname(fileURLToPath(import.meta.url)), "mlp.py");

let started = performance.now();
const pool = await InterpreterPool.create({ size: flags.interpreters, backend: new CpuBackend() });
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
const x = Tensor.from(
  "float32",
  [8, 64],
  Array.from({ length: 8 * 64 }, (_, i) => Math.sin(i)),
);
const answers = await Promise.all(pool.interpreters.map(() => mlp.callMethod("where", [x])));
for (const [i, answer] of answers.entries()) {
  console.log(`  interpreter ${i} (thread ${answer.thread}): classes [${Array.from(answer.classes.data).join(", ")}]`);
}
const same = answers.every((a) => a.classes.data.join() === answers[0].classes.data.join());
console.log(`  every interpreter agrees: ${same}`);

// Throughput: a closed loop with two callers per interpreter.
const callers = pool.size * 2;
const load = await closedLoop(() => mlp.call([x]), { concurrency: callers, durationMs: flags.seconds * 1e3 });
console.log(
  `throughput: ${load.callsPerSecond.toFixed(0)} calls/s over ${flags.seconds.toFixed(1)} s ` +
    `with ${callers} concurrent callers; latency p50 ${load.p50Ms.toFixed(3)} ms, p99 ${load.p99Ms.toFixed(3)} ms`,
);
await pool.close();
if (!same) process.exitCode = 1;
