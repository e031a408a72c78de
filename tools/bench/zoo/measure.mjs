#!/usr/bin/env node
// One zoo model, in a process of its own (a child of zoo.mjs; a crash or a stuck model
// costs that model only, and the process's interpreter budget is the model's alone):
//   node tools/bench/zoo/measure.mjs '<JSON: model, python, seconds, warmup, interpreters, startDelayS, scratch>'
// Plain Python (driver.py check): eager, torch.jit.script/trace, torch.export and
// TorchScript's rate, torch.compile's, the ONNX export and onnxruntime's rate (and
// onnxruntime-node's, from tools/bench/peers, on the same file); zero-config packing (packModel); equality with eager (the
// zero-config fixtures' run_model.py runs the model eagerly on its example inputs);
// Coil with 1 (and, for vision, at batch 8 too) and N interpreters; Coil with the compile
// and onnxruntime accelerators, 1 and N interpreters (with --compile, --onnx); N plain
// processes (driver.py eager); then the like-for-like ratios from interleaved rounds
// (driver.py serve keeps plain Python up; zoo/interleaved.mjs). Prints one JSON
// line: per step { ok, error } or its numbers.
import { join } from "node:path";

import { InterpreterPool, LeastLoadedScheduler, Tensor } from "@coil/core";
import { CompileAccelerator } from "@coil/accelerator-compile";
import { OnnxRuntimeAccelerator } from "@coil/accelerator-onnxruntime";
import { CpuBackend } from "@coil/backend-cpu";

import { runJsonChild, startJsonChild } from "../lib/child.mjs";
import { closedLoop } from "../lib/closed-loop.mjs";
import { describeError } from "../lib/log.mjs";
import { importPeer } from "../lib/peers.mjs";
import { BENCH_DIR, REPO_ROOT } from "../lib/paths.mjs";
import { allowedCpus, memoryMiB } from "../lib/proc.mjs";
import { relaunchWithTunable } from "../lib/tunable.mjs";
import { interleavedRounds, roundMinCalls } from "./interleaved.mjs";

await relaunchWithTunable();

const DRIVER = join(BENCH_DIR, "zoo", "driver.py");
const RUN_MODEL = join(REPO_ROOT, "packages", "runtime", "test", "fixtures", "zero-config", "run_model.py");
const TOLERANCE = 1e-4;
// onnxruntime's fused kernels round differently (its accelerator checks rtol 1e-3 at load).
const ACCELERATED_TOLERANCE = 1e-2;

const { model, python, seconds, warmup, interpreters: N, startDelayS, scratch, onnx, compile, batch8, rounds, modelTimeoutS } = JSON.parse(process.argv[2]);
const { file, factory, example } = model;
const window = { warmupMs: warmup * 1e3, durationMs: seconds * 1e3 };
const childTimeoutMs = 300_000 + 4 * (seconds + warmup) * 1e3;
const result = { name: model.name };

/** Runs one step; its failure is recorded under `key` as data, and returns undefined. */
async function step(key, body) {
  try {
    const value = await body();
    result[key] = { ok: true, ...value };
    return value;
  } catch (error) {
    result[key] = { ok: false, error: describeError(error).slice(0, 300) };
    return undefined;
  }
}

const driverArgs = (mode) => [DRIVER, mode, file, factory, example, String(seconds), String(warmup)];
const onnxPath = onnx ? join(scratch, `${model.name}.onnx`) : "";

// Plain Python: eager, the compilers, TorchScript's rate; torch.compile's; the ONNX
// export and onnxruntime's rate. A model of seconds a call takes minutes for its rates
// alone (Debian's ViT-B/16 here: ~9 s a call, ~70 s at batch 8), and torch.compile
// compiles for minutes on small machines. Given a longer budget for the model
// (--model-timeout), the check may take half of it: in a slow phase of this VM's host
// ViT-B/16 took ~17 s a call, and its check ran past 924 s.
const checkTimeoutMs = Math.max(3 * childTimeoutMs + (compile ? 900_000 : 0), ((modelTimeoutS ?? 0) * 1e3) / 2);
await step("python", () =>
  runJsonChild(python, [...driverArgs("check"), onnxPath, ...(compile ? ["compile"] : []), ...(batch8 ? ["batch8"] : [])], {
    cwd: REPO_ROOT,
    timeoutMs: checkTimeoutMs,
  }),
);

