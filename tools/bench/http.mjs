#!/usr/bin/env node
// HTTP serving: Coil's Open Inference Protocol endpoint vs the same model behind FastAPI +
// uvicorn, side by side in one run, with the same load tool (wrk) and the same
// concurrency. The model is the small MLP (examples/models/mlp.py, 64 -> 64 -> 10),
// each request one JSON infer of an [8, 64] float32 input (256 different ones, in turn).
//
// Coil runs as users run it: `coil serve` (packages/runtime/dist/cli.js, with the Node
// flags and glibc tunable the command gives itself), one process plain and one with
// dynamic batching, HTTP only on 127.0.0.1; uvicorn runs tools/bench/fastapi_mlp.py with
// the same number of worker processes. Separate processes keep one server's garbage
// collection out of the other's numbers. wrk runs against each in turn (Coil, FastAPI, Coil
// batched, Coil, FastAPI, ...) so machine noise hits all of them. Prints a table and the
// bar, writes bench-results/http.json, stops every server. Needs the packages built, wrk,
// and Debian's python3-fastapi python3-uvicorn (it says how to install what is missing,
// and exits with 2). Exits with 1 when the bar fails, 3 on an error.
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";

import { GLIBC_TUNABLE } from "@coil/native";
import { packModel, SERVE_NODE_FLAGS } from "@coil/runtime";

import { parseFlags } from "./lib/args.mjs";
import { freePort, startServer, stopAllServers, waitUntilReady } from "./lib/child.mjs";
import { progress } from "./lib/log.mjs";
import { BENCH_DIR, EXAMPLE_MODELS, REPO_ROOT } from "./lib/paths.mjs";
import { processCpu } from "./lib/proc.mjs";
import { outFlag, startResults, writeResults } from "./lib/results.mjs";
import { scratchDir } from "./lib/scratch.mjs";
import { judge, printSummary, summarizeRuns } from "./http/report.mjs";
import { runWrk } from "./http/wrk.mjs";

const flags = parseFlags(import.meta.url, {
  seconds: { type: "number", positive: true, default: 10, help: "seconds of wrk per row and round" },
  concurrency: { type: "integers", default: [16, 64], defaultHelp: "16,64", help: "wrk connections, one row each" },
  rounds: { type: "integer", default: 2, help: "rounds per row (the table shows their mean)" },
  interpreters: { type: "integer", default: 2, help: "Coil's interpreters" },
  workers: { type: "integer", default: 2, help: "uvicorn's worker processes" },
  threads: { type: "integer", default: 2, help: "wrk's threads" },
  python: { type: "path", help: "a Python with torch, fastapi and uvicorn (default: $COIL_PYTHON, /usr/bin/python3, python3)" },
  batching: { type: "boolean", default: true, help: "also Coil with dynamic batching (an extra row, not the bar)" },
  out: outFlag("http"),
});
const CLI = join(REPO_ROOT, "packages/runtime/dist/cli.js");
const BATCHING = { maxBatchSize: 32, maxQueueDelayMicros: 200 };
const HOST = "127.0.0.1";
const ROWS = 8;
const FEATURES = 64;

// ---- prerequisites ---------------------------------------------------------------
function findPython() {
  const candidates = [flags.python, process.env.COIL_PYTHON, "/usr/bin/python3", "python3"].filter(Boolean);
  return candidates.find((python) => spawnSync(python, ["-c", "import torch, fastapi, uvicorn"], { stdio: "ignore" }).status === 0);
}
const missing = [];
if (spawnSync("wrk", ["--version"], { stdio: "ignore" }).error) missing.push("wrk");
const PYTHON = findPython();
if (!PYTHON) missing.push("python3-fastapi", "python3-uvicorn");
if (missing.length > 0) {
  console.error(`missing: ${missing.join(", ")} (and a python3 with torch, fastapi and uvicorn)`);
  console.error(`install with:  apt-get install -y ${missing.join(" ")}${PYTHON ? "" : " python3-torch"}`);
  process.exit(2);
}

