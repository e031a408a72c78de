#!/usr/bin/env node
// How long does a large JSON infer response block the event loop? An HttpAdapter over
// an echo service (the output is the input tensor: no Python, the encoding alone) gets
// a 64 MiB binary request (16 M float32s) from curl asking for JSON outputs -- about
// 336 MB of JSON -- while a 10 ms interval timer measures the loop's worst gap.
//
//   node test/response-event-loop.mjs [ADAPTER_MODULE] [MAX_RESPONSE_BYTES]
//
// ADAPTER_MODULE: the @coil/adapter-http build to measure (default ../dist/index.js),
// e.g. a copy of an older dist for a before/after comparison.
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";

const modulePath = resolve(process.argv[2] ?? new URL("../dist/index.js", import.meta.url).pathname);
const maxResponseBytes = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
const { HttpAdapter } = await import(pathToFileURL(modulePath).href);

const ELEMENTS = 16 * 1024 * 1024;
const service = {
  serverMetadata: () => ({ name: "echo", version: "0", extensions: [] }),
  isLive: () => true,
  isReady: () => true,
  modelIndex: () => [],
  model: (name) => ({ name, versions: ["1"], platform: "echo", inputs: [], outputs: [] }),
  isModelReady: () => true,
  infer: async (name, _version, request) => ({ modelName: name, modelVersion: "1", outputs: [{ name: "y", tensor: request.inputs[0].tensor }] }),
  loadModel: async () => undefined,
  unloadModel: async () => undefined,
  metrics: () => "",
};
const adapter = new HttpAdapter(service, {
  host: "127.0.0.1",
  port: 0,
  bodyLimit: 128 * 1024 * 1024,
  maxElements: ELEMENTS,
  ...(maxResponseBytes !== undefined && { maxResponseBytes }),
});
await adapter.start();

const values = new Float32Array(ELEMENTS);
for (let i = 0; i < ELEMENTS; i++) values[i] = Math.random() * 2 - 1;
const header = Buffer.from(
  JSON.stringify({ inputs: [{ name: "x", datatype: "FP32", shape: [ELEMENTS], parameters: { binary_data_size: values.byteLength } }] }),
);
const file = join(mkdtempSync(join(tmpdir(), "coil-loop-")), "body");
writeFileSync(file, Buffer.concat([header, Buffer.from(values.buffer)]));

let worst = 0;
let started = performance.now();
let last = performance.now();
const timer = setInterval(() => {
  const now = performance.now();
  worst = Math.max(worst, now - last);
  if (process.env.GAPS && now - last > 100) console.log(`gap ${(now - last).toFixed(0)} ms at ${((now - started) / 1000).toFixed(2)} s`);
  last = now;
}, 10);
started = performance.now();
const { stdout } = await promisify(execFile)("curl", [
  "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
  "-H", `Inference-Header-Content-Length: ${header.length}`, "-H", "Content-Type: application/octet-stream",
  "--data-binary", `@${file}`, `${adapter.url}/v2/models/echo/infer`,
]);
const seconds = (performance.now() - started) / 1000;
clearInterval(timer);
const [status, bytes] = stdout.split(" ");
console.log(
  `${modulePath} (maxResponseBytes ${maxResponseBytes ?? "default"}): HTTP ${status}, ${(Number(bytes) / 1e6).toFixed(1)} MB response, ` +
    `${seconds.toFixed(2)} s; worst event-loop gap ${worst.toFixed(0)} ms`,
);
await adapter.stop();