// Zero-config packing: no rules, the signature from the example inputs.
const archive = join(scratch, `${model.name}.pt`);
const packed = await step("pack", async () => {
  const { packModel } = await import("@coil/runtime");
  const r = await packModel({ target: `${file}:${factory}`, output: archive, example, python });
  return { bytes: r.bytes, inputs: r.inputs.length, outputs: r.outputs.length, signature: r.signature, warnings: r.warnings };
});

let referenceOnce;
/** The example inputs and eager's outputs on them (run_model.py, once), the inputs as Coil tensors. */
function eagerReference() {
  referenceOnce ??= runJsonChild(python, [RUN_MODEL, file, factory, example, archive], { cwd: REPO_ROOT, timeoutMs: childTimeoutMs }).then((r) => ({
    reference: r,
    inputs: r.inputs.map((t) => Tensor.from(t.dtype, t.shape, t.data)),
  }));
  return referenceOnce;
}

if (packed) {
  // Coil, 1 interpreter: equal to eager, then its rate with one caller.
  await step("coil1", () => withPool(1, (pool) => coilOne(pool)));
  // Coil, 1 interpreter, at batch 8 (vision): the example repeated, as driver.py's eager8.
  if (batch8 && result.python?.eager8?.ok) {
    await step("coil1b8", () =>
      withPool(1, async (pool) => {
        const { inputs } = await eagerReference();
        const eight = inputs.map((t) => Tensor.from(t.dtype, [8, ...t.shape.slice(1)], repeated(t.toArray(), 8)));
        const loaded = await pool.loadArchive(archive, { eager: true });
        return closedLoop(() => loaded.call(eight), { concurrency: 1, tids: await interpreterThreads(pool), ...window });
      }),
    );
  }
  // Coil, N interpreters, 2 callers each.
  await step("coilN", () => withPool(N, (pool) => coilMany(pool)));
  // The same through each accelerator (one model's export and compile cache kept in scratch).
  for (const [key, accelerator, wanted] of [
    ["Compile", "compile", compile],
    ["Ort", "onnxruntime", onnx && result.python?.onnxruntime?.ok],
  ]) {
    if (!wanted) continue;
    await step(`coil1${key}`, () => withPool(1, (pool) => coilOne(pool, accelerator)));
    if (result[`coil1${key}`]?.ok && result[`coil1${key}`].acceleration?.active) {
      await step(`coilN${key}`, () => withPool(N, (pool) => coilMany(pool, accelerator)));
    }
  }
}

/** Coil with one interpreter: equal to eager, then its rate with one caller. */
async function coilOne(pool, accelerator) {
  const { reference, inputs } = await eagerReference();
  const loaded = await pool.loadArchive(archive, { eager: true, ...(accelerator && { accelerator }) });
  const outputs = named(await loaded.call(inputs));
  const eager = new Map(reference.eager);
  const maxError = maxAbsError(outputs.map(([name, t]) => [t.toArray().map(Number), eager.get(name)?.data]));
  // An accelerated model is held to its accelerator's own tolerance (checked at load), plus eager's here.
  const equal = outputs.length === eager.size && maxError <= (accelerator ? ACCELERATED_TOLERANCE : TOLERANCE);
  const tids = await interpreterThreads(pool);
  const stats = await closedLoop(() => loaded.call(inputs), { concurrency: 1, tids, ...window });
  // The same interpreter fed by 2 callers: Node's share of a call overlaps the model's
  // (a server's case) instead of adding to it (one caller's round trip).
  const twoCallers = await closedLoop(() => loaded.call(inputs), { concurrency: 2, tids, ...window });
  return { equal, maxError, outputs: outputs.map(([name]) => name), ...(accelerator && { acceleration: loaded.acceleration }), ...stats, twoCallers };
}

