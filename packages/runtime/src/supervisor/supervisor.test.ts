import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { inferenceService } from "@coil/adapter-grpc";
import { credentials } from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, inject, it } from "vitest";

import { packModel } from "../pack.js";

const PYTHON = inject("testPython");
const here = dirname(fileURLToPath(import.meta.url));
const CLI = resolve(here, "../../dist/cli.js");
const FIXTURES = resolve(here, "../../test/fixtures");
let repo: string;
/** The segfaulting model alone: its workers start faster (five deaths must fit in the crash-loop window). */
let segfaultRepo: string;
/** The good model alone. */
let goodRepo: string;

beforeAll(async () => {
  repo = mkdtempSync(join(tmpdir(), "coil-crash-repo-"));
  const io = {
    python: PYTHON,
    inputs: [{ name: "x", dtype: "float32" as const, shape: [-1, 2] }],
    outputs: [{ name: "y", dtype: "float32" as const, shape: [-1, 2] }],
  };
  await packModel({ ...io, target: `${FIXTURES}/crash/good.py:build`, output: join(repo, "good.coil") });
  for (const name of ["segfault", "exit", "hang"]) {
    await packModel({ ...io, target: `${FIXTURES}/crash/crash.py:${name}`, output: join(repo, `${name}.coil`) });
  }
  await packModel({ ...io, target: `${FIXTURES}/slow/slow.py:build`, output: join(repo, "slow.coil") });
  segfaultRepo = mkdtempSync(join(tmpdir(), "coil-segfault-repo-"));
  copyFileSync(join(repo, "segfault.coil"), join(segfaultRepo, "segfault.coil"));
  goodRepo = mkdtempSync(join(tmpdir(), "coil-good-repo-"));
  copyFileSync(join(repo, "good.coil"), join(goodRepo, "good.coil"));
}, 400_000);

type LogLine = Record<string, unknown> & { msg: string };

/** Servers a failed test left running: their process groups are killed after it. */
const running = new Set<number>();
afterEach(() => {
  for (const pgid of running) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  running.clear();
});

/** `coil serve --workers N` in a process group of its own, as a user starts it. */
function serveCluster(args: string[], repository = repo) {
  const env: NodeJS.ProcessEnv = { ...process.env, COIL_PYTHON: PYTHON };
  delete env.GLIBC_TUNABLES;
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, [CLI, "serve", repository, "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "-1", ...args], {
    env,
    detached: true,
    stdio: ["ignore", "pipe", "inherit"],
  });
  running.add(child.pid!);
  const logs: LogLine[] = [];
  const waiting: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  let buffered = "";
  child.stdout.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const line = JSON.parse(buffered.slice(0, nl)) as LogLine;
      buffered = buffered.slice(nl + 1);
      logs.push(line);
      for (const w of waiting.filter((w) => w.match(line))) {
        waiting.splice(waiting.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on("exit", (code, signal) => r({ code, signal })));
  /** The first log line (past or future) that matches; rejects if the server exits first. */
  const logged = (match: (l: LogLine) => boolean) =>
    new Promise<LogLine>((resolveLine, reject) => {
      const past = logs.find(match);
      if (past) return resolveLine(past);
      waiting.push({ match, resolve: resolveLine });
      void exited.then(({ code, signal }) => reject(new Error(`coil serve exited (${code ?? signal}) before logging what the test waits for`)));
    });
  // The primary's "serving": once every worker serves.
  const serving = logged((l) => l.msg === "serving" && l.pid === child.pid);
  return { child, logs, logged, serving, exited };
}

function infer(port: number, model: string, first: number, signal?: AbortSignal) {
  return fetch(`http://127.0.0.1:${port}/v2/models/${model}/infer`, {
    method: "POST",
    ...(signal && { signal }),
    body: JSON.stringify({ inputs: [{ name: "x", datatype: "FP32", shape: [1, 2], data: [first, 2] }] }),
  });
}

