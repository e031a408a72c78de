import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { beforeAll, describe, expect, inject, it } from "vitest";

import { startServe } from "../test/serve-process.js";
import { packModel } from "./pack.js";

const PYTHON = inject("testPython");
const here = dirname(fileURLToPath(import.meta.url));
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
 * the environment, so it restarts itself). */
function serve() {
  const env: NodeJS.ProcessEnv = { ...process.env, COIL_PYTHON: PYTHON };
  delete env.GLIBC_TUNABLES;
  delete env.NODE_OPTIONS;
  return startServe(["serve", repo, "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "-1", "--interpreters", "2"], { env, detached: true });
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