// ---- requests --------------------------------------------------------------------
// float32 values written as the doubles they are, as a client serialising a float32
// array (numpy's tolist(), JSON.stringify of a Float32Array) writes them: up to 17
// significant digits each. BODY_COUNT different requests, so that the outputs differ
// too: one request repeated let a server's value-keyed caches hide what it costs per
// request (V8's number-to-string cache hid Coil's old-space allocations that way).
const BODY_COUNT = 256;
const BODIES = Array.from({ length: BODY_COUNT }, (_, k) => {
  const data = Array.from(new Float32Array(ROWS * FEATURES).map((_, i) => Math.sin(i * (1 + k / BODY_COUNT) + k)));
  return JSON.stringify({ inputs: [{ name: "input", shape: [ROWS, FEATURES], datatype: "FP32", data }] });
});

async function infer(url, timeoutMs = 5000) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: BODIES[0],
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

// ---- servers ---------------------------------------------------------------------
const scratch = scratchDir("coil-http-bench");
const bodyFile = join(scratch, "bodies.jsonl");
writeFileSync(bodyFile, BODIES.join("\n") + "\n");
const repository = join(scratch, "repo");
mkdirSync(repository);

/** `coil serve` on the repository, as its CLI starts itself (Node flags, glibc tunable). */
async function startCoil(extraArgs) {
  const port = await freePort(HOST);
  const argv = ["serve", repository, "--host", HOST, "--http-port", String(port), "--grpc-port", "-1"];
  argv.push("--interpreters", String(flags.interpreters), "--python", PYTHON, "--log-level", "warn", ...extraArgs);
  const child = startServer(process.execPath, [...SERVE_NODE_FLAGS, CLI, ...argv], {
    env: { ...process.env, GLIBC_TUNABLES: GLIBC_TUNABLE },
  });
  return { child, url: `http://${HOST}:${port}/v2/models/mlp/infer` };
}

/** uvicorn with tools/bench/fastapi_mlp.py, one torch thread per worker. */
async function startFastapi() {
  const port = await freePort(HOST);
  const argv = ["-m", "uvicorn", "fastapi_mlp:app", "--host", HOST, "--port", String(port), "--workers", String(flags.workers)];
  argv.push("--log-level", "warning", "--no-access-log");
  const child = startServer(PYTHON, argv, { cwd: BENCH_DIR, env: { ...process.env, OMP_NUM_THREADS: "1", MKL_NUM_THREADS: "1" } });
  return { child, url: `http://${HOST}:${port}/v2/models/mlp/infer` };
}

const results = startResults({
  model: "examples/models/mlp.py (64 -> 64 -> 10), input float32 [8, 64], JSON",
  distinctRequests: BODY_COUNT,
  seconds: flags.seconds,
  rounds: flags.rounds,
  wrkThreads: flags.threads,
  interpreters: flags.interpreters,
  uvicornWorkers: flags.workers,
  batching: BATCHING,
  coilNodeFlags: SERVE_NODE_FLAGS,
  python: PYTHON,
  targets: {},
  runs: [],
  summary: [],
});