/** Coil with N interpreters, 2 callers each, and the memory of the whole process. */
async function coilMany(pool, accelerator) {
  const { inputs } = await eagerReference();
  const loaded = await pool.loadArchive(archive, { eager: true, ...(accelerator && { accelerator }) });
  const stats = await closedLoop(() => loaded.call(inputs), { concurrency: 2 * N, tids: await interpreterThreads(pool), ...window });
  // This whole process (Node included) holding N interpreters with the model loaded.
  const memory = memoryMiB();
  return { interpreters: N, ...stats, privateMb: memory.private, pssMb: memory.pss, ...(accelerator && { acceleration: loaded.acceleration }) };
}

// onnxruntime-node on the same ONNX file: one thread and one caller, then its best over
// the settings a Node user would try on these cores (intra-op threads, callers).
if (result.python?.ok && result.python.onnx?.ok) {
  const ORT_NODE_SETTINGS = [
    { intraOpThreads: 1, callers: 1 },
    { intraOpThreads: N, callers: 1 },
    { intraOpThreads: 1, callers: N },
    { intraOpThreads: 1, callers: 2 * N },
  ];
  await step("onnxruntimeNode", async () => {
    const ort = await importPeer("onnxruntime-node");
    const { reference, inputs } = await eagerReference();
    const settings = [];
    let maxError;
    for (const { intraOpThreads, callers } of ORT_NODE_SETTINGS) {
      const session = await ort.InferenceSession.create(onnxPath, { intraOpNumThreads: intraOpThreads, interOpNumThreads: 1, executionProviders: ["cpu"] });
      const feeds = Object.fromEntries(session.inputNames.map((name, i) => [name, new ort.Tensor(inputs[i].dtype, inputs[i].data, inputs[i].shape)]));
      if (maxError === undefined) {
        // Its first output against eager's first.
        const first = (await session.run(feeds))[session.outputNames[0]];
        maxError = maxAbsError([[Array.from(first.data, Number), reference.eager[0]?.[1]?.data]]);
      }
      settings.push({ intraOpThreads, callers, ...(await closedLoop(() => session.run(feeds), { concurrency: callers, ...window })) });
      await session.release?.();
    }
    const best = settings.reduce((a, b) => (b.callsPerSecond > a.callsPerSecond ? b : a));
    // The single-thread, single-caller rate stays the step's own (the report's column), the best beside it.
    return { maxError, ...settings[0], best: { callsPerSecond: best.callsPerSecond, intraOpThreads: best.intraOpThreads, callers: best.callers }, settings };
  });
}

// Plain eager again, with glibc's malloc told never to trim nor mmap (tunables): each
// call of a model with large activations otherwise gives its memory back to the kernel
// and faults it in again (Debian's mobilenet_v3_small: 30 vs 54 calls/s), which the
// interpreters' libc, in its link-map namespace, does not do. Like for like with Coil.
const NO_TRIM = "glibc.malloc.trim_threshold=4294967295:glibc.malloc.mmap_threshold=4294967295";
const noTrimEnv = { ...process.env, GLIBC_TUNABLES: [process.env.GLIBC_TUNABLES, NO_TRIM].filter(Boolean).join(":") };
await step("eagerNoTrim", () => runJsonChild(python, [...driverArgs("eager"), String(Date.now() / 1e3)], { cwd: REPO_ROOT, timeoutMs: childTimeoutMs, env: noTrimEnv }));

