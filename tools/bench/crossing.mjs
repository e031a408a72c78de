#!/usr/bin/env node
// What it costs a call to move its tensors across, the engine's way and the bridge's
// (issue 13, docs/engine.md "The crossing in C++"): one Coil interpreter, its object
// returning the result of a served model's shape without computing anything, so the
// call is all crossing. Two ways, in alternating blocks of --calls calls (this VM's
// speed drifts by more than the difference; adjacent blocks see the same host):
//   native   the engine makes inputs with torch._C._from_dlpack over Node's memory
//            and reads results through _to_dlpack (coil_bridge.NATIVE_TENSORS);
//   python   the bridge's make_tensor and _export_tensor (NATIVE_TENSORS None).
// Per shape and way: the interpreter's time a call (the job's runSeconds: taking the
// GIL, the inputs, the bridge's call_object, the result back) and one caller's round
// trip, the median over blocks. Prints a table, writes bench-results/crossing.json.
import { join } from "node:path";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool, Tensor } from "@coil/core";

import { parseFlags } from "./lib/args.mjs";
import { progress } from "./lib/log.mjs";
import { formatMachine } from "./lib/machine.mjs";
import { REPO_ROOT } from "./lib/paths.mjs";
import { outFlag, repoRelative, startResults, writeResults } from "./lib/results.mjs";
import { percentile } from "./lib/stats.mjs";
import { printTable } from "./lib/table.mjs";
import { relaunchWithTunable } from "./lib/tunable.mjs";

await relaunchWithTunable();

// Inputs and the result each shape's object returns (made once, returned each call).
const SHAPES = {
  "text: 2 x int64 [1,16] -> {hidden: float32 [1,16,32]}": {
    inputs: () => [Tensor.zeros("int64", [1, 16]), Tensor.zeros("int64", [1, 16])],
    result: "{'last_hidden_state': torch.zeros(1, 16, 32)}",
  },
  "mlp: float32 [8,64] -> float32 [8,10]": {
    inputs: () => [Tensor.zeros("float32", [8, 64])],
    result: "torch.zeros(8, 10)",
  },
  "image: float32 [1,3,224,224] -> float32 [1,1000]": {
    inputs: () => [Tensor.zeros("float32", [1, 3, 224, 224])],
    result: "torch.zeros(1, 1000)",
  },
};
const WAYS = {
  native: "coil_bridge._describe_native_tensors()",
  python: "coil_bridge.NATIVE_TENSORS = None",
};

const flags = parseFlags(import.meta.url, {
  calls: { type: "integer", default: 500, help: "calls per block" },
  blocks: { type: "integer", default: 12, help: "blocks per way and shape, the ways alternating" },
  python: {
    type: "path",
    default: join(REPO_ROOT, ".venv-torch2", "bin", "python"),
    defaultHelp: ".venv-torch2/bin/python",
    help: "the Python Coil embeds",
  },
  out: outFlag("crossing"),
});

const results = startResults({ options: { ...flags, out: repoRelative(flags.out) }, rows: [] });
const pool = await InterpreterPool.create({ size: 1, python: flags.python, backend: new CpuBackend({ threadsPerInterpreter: 1 }) });
const [interpreter] = pool.interpreters;
console.log(`crossing: ${formatMachine(results.machine)}; ${pool.backendInfo[0].python}, torch ${pool.backendInfo[0].torch}`);

/** One block: `calls` calls one after another; the interpreter's mean time a call and the mean round trip, µs. */
async function block(objectId, inputs) {
  const timings = { queuedSeconds: 0, runSeconds: 0 };
  let run = 0;
  const start = performance.now();
  for (let i = 0; i < flags.calls; i++) {
    await interpreter.call("call_object", [objectId, null, inputs, {}], { timings });
    run += timings.runSeconds;
  }
  return { runUs: (run / flags.calls) * 1e6, roundTripUs: ((performance.now() - start) / flags.calls) * 1e3 };
}

try {
  let objectId = 1_000_000;
  for (const [shape, { inputs, result }] of Object.entries(SHAPES)) {
    objectId += 1;
    await interpreter.exec(
      `import coil_bridge, torch\nclass _Answer:\n    def __init__(self):\n        self.value = ${result}\n` +
        `    def __call__(self, *inputs):\n        return self.value\ncoil_bridge._objects[${objectId}] = _Answer()\n`,
    );
    const tensors = inputs();
    const samples = Object.fromEntries(Object.keys(WAYS).map((way) => [way, []]));
    for (let b = 0; b < flags.blocks; b++) {
      progress(`${shape}: block ${b + 1}/${flags.blocks}`);
      // Alternating, and which goes first alternating too.
      const order = b % 2 === 0 ? Object.keys(WAYS) : Object.keys(WAYS).reverse();
      for (const way of order) {
        await interpreter.exec(`import coil_bridge\n${WAYS[way]}`);
        await block(objectId, tensors); // warm: the first calls of a way pay for its switch
        samples[way].push(await block(objectId, tensors));
      }
    }
    await interpreter.exec(`import coil_bridge\n${WAYS.native}\ncoil_bridge._objects.pop(${objectId}, None)`);
    const median = (way, key) => percentile(samples[way].map((s) => s[key]).sort((x, y) => x - y), 0.5);
    for (const way of Object.keys(WAYS)) {
      results.rows.push({ shape, way, runUs: median(way, "runUs"), roundTripUs: median(way, "roundTripUs"), blocks: samples[way] });
    }
  }
} finally {
  await pool.close();
}

const python = (row) => results.rows.find((r) => r.shape === row.shape && r.way === "python");
printTable(
  [
    ["shape", (r) => r.shape, "l"],
    ["way", (r) => r.way, "l"],
    ["interpreter µs/call", (r) => r.runUs.toFixed(1)],
    ["× python", (r) => (r.runUs / python(r).runUs).toFixed(2)],
    ["round trip µs (1 caller)", (r) => r.roundTripUs.toFixed(1)],
    ["× python", (r) => (r.roundTripUs / python(r).roundTripUs).toFixed(2)],
  ],
  results.rows,
  { rule: true },
);
writeResults(flags.out, results);
