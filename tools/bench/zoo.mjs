#!/usr/bin/env node
// The model zoo (`npm run bench:zoo`, issue 13): popular models packed with zero
// config and run in Coil against plain eager Python, TorchScript and plain processes.
//
// The suite (zoo/models.mjs): on Debian's stack (torch 1.13 + torchvision 0.14),
// torchvision models of every family -- classification, detection, segmentation,
// video, optical flow; on the venv's (.venv-torch2: torch 2.x + transformers),
// transformers architectures from small random configs -- encoders, decoders,
// encoder-decoders, vision, audio. Random weights; nothing downloads.
//
// Per model, in a child process of its own (zoo/measure.mjs; a failure is a cell
// saying why, never the end of the run), at batch 1 with one torch thread:
//   pack       zero-config `coil pack` (packModel: no rules, signature inferred);
//   == eager   the archive in Coil gives eager's outputs (max abs error <= 1e-4);
//   script, trace, export   torch.jit.script / torch.jit.trace / torch.export (2.x);
//   calls/s    plain eager, TorchScript (where it worked), Coil with 1 interpreter (1 and 2 callers)
//              (vision: also eager and Coil 1 at batch 8),
//              Coil with N interpreters (2 callers each), N plain processes
//              (zoo/driver.py), in closed loops of --seconds; and the Pss of N
//              interpreters (the whole Node process) vs N processes;
//   ratios     like for like (Coil / plain eager, TorchScript, N processes,
//              torch.compile, onnxruntime-node) from --rounds interleaved rounds:
//              plain Python and Coil take turns, all loaded (zoo/interleaved.mjs).
// Prints the table and the failures, writes bench-results/zoo.json; --write-docs
// also writes docs/zoo.md (table + SVG chart) and docs/zoo.json.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";

import { interpreterBudget } from "@coil/native";

import { fail, parseFlags } from "./lib/args.mjs";
import { runJsonChild } from "./lib/child.mjs";
import { describeError, progress } from "./lib/log.mjs";
import { BENCH_DIR, REPO_ROOT } from "./lib/paths.mjs";
import { outFlag, repoRelative, startResults, writeResults } from "./lib/results.mjs";
import { scratchDir } from "./lib/scratch.mjs";
import { printTable } from "./lib/table.mjs";
import { relaunchWithTunable } from "./lib/tunable.mjs";
import { MODELS, STACKS } from "./zoo/models.mjs";
import {
  barLines,
  COLUMNS,
  FAILURE_COLUMNS,
  failedRow,
  groupedFailures,
  INTERLEAVED_COLUMNS,
  markdown,
  modelRow,
  summary,
  summaryLine,
} from "./zoo/report.mjs";

await relaunchWithTunable();

const flags = parseFlags(import.meta.url, {
  quick: { type: "boolean", default: false, help: "a handful of models (those marked quick in zoo/models.mjs)" },
  models: { type: "list", default: [], defaultHelp: "all; the quick ones with --quick", help: "which models, by name" },
  seconds: { type: "number", positive: true, default: 3, help: "measured seconds per closed loop" },
  warmup: { type: "number", default: (f) => Math.min(1, f.seconds / 3), defaultHelp: "a third of --seconds, at most 1", help: "warm-up seconds before each" },
  interpreters: {
    type: "integer",
    default: Math.min(availableParallelism(), interpreterBudget()),
    defaultHelp: "the cores, within a process's interpreter budget",
    max: interpreterBudget(),
    help: "N: Coil's interpreters and the plain processes",
  },
  rounds: {
    type: "integer",
    min: 0,
    default: 3,
    help: "interleaved rounds per like-for-like ratio (plain Python and Coil taking turns; 0: none, the ratios then come from rates measured minutes apart)",
  },
  "start-delay": { type: "number", positive: true, default: 15, help: "seconds the N plain processes get to start before their common window opens" },
  "model-timeout": { type: "number", positive: true, default: 1800, help: "seconds one model's child may take (compiling and the interleaved rounds take many minutes for some models here)" },
  "debian-python": { type: "path", default: STACKS.debian.python, help: "the Debian stack's Python" },
  "venv-python": { type: "path", default: STACKS.venv.python, defaultHelp: ".venv-torch2/bin/python", help: "the venv stack's Python" },
  compile: { type: "boolean", default: true, help: "torch.compile's rate, and Coil's with the compile accelerator (torch 2.x; compiling takes minutes per model here)" },
  onnx: { type: "boolean", default: true, help: "export to ONNX and measure onnxruntime (Python, onnxruntime-node from tools/bench/peers, and Coil with the onnxruntime accelerator)" },
  "write-docs": { type: "boolean", default: false, help: "also write docs/zoo.md and docs/zoo.json" },
  resume: {
    type: "boolean",
    default: false,
    help: "keep the models already measured in --out with the same settings and measure the rest (a full run takes hours: it can be done in parts; each row is still one model's run)",
  },
  "measure-again": { type: "list", default: [], help: "with --resume: these models are measured again though --out has them (a row refreshed after a change)" },
  "busy-threshold": { type: "number", default: 0.2, help: "docs/zoo.md names the rows measured while other processes took more cores than this (and says BUSY when most were)" },
  out: outFlag("zoo"),
});

