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
// measures, each in a child process of its own (archive/measure.mjs: a process gets 15
// interpreters in its lifetime, and memory must be measured without what an earlier
// measurement left):
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

import { parseFlags } from "./lib/args.mjs";
import { runJsonChild } from "./lib/child.mjs";
import { progress } from "./lib/log.mjs";
import { formatMachine } from "./lib/machine.mjs";
import { BENCH_DIR, BENCH_MODELS } from "./lib/paths.mjs";
import { outFlag, repoRelative, startResults, writeResults } from "./lib/results.mjs";
import { scratchDir } from "./lib/scratch.mjs";
import { relaunchWithTunable } from "./lib/tunable.mjs";
import { bars, derive } from "./archive/bars.mjs";
import { printReport } from "./archive/report.mjs";
import { mb } from "./archive/units.mjs";

const MODEL = join(BENCH_MODELS, "big_mlp.py");
const MEASURE = join(BENCH_DIR, "archive", "measure.mjs");

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
});

await main();

async function main() {
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
    const argv = [MEASURE, JSON.stringify({ archive, python, hidden, ...spec })];
    return runJsonChild(process.execPath, argv, { timeoutMs: 600_000 }).then((r) => (runs[name] = r));
  };
  const interpreters = (n) => `${n} interpreter${n > 1 ? "s" : ""}`;
  for (const n of [1, 4]) await measure(`base-${n}`, `${interpreters(n)}, nothing loaded`, { mode: "base", size: n });
  for (const n of sizes) await measure(`load-${n}`, `loading into ${interpreters(n)}`, { mode: "load", size: n });
  if (flags.copy) await measure("copy-4", "stock torch.package in 4 interpreters", { mode: "copy", size: 4 });
  results.runs = runs;
  results.derived = derive(results, runs);
  results.bars = bars(results);
  printReport(results);

  results.elapsedSeconds = (performance.now() - t0) / 1e3;
  console.log(`\n${results.elapsedSeconds.toFixed(0)} s in all`);
  writeResults(flags.out, results);
  if (results.bars.some((b) => !b.pass)) process.exitCode = 1;
}
