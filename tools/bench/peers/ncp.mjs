#!/usr/bin/env node
// node-calls-python on one model, in a process of its own (a child of peers.mjs: a
// crash costs that cell only, and its libpython never shares a process with Coil's):
//   node tools/bench/peers/ncp.mjs '<JSON: source, seconds, warmup, callers, sysPath, executable>'
// Closed loops of its async `call` (a worker thread takes the GIL) with each number of
// callers, and of `callSync` on the main thread. Prints one JSON line.
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { closedLoop } from "../lib/closed-loop.mjs";
import { importPeer, PEERS_DIR } from "../lib/peers.mjs";

const { source, seconds, warmup, callers, sysPath, executable } = JSON.parse(process.argv[2]);
const { interpreter: py } = await importPeer("node-calls-python");
py.setPythonExecutable(executable);
for (const path of sysPath) py.addImportPath(path);
const runner = await py.create(await py.import(join(PEERS_DIR, "runner.py"), false), "Runner", source);
const lists = await py.call(runner, "example_lists");
const window = { warmupMs: warmup * 1e3, durationMs: seconds * 1e3 };

const version = JSON.parse(readFileSync(join(PEERS_DIR, "node_modules", "node-calls-python", "package.json"), "utf8")).version;
const result = { version, async: {} };
for (const c of callers) {
  result.async[c] = await closedLoop(() => py.call(runner, "call_lists", ...lists), { concurrency: c, ...window });
}
// callSync: the event loop blocked for the whole window, as a synchronous caller would.
const start = performance.now() + window.warmupMs;
const end = start + window.durationMs;
let calls = 0;
for (let now = performance.now(); now < end; now = performance.now()) {
  py.callSync(runner, "call_lists", ...lists);
  if (now >= start) calls += 1;
}
result.sync = { callsPerSecond: calls / seconds };
console.log(JSON.stringify(result));
process.exit(0);