// Families also measured at batch 8 (eager and Coil with 1 interpreter).
const VISION = new Set(["classification", "segmentation", "video", "optical flow", "vision"]);
const known = new Map(MODELS.map((m) => [m.name, m]));
for (const name of [...flags.models, ...flags.measureAgain]) if (!known.has(name)) fail(`unknown model ${name}; known: ${[...known.keys()].join(", ")}`);
if (flags.measureAgain.length && !flags.resume) fail("--measure-again goes with --resume (without it every model is measured anyway)");
const selected = flags.models.length ? flags.models.map((n) => known.get(n)) : MODELS.filter((m) => !flags.quick || m.quick);
const pythons = { debian: flags.debianPython, venv: flags.venvPython };
// Paths inside the repository are recorded relative to it.
const shownPath = (path) => (path.startsWith(REPO_ROOT) ? repoRelative(path) : path);
const stacks = Object.fromEntries(
  await Promise.all(Object.entries(STACKS).map(async ([name, s]) => [name, { python: shownPath(pythons[name]), what: s.what, blas: await blasOf(pythons[name]) }])),
);

const options = {
  quick: flags.quick,
  models: selected.map((m) => m.name),
  secondsPerMeasurement: flags.seconds,
  rounds: flags.rounds,
  warmupS: flags.warmup,
  interpreters: flags.interpreters,
  compile: flags.compile,
  onnx: flags.onnx,
  out: repoRelative(flags.out),
};
const results = startResults({ options, stacks, summary: null, rows: [], raw: {} });
const scratch = scratchDir("coil-zoo");
const earlier = flags.resume ? earlierRows() : new Map();

for (const [i, model] of selected.entries()) {
  const python = pythons[model.stack];
  const kept = earlier.get(model.name);
  if (kept) {
    progress(`[${i + 1}/${selected.length}] ${model.name}: kept from ${kept.row.measuredAt ?? "an earlier run"}`);
    // Its row made again from what was measured, so that the report's current logic applies.
    results.rows.push(kept.raw ? { ...modelRow(model, kept.raw), measuredAt: kept.row.measuredAt } : kept.row);
    if (kept.raw) results.raw[model.name] = kept.raw;
    continue;
  }
  progress(`[${i + 1}/${selected.length}] ${model.name} (${model.stack}, ${model.family})`);
  if (!existsSync(python)) {
    const why = model.stack === "venv" ? `no ${python} (tools/python-envs.sh makes it)` : `no ${python}`;
    results.rows.push(failedRow(model, why));
    continue;
  }
  const spec = {
    ...{ model, python, seconds: flags.seconds, warmup: flags.warmup, interpreters: flags.interpreters, startDelayS: flags.startDelay, scratch, rounds: flags.rounds },
    modelTimeoutS: flags.modelTimeout,
    ...{ onnx: flags.onnx, compile: flags.compile && model.stack === "venv", batch8: VISION.has(model.family) },
  };
  try {
    const measured = await runJsonChild(process.execPath, [join(BENCH_DIR, "zoo", "measure.mjs"), JSON.stringify(spec)], {
      cwd: REPO_ROOT,
      timeoutMs: flags.modelTimeout * 1e3,
    });
    results.raw[model.name] = measured;
    results.rows.push({ ...modelRow(model, measured), measuredAt: new Date().toISOString() });
  } catch (error) {
    results.rows.push(failedRow(model, describeError(error).slice(0, 300)));
  }
  // After each model, so that a run stopped part-way can be resumed (--resume); the rows
  // kept from before that this run has not reached yet are written too, or a stop would lose them.
  const notReached = selected.slice(i + 1).flatMap((m) => (earlier.has(m.name) ? [earlier.get(m.name)] : []));
  const sofar = {
    ...results,
    rows: [...results.rows, ...notReached.map((kept) => kept.row)],
    raw: { ...results.raw, ...Object.fromEntries(notReached.filter((kept) => kept.raw).map((kept) => [kept.row.name, kept.raw])) },
  };
  mkdirSync(dirname(flags.out), { recursive: true });
  writeFileSync(flags.out, JSON.stringify(sofar, null, 2) + "\n");
}
results.summary = summary(results.rows);

