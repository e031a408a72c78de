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
// Usage: GLIBC_TUNABLES=glibc.rtld.nns=16 node tools/bench/archive.mjs [flags]
// (the children get the tunable whatever this process started with). Needs the
// packages built (npx nx run-many -t build).
//   --layers <n>       Linear layers (default 4)
//   --hidden <n>       their width (default 4096: 64 MiB per layer)
//   --sizes a,b        pool sizes to load into (default 1,2,4; the memory bar uses 4)
//   --[no-]copy        the stock torch.package contrast (default on)
//   --python <exe>     (default $COIL_PYTHON or /usr/bin/python3)
//   --out <file>       JSON results (default bench-results/archive.json)

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, release, tmpdir, totalmem } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { fileMappings, processMemory } from "@coil/native";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "..", "..");
const MODEL = join(HERE, "models", "big_mlp.py");
const COPY_LOADER = join(HERE, "models", "torch_package_load.py");
const RESULT = "ARCHIVE_BENCH_RESULT ";
const TUNABLE = "glibc.rtld.nns=16";
const MiB = 1024 * 1024;

const { values: flags } = parseArgs({
  options: {
    layers: { type: "string", default: "4" },
    hidden: { type: "string", default: "4096" },
    sizes: { type: "string", default: "1,2,4" },
    copy: { type: "boolean", default: true },
    python: { type: "string" },
    out: { type: "string" },
    child: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
  allowNegative: true,
  strict: true,
});

if (flags.help) {
  const header = readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n");
  console.log(header.slice(1, header.findIndex((l) => l.startsWith("import "))).map((l) => l.replace(/^\/\/ ?/, "")).join("\n"));
  process.exit(0);
}

if (flags.child) {
  await child(JSON.parse(flags.child));
} else {
  await parent();
}

// --- the parent: pack, run the children, judge ------------------------------------------

async function parent() {
  const layers = positiveInt("layers", flags.layers);
  const hidden = positiveInt("hidden", flags.hidden);
  const sizes = flags.sizes.split(",").map((s) => positiveInt("sizes", s));
  if (sizes.some((n) => n > 14)) fail("--sizes: at most 14 (a process gets 15 interpreters)");
  const python = flags.python ?? process.env.COIL_PYTHON ?? "/usr/bin/python3";
  const out = resolve(flags.out ?? join(ROOT, "bench-results", "archive.json"));
  const { packModel, inspectArchive } = await import("@coil/runtime");

  const t0 = performance.now();
  const results = {
    startedAt: new Date().toISOString(),
    options: { layers, hidden, sizes, copy: flags.copy, python, out: relative(ROOT, out) },
    machine: {
      node: process.version,
      kernel: release(),
      cpu: cpus()[0]?.model ?? "unknown",
      cores: availableParallelism(),
      memoryGiB: Math.round(totalmem() / 1024 ** 3),
    },
  };
  console.log(`archive benchmark: ${results.machine.cores} cores (${results.machine.cpu}), ${results.machine.memoryGiB} GiB, node ${process.version}`);

  const dir = mkdtempSync(join(tmpdir(), "coil-archive-bench-"));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => {
      cleanup();
      process.exit(130);
    });
  }
  try {
    // Pack.
    const archive = join(dir, "big_mlp.coil");
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
    const common = { archive, python, hidden };
    for (const n of [...new Set([1, 4])]) {
      progress(`base-${n}: ${n} interpreter${n > 1 ? "s" : ""}, nothing loaded ...`);
      runs[`base-${n}`] = await runChild({ ...common, mode: "base", size: n });
    }
    for (const n of sizes) {
      progress(`load-${n}: loading into ${n} interpreter${n > 1 ? "s" : ""} ...`);
      runs[`load-${n}`] = await runChild({ ...common, mode: "load", size: n });
    }
    if (flags.copy) {
      progress("copy-4: stock torch.package in 4 interpreters ...");
      runs["copy-4"] = await runChild({ ...common, mode: "copy", size: 4 });
    }
    results.runs = runs;
    results.derived = derive(results, runs);
    results.bars = bars(results);
    print(results);
  } finally {
    cleanup();
  }

  results.elapsedSeconds = (performance.now() - t0) / 1e3;
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(results, null, 2) + "\n");
  console.log(`\n${results.elapsedSeconds.toFixed(0)} s in all; results written to ${relative(process.cwd(), out) || out}`);
  if (results.bars.some((b) => !b.pass)) process.exitCode = 1;
}

