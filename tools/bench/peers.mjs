#!/usr/bin/env node
// Coil against a real npm peer on the same Python and model (issue 13):
// node-calls-python, one embedded interpreter behind its GIL, installed by
// tools/bench/peers/install.sh (a benchmark dependency only). Like for like: the
// venv's Python, one torch thread per interpreter, closed loops. Per model:
//   plain    plain Python, one thread (peers/runner.py's model, models/driver.py's loop)
//   coil     Coil, 1 interpreter with 1 and 4 callers; N interpreters with 2N callers
//   ncp      node-calls-python in a child process (peers/ncp.mjs): async `call` with
//            1 and 2 callers, and `callSync` -- lists in and out, as its users pass data
// Prints a table, writes bench-results/peers.json. A peer that is not installed is a
// cell saying so, not a failed run.
import { availableParallelism } from "node:os";
import { join } from "node:path";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool, LeastLoadedScheduler } from "@coil/core";
import { inspectPython, interpreterBudget } from "@coil/native";

import { parseFlags } from "./lib/args.mjs";
import { runJsonChild } from "./lib/child.mjs";
import { closedLoop } from "./lib/closed-loop.mjs";
import { formatRate, formatRatio } from "./lib/format.mjs";
import { describeError, progress } from "./lib/log.mjs";
import { formatMachine } from "./lib/machine.mjs";
import { PEERS_DIR } from "./lib/peers.mjs";
import { BENCH_DIR, REPO_ROOT } from "./lib/paths.mjs";
import { outFlag, repoRelative, startResults, writeResults } from "./lib/results.mjs";
import { printTable } from "./lib/table.mjs";
import { relaunchWithTunable } from "./lib/tunable.mjs";

await relaunchWithTunable();

const MODELS = { mlp: "loop:mlp", deep: "loop:deep", deberta_v2: "zoo:deberta_v2:encoder_inputs", llama: "zoo:llama:decoder_inputs" };
const RUNNER = join(PEERS_DIR, "runner.py");

const flags = parseFlags(import.meta.url, {
  models: { type: "list", default: Object.keys(MODELS), defaultHelp: Object.keys(MODELS).join(","), help: "which models" },
  seconds: { type: "number", positive: true, default: 3, help: "measured seconds per closed loop" },
  warmup: { type: "number", default: 1, help: "warm-up seconds before each" },
  interpreters: {
    type: "integer",
    default: Math.min(availableParallelism(), interpreterBudget()),
    defaultHelp: "the cores, within a process's interpreter budget",
    help: "N: Coil's interpreters",
  },
  python: { type: "path", default: join(REPO_ROOT, ".venv-torch2", "bin", "python"), defaultHelp: ".venv-torch2/bin/python", help: "the Python all of them run" },
  out: outFlag("peers"),
});
for (const m of flags.models) if (!MODELS[m]) throw new Error(`unknown model ${m}; known: ${Object.keys(MODELS).join(", ")}`);

const results = startResults({ options: { ...flags, out: repoRelative(flags.out) }, rows: [] });
const window = { warmupMs: flags.warmup * 1e3, durationMs: flags.seconds * 1e3 };
const installation = await inspectPython(flags.python);
const timeoutMs = 300_000 + 10 * (flags.seconds + flags.warmup) * 1e3;

/** A cell: its numbers, or { error } saying why it has none. */
async function cell(body) {
  try {
    return await body();
  } catch (error) {
    return { error: describeError(error).slice(0, 300) };
  }
}

async function coil(source, size, callers) {
  const pool = await InterpreterPool.create({
    size,
    python: flags.python,
    backend: new CpuBackend({ threadsPerInterpreter: 1 }),
    scheduler: new LeastLoadedScheduler(),
  });
  try {
    const model = pool.replicate({ file: RUNNER, factory: "Runner", args: [source] });
    await model.materialize();
    const inputs = await model.callMethod("examples");
    const out = {};
    for (const c of callers) out[c] = await closedLoop(() => model.call(inputs), { concurrency: c, ...window });
    return out;
  } finally {
    await pool.close();
  }
}

console.log(formatMachine(results.machine));
for (const name of flags.models) {
  const source = MODELS[name];
  progress(`${name}: plain Python`);
  const plain = await cell(() => runJsonChild(flags.python, [RUNNER, source, String(flags.seconds), String(flags.warmup)], { cwd: REPO_ROOT, timeoutMs }));
  progress(`${name}: Coil, 1 and ${flags.interpreters} interpreters`);
  const one = await cell(() => coil(source, 1, [1, 4]));
  const many = await cell(() => coil(source, flags.interpreters, [2 * flags.interpreters]));
  progress(`${name}: node-calls-python`);
  const spec = { source, seconds: flags.seconds, warmup: flags.warmup, callers: [1, 2], sysPath: installation.sysPath, executable: installation.executable };
  const ncp = await cell(() => runJsonChild(process.execPath, [join(BENCH_DIR, "peers", "ncp.mjs"), JSON.stringify(spec)], { cwd: REPO_ROOT, timeoutMs }));
  const rate = (x) => x?.callsPerSecond ?? null;
  const ncpBest = ncp.error ? null : Math.max(rate(ncp.async[1]), rate(ncp.async[2]), rate(ncp.sync));
  const row = {
    model: name,
    plain: rate(plain),
    coil1: rate(one[1]),
    coil1x4: rate(one[4]),
    coilN: rate(many[2 * flags.interpreters]),
    ncpAsync1: rate(ncp.async?.[1]),
    ncpAsync2: rate(ncp.async?.[2]),
    ncpSync: rate(ncp.sync),
    ncpBest,
    ncpVersion: ncp.version ?? null,
    errors: Object.fromEntries(Object.entries({ plain, coil1: one, coilN: many, ncp }).filter(([, v]) => v.error).map(([k, v]) => [k, v.error])),
  };
  row.coilNVsNcp = row.coilN && ncpBest ? row.coilN / ncpBest : null;
  row.coil1VsPlain = row.coil1x4 && row.plain ? row.coil1x4 / row.plain : null;
  results.rows.push(row);
}

console.log(`\nCoil vs node-calls-python, ${installation.executable} (Python ${installation.version}), 1 torch thread, ${flags.seconds} s closed loops, N = ${flags.interpreters}`);
printTable(
  [
    ["model", (r) => r.model, "l"],
    ["plain/s", (r) => formatRate(r.plain)],
    ["coil 1×1/s", (r) => formatRate(r.coil1)],
    ["coil 1×4/s", (r) => formatRate(r.coil1x4)],
    [`coil ${flags.interpreters}×${2 * flags.interpreters}/s`, (r) => formatRate(r.coilN)],
    ["ncp async×1/s", (r) => formatRate(r.ncpAsync1)],
    ["ncp async×2/s", (r) => formatRate(r.ncpAsync2)],
    ["ncp sync/s", (r) => formatRate(r.ncpSync)],
    ["coil 1×4/plain", (r) => formatRatio(r.coil1VsPlain)],
    [`coil N/ncp best`, (r) => formatRatio(r.coilNVsNcp)],
  ],
  results.rows,
);
for (const r of results.rows) for (const [what, why] of Object.entries(r.errors)) console.log(`${r.model} ${what}: ${why}`);
writeResults(flags.out, results);