console.log(`\nModel zoo: batch 1, 1 torch thread, N = ${flags.interpreters}, ${flags.seconds} s per closed loop`);
printTable(COLUMNS, results.rows);
console.log(`\n${summaryLine(results.summary)}`);
const interleaved = results.rows.filter((r) => r.interleaved);
if (interleaved.length) {
  console.log(`\nLike for like, ${flags.rounds} interleaved rounds each (median ratio, range over rounds):`);
  printTable(INTERLEAVED_COLUMNS, interleaved);
  console.log(`\nThe bars (issues 13 and 14):\n${barLines(results).join("\n")}`);
}
const failures = groupedFailures(results.rows);
if (failures.length) {
  console.log("\nFailures:");
  printTable(FAILURE_COLUMNS, failures);
}
writeResults(flags.out, results);
if (flags.writeDocs) {
  writeFileSync(join(REPO_ROOT, "docs", "zoo.md"), markdown(results, { busyThreshold: flags.busyThreshold }));
  writeResults(join(REPO_ROOT, "docs", "zoo.json"), results);
  console.log("docs/zoo.md written");
}

/**
 * Which BLAS a stack's torch does its matrix products with: the libraries its process
 * maps after `import torch` (Debian's torch calls whatever libblas.so.3 points to: the
 * reference BLAS unless OpenBLAS is installed), or MKL built into pip's libtorch. Null
 * where the Python or its torch cannot say.
 */
async function blasOf(python) {
  if (!existsSync(python)) return null;
  const probe = [
    "import json, os, torch",
    "paths = {line.split()[-1] for line in open('/proc/self/maps') if line.split()[-1].startswith('/')}",
    // numpy's own OpenBLAS is mapped too once torch imports numpy; torch does not use it.
    "libraries = sorted({os.path.realpath(p) for p in paths if ('blas' in os.path.basename(p) or 'mkl' in os.path.basename(p)) and 'numpy' not in p})",
    "print(json.dumps({'libraries': libraries, 'mkl': torch.backends.mkl.is_available()}))",
  ].join("\n");
  try {
    const { libraries, mkl } = await runJsonChild(python, ["-c", probe], { timeoutMs: 120e3 });
    if (mkl) return "MKL, built into libtorch";
    return libraries.length ? libraries.join(", ") : "torch's own";
  } catch {
    return null;
  }
}

/** The rows of --out measured with these settings (--resume); failed ones are measured again. */
function earlierRows() {
  if (!existsSync(flags.out)) return new Map();
  const before = JSON.parse(readFileSync(flags.out, "utf8"));
  const same = ["secondsPerMeasurement", "rounds", "warmupS", "interpreters", "compile", "onnx"].every((key) => before.options?.[key] === options[key]);
  if (!same) fail(`--resume: ${flags.out} was measured with other settings (${JSON.stringify(before.options)}); give the same flags or another --out`);
  results.startedAt = before.startedAt;
  const kept = (row) => row.pack?.ok !== undefined && !row.error && !flags.measureAgain.includes(row.name);
  return new Map(before.rows.filter(kept).map((row) => [row.name, { row, raw: before.raw?.[row.name] }]));
}
