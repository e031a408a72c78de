import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { beforeAll, describe, expect, inject, it } from "vitest";

import { packModel } from "./pack.js";

const PYTHON = inject("testPython");
const here = dirname(fileURLToPath(import.meta.url));
const CLI = resolve(here, "../dist/cli.js");
const SLOW = resolve(here, "../test/fixtures/slow/slow.py");
let repo: string;

beforeAll(async () => {
  repo = mkdtempSync(join(tmpdir(), "coil-slow-repo-"));
  await packModel({
    target: `${SLOW}:build`,
    output: join(repo, "slow.coil"),
    python: PYTHON,
    inputs: [{ name: "x", dtype: "float32", shape: [-1, 2] }],
    outputs: [{ name: "y", dtype: "float32", shape: [-1, 2] }],
  });
}, 120_000);

/** `coil serve` in a process group of its own, started as a user would (no tunable in
 * the environment, so it restarts itself); resolves once it logs "serving". */
function serve() {
  const env: NodeJS.ProcessEnv = { ...process.env, COIL_PYTHON: PYTHON };
  delete env.GLIBC_TUNABLES;
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, [CLI, "serve", repo, "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "-1", "--interpreters", "2"], {
    env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  let buffered = "";
  const serving = new Promise<Record<string, unknown>>((resolveServing, reject) => {
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
        const line = JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>;
        buffered = buffered.slice(nl + 1);
        logs.push(line);
        if (line.msg === "serving") resolveServing(line);
      }
    });
    child.on("exit", (code) => reject(new Error(`coil serve exited early with ${code}`)));
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on("exit", (code, signal) => r({ code, signal })));
  return { child, logs, serving, exited };
}

describe("coil serve and signals", () => {
  it("restarts itself in place: one process, its own pid, with the tunable", async () => {
    const { child, serving, exited } = serve();
    const ready = await serving;
    expect(ready.pid).toBe(child.pid);
    const environment = readFileSync(`/proc/${child.pid}/environ`, "utf8").split("\0");
    expect(environment).toContain("GLIBC_TUNABLES=glibc.rtld.nns=16");
    child.kill("SIGTERM");
    expect(await exited).toEqual({ code: 0, signal: null });
  }, 120_000);

  it("drains on SIGINT to its process group: every request in flight answered, exit 0", async () => {
    const { child, logs, serving, exited } = serve();
    const ready = await serving;
    const url = `http://127.0.0.1:${ready.http as number}/v2/models/slow/infer`;
    const body = JSON.stringify({ inputs: [{ name: "x", datatype: "FP32", shape: [1, 2], data: [1, 2] }] });
    const requests = Array.from({ length: 6 }, () => fetch(url, { method: "POST", body }).then(async (r) => ({ status: r.status, body: await r.json() })));
    // All six reach the server (two run, four wait their turn), then Ctrl-C as a terminal sends it.
    await new Promise((r) => setTimeout(r, 500));
    process.kill(-child.pid!, "SIGINT");
    const answers = await Promise.all(requests);
    expect(answers).toEqual(Array.from({ length: 6 }, () => ({ status: 200, body: expect.objectContaining({ outputs: [expect.objectContaining({ data: [2, 4] })] }) })));
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(logs.filter((l) => l.msg === "signal received")).toEqual([expect.objectContaining({ signal: "SIGINT" })]);
  }, 120_000);
});
