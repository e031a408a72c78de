import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

// The runtime's helper that runs the built `coil` command and reads its JSON log: the
// dashboard is tested through `coil serve --dashboard`, as a user starts it.
import { CLI, startServe, type ServeProcess } from "../../runtime/test/serve-process.js";

export { startServe, type ServeProcess };

const RANKER = resolve(dirname(fileURLToPath(import.meta.url)), "fixtures/ranker.py");

/** A repository with the ranker model as version 3 (<repo>/ranker/3/ranker.coil), packed by `coil pack`. */
export async function rankerRepository(python: string): Promise<string> {
  const repo = mkdtempSync(join(tmpdir(), "coil-dashboard-repo-"));
  mkdirSync(join(repo, "ranker", "3"), { recursive: true });
  await promisify(execFile)(process.execPath, [CLI, "pack", `${RANKER}:build`, "-o", join(repo, "ranker", "3", "ranker.coil"), "--python", python, "--quiet"]);
  return repo;
}

/** One ranker request over HTTP (the Open Inference Protocol's JSON). */
export async function inferRanker(base: string): Promise<Response> {
  const body = JSON.stringify({ inputs: [{ name: "x", datatype: "FP32", shape: [1, 8], data: [1, 2, 3, 4, 5, 6, 7, 8] }] });
  return fetch(`${base}/v2/models/ranker/infer`, { method: "POST", body, headers: { "content-type": "application/json" } });
}

/** Requests from `connections` loops until stopped; how many succeeded. */
export function runLoad(base: string, connections: number): { stop: () => Promise<number> } {
  let running = true;
  let answered = 0;
  const loops = Array.from({ length: connections }, async () => {
    while (running) {
      const response = await inferRanker(base);
      await response.arrayBuffer();
      if (response.ok) answered++;
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return answered;
    },
  };
}

/** Stops a server started by startServe and waits for it to exit. */
export async function stopServe(server: ServeProcess): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill("SIGTERM");
  await server.exited;
}
