#!/usr/bin/env node
// One measurement of the archive benchmark, in a process of its own (a process gets
// 15 interpreters in its lifetime, and memory must be measured without what an earlier
// measurement left): archive.mjs runs it with a JSON spec
//   { mode: "base" | "load" | "copy", size, archive, python, hidden }
// and reads the one JSON line it prints: memory (MiB) before and after each step,
// load and inference times, the archive's mappings.
import { join } from "node:path";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool } from "@coil/core";

import { fail } from "../lib/args.mjs";
import { BENCH_MODELS } from "../lib/paths.mjs";
import { fileMappingsMiB, memoryMiB } from "../lib/proc.mjs";
import { deterministicTensor } from "../lib/tensor.mjs";
import { relaunchWithTunable } from "../lib/tunable.mjs";

const COPY_LOADER = join(BENCH_MODELS, "torch_package_load.py");

await relaunchWithTunable();
if (process.argv.length !== 3) fail("run by archive.mjs, with one argument: the measurement as JSON");
await measure(JSON.parse(process.argv[2]));

async function measure(spec) {
  const result = { mode: spec.mode, size: spec.size };
  result.memoryBeforePool = memoryMiB();
  const pool = await InterpreterPool.create({ size: spec.size, python: spec.python, backend: new CpuBackend() });
  try {
    result.torchThreads = pool.backendInfo.map((i) => i.threads);
    await settle();
    if (spec.mode === "base") result.memory = memoryMiB();
    else await measureLoad(pool, spec, result);
  } finally {
    await pool.close();
  }
  console.log(JSON.stringify(result));
}

/** Loads the archive into every interpreter of `pool` (Coil's way, or stock
 * torch.package's with spec.mode "copy"), runs it, and records times and memory. */
async function measureLoad(pool, spec, result) {
  result.memoryBeforeLoad = memoryMiB();
  let model;
  if (spec.mode === "load") {
    const t = performance.now();
    // Lazy: validate, hash, map. Its replicated object, like the copy's below.
    model = (await pool.loadArchive(spec.archive)).object;
    result.openSeconds = (performance.now() - t) / 1e3;
  } else {
    const { openArchive } = await import("@coil/format-reader");
    const archive = await openArchive(spec.archive, { verifyHashes: false });
    const entry = archive.manifest.entryPoint;
    await archive.close();
    model = pool.replicate({ file: COPY_LOADER, factory: "load", args: [spec.archive, entry.package, entry.resource] });
    result.openSeconds = null;
  }
  const t = performance.now();
  result.loadSecondsPerInterpreter = await timePerInterpreter(pool, () => model.materialize());
  result.materializeSeconds = (performance.now() - t) / 1e3;
  await settle();
  result.memoryAfterLoad = memoryMiB();

  // One inference in each interpreter (all free: the scheduler gives each call
  // its own), touching every weight; then a second, for the time without faults.
  const x = deterministicTensor([1, spec.hidden]);
  const inferEach = async () => {
    const times = [];
    await Promise.all(
      pool.interpreters.map(async (_, i) => {
        const start = performance.now();
        const y = await model.call([x]);
        times[i] = (performance.now() - start) / 1e3;
        if (y.shape[1] !== spec.hidden || !Number.isFinite(y.data[0])) throw new Error(`bad output ${y.shape}`);
      }),
    );
    return times;
  };
  result.firstInferenceSeconds = await inferEach();
  result.inferenceSeconds = await inferEach();
  await settle();
  result.memoryAfterInference = memoryMiB();

  // The archive's mappings: one per interpreter, sharing their pages.
  result.archiveMappings = fileMappingsMiB(spec.archive);
  await model.dispose();
}

/** Runs `start` (which queues one job on every interpreter of the pool) and returns,
 * per interpreter, the seconds until it had nothing left to do, seen by polling its
 * queue every millisecond. */
async function timePerInterpreter(pool, start) {
  const t0 = performance.now();
  const done = pool.interpreters.map(() => undefined);
  const all = start();
  let settled = false;
  all.then(
    () => (settled = true),
    () => (settled = true),
  );
  while (!settled || done.some((d) => d === undefined)) {
    pool.interpreters.forEach((interpreter, i) => {
      if (done[i] === undefined && interpreter.load === 0) done[i] = (performance.now() - t0) / 1e3;
    });
    if (settled && done.every((d) => d !== undefined)) break;
    await new Promise((r) => setTimeout(r, 1));
  }
  await all;
  return done;
}

/** A moment for Node's garbage and the interpreters' threads to settle. */
async function settle() {
  globalThis.gc?.();
  await new Promise((r) => setTimeout(r, 200));
}