// N plain Python processes, each measuring the same window.
await step("processes", async () => {
  const startAt = String(Date.now() / 1e3 + startDelayS);
  const each = await Promise.all(
    Array.from({ length: N }, () => runJsonChild(python, [...driverArgs("eager"), startAt], { cwd: REPO_ROOT, timeoutMs: childTimeoutMs })),
  );
  const sum = (key) => each.reduce((total, r) => total + r[key], 0);
  return { processes: N, callsPerSecond: sum("callsPerSecond"), privateMb: sum("privateMb"), pssMb: sum("pssMb"), otherCpu: Math.max(...each.map((r) => r.otherCpu)) };
});

// The like-for-like ratios from interleaved rounds (zoo/interleaved.mjs): plain Python
// (N processes kept up by driver.py serve, glibc never trimming as the interpreters'
// libc) and Coil take turns, all loaded and warm.
// A round lasts until this many calls completed at least (zoo/interleaved.mjs: 20, or
// ~30 s of them for a model of seconds a call), from plain eager's rate; a round of N
// interpreters until one more than a multiple of N.
const oneServerRate = result.python?.eager?.value?.callsPerSecond ?? result.coil1?.callsPerSecond;
const ROUND_MIN_CALLS = roundMinCalls(oneServerRate);
if (rounds > 0 && result.coil1?.ok) await step("interleaved", () => interleaved());

async function interleaved() {
  const { inputs } = await eagerReference();
  const py = result.python ?? {};
  const forms = [...(py.torchscript?.ok ? ["torchscript"] : []), ...(compile && py.compile?.ok ? ["compile"] : [])];
  const plain = Array.from({ length: N }, (_, i) =>
    startJsonChild(python, [DRIVER, "serve", file, factory, example, ...(i === 0 ? forms : [])], { cwd: REPO_ROOT, env: noTrimEnv }),
  );
  try {
    const [{ ready }] = await Promise.all(plain.map((p) => p.ready));
    /** One round of plain Python: `form` in the first process (on `cpu` if given), or eager in `count` at once. */
    const plainRound = async (form, { count = 1, cpu = null } = {}) => {
      const startAt = Date.now() / 1e3 + 0.2 * count;
      const each = await Promise.all(plain.slice(0, count).map((p) => p.ask({ form, seconds, warmup, startAt, cpu, minCalls: ROUND_MIN_CALLS })));
      return { callsPerSecond: each.reduce((total, r) => total + r.callsPerSecond, 0) };
    };
    const coilRound = (loaded, concurrency, tids, servers = 1) =>
      closedLoop(() => loaded.call(inputs), { concurrency, tids, minCalls: roundMinCalls(oneServerRate, servers), ...window });
    /** The CPU of a one-thread round: the same for both sides of it, the next one the round after. */
    const cpus = allowedCpus();
    const cpuOf = (round) => cpus[round % cpus.length];
    /** One round of a one-interpreter pool, its interpreter's thread on `cpu` (Node's main thread free to run elsewhere). */
    const pinnedCoilRound = async (pool, loaded, concurrency, tids, cpu) => {
      await pool.interpreters[0].eval(`__import__("os").sched_setaffinity(0, {${cpu}}) or 0`);
      return coilRound(loaded, concurrency, tids);
    };
    /** A group whose Coil side is one pool with the model loaded (and accelerated, if asked). */
    const poolGroup = (name, size, accelerator, members) => {
      let pool;
      return {
        name,
        async open() {
          pool = await openPool(size);
          const loaded = await pool.loadArchive(archive, { eager: true, ...(accelerator && { accelerator }) });
          if (accelerator && !loaded.acceleration?.active) return `stayed eager: ${loaded.acceleration?.reason}`;
          return members(loaded, await interpreterThreads(pool), pool);
        },
        async close() {
          if (!pool) return;
          // Interpreters go back to the process's registry and serve later pools: unpinned.
          await Promise.all(pool.interpreters.map((i) => i.eval(`__import__("os").sched_setaffinity(0, {${cpus.join(", ")}}) or 0`)));
          await pool.close();
        },
      };
    };
    const groups = [
      poolGroup("one interpreter", 1, undefined, (loaded, tids, pool) => ({
        eager: (round) => plainRound("eager", { cpu: cpuOf(round) }),
        ...(ready.torchscript?.ok && { torchscript: (round) => plainRound("torchscript", { cpu: cpuOf(round) }) }),
        coil1: (round) => pinnedCoilRound(pool, loaded, 1, tids, cpuOf(round)),
        coil1x2: (round) => pinnedCoilRound(pool, loaded, 2, tids, cpuOf(round)),
      })),
      poolGroup("N interpreters", N, undefined, (loaded, tids) => ({
        processes: () => plainRound("eager", { count: N }),
        coilN: () => coilRound(loaded, 2 * N, tids, N),
      })),
    ];
    if (ready.compile?.ok && result.coil1Compile?.acceleration?.active) {
      groups.push(
        poolGroup("compile", 1, "compile", (loaded, tids, pool) => ({
          compile: (round) => plainRound("compile", { cpu: cpuOf(round) }),
          coil1Compile: (round) => pinnedCoilRound(pool, loaded, 1, tids, cpuOf(round)),
          coil1CompileX2: (round) => pinnedCoilRound(pool, loaded, 2, tids, cpuOf(round)),
        })),
      );
    }
    const best = result.onnxruntimeNode?.best;
    if (best && result.coilNOrt?.acceleration?.active) {
      const ort = await importPeer("onnxruntime-node");
      groups.push(
        poolGroup("onnxruntime", N, "onnxruntime", async (loaded, tids) => {
          const session = await ort.InferenceSession.create(onnxPath, { intraOpNumThreads: best.intraOpThreads, interOpNumThreads: 1, executionProviders: ["cpu"] });
          const feeds = Object.fromEntries(session.inputNames.map((name, i) => [name, new ort.Tensor(inputs[i].dtype, inputs[i].data, inputs[i].shape)]));
          return {
            onnxruntimeNodeBest: () => closedLoop(() => session.run(feeds), { concurrency: best.callers, minCalls: ROUND_MIN_CALLS, ...window }),
            coilNOrt: () => coilRound(loaded, 2 * N, tids, N),
          };
        }),
      );
    }
    const log = (line) => process.stderr.write(`  ${model.name}: ${line}\n`);
    return await interleavedRounds(groups, rounds, log);
  } finally {
    await Promise.all(plain.map((p) => p.close()));
  }
}

