#!/usr/bin/env node
// Coil's OCI image (deploy/image): how long `npm run image` takes (cold with
// --rebuild / --rebuild-base, else as it finds the cache), the image's size, and the
// time from `podman run` to GET /v2/health/ready answering 200 with an mlp mounted at
// /mnt/models (--runs times, a fresh container each). Prints a table, writes JSON.
//   node tools/bench/image.mjs [--runs 3] [--rebuild | --rebuild-base]   (root: podman, buildah)
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { once } from "node:events";
import { join } from "node:path";

import { packModel } from "@coil/runtime";

import { parseFlags } from "./lib/args.mjs";
import { progress } from "./lib/log.mjs";
import { REPO_ROOT } from "./lib/paths.mjs";
import { outFlag, startResults, writeResults } from "./lib/results.mjs";
import { scratchDir } from "./lib/scratch.mjs";
import { printTable } from "./lib/table.mjs";

const flags = parseFlags(import.meta.url, {
  runs: { type: "integer", default: 3, help: "containers started, one after another" },
  rebuild: { type: "boolean", default: false, help: "build the coil layer again (a cold layer build)" },
  "rebuild-base": { type: "boolean", default: false, help: "make the Debian root file system again too (a cold build)" },
  out: outFlag("image"),
});

const PODMAN = join(REPO_ROOT, "deploy/image/podman");
const READY_TIMEOUT_MS = 300_000;

/** Runs a program to its end; its stdout, and how long it took. Rejects on failure. */
function timed(command, args, { show = false } = {}) {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", show ? "inherit" : "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (chunk) => (out += chunk));
    child.stderr?.on("data", (chunk) => (err += chunk));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve({ stdout: out, seconds: (performance.now() - started) / 1000 })
        : reject(new Error(`${command} ${args.join(" ")} exited with ${code}\n${err}`)),
    );
  });
}

async function freePort() {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  server.close();
  await once(server, "close");
  return port;
}

async function ready(url) {
  try {
    return (await fetch(url)).status === 200;
  } catch {
    return false;
  }
}

const results = startResults({ runs: flags.runs });

progress(`npm run image${flags.rebuildBase ? " --rebuild-base" : flags.rebuild ? " --rebuild" : ""}`);
const buildArgs = [join(REPO_ROOT, "deploy/image/build.mjs"), ...(flags.rebuild ? ["--rebuild"] : []), ...(flags.rebuildBase ? ["--rebuild-base"] : [])];
const build = await timed("node", buildArgs, { show: true });
const image = build.stdout.trim().split("\n").at(-1);
const [inspected] = JSON.parse((await timed(PODMAN, ["image", "inspect", image])).stdout);
const base = inspected.Config.Labels["org.opencontainers.image.base.name"];
const [inspectedBase] = JSON.parse((await timed(PODMAN, ["image", "inspect", base])).stdout);
results.build = {
  image,
  kind: flags.rebuildBase ? "cold (Debian root file system and coil layer)" : flags.rebuild ? "coil layer rebuilt" : "as cached",
  seconds: Number(build.seconds.toFixed(1)),
};
results.size = { imageBytes: inspected.Size, baseBytes: inspectedBase.Size, coilLayerBytes: inspected.Size - inspectedBase.Size };

const scratch = scratchDir("coil-bench-image");
const repo = join(scratch, "repo");
mkdirSync(repo);
progress("coil pack mlp");
await packModel({
  target: `${join(REPO_ROOT, "examples/models/mlp.py")}:build`,
  output: join(repo, "mlp.coil"),
  inputs: [{ name: "x", dtype: "float32", shape: [-1, 64] }],
  outputs: [{ name: "y", dtype: "float32", shape: [-1, 10] }],
});

results.starts = [];
for (let run = 1; run <= flags.runs; run++) {
  const port = await freePort();
  const name = `coil-bench-image-${process.pid}-${run}`;
  const started = performance.now();
  const created = await timed(PODMAN, ["run", "-d", "--name", name, "-p", `127.0.0.1:${port}:8080`, "-v", `${repo}:/mnt/models:ro`, image]);
  let readySeconds;
  while (performance.now() - started < READY_TIMEOUT_MS) {
    if (await ready(`http://127.0.0.1:${port}/v2/health/ready`)) {
      readySeconds = (performance.now() - started) / 1000;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // coil serve's own start-up: its "serving" line's startupMs (process start -> serving).
  const logs = await timed(PODMAN, ["logs", name]);
  const serving = logs.stdout.split("\n").filter((line) => line.includes('"msg":"serving"')).map((line) => JSON.parse(line))[0];
  await timed(PODMAN, ["rm", "-f", "-t", "30", name]);
  if (readySeconds === undefined) throw new Error(`container ${name} was not ready in ${READY_TIMEOUT_MS / 1000} s`);
  results.starts.push({
    run,
    podmanRunSeconds: Number(created.seconds.toFixed(2)),
    readySeconds: Number(readySeconds.toFixed(2)),
    coilStartupSeconds: serving ? serving.startupMs / 1000 : null,
  });
  progress(
    `run ${run}: podman run -d returned after ${created.seconds.toFixed(2)} s, ready after ${readySeconds.toFixed(2)} s ` +
      `(coil serve: ${serving ? serving.startupMs / 1000 : "?"} s of it)`,
  );
}

const mb = (bytes) => `${(bytes / 1e6).toFixed(0)} MB`;
printTable(
  [
    ["measure", (row) => row[0], "l"],
    ["value", (row) => row[1], "l"],
  ],
  [
    ["build", `${results.build.seconds} s (${results.build.kind})`],
    ["image size", mb(results.size.imageBytes)],
    ["  Debian base layer", mb(results.size.baseBytes)],
    ["  coil layer", mb(results.size.coilLayerBytes)],
    ...results.starts.map((s) => [
      `podman run -> ready (run ${s.run})`,
      `${s.readySeconds} s (podman run -d: ${s.podmanRunSeconds} s, coil serve start-up: ${s.coilStartupSeconds} s)`,
    ]),
  ],
);
writeResults(flags.out, results);
