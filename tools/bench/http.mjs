#!/usr/bin/env node
// HTTP serving: Coil's Open Inference Protocol endpoint vs the same model behind FastAPI +
// uvicorn, side by side in one run, with the same load tool (wrk) and the same
// concurrency. The model is the small MLP (examples/models/mlp.py, 64 -> 64 -> 10),
// each request one JSON infer of an [8, 64] float32 input (256 different ones, in turn).
//
//   node tools/bench/http.mjs [--seconds 10] [--concurrency 16,64] [--rounds 2]
//                             [--interpreters 2] [--workers 2] [--threads 2] [--out FILE]
//
// Coil runs as users run it: `coil serve` (packages/runtime/dist/cli.js, with the Node
// flags and glibc tunable the command gives itself), one process plain and one with
// dynamic batching, HTTP only on 127.0.0.1; uvicorn runs tools/bench/fastapi_mlp.py with
// the same number of worker processes. Separate processes keep one server's garbage
// collection out of the other's numbers. wrk runs against each in turn (Coil, FastAPI, Coil
// batched, Coil, FastAPI, ...) so machine noise hits all of them. Prints a table and the
// bar, writes bench-results/http.json, stops every server. Needs the packages built, wrk,
// and Debian's python3-fastapi python3-uvicorn (it says how to install what is missing).
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { packModel, SERVE_NODE_FLAGS } from "@coil/runtime";
import { GLIBC_TUNABLE } from "@coil/native";

import { processCpu } from "./proc.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const CLI = resolve(HERE, "../../packages/runtime/dist/cli.js");
const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    concurrency: { type: "string", default: "16,64" },
    rounds: { type: "string", default: "2" },
    interpreters: { type: "string", default: "2" },
    workers: { type: "string", default: "2" },
    threads: { type: "string", default: "2" },
    python: { type: "string" },
    "no-batching": { type: "boolean", default: false },
    out: { type: "string", default: resolve(HERE, "../../bench-results/http.json") },
  },
});
const SECONDS = Number(args.seconds);
const CONCURRENCY = args.concurrency.split(",").map(Number);
const ROUNDS = Number(args.rounds);
const INTERPRETERS = Number(args.interpreters);
const WORKERS = Number(args.workers);
const WRK_THREADS = Number(args.threads);
const BATCHING = { maxBatchSize: 32, maxQueueDelayMicros: 200 };
const HOST = "127.0.0.1";
const ROWS = 8;
const FEATURES = 64;

// ---- prerequisites ---------------------------------------------------------------
function findPython() {
  const candidates = [args.python, process.env.COIL_PYTHON, "/usr/bin/python3", "python3"].filter(Boolean);
  for (const python of candidates) {
    const r = spawnSync(python, ["-c", "import torch, fastapi, uvicorn"], { stdio: "ignore" });
    if (r.status === 0) return python;
  }
  return undefined;
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

// ---- helpers ---------------------------------------------------------------------
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function freePort() {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, HOST, () => {
      const { port } = s.address();
      s.close(() => resolvePort(port));
    });
  });
}
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
const BODY = BODIES[0];

async function infer(url, timeoutMs = 5000) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: BODY,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}
async function waitReady(url, label, ms, child) {
  const until = Date.now() + ms;
  let last;
  while (Date.now() < until) {
    if (child && child.exitCode !== null) throw new Error(`${label} exited (${child.exitCode}) before answering`);
    try {
      return await infer(url, 2000);
    } catch (error) {
      last = error;
      await sleep(200);
    }
  }
  throw new Error(`${label} did not answer ${url} within ${ms / 1000} s: ${last?.message}`);
}

function runWrk(url, connections, seconds, bodyFile) {
  const argv = [`-t${Math.min(WRK_THREADS, connections)}`, `-c${connections}`, `-d${seconds}s`, "--timeout", "5s", "--latency", "-s", join(HERE, "http.lua"), url, "--", bodyFile];
  return new Promise((resolveRun, reject) => {
    const child = spawn("wrk", argv, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const killer = setTimeout(() => child.kill("SIGKILL"), (seconds + 20) * 1000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(killer);
      const line = out.split("\n").find((l) => l.startsWith("WRK_JSON "));
      if (code !== 0 || !line) return reject(new Error(`wrk exited ${code}:\n${out}`));
      const j = JSON.parse(line.slice("WRK_JSON ".length));
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
      const pctText = Object.fromEntries([...out.matchAll(/^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$/gm)].map((m) => [m[1], Number(m[2]) * { us: 1e-3, ms: 1, s: 1e3 }[m[3]]]));
      const errors = j.connectErrors + j.readErrors + j.writeErrors + j.statusErrors + j.timeouts;
      resolveRun({
        requestsPerSecond: j.requests / (j.durationUs / 1e6),
        wrkRequestsPerSecond: rps,
        requests: j.requests,
        errors,
        errorDetail: { connect: j.connectErrors, read: j.readErrors, write: j.writeErrors, status: j.statusErrors, timeout: j.timeouts },
        p50Ms: j.p50Us / 1000,
        p90Ms: j.p90Us / 1000,
        p99Ms: j.p99Us / 1000,
        p999Ms: j.p999Us / 1000,
        maxMs: j.maxUs / 1000,
        meanMs: j.meanUs / 1000,
        wrkTextPercentilesMs: pctText,
      });
    });
  });
}

