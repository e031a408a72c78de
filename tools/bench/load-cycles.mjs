#!/usr/bin/env node
// Load/unload cycles against a real `coil serve` (model control explicit): the
// server's open file descriptors, memory mappings (all, the archive's, deleted files')
// and RSS every --every cycles, as a table and JSON. Each cycle replaces the archive
// on disk (a new file under the same name, as a deployment does) unless --same-file,
// then unloads and loads it over HTTP. Issue 15's bar: descriptors and mappings flat.
//   node tools/bench/load-cycles.mjs [--cycles 500] [--every 100] [--python PATH]
import { spawn } from "node:child_process";
import { copyFileSync, readdirSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";

import { packModel } from "@coil/runtime";

import { parseFlags } from "./lib/args.mjs";
import { REPO_ROOT } from "./lib/paths.mjs";
import { outFlag, startResults, writeResults } from "./lib/results.mjs";
import { scratchDir } from "./lib/scratch.mjs";
import { printTable } from "./lib/table.mjs";

const flags = parseFlags(import.meta.url, {
  cycles: { type: "integer", default: 500, help: "unload + load cycles" },
  every: { type: "integer", default: 100, help: "cycles between samples" },
  python: { type: "path", help: "the Python to serve with (default: discovered)" },
  "same-file": { type: "boolean", default: false, help: "load the same file each time instead of a replaced one" },
  out: outFlag("load-cycles"),
});

const scratch = scratchDir("coil-load-cycles");
const repo = join(scratch, "repo");
const packed = join(scratch, "mlp.coil");
await packModel({
  target: `${join(REPO_ROOT, "examples", "models", "mlp.py")}:build`,
  output: packed,
  ...(flags.python && { python: flags.python }),
  inputs: [{ name: "input", dtype: "float32", shape: [-1, 64] }],
  outputs: [{ name: "output", dtype: "float32", shape: [-1, 10] }],
});
const archive = join(repo, "mlp.coil");
(await import("node:fs")).mkdirSync(repo, { recursive: true });
copyFileSync(packed, archive);

const cli = join(REPO_ROOT, "packages", "runtime", "dist", "cli.js");
const args = ["serve", repo, "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "-1", "--model-control", "explicit", "--instances", "1"];
if (flags.python) args.push("--python", flags.python);
const server = spawn(process.execPath, [cli, ...args], { stdio: ["ignore", "pipe", "inherit"] });
const ready = await new Promise((resolve, reject) => {
  let buffered = "";
  server.stdout.on("data", (chunk) => {
    buffered += chunk;
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const line = JSON.parse(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
      if (line.msg === "serving") resolve(line);
    }
  });
  server.on("exit", (code) => reject(new Error(`coil serve exited with ${code}`)));
});
const base = `http://127.0.0.1:${ready.http}`;
const pid = ready.pid;

async function post(path) {
  const reply = await fetch(`${base}${path}`, { method: "POST" });
  if (reply.status !== 200) throw new Error(`${path}: ${reply.status} ${await reply.text()}`);
}

function sample(cycle) {
  const maps = readFileSync(`/proc/${pid}/maps`, "utf8").trim().split("\n");
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return {
    cycle,
    fds: readdirSync(`/proc/${pid}/fd`).length,
    maps: maps.length,
    archiveMaps: maps.filter((l) => l.includes("mlp.coil")).length,
    deletedMaps: maps.filter((l) => l.endsWith("(deleted)")).length,
    rssMb: Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024,
  };
}

const samples = [sample(0)];
const started = performance.now();
for (let cycle = 1; cycle <= flags.cycles; cycle++) {
  if (!flags["same-file"]) {
    copyFileSync(packed, `${archive}.new`);
    renameSync(`${archive}.new`, archive);
  }
  await post("/v2/repository/models/mlp/unload");
  await post("/v2/repository/models/mlp/load");
  if (cycle % flags.every === 0 || cycle === flags.cycles) samples.push(sample(cycle));
}
const seconds = (performance.now() - started) / 1e3;
const infer = await fetch(`${base}/v2/models/mlp/infer`, {
  method: "POST",
  body: JSON.stringify({ inputs: [{ name: "input", datatype: "FP32", shape: [1, 64], data: Array(64).fill(0.5) }] }),
});
server.kill("SIGTERM");

console.log(`\n${flags.cycles} unload + load cycles (${flags["same-file"] ? "the same file" : "a replaced file each time"}), ${seconds.toFixed(1)} s; infer after: ${infer.status}`);
printTable(
  [
    ["cycle", (s) => s.cycle],
    ["open fds", (s) => s.fds],
    ["mappings", (s) => s.maps],
    ["archive's", (s) => s.archiveMaps],
    ["deleted files'", (s) => s.deletedMaps],
    ["RSS MB", (s) => s.rssMb.toFixed(0)],
  ],
  samples,
);
writeResults(flags.out, startResults({ options: { cycles: flags.cycles, sameFile: flags["same-file"] }, seconds, inferStatus: infer.status, samples }));
