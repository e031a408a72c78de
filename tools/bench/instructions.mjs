#!/usr/bin/env node
// Instructions a call, counted by Valgrind's callgrind (issue 13): a number this VM's
// host does not move, where its timings move by +-15% from hour to hour and its vCPUs
// run at different speeds. For each model, two children under callgrind at once:
//   plain        CPython calling the model back to back (overhead/counted.py);
//   Coil         one interpreter holding the same model (counted.py's Counted), called
//                from Node by one caller (`coil node`), then with a method that
//                returns the model's result without running it (`empty call`: the
//                crossing alone), then running plain's loop itself (`coil loop`).
// Only the calls are counted, not start-up: callgrind dumps its counts (which zeroes
// them) right before the calls and again after -- by `callgrind_control` for Node's
// phases (it acts on every thread; its own cost is measured with no calls between
// and taken off), by client requests from Python for the loops
// (overhead/callgrind_marks.c, compiled here). Zeroing instead of the first dump
// would leave stale counts in the functions'.
// Each phase's instructions are split by thread: the interpreter's (the thread that
// ran Python), Node's main thread, the rest. Only
// user-space instructions are counted (not the kernel's, nor time lost to caches,
// TLB refills or wake-ups): the difference between `coil node` and plain on the
// interpreter's thread is the work Coil adds to it, and what a call loses beyond that
// is the host's (docs/engine.md, "What the host costs a call"). Spinning and polling
// are switched off in the Coil child (handOff): under Valgrind, which runs one thread
// at a time, a spin counts however long it was scheduled for, so each result wakes
// Node's thread and each job the interpreter's, and their wake-up paths are counted.
// Needs valgrind (Debian: valgrind, which ships callgrind.h) and a C compiler; a run
// takes minutes (Node, Python and torch start ~50x slower under Valgrind).
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool } from "@coil/core";
import { handOff } from "@coil/native";

import { fail, parseFlags } from "./lib/args.mjs";
import { runCommand, runJsonChild } from "./lib/child.mjs";
import { formatInt, formatRatio } from "./lib/format.mjs";
import { progress } from "./lib/log.mjs";
import { formatMachine } from "./lib/machine.mjs";
import { BENCH_DIR, REPO_ROOT } from "./lib/paths.mjs";
import { outFlag, repoRelative, startResults, writeResults } from "./lib/results.mjs";
import { scratchDir } from "./lib/scratch.mjs";
import { printTable } from "./lib/table.mjs";
import { MODELS, STACKS } from "./zoo/models.mjs";

const SCRIPT = fileURLToPath(import.meta.url);
const COUNTED = join(BENCH_DIR, "overhead", "counted.py");
const MARKS_SOURCE = join(BENCH_DIR, "overhead", "callgrind_marks.c");
const LOOP = join(BENCH_DIR, "overhead", "loop.py");
const LOOP_MODELS = ["mlp", "deep"];
const VENV_PYTHON = join(REPO_ROOT, ".venv-torch2", "bin", "python");

const flags = parseFlags(import.meta.url, {
  models: { type: "list", default: LOOP_MODELS, defaultHelp: LOOP_MODELS.join(","), help: `overhead/loop.py's ${LOOP_MODELS.join(", ")}, or zoo models (tools/bench/zoo/models.mjs)` },
  calls: { type: "integer", min: 1, default: 200, help: "counted calls per phase" },
  warmup: { type: "integer", min: 0, default: 20, help: "calls before counting starts, per phase" },
  python: { type: "path", default: undefined, defaultHelp: "the venv's for loop.py's models, the stack's for zoo models", help: "the Python for every model" },
  top: { type: "integer", min: 1, default: 15, help: "functions listed where the instructions go" },
  child: { type: "string", default: undefined, hidden: true },
  out: outFlag("instructions"),
});

if (flags.child) {
  console.log(JSON.stringify(await coilChild(JSON.parse(flags.child))));
  process.exit(0);
}

/** What counted.py builds for `name`: { file, factory, example, args, python }. */
function modelSpec(name) {
  if (LOOP_MODELS.includes(name)) return { file: LOOP, factory: "build_model", example: "example_input", args: [name], python: flags.python ?? VENV_PYTHON };
  const model = MODELS.find((m) => m.name === name);
  if (!model) fail(`unknown model ${name}; known: ${[...LOOP_MODELS, ...MODELS.map((m) => m.name)].join(", ")}`);
  return { file: model.file, factory: model.factory, example: model.example, args: [], python: flags.python ?? STACKS[model.stack].python };
}