// ---- set up ----------------------------------------------------------------------
const scratch = mkdtempSync(join(tmpdir(), "coil-http-bench-"));
const bodyFile = join(scratch, "bodies.jsonl");
writeFileSync(bodyFile, BODIES.join("\n") + "\n");
const repository = join(scratch, "repo");
mkdirSync(repository);
const servers = []; // child processes, each the leader of its process group
let cleaning;
async function cleanup() {
  cleaning ??= (async () => {
    await Promise.all(servers.map(stopGroup));
    rmSync(scratch, { recursive: true, force: true });
  })();
  return cleaning;
}
/** SIGTERM to a server's process group, SIGKILL if it is still there after 5 s. */
async function stopGroup(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  const signal = (name) => {
    try {
      process.kill(-child.pid, name);
    } catch {}
  };
  signal("SIGTERM");
  if ((await Promise.race([exited.then(() => true), sleep(5000).then(() => false)])) === false) signal("SIGKILL");
}
/** `coil serve` on the repository, as its CLI starts itself (Node flags, glibc tunable). */
async function startCoil(extraArgs) {
  const port = await freePort();
  const argv = ["serve", repository, "--host", HOST, "--http-port", String(port), "--grpc-port", "-1", "--interpreters", String(INTERPRETERS), "--python", PYTHON, "--log-level", "warn", ...extraArgs];
  const child = spawn(process.execPath, [...SERVE_NODE_FLAGS, CLI, ...argv], {
    detached: true,
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, GLIBC_TUNABLES: GLIBC_TUNABLE },
  });
  servers.push(child);
  return { child, url: `http://${HOST}:${port}/v2/models/mlp/infer` };
}
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => cleanup().finally(() => process.exit(130)));
}

const results = {
  date: new Date().toISOString(),
  machine: { cpus: availableParallelism(), cpuModel: cpus()[0]?.model, loadavgAtStart: loadavg() },
  model: "examples/models/mlp.py (64 -> 64 -> 10), input float32 [8, 64], JSON",
  distinctRequests: BODY_COUNT,
  seconds: SECONDS,
  rounds: ROUNDS,
  wrkThreads: WRK_THREADS,
  interpreters: INTERPRETERS,
  uvicornWorkers: WORKERS,
  batching: BATCHING,
  coilNodeFlags: SERVE_NODE_FLAGS,
  python: PYTHON,
  targets: {},
  runs: [],
  summary: [],
};

