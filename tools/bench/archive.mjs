#!/usr/bin/env node
// Coil's archive benchmark: is a model's weights in memory once however many
// interpreters load it, and is loading it into one more interpreter quick?
//
// The bars (from the issue):
//   memory  A model with >= 200 MB of weights loaded in 4 interpreters costs <= 1.1x
//           the memory of (weights + 4 interpreters with nothing loaded): the
//           weights are not copied per interpreter.
//   time    Loading that model into an interpreter that already has torch takes
//           <= 0.5 s, and its time does not grow with the number of interpreters
//           loading it.
//
// What it does: packs tools/bench/models/big_mlp.py (Linear(4096, 4096) x 4 by
// default: 256 MiB of float32, random) with packModel into a temporary folder, then
// measures, each in a child process of its own (a process gets 15 interpreters in its
// lifetime, and memory must be measured without what an earlier measurement left):
//   base-1, base-4   a pool of 1 / 4 interpreters (CPU backend: torch imported),
//                    nothing loaded: the per-interpreter overhead is (base-4 - base-1) / 3;
//   load-1/2/4       a pool of n, then loadArchive (validate + hash + map; lazy), then
//                    materialize (every interpreter unpickles it: the load the time bar
//                    is about, timed per interpreter), then one inference per
//                    interpreter, which touches every weight page; private memory
//                    before, after loading and after inference; the weights' addresses
//                    in every interpreter;
//   copy-4           the contrast: 4 interpreters loading the same archive with stock
//                    torch.package (PackageImporter), which reads the storages into
//                    memory of each interpreter's own.
// Memory is /proc/self/smaps_rollup of the child. The bar uses Pss, the process's
// proportional set size: each page divided by the number of mappings that share it.
// Each interpreter maps the archive itself (so in-place writes stay apart), and the
// libraries are loaded once per namespace; all those mappings share page-cache
// pages, which Pss counts once and Rss counts once per mapping. Private
// (Private_Clean + Private_Dirty) counts only pages a single mapping holds, so it
// would not count the shared weights at all -- shown for reference, with Rss.
//
// Needs the packages built (npx nx run-many -t build); started without the glibc
// tunable, it runs itself again with it (the children inherit it). Exits with 1 when
// a bar fails.
import { statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { parseFlags } from "./lib/args.mjs";
import { runJsonChild } from "./lib/child.mjs";
import { progress } from "./lib/log.mjs";
import { formatMachine } from "./lib/machine.mjs";
import { BENCH_MODELS } from "./lib/paths.mjs";
import { fileMappingsMiB, memoryMiB } from "./lib/proc.mjs";
import { outFlag, repoRelative, startResults, writeResults } from "./lib/results.mjs";
import { scratchDir } from "./lib/scratch.mjs";
import { printTable } from "./lib/table.mjs";
import { deterministicTensor } from "./lib/tensor.mjs";
import { relaunchWithTunable } from "./lib/tunable.mjs";

const MODEL = join(BENCH_MODELS, "big_mlp.py");
const COPY_LOADER = join(BENCH_MODELS, "torch_package_load.py");
const MiB = 1024 * 1024;

await relaunchWithTunable();
const flags = parseFlags(import.meta.url, {
  layers: { type: "integer", default: 4, help: "Linear layers" },
  hidden: { type: "integer", default: 4096, help: "their width (4096: 64 MiB per layer)" },
  sizes: {
    type: "integers",
    default: [1, 2, 4],
    defaultHelp: "1,2,4",
    max: 14,
    maxWhy: "a process gets 15 interpreters",
    help: "pool sizes to load into (the memory bar uses 4)",
  },
  copy: { type: "boolean", default: true, help: "the stock torch.package contrast" },
  python: {
    type: "path",
    default: process.env.COIL_PYTHON ?? "/usr/bin/python3",
    defaultHelp: "$COIL_PYTHON or /usr/bin/python3",
    help: "the Python to embed",
  },
  out: outFlag("archive"),
  child: { type: "string", hidden: true, help: "internal: one measurement, as JSON" },
});

if (flags.child) await child(JSON.parse(flags.child));
else await parent();

// --- the parent: pack, run the children, judge ------------------------------------------

async function parent() {
  const { layers, hidden, sizes, python } = flags;
  const { packModel, inspectArchive } = await import("@coil/runtime");

  const t0 = performance.now();
  const results = startResults({ options: { layers, hidden, sizes, copy: flags.copy, python, out: repoRelative(flags.out) } });
  console.log(`archive benchmark: ${formatMachine(results.machine)}`);

  // Pack.
  const archive = join(scratchDir("coil-archive-bench"), "big_mlp.coil");
  progress(`packing big_mlp.py (Linear(${hidden}, ${hidden}) x ${layers}) ...`);
  const packStart = performance.now();
  const packed = await packModel({
    target: `${MODEL}:build`,
    output: archive,
    kwargs: { layers, hidden },
    python,
    inputs: [{ name: "x", dtype: "float32", shape: [-1, hidden] }],
    outputs: [{ name: "y", dtype: "float32", shape: [-1, hidden] }],
  });
  const packSeconds = (performance.now() - packStart) / 1e3;
  const report = await inspectArchive(archive, { verifyHashes: false });
  const weights = report.storages.reduce((sum, s) => sum + s.size, 0);
  results.pack = {
    seconds: packSeconds,
    archiveBytes: statSync(archive).size,
    weightsBytes: weights,
    records: packed.records,
    storages: report.storages.length,
    type: packed.type,
  };
  console.log(
    `\npacked ${packed.type}: ${mb(weights)} MB of weights (${report.storages.length} storages), ` +
      `archive ${mb(results.pack.archiveBytes)} MB, ${packed.records} records, in ${packSeconds.toFixed(1)} s`,
  );

  // Measure, each in a child process of its own.
  const runs = {};
  const measure = (name, what, spec) => {
    progress(`${name}: ${what} ...`);
    const argv = [fileURLToPath(import.meta.url), "--child", JSON.stringify({ archive, python, hidden, ...spec })];
    return runJsonChild(process.execPath, argv, { timeoutMs: 600_000 }).then((r) => (runs[name] = r));
  };
  const interpreters = (n) => `${n} interpreter${n > 1 ? "s" : ""}`;
  for (const n of [1, 4]) await measure(`base-${n}`, `${interpreters(n)}, nothing loaded`, { mode: "base", size: n });
  for (const n of sizes) await measure(`load-${n}`, `loading into ${interpreters(n)}`, { mode: "load", size: n });
  if (flags.copy) await measure("copy-4", "stock torch.package in 4 interpreters", { mode: "copy", size: 4 });
  results.runs = runs;
  results.derived = derive(results, runs);
  results.bars = bars(results);
  print(results);

  results.elapsedSeconds = (performance.now() - t0) / 1e3;
  console.log(`\n${results.elapsedSeconds.toFixed(0)} s in all`);
  writeResults(flags.out, results);
  if (results.bars.some((b) => !b.pass)) process.exitCode = 1;
}

function derive(results, runs) {
  const weights = results.pack.weightsBytes / MiB;
  const base1 = runs["base-1"].memory;
  const base4 = runs["base-4"].memory;
  const perInterpreter = (base4.pss - base1.pss) / 3;
  const derived = {
    weightsMiB: weights,
    nodeOnlyPssMiB: runs["base-4"].memoryBeforePool.pss,
    perInterpreterOverheadMiB: perInterpreter,
  };
  const load4 = runs["load-4"];
  if (load4) {
    // The bar's denominator, two ways: 4 interpreters with nothing loaded measured in
    // the same process just before loading (the cleanest), and built from the parts
    // (Node + 4 x the per-interpreter overhead, from the base-1 / base-4 processes).
    const sameProcess = weights + load4.memoryBeforeLoad.pss;
    const fromParts = weights + base1.pss + 3 * perInterpreter;
    derived.memory = {
      pssLoaded4MiB: load4.memoryAfterInference.pss,
      expectedMiB: sameProcess,
      expectedFromPartsMiB: fromParts,
      ratio: load4.memoryAfterInference.pss / sameProcess,
      ratioFromParts: load4.memoryAfterInference.pss / fromParts,
      addedByModelMiB: load4.memoryAfterInference.pss - load4.memoryBeforeLoad.pss,
      weightsCopies: (load4.memoryAfterInference.pss - load4.memoryBeforeLoad.pss) / weights,
      archiveMappings: load4.archiveMappings,
    };
  }
  const copy4 = runs["copy-4"];
  if (copy4) {
    derived.copy = {
      pssLoaded4MiB: copy4.memoryAfterInference.pss,
      ratio: copy4.memoryAfterInference.pss / (weights + copy4.memoryBeforeLoad.pss),
      addedByModelMiB: copy4.memoryAfterInference.pss - copy4.memoryBeforeLoad.pss,
      weightsCopies: (copy4.memoryAfterInference.pss - copy4.memoryBeforeLoad.pss) / weights,
    };
  }
  return derived;
}

function bars(results) {
  const out = [];
  const { derived, runs } = results;
  if (derived.memory) {
    out.push({
      bar: `${mb(results.pack.weightsBytes)} MB of weights in 4 interpreters: Pss <= 1.1 x (weights + 4 interpreters with nothing loaded)`,
      value: `${derived.memory.ratio.toFixed(3)}x (${derived.memory.ratioFromParts.toFixed(3)}x against base-1 + 3 x overhead)`,
      pass: derived.memory.ratio <= 1.1 && derived.memory.ratioFromParts <= 1.1,
    });
  }
  const loads = Object.entries(runs).filter(([name]) => name.startsWith("load-"));
  if (loads.length) {
    // End to end, as loadArchive(path, { eager: true }) does it: the archive's one-time
    // validation (SHA-256 of every record) and mapping, then the unpickling in every
    // interpreter at once. The unpickling alone is the per-interpreter part.
    const endToEnd = (r) => r.openSeconds + r.materializeSeconds;
    const worst = Math.max(...loads.map(([, r]) => endToEnd(r)));
    const worstUnpickle = Math.max(...loads.flatMap(([, r]) => r.loadSecondsPerInterpreter));
    out.push({
      bar: "loading the model into interpreters that have torch (validate + hash + map + unpickle), every pool size: <= 0.5 s",
      value: `${worst.toFixed(3)} s at worst, of which unpickling in an interpreter ${worstUnpickle.toFixed(3)} s at worst`,
      pass: worst <= 0.5,
    });
    const one = loads.find(([name]) => name === "load-1")?.[1];
    const most = loads.reduce((a, b) => (b[1].size > a[1].size ? b : a))[1];
    if (one && most.size > 1) {
      // "Does not grow": n interpreters loading at once take no longer, end to end and
      // each, than one alone -- within 1.5x or 50 ms (timer and scheduling noise at these
      // sizes), with more interpreters than cores.
      const single = one.materializeSeconds;
      const many = Math.max(...most.loadSecondsPerInterpreter);
      const close = (a, b) => a <= Math.max(1.5 * b, b + 0.05);
      out.push({
        bar: `load time does not grow with the interpreters loading it (${most.size} at once vs 1)`,
        value:
          `end to end ${ms(endToEnd(most))} ms for ${most.size} vs ${ms(endToEnd(one))} ms for 1; ` +
          `unpickling ${ms(many)} ms each for ${most.size} vs ${ms(single)} ms for 1`,
        pass: close(endToEnd(most), endToEnd(one)) && close(many, single),
      });
    }
  }
  return out;
}

// --- printing ----------------------------------------------------------------------------

function print(results) {
  const { runs, derived } = results;
  console.log(`\nmemory of the Node process (MiB; private = Private_Clean + Private_Dirty), weights ${derived.weightsMiB.toFixed(1)} MiB`);
  const rows = [];
  for (const [run, r] of Object.entries(runs)) {
    if (r.mode === "base") {
      rows.push({ run, state: "Node only", ...r.memoryBeforePool });
      rows.push({ run, state: `${r.size} interpreter(s), torch imported`, ...r.memory });
    } else {
      rows.push({ run, state: `${r.size} interpreter(s), nothing loaded`, ...r.memoryBeforeLoad });
      rows.push({
        run,
        state: r.mode === "copy" ? "loaded (stock torch.package)" : "loaded (validated, mapped, unpickled)",
        ...r.memoryAfterLoad,
      });
      rows.push({ run, state: "after one inference in each", ...r.memoryAfterInference });
    }
  }
  const mib = (field) => [field, (r) => r[field].toFixed(0)];
  const asTable = { indent: "  ", rule: true };
  printTable(
    [
      ["run", (r) => r.run, "l"],
      ["state", (r) => r.state, "l"],
      mib("private"),
      mib("rss"),
      mib("pss"),
      ["anon", (r) => r.anonymous.toFixed(0)],
    ],
    rows,
    asTable,
  );
  console.log(`\nper-interpreter overhead (torch imported): ${derived.perInterpreterOverheadMiB.toFixed(1)} MiB  ((base-4 - base-1) / 3)`);
  if (derived.memory) {
    const m = derived.memory;
    console.log(
      `4 interpreters loaded: ${m.pssLoaded4MiB.toFixed(0)} MiB Pss; weights + nothing loaded: ${m.expectedMiB.toFixed(0)} MiB ` +
        `-> ${m.ratio.toFixed(3)}x (from parts: ${m.expectedFromPartsMiB.toFixed(0)} MiB -> ${m.ratioFromParts.toFixed(3)}x)`,
    );
    console.log(
      `the model added ${m.addedByModelMiB.toFixed(0)} MiB = ${m.weightsCopies.toFixed(2)} x the weights; ` +
        `archive mappings: ${m.archiveMappings.count} (one per interpreter), Rss ${m.archiveMappings.rssMiB.toFixed(
          0,
        )} MiB counted per mapping, ` +
        `Pss ${m.archiveMappings.pssMiB.toFixed(0)} MiB, copied pages (Private_Dirty) ${m.archiveMappings.privateDirtyMiB.toFixed(1)} MiB`,
    );
  }
  if (derived.copy) {
    const c = derived.copy;
    console.log(
      `contrast, stock torch.package in 4 interpreters: ${c.pssLoaded4MiB.toFixed(0)} MiB Pss -> ${c.ratio.toFixed(3)}x; ` +
        `the model added ${c.addedByModelMiB.toFixed(0)} MiB = ${c.weightsCopies.toFixed(2)} x the weights`,
    );
  }

  console.log("\nload times (s)");
  const seconds = (list) => list.map((s) => s.toFixed(3)).join(" ");
  printTable(
    [
      ["run", (r) => r.run, "l"],
      ["interps", (r) => r.size, "l"],
      ["open+verify+map", (r) => (r.openSeconds === null ? "-" : r.openSeconds.toFixed(3))],
      ["materialize (all)", (r) => r.materializeSeconds.toFixed(3)],
      ["per interpreter", (r) => seconds(r.loadSecondsPerInterpreter)],
      ["1st inference each", (r) => seconds(r.firstInferenceSeconds)],
      ["inference", (r) => seconds(r.inferenceSeconds)],
    ],
    Object.entries(runs)
      .filter(([, r]) => r.mode !== "base")
      .map(([run, r]) => ({ run, ...r })),
    asTable,
  );
  console.log(
    "  open+verify+map: loadArchive, once per archive (structure, SHA-256 of every record); each interpreter maps the file as it unpickles;\n" +
      "  per interpreter: when each interpreter finished unpickling (all started together);\n" +
      "  1st inference: touches the weights (page faults on the mapping in the first); inference: a second call",
  );

  console.log("\nbars");
  for (const b of results.bars) console.log(`  ${b.pass ? "PASS" : "FAIL"}  ${b.bar}: ${b.value}`);
}

// --- the children ---------------------------------------------------------------------------

async function child(spec) {
  const { CpuBackend } = await import("@coil/backend-cpu");
  const { InterpreterPool } = await import("@coil/core");
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

function mb(bytes) {
  return (bytes / 1e6).toFixed(0);
}

function ms(seconds) {
  return (seconds * 1e3).toFixed(0);
}