describe("coil serve --workers", () => {
  it("a model that segfaults costs its worker's connections, not the service: SIGSEGV logged, worker restarted", async () => {
    const server = serveCluster(["--workers", "2", "--interpreters", "1", "--grpc-port", "0"]);
    const { http, grpc } = (await server.serving) as LogLine & { http: number; grpc: number };
    // Four clients loop on the good model (keep-alive connections spread over both
    // workers), pausing 20 ms between requests so as to leave the 2-core test machine the
    // CPU to start the replacement.
    const results: { at: number; ok: boolean; error?: string }[] = [];
    let looping = true;
    const loop = async () => {
      while (looping) {
        const at = Date.now();
        try {
          const response = await infer(http, "good", 1, AbortSignal.timeout(30_000));
          const body = (await response.json()) as { outputs?: { data: number[] }[] };
          results.push({ at, ok: response.status === 200 && body.outputs?.[0]?.data[0] === 2, ...(response.status !== 200 && { error: `HTTP ${response.status}` }) });
        } catch (error) {
          results.push({ at, ok: false, error: String((error as Error).cause ?? error) });
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const loops = Array.from({ length: 4 }, loop);
    while (results.filter((r) => r.ok).length < 40) await new Promise((r) => setTimeout(r, 50));

    const crash = await infer(http, "segfault", -1).then(
      (r) => `HTTP ${r.status}`,
      (error: Error) => `failed: ${String(error.cause ?? error)}`,
    );
    const died = await server.logged((l) => l.msg.startsWith("worker died"));
    const replacement = await server.logged((l) => l.msg === "serving" && l.worker === died.worker && (l.time as number) > (died.time as number));
    // The replacement serves, and the loops go on a while with both workers.
    const afterReplacement = results.length;
    while (results.length < afterReplacement + 40) await new Promise((r) => setTimeout(r, 50));
    looping = false;
    await Promise.all(loops);

    console.log(`segfault bar: failed requests: ${JSON.stringify(results.filter((r) => !r.ok).map((r) => ({ ...r, at: r.at - (died.time as number) })))}`);
    expect(crash).toMatch(/^failed/);
    expect(died).toMatchObject({ signal: "SIGSEGV", cause: "SIGSEGV", msg: "worker died: SIGSEGV" });
    const diedAt = died.time as number;
    const firstSuccess = results.find((r) => r.ok && r.at >= diedAt)!;
    const failed = results.filter((r) => !r.ok);
    // Lost: only requests on the dead worker's connections (a client's open one, and at
    // most one handed to the worker as it died), each a broken connection, never an HTTP
    // error; the other worker answered before the replacement was up.
    expect(failed.length).toBeLessThanOrEqual(8);
    for (const f of failed) expect(f.error).not.toMatch(/^HTTP/);
    expect(firstSuccess.at).toBeLessThan(replacement.time as number);
    expect(server.logs.indexOf(replacement)).toBeGreaterThan(server.logs.indexOf(died));
    expect(results.slice(afterReplacement).every((r) => r.ok)).toBe(true);
    const recoveredMs = firstSuccess.at - diedAt;
    const replacedMs = (replacement.time as number) - diedAt;
    console.log(`segfault bar: ${results.length} requests to the good model, ${failed.length} lost (${failed.map((f) => f.error).join("; ")}); first request sent after the death logged answered ${recoveredMs} ms after it; replacement serving ${replacedMs} ms after the death`);

    // /metrics from whichever worker answers: both workers' series and the primary's.
    let metrics = "";
    while (!/coil_workers_alive 2/.test(metrics) || !/worker="1"/.test(metrics) || !/worker="0"/.test(metrics)) {
      await new Promise((r) => setTimeout(r, 200));
      metrics = await (await fetch(`http://127.0.0.1:${http}/metrics`)).text();
    }
    expect(metrics).toMatch(/^coil_worker_restarts_total\{reason="SIGSEGV"\} 1$/m);
    expect(metrics).toMatch(/^coil_inference_requests_total\{worker="\d",model="good",version="1",outcome="success"\} \d+$/m);
    expect(metrics.match(/^# TYPE coil_inference_requests_total counter$/gm)).toHaveLength(1);

    // gRPC shares the port through the cluster too: fresh connections, handed out in turn.
    const Client = inferenceService();
    for (let i = 0; i < 4; i++) {
      type Response = { raw_output_contents: Buffer[] };
      const client = new Client(`127.0.0.1:${grpc}`, credentials.createInsecure()) as unknown as {
        ModelInfer(request: object, callback: (error: Error | null, response: Response) => void): void;
        close(): void;
      };
      const response = await new Promise<Response>((resolveCall, reject) =>
        client.ModelInfer({ model_name: "good", inputs: [{ name: "x", datatype: "FP32", shape: ["1", "2"], contents: { fp32_contents: [1, 2] } }] }, (error, r) =>
          error ? reject(error) : resolveCall(r),
        ),
      );
      const raw = Buffer.from(response.raw_output_contents[0]!);
      expect([...new Float32Array(raw.buffer, raw.byteOffset, 2)]).toEqual([2, 3]);
      client.close();
    }

    process.kill(-server.child.pid!, "SIGINT");
    expect(await server.exited).toEqual({ code: 0, signal: null });
  }, 400_000);

  it("a model loaded or unloaded through the API is so in every worker, and in a worker started later", async () => {
    const server = serveCluster(["--workers", "2", "--interpreters", "1", "--model-control", "explicit"], goodRepo);
    const { http } = (await server.serving) as LogLine & { http: number };
    const workers = (msg: string, after: number) =>
      new Set(server.logs.filter((l) => l.msg === msg && l.model === "good" && (l.time as number) >= after).map((l) => l.worker));
    const control = (action: string) => fetch(`http://127.0.0.1:${http}/v2/repository/models/good/${action}`, { method: "POST" });
    // Each on a new connection, which either worker may accept.
    const readiness = async () => {
      const statuses = new Set<number>();
      for (let i = 0; i < 8; i++) statuses.add((await fetch(`http://127.0.0.1:${http}/v2/models/good/ready`, { headers: { connection: "close" } })).status);
      return statuses;
    };

    let since = Date.now();
    expect((await control("unload")).status).toBe(200);
    // Answered once both workers unloaded it (their own log lines, not the one that took the request alone).
    expect(workers("model: unloaded", since)).toEqual(new Set([0, 1]));
    expect(await readiness()).toEqual(new Set([503]));

    since = Date.now();
    expect((await control("load")).status).toBe(200);
    expect(workers("model: loaded", since)).toEqual(new Set([0, 1]));
    expect(await readiness()).toEqual(new Set([200]));
    expect((await infer(http, "good", 1)).status).toBe(200);

    // An unknown model: the workers' error, typed, reaches the client.
    expect((await fetch(`http://127.0.0.1:${http}/v2/repository/models/nope/load`, { method: "POST" })).status).toBe(404);

    // Unloaded again, then a worker dies: its successor unloads the model too once it serves.
    expect((await control("unload")).status).toBe(200);
    since = Date.now();
    const pids = server.logs.filter((l) => l.msg === "worker started").map((l) => l.workerPid as number);
    process.kill(pids[0]!, "SIGKILL");
    await server.logged((l) => l.msg === "model: unloaded" && l.model === "good" && (l.time as number) >= since);
    expect(await readiness()).toEqual(new Set([503]));

    server.child.kill("SIGTERM");
    expect((await server.exited).code).toBe(0);
  }, 240_000);

  it("os._exit(1) in a model: the worker is restarted and its exit code logged (--workers 1)", async () => {
    const server = serveCluster(["--workers", "1", "--interpreters", "1"]);
    const { http } = (await server.serving) as LogLine & { http: number };
    await expect(infer(http, "exit", -1)).rejects.toThrow();
    const died = await server.logged((l) => l.msg.startsWith("worker died"));
    expect(died).toMatchObject({ code: 1, cause: "exit code 1", msg: "worker died: exit code 1" });
    expect(await server.logged((l) => l.msg === "restarting worker")).toMatchObject({ worker: 0, delayMs: 500 });
    await server.logged((l) => l.msg === "serving" && l.worker === 0 && (l.time as number) > (died.time as number));
    const answer = await infer(http, "exit", 3);
    expect(answer.status).toBe(200);
    expect(await answer.json()).toMatchObject({ outputs: [expect.objectContaining({ data: [6, 4] })] });
    process.kill(server.child.pid!, "SIGTERM");
    expect(await server.exited).toEqual({ code: 0, signal: null });
  }, 400_000);

  it("a worker in which a model's interpreters are all stuck past the grace period is replaced, then drained", async () => {
    const server = serveCluster(["--workers", "1", "--interpreters", "1", "--stuck-grace-s", "2", "--drain-timeout-s", "2"]);
    const { http } = (await server.serving) as LogLine & { http: number };
    const stuck = infer(http, "hang", -1).then(
      (r) => r.status,
      () => "connection lost",
    );
    expect(await server.logged((l) => l.msg.startsWith("worker stuck"))).toMatchObject({ worker: 0, reason: "stuck", group: "hang", graceSeconds: 2 });
    await server.logged((l) => l.msg === "worker did not drain in time: killing it");
    await server.logged((l) => l.msg === "worker drained and exited" && l.cause === "SIGKILL");
    await server.logged((l) => l.msg === "serving" && l.worker === 0 && server.logs.some((d) => d.msg.startsWith("worker stuck") && (d.time as number) < (l.time as number)));
    expect(await stuck).toBe("connection lost");
    expect((await infer(http, "good", 1)).status).toBe(200);
    process.kill(-server.child.pid!, "SIGTERM");
    expect(await server.exited).toEqual({ code: 0, signal: null });
  }, 400_000);

  it("SIGINT to the process group drains every worker: the requests in flight answered, exit 0", async () => {
    const server = serveCluster(["--workers", "2", "--interpreters", "1"]);
    const { http } = (await server.serving) as LogLine & { http: number };
    const requests = Array.from({ length: 6 }, () => infer(http, "slow", 1).then(async (r) => ({ status: r.status, body: await r.json() })));
    // All six reach the workers (one runs in each, the others wait), then Ctrl-C as a terminal sends it.
    await new Promise((r) => setTimeout(r, 500));
    process.kill(-server.child.pid!, "SIGINT");
    const answers = await Promise.all(requests);
    expect(answers).toEqual(Array.from({ length: 6 }, () => ({ status: 200, body: expect.objectContaining({ outputs: [expect.objectContaining({ data: [2, 4] })] }) })));
    expect(await server.exited).toEqual({ code: 0, signal: null });
    expect(server.logs.filter((l) => l.msg === "signal received")).toEqual([expect.objectContaining({ signal: "SIGINT", pid: server.child.pid })]);
    expect(server.logs.filter((l) => l.msg === "worker drained and exited")).toHaveLength(2);
  }, 400_000);

  it("a slot that crash-loops is given up; with none left the server exits 128 + the signal's number and says which", async () => {
    const server = serveCluster(["--workers", "1", "--interpreters", "1"], segfaultRepo);
    const { http } = (await server.serving) as LogLine & { http: number };
    for (let death = 1; death <= 5; death++) {
      await infer(http, "segfault", -1).catch(() => undefined);
      const died = await server.logged((l) => l.msg === "worker died: SIGSEGV" && server.logs.filter((d) => d.msg === "worker died: SIGSEGV").indexOf(l) === death - 1);
      if (death < 5) await server.logged((l) => l.msg === "serving" && l.worker === 0 && (l.time as number) > (died.time as number));
    }
    expect(await server.logged((l) => l.msg === "worker slot is crash-looping: not restarting it; the server is not ready")).toMatchObject({ deaths: 5, cause: "SIGSEGV" });
    expect(await server.logged((l) => l.msg.startsWith("every worker slot is crash-looping"))).toMatchObject({ cause: "SIGSEGV", status: 139 });
    expect(await server.exited).toEqual({ code: 139, signal: null });
    expect(server.logs.filter((l) => l.msg === "restarting worker").map((l) => l.delayMs)).toEqual([500, 1000, 2000, 4000]);
  }, 400_000);

  it("a worker over --max-worker-memory is replaced, then drained once its successor serves", async () => {
    const server = serveCluster(["--workers", "1", "--interpreters", "1", "--max-worker-memory", "1"], segfaultRepo);
    const { http } = (await server.serving) as LogLine & { http: number };
    const over = await server.logged((l) => l.msg.startsWith("worker over its memory limit"));
    expect(over).toMatchObject({ worker: 0, reason: "memory", maxWorkerMemoryMb: 1 });
    expect(over.residentMb).toBeGreaterThan(1);
    await server.logged((l) => l.msg === "worker drained and exited" && l.cause === "exit code 0");
    expect((await infer(http, "segfault", 1)).status).toBe(200);
    process.kill(server.child.pid!, "SIGTERM");
    expect(await server.exited).toEqual({ code: 0, signal: null });
  }, 400_000);
});