try {
  const t0 = performance.now();
  await packModel({
    target: `${join(HERE, "../../examples/models/mlp.py")}:build`,
    output: join(repository, "mlp.coil"),
    inputs: [{ name: "input", dtype: "float32", shape: [-1, FEATURES] }],
    outputs: [{ name: "output", dtype: "float32", shape: [-1, 10] }],
    python: PYTHON,
  });
  const packMs = performance.now() - t0;

  // uvicorn first (it starts slower, in its own processes), then Coil.
  const fastapiPort = await freePort();
  const uvStarted = performance.now();
  const uvicorn = spawn(
    PYTHON,
    ["-m", "uvicorn", "fastapi_mlp:app", "--host", HOST, "--port", String(fastapiPort), "--workers", String(WORKERS), "--log-level", "warning", "--no-access-log"],
    { cwd: HERE, detached: true, stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, OMP_NUM_THREADS: "1", MKL_NUM_THREADS: "1" } },
  );
  servers.push(uvicorn);

  const targets = [];
  const coilStarted = performance.now();
  const plain = await startCoil([]);
  targets.push({ key: "coil", label: `Coil, ${INTERPRETERS} interpreters`, ...plain });
  if (!args["no-batching"]) {
    const batched = await startCoil(["--max-batch-size", String(BATCHING.maxBatchSize), "--max-queue-delay-us", String(BATCHING.maxQueueDelayMicros)]);
    targets.push({ key: "coil-batched", label: `Coil, ${INTERPRETERS} interp., batching`, ...batched });
  }
  const fastapiUrl = `http://${HOST}:${fastapiPort}/v2/models/mlp/infer`;
  targets.splice(1, 0, { key: "fastapi", label: `FastAPI+uvicorn, ${WORKERS} workers`, url: fastapiUrl, child: uvicorn });

  // Everyone answers, with the same numbers.
  const answers = {};
  let coilStartupMs;
  for (const t of targets) {
    answers[t.key] = await waitReady(t.url, t.label, 60_000, t.child);
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
    `HTTP infer, small MLP [${ROWS},${FEATURES}] JSON; ${availableParallelism()} cores; wrk -t${WRK_THREADS} -d${SECONDS}s, ${ROUNDS} rounds per row, targets in turn`,
  );
  console.log(
    `same answer from every server (output [${reference.shape}], max |diff| ${maxAbsDiff.toExponential(1)}); pack ${packMs.toFixed(0)} ms, coil serve ready ${coilStartupMs.toFixed(0)} ms, uvicorn ready ${fastapiReadyMs.toFixed(0)} ms`,
  );

  // Warm-up: a short run on each.
  for (const t of targets) await runWrk(t.url, CONCURRENCY[0], 2, bodyFile);

  for (const c of CONCURRENCY) {
    for (let round = 1; round <= ROUNDS; round++) {
      for (const t of targets) {
        const coil = t.key !== "fastapi";
        const cpu0 = coil ? processCpu(t.child.pid) : 0;
        const r = await runWrk(t.url, c, SECONDS, bodyFile);
        results.runs.push({ target: t.key, connections: c, round, ...r, ...(coil && { coilProcessCpuSeconds: processCpu(t.child.pid) - cpu0 }) });
        process.stderr.write(`  ${t.key.padEnd(13)} c=${String(c).padEnd(3)} round ${round}: ${r.requestsPerSecond.toFixed(0)} req/s, p99 ${r.p99Ms.toFixed(2)} ms${r.errors ? `, ${r.errors} errors` : ""}\n`);
      }
    }
  }

  // ---- report ------------------------------------------------------------------
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log("\n   server                            conns     req/s    p50 ms    p90 ms    p99 ms   errors   (req/s per round)");
  for (const c of CONCURRENCY) {
    for (const t of targets) {
      const runs = results.runs.filter((r) => r.target === t.key && r.connections === c);
      const row = {
        target: t.key,
        connections: c,
        requestsPerSecond: mean(runs.map((r) => r.requestsPerSecond)),
        p50Ms: mean(runs.map((r) => r.p50Ms)),
        p90Ms: mean(runs.map((r) => r.p90Ms)),
        p99Ms: mean(runs.map((r) => r.p99Ms)),
        worstP99Ms: Math.max(...runs.map((r) => r.p99Ms)),
        errors: runs.reduce((a, r) => a + r.errors, 0),
        ...(t.key !== "fastapi" && { cpuMsPerRequest: (1000 * runs.reduce((a, r) => a + r.coilProcessCpuSeconds, 0)) / runs.reduce((a, r) => a + r.requests, 0) }),
      };
      results.summary.push(row);
      console.log(
        `   ${t.label.padEnd(33)} ${String(c).padStart(5)} ${row.requestsPerSecond.toFixed(0).padStart(9)} ${row.p50Ms.toFixed(2).padStart(9)} ${row.p90Ms.toFixed(2).padStart(9)} ${row.p99Ms.toFixed(2).padStart(9)} ${String(row.errors).padStart(8)}   (${runs.map((r) => r.requestsPerSecond.toFixed(0)).join(", ")})`,
      );
    }
  }

  console.log(`\nbar: Coil (${INTERPRETERS} interpreters) >= 2x FastAPI+uvicorn (${WORKERS} workers) req/s, and lower p99, at every concurrency`);
  const bar = [];
  let pass = true;
  for (const c of CONCURRENCY) {
    const f = results.summary.find((r) => r.target === "fastapi" && r.connections === c);
    for (const key of ["coil", "coil-batched"]) {
      const k = results.summary.find((r) => r.target === key && r.connections === c);
      if (!k) continue;
      const ratio = k.requestsPerSecond / f.requestsPerSecond;
      const ok = ratio >= 2 && k.p99Ms < f.p99Ms && k.errors === 0;
      if (key === "coil") pass &&= ok;
      bar.push({ target: key, connections: c, ratio, coilP99Ms: k.p99Ms, fastapiP99Ms: f.p99Ms, pass: ok, counted: key === "coil" });
      console.log(
        `   c=${String(c).padEnd(3)} ${key.padEnd(13)} ${ratio.toFixed(2)}x req/s (${ratio >= 2 ? "ok" : "< 2x"}), p99 ${k.p99Ms.toFixed(2)} vs ${f.p99Ms.toFixed(2)} ms (${k.p99Ms < f.p99Ms ? "lower" : "NOT lower"})${k.errors ? `, ${k.errors} errors` : ""}  ${ok ? "PASS" : "FAIL"}${key === "coil" ? "" : "  (extra row, not the bar)"}`,
      );
    }
  }
  results.bar = { pass, rows: bar };
  console.log(`   => ${pass ? "PASS" : "FAIL"}`);
  results.machine.loadavgAtEnd = loadavg();
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(args.out, JSON.stringify(results, null, 2));
  console.log(`\nresults written to ${args.out}`);
  await cleanup();
  process.exitCode = pass ? 0 : 1;
} catch (error) {
  console.error(error?.stack ?? error);
  await cleanup();
  process.exitCode = 3;
}