try {
  const t0 = performance.now();
  await packModel({
    target: `${join(EXAMPLE_MODELS, "mlp.py")}:build`,
    output: join(repository, "mlp.coil"),
    inputs: [{ name: "input", dtype: "float32", shape: [-1, FEATURES] }],
    outputs: [{ name: "output", dtype: "float32", shape: [-1, 10] }],
    python: PYTHON,
  });
  const packMs = performance.now() - t0;

  // uvicorn first (it starts slower, in its own processes), then Coil.
  const uvStarted = performance.now();
  const fastapi = await startFastapi();
  const coilStarted = performance.now();
  const targets = [
    { key: "coil", label: `Coil, ${flags.interpreters} interpreters`, ...(await startCoil([])) },
    { key: "fastapi", label: `FastAPI+uvicorn, ${flags.workers} workers`, ...fastapi },
  ];
  if (flags.batching) {
    const batching = ["--max-batch-size", String(BATCHING.maxBatchSize), "--max-queue-delay-us", String(BATCHING.maxQueueDelayMicros)];
    targets.push({ key: "coil-batched", label: `Coil, ${flags.interpreters} interp., batching`, ...(await startCoil(batching)) });
  }

  // Everyone answers, with the same numbers.
  const answers = {};
  let coilStartupMs;
  for (const t of targets) {
    answers[t.key] = await waitUntilReady(() => infer(t.url, 2000), { label: `${t.label} (${t.url})`, timeoutMs: 60_000, child: t.child });
    if (t.key === "coil") coilStartupMs = performance.now() - coilStarted;
  }
  const fastapiReadyMs = performance.now() - uvStarted;
  const reference = answers.fastapi.outputs[0];
  let maxAbsDiff = 0;
  for (const [key, answer] of Object.entries(answers)) {
    const out = answer.outputs?.[0];
    if (!out || JSON.stringify(out.shape) !== JSON.stringify(reference.shape) || out.data.length !== reference.data.length) {
      throw new Error(`${key} answered a different shape: ${JSON.stringify(answer).slice(0, 300)}`);
    }
    for (let i = 0; i < out.data.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(out.data[i] - reference.data[i]));
  }
  if (!(maxAbsDiff <= 1e-5)) throw new Error(`Coil and FastAPI disagree: max |difference| ${maxAbsDiff}`);
  results.check = { outputShape: reference.shape, maxAbsDiff, first: reference.data.slice(0, 3) };
  results.startup = { packMs, coilServeMs: coilStartupMs, fastapiReadyMs };
  for (const t of targets) results.targets[t.key] = { label: t.label };
  console.log(
    `HTTP infer, small MLP [${ROWS},${FEATURES}] JSON; ${availableParallelism()} cores; ` +
      `wrk -t${flags.threads} -d${flags.seconds}s, ${flags.rounds} rounds per row, targets in turn`,
  );
  console.log(
    `same answer from every server (output [${reference.shape}], max |diff| ${maxAbsDiff.toExponential(1)}); ` +
      `pack ${packMs.toFixed(0)} ms, coil serve ready ${coilStartupMs.toFixed(0)} ms, uvicorn ready ${fastapiReadyMs.toFixed(0)} ms`,
  );

  // Warm-up: a short run on each.
  for (const t of targets) await runWrk(t.url, { connections: flags.concurrency[0], seconds: 2, threads: flags.threads, bodyFile });

  for (const c of flags.concurrency) {
    for (let round = 1; round <= flags.rounds; round++) {
      for (const t of targets) {
        const coil = t.key !== "fastapi";
        const cpu0 = coil ? processCpu(t.child.pid) : 0;
        const r = await runWrk(t.url, { connections: c, seconds: flags.seconds, threads: flags.threads, bodyFile });
        results.runs.push({
          target: t.key,
          connections: c,
          round,
          ...r,
          ...(coil && { coilProcessCpuSeconds: processCpu(t.child.pid) - cpu0 }),
        });
        progress(
          `${t.key.padEnd(13)} c=${String(c).padEnd(3)} round ${round}: ${r.requestsPerSecond.toFixed(0)} req/s, p99 ${r.p99Ms.toFixed(
            2,
          )} ms${r.errors ? `, ${r.errors} errors` : ""}`,
        );
      }
    }
  }

  // ---- report ------------------------------------------------------------------
  results.summary = summarizeRuns(results.runs, targets, flags.concurrency);
  console.log();
  printSummary(results.summary, targets);
  results.bar = judge(results.summary, flags);
  results.machine.loadAverageAtEnd = loadavg();
  writeResults(flags.out, results);
  process.exitCode = results.bar.pass ? 0 : 1;
} catch (error) {
  console.error(error?.stack ?? error);
  process.exitCode = 3;
} finally {
  await stopAllServers();
}