/** Runs this script as a child with `spec`; returns the JSON it reports. */
function runChild(spec) {
  const tunables = process.env.GLIBC_TUNABLES;
  const env = {
    ...process.env,
    GLIBC_TUNABLES: tunables && /(?:^|:)glibc\.rtld\.nns=/.test(tunables) ? tunables : [tunables, TUNABLE].filter(Boolean).join(":"),
  };
  return new Promise((resolvePromise, reject) => {
    const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), "--child", JSON.stringify(spec)], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (d) => (stdout += d));
    proc.stderr.on("data", (d) => (stderr += d));
    proc.on("error", reject);
    proc.on("exit", (code, signal) => {
      const line = stdout.split("\n").find((l) => l.startsWith(RESULT));
      if (code === 0 && line) return resolvePromise(JSON.parse(line.slice(RESULT.length)));
      reject(new Error(`child ${spec.mode}-${spec.size} failed (${signal ?? `exit ${code}`}):\n${tail(stdout + stderr, 4000)}`));
    });
  });
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
  for (const [name, r] of Object.entries(runs)) {
    if (r.mode === "base") {
      rows.push([name, "Node only", r.memoryBeforePool]);
      rows.push([name, `${r.size} interpreter(s), torch imported`, r.memory]);
    } else {
      rows.push([name, `${r.size} interpreter(s), nothing loaded`, r.memoryBeforeLoad]);
      rows.push([name, r.mode === "copy" ? "loaded (stock torch.package)" : "loaded (validated, mapped, unpickled)", r.memoryAfterLoad]);
      rows.push([name, "after one inference in each", r.memoryAfterInference]);
    }
  }
  table(
    ["run", "state", "private", "rss", "pss", "anon"],
    rows.map(([name, state, m]) => [name, state, m.private.toFixed(0), m.rss.toFixed(0), m.pss.toFixed(0), m.anonymous.toFixed(0)]),
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
        `archive mappings: ${m.archiveMappings.count} (one per interpreter), Rss ${m.archiveMappings.rssMiB.toFixed(0)} MiB counted per mapping, ` +
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
  table(
    ["run", "interps", "open+verify+map", "materialize (all)", "per interpreter", "1st inference each", "inference"],
    Object.entries(runs)
      .filter(([, r]) => r.mode !== "base")
      .map(([name, r]) => [
        name,
        String(r.size),
        r.openSeconds === null ? "-" : r.openSeconds.toFixed(3),
        r.materializeSeconds.toFixed(3),
        r.loadSecondsPerInterpreter.map((s) => s.toFixed(3)).join(" "),
        r.firstInferenceSeconds.map((s) => s.toFixed(3)).join(" "),
        r.inferenceSeconds.map((s) => s.toFixed(3)).join(" "),
      ]),
  );
  console.log(
    "  open+verify+map: loadArchive, once per archive (structure, SHA-256 of every record); each interpreter maps the file as it unpickles;\n" +
      "  per interpreter: when each interpreter finished unpickling (all started together);\n" +
      "  1st inference: touches the weights (page faults on the mapping in the first); inference: a second call",
  );

  console.log("\nbars");
  for (const b of results.bars) console.log(`  ${b.pass ? "PASS" : "FAIL"}  ${b.bar}: ${b.value}`);
}

function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => "  " + cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  console.log(line(header));
  console.log("  " + widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows) console.log(line(r));
}

// --- the children ---------------------------------------------------------------------------

async function child(spec) {
  const { CpuBackend } = await import("@coil/backend-cpu");
  const { InterpreterPool, Tensor } = await import("@coil/core");
  const result = { mode: spec.mode, size: spec.size };
  result.memoryBeforePool = memory();
  const pool = await InterpreterPool.create({ size: spec.size, python: spec.python, backend: new CpuBackend() });
  try {
    result.torchThreads = pool.backendInfo.map((i) => i.threads);
    if (spec.mode === "base") {
      await settle();
      result.memory = memory();
    } else {
      await settle();
      result.memoryBeforeLoad = memory();
      let model;
      if (spec.mode === "load") {
        const t = performance.now();
        model = await pool.loadArchive(spec.archive); // lazy: validate, hash, map
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
      result.memoryAfterLoad = memory();

      // One inference in each interpreter (all free: the scheduler gives each call
      // its own), touching every weight; then a second, for the time without faults.
      const x = Tensor.from("float32", [1, spec.hidden], Array.from({ length: spec.hidden }, (_, i) => Math.sin(i)));
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
      result.memoryAfterInference = memory();

      // The archive's mappings: one per interpreter, sharing their pages.
      result.archiveMappings = archiveMappings(spec.archive);
      await model.dispose();
    }
  } finally {
    await pool.close();
  }
  console.log(RESULT + JSON.stringify(result));
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

/** This process's memory, in MiB. */
function memory() {
  const kb = processMemory();
  const mib = (k) => (k ?? 0) / 1024;
  return {
    private: mib(kb.Private_Clean + kb.Private_Dirty),
    privateClean: mib(kb.Private_Clean),
    privateDirty: mib(kb.Private_Dirty),
    rss: mib(kb.Rss),
    pss: mib(kb.Pss),
    anonymous: mib(kb.Anonymous),
  };
}

/** Totals over this process's mappings of `file`, in MiB. */
function archiveMappings(file) {
  const mappings = fileMappings(file);
  const sum = (field) => mappings.reduce((n, m) => n + (m[field] ?? 0), 0) / 1024;
  return { count: mappings.length, rssMiB: sum("Rss"), pssMiB: sum("Pss"), privateDirtyMiB: sum("Private_Dirty") };
}

/** A moment for Node's garbage and the interpreters' threads to settle. */
async function settle() {
  globalThis.gc?.();
  await new Promise((r) => setTimeout(r, 200));
}

// --- helpers ---------------------------------------------------------------------------------

function positiveInt(name, text) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) fail(`--${name}: expected a positive integer, got ${text}`);
  return n;
}

function fail(message) {
  console.error(`archive.mjs: ${message}`);
  process.exit(2);
}

function progress(message) {
  process.stderr.write(`${message}\n`);
}

function tail(text, n) {
  return text.length > n ? `...${text.slice(-n)}` : text;
}

function mb(bytes) {
  return (bytes / 1e6).toFixed(0);
}

function ms(seconds) {
  return (seconds * 1e3).toFixed(0);
}