const specs = flags.models.map((name) => ({ name, ...modelSpec(name) }));
const scratch = scratchDir("coil-instructions");
const marks = join(scratch, "callgrind_marks.so");
try {
  execFileSync("valgrind", ["--version"], { stdio: "ignore" });
} catch {
  fail("valgrind is not installed (Debian: apt-get install valgrind)");
}
try {
  execFileSync(process.env.CC ?? "cc", ["-O2", "-shared", "-fPIC", "-o", marks, MARKS_SOURCE], { stdio: "pipe" });
} catch (error) {
  fail(`cannot build ${repoRelative(MARKS_SOURCE)} (it needs valgrind/callgrind.h, from Debian's valgrind, and a C compiler): ${String(error.stderr ?? error.message).trim()}`);
}

const results = startResults({ options: { ...flags, out: repoRelative(flags.out) }, models: [] });
console.log(`instructions a call (callgrind), ${flags.calls} calls counted per phase; ${formatMachine(results.machine)}`);
for (const spec of specs) {
  progress(`${spec.name}: plain Python and Coil under callgrind (minutes)`);
  const dir = scratchDir(`coil-instructions-${spec.name}`);
  // Names written out in full in every dump: compressed, a dump names an object
  // only if no earlier dump of the run did.
  const callgrind = (tag) => ["--tool=callgrind", "--separate-threads=yes", "--compress-strings=no", `--callgrind-out-file=${join(dir, tag)}.%p`];
  const timeoutMs = 3_600_000;
  const [plainRun, coilRun] = await Promise.all([
    runJsonChild("valgrind", [...callgrind("plain"), spec.python, COUNTED, "plain", marks, String(flags.calls), String(flags.warmup), spec.file, spec.factory, spec.example, ...spec.args.map(String)], { cwd: REPO_ROOT, timeoutMs }),
    runJsonChild("valgrind", [...callgrind("coil"), process.execPath, SCRIPT, "--child", JSON.stringify({ ...spec, marks, calls: flags.calls, warmup: flags.warmup })], { cwd: REPO_ROOT, timeoutMs }),
  ]);
  const dumps = { ...readDumps(dir, "plain"), ...readDumps(dir, "coil") };
  for (const phase of ["plain", "idle", "node", "empty", "loop"]) if (!dumps[phase]) fail(`${spec.name}: callgrind wrote no counts for the ${phase} phase`);
  // Plain Python runs on its main thread (Debian's python3 has libpython built in).
  const phases = { plain: { python: dumps.plain.find((t) => t.number === 1)?.total ?? 0 } };
  for (const phase of ["idle", "node", "empty", "loop"]) phases[phase] = byRole(dumps[phase]);
  const fixed = (phase, thread) => (phase === "node" || phase === "empty" ? phases.idle[thread] : 0);
  const perCall = (phase, thread) => (phases[phase][thread] - fixed(phase, thread)) / flags.calls;
  results.models.push({
    name: spec.name,
    python: spec.python,
    torch: plainRun.torch,
    plain: perCall("plain", "python"),
    coilLoop: perCall("loop", "python"),
    coilNode: { interpreter: perCall("node", "python"), main: perCall("node", "main"), other: perCall("node", "other") },
    emptyCall: { interpreter: perCall("empty", "python"), main: perCall("empty", "main"), other: perCall("empty", "other") },
    coilChild: coilRun,
    // Where Coil's instructions go: the interpreter's thread called from Node against its
    // own loop (both over `calls` calls), and Node's thread (less the requests' own cost).
    interpreterExtra: functionDifferences(phases.node.files.python, phases.loop.files.python, flags.calls, flags.top),
    nodeThread: functionDifferences(phases.node.files.main, phases.idle.files.main, flags.calls, flags.top),
  });
}

const rows = results.models;
const count = (x) => formatInt(Math.round(x) + 0); // + 0: no "-0"
printTable(
  [
    ["model", (m) => m.name, "l"],
    ["plain", (m) => count(m.plain)],
    ["coil loop", (m) => count(m.coilLoop)],
    ["×", (m) => formatRatio(m.coilLoop / m.plain)],
    ["coil node: interpreter", (m) => count(m.coilNode.interpreter)],
    ["×", (m) => formatRatio(m.coilNode.interpreter / m.plain)],
    ["+ over its loop", (m) => count(m.coilNode.interpreter - m.coilLoop)],
    ["Node's thread", (m) => count(m.coilNode.main)],
    ["others", (m) => count(m.coilNode.other)],
    ["empty call: interpreter", (m) => count(m.emptyCall.interpreter)],
    ["Node's thread", (m) => count(m.emptyCall.main)],
  ],
  rows,
  { rule: true },
);
console.log("   instructions a call in user space; × against plain Python's; `+ over its loop`: what a call from Node adds on the interpreter's thread");
for (const m of rows) {
  for (const [key, title] of [
    ["interpreterExtra", "the interpreter's thread, called from Node, less its own loop"],
    ["nodeThread", "Node's main thread"],
  ]) {
    console.log(`\n${m.name}: ${title}, instructions a call by function (their own, not their callees')`);
    printTable([["function", (f) => (f.name.length > 90 ? f.name.slice(0, 87) + "..." : f.name), "l"], ["a call", (f) => count(f.perCall)]], m[key]);
  }
}
writeResults(flags.out, results);