console.log(JSON.stringify(result));
process.exit(0);

async function withPool(size, body) {
  const pool = await openPool(size);
  try {
    return await body(pool);
  } finally {
    await pool.close();
  }
}

function openPool(size) {
  // One torch thread per interpreter: like for like with the plain Python columns.
  return InterpreterPool.create({
    size,
    python,
    backend: new CpuBackend({ threadsPerInterpreter: 1 }),
    scheduler: new LeastLoadedScheduler(),
    // Their caches in this run's scratch: the columns measure a cold start's result, not an old run's.
    accelerators: [
      new CompileAccelerator({ cacheDir: join(scratch, "inductor-cache") }),
      new OnnxRuntimeAccelerator({ cacheDir: join(scratch, "onnx-cache") }),
    ],
  });
}

function interpreterThreads(pool) {
  return Promise.all(pool.interpreters.map((i) => i.eval("__import__('threading').get_native_id()")));
}

/** `values` `times` times over, one after another (a batch of one repeated). */
function repeated(values, times) {
  return Array.from({ length: times }, () => Array.from(values)).flat();
}

/** Outputs named as Coil and run_model.py name them: a dict's keys, else output__0, ... */
function named(value) {
  if (value instanceof Tensor) return [["output__0", value]];
  if (Array.isArray(value)) return value.map((t, i) => [`output__${i}`, t]);
  return Object.entries(value);
}

/** Infinity when an output is missing or differs in length. */
function maxAbsError(pairs) {
  let worst = 0;
  for (const [got, want] of pairs) {
    if (!want || want.length !== got.length) return Infinity;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  }
  return worst;
}