// --- reading callgrind's dumps ------------------------------------------------------------

/** { phase: [{ number, total, python, file }] }: the instructions of each thread in each dump
 * of the `tag` child (`<tag>.<pid>.<n>-<thread>`, the phase named in its trigger;
 * Valgrind numbers the main thread 1), and whether the thread ran libpython. */
function readDumps(dir, tag) {
  const phases = {};
  for (const file of readdirSync(dir)) {
    const match = new RegExp(`^${tag}\\.\\d+\\.\\d+-(\\d+)$`).exec(file);
    if (!match) continue;
    const text = readFileSync(join(dir, file), "utf8");
    const phase = /^desc: Trigger: (?:Client Request: |dump )(.+)$/m.exec(text)?.[1];
    const total = /^summary: (\d+)/m.exec(text)?.[1]; // since the dump before
    if (!phase || total === undefined) continue;
    (phases[phase] ??= []).push({ number: Number(match[1]), total: Number(total), python: /^c?ob=.*libpython/m.test(text), file: join(dir, file) });
  }
  return phases;
}

/** A Coil phase's instructions as { python, main, other } and the dumps of the first two
 * (`files`): the interpreter's thread is the busiest of those that ran libpython (Coil
 * embeds the shared one). */
function byRole(threads) {
  const python = threads.filter((t) => t.python).sort((a, b) => b.total - a.total)[0];
  const counts = { python: 0, main: 0, other: 0, files: {} };
  for (const t of threads) {
    const role = t === python ? "python" : t.number === 1 ? "main" : "other";
    counts[role] += t.total;
    if (role !== "other") counts.files[role] = t.file;
  }
  return counts;
}

/** A dump's instructions by function, each function's own (not its callees'). */
function selfCosts(file) {
  const costs = new Map();
  let fn = "?";
  let callCost = false; // the cost line after `calls=` is the callee's, inclusive
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (line.startsWith("fn=")) fn = line.slice(3);
    else if (line.startsWith("calls=")) callCost = true;
    else if (/^[\d+*-]/.test(line)) {
      if (callCost) callCost = false;
      else costs.set(fn, (costs.get(fn) ?? 0) + Number(line.split(" ").at(-1)));
    }
  }
  return costs;
}

/** The functions whose instructions a call differ most between `dump` and `base` (a
 * dump or null), per call: the `top` largest differences. */
function functionDifferences(dump, base, calls, top) {
  const a = selfCosts(dump);
  const b = base ? selfCosts(base) : new Map();
  const names = new Set([...a.keys(), ...b.keys()]);
  return [...names]
    .map((name) => ({ name, perCall: ((a.get(name) ?? 0) - (b.get(name) ?? 0)) / calls }))
    .sort((p, q) => Math.abs(q.perCall) - Math.abs(p.perCall))
    .slice(0, top);
}

// --- the Coil child, under callgrind -------------------------------------------------------

/** Dumps (and so zeroes) the counts of every thread of this process -- a client
 * request acts on its own thread's alone -- from outside: Valgrind takes the request
 * while the process waits for the command (vgdb). */
async function callgrindControl(request) {
  const { code, stderr } = await runCommand("callgrind_control", [request, String(process.pid)]);
  if (code !== 0) throw new Error(`callgrind_control ${request} failed (${code}): ${stderr.trim()}`);
}

async function coilChild({ python, marks, file, factory, example, args, calls, warmup }) {
  // Nothing spins or polls: see the header. Nor looks at /proc/loadavg (a system call
  // made by time, not by call).
  handOff({ spinUs: 0, maxSpinUs: 0, callerSpinUs: 0, contentionCheckMs: 0 });
  const pool = await InterpreterPool.create({ size: 1, python, backend: new CpuBackend({ threadsPerInterpreter: 1 }) });
  try {
    const object = pool.replicate({ file: COUNTED, factory: "Counted", args: [marks, file, factory, example, ...args] });
    await object.materialize();
    const inputs = await object.callMethod("example");
    // `idle`: no calls between the two requests -- what the requests themselves cost
    // Node's thread (spawning callgrind_control), taken off the others.
    const phases = { idle: null, node: () => object.call(inputs), empty: () => object.callMethod("cached", inputs) };
    for (const [phase, call] of Object.entries(phases)) {
      for (let i = 0; call && i < warmup; i++) await call();
      await callgrindControl("--dump=start");
      for (let i = 0; call && i < calls; i++) await call();
      await callgrindControl(`--dump=${phase}`);
    }
    await object.callMethod("loop", [calls, warmup]);
    return { ok: true, inputs: inputs.length };
  } finally {
    await pool.close();
  }
}
