import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { beforeAll, describe, expect, inject, it } from "vitest";

import type { DashboardStatus } from "../src/status-types.js";
import { inferRanker, rankerRepository, startServe, stopServe } from "./coil-server.js";

const PYTHON = inject("testPython");
let repo: string;

beforeAll(async () => {
  repo = await rankerRepository(PYTHON);
}, 120_000);

const serveArgs = (...more: string[]) => ["serve", repo, "--python", PYTHON, "--http-port", "0", "--grpc-port", "-1", "--instances", "2", ...more];

async function status(base: string, token?: string): Promise<DashboardStatus> {
  const response = await fetch(`${base}/dashboard/status`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  expect(response.status).toBe(200);
  return (await response.json()) as DashboardStatus;
}

describe("coil serve --dashboard", () => {
  it("serves the page and a status feed whose figures follow the requests served", async () => {
    const server = startServe(serveArgs("--dashboard", "--host", "127.0.0.1"));
    try {
      const serving = await server.serving;
      const base = `http://127.0.0.1:${serving.http as number}`;
      expect(serving.dashboard).toBe(`${base}/dashboard/`);

      const before = await status(base);
      expect(before.server).toMatchObject({ name: "coil", ready: true });
      expect(before.workers).toBeNull();
      expect(before.models).toEqual([expect.objectContaining({ name: "ranker", version: "3", state: "READY", requests: {}, pending: 0 })]);
      expect(before.models[0]!.archiveBytes).toBeGreaterThan(0);
      expect(before.models[0]!.heapBytes).toBeGreaterThan(0);
      // The model's two interpreters, one row each.
      expect(before.interpreters).toHaveLength(2);
      expect(before.interpreters.every((i) => i.group === "ranker" && !i.stuck && i.worker === undefined)).toBe(true);

      for (let i = 0; i < 25; i++) expect((await inferRanker(base)).status).toBe(200);
      const missing = await fetch(`${base}/v2/models/ranker/infer`, { method: "POST", body: '{"inputs": []}' });
      expect(missing.status).toBe(400);

      const after = await status(base);
      const ranker = after.models[0]!;
      expect(ranker.requests).toEqual({ success: 25, INVALID_ARGUMENT: 1 });
      expect(ranker.requestSeconds.count).toBe(26);
      expect(ranker.requestSeconds.sum).toBeGreaterThan(0);
      expect(ranker.requestSeconds.buckets.at(-1)![1]).toBeLessThanOrEqual(26);
      expect(ranker.queueSeconds.count).toBe(25);
      expect(ranker.batches).toBe(25);
      expect(ranker.rows).toBe(25);
      expect(after.time).toBeGreaterThan(before.time);
      const busy = (s: DashboardStatus) => s.interpreters.reduce((sum, i) => sum + i.busySeconds, 0);
      expect(busy(after)).toBeGreaterThan(busy(before));

      // The page: /dashboard sends the browser to /dashboard/, whose assets it serves.
      const redirect = await fetch(`${base}/dashboard`, { redirect: "manual" });
      expect(redirect.status).toBe(302);
      expect(redirect.headers.get("location")).toBe("/dashboard/");
      const html = await (await fetch(`${base}/dashboard/`)).text();
      expect(html).toContain("<title>Coil dashboard</title>");
      const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(html)?.[1];
      expect(script).toBeDefined();
      const asset = await fetch(`${base}/dashboard/${script}`);
      expect(asset.status).toBe(200);
      expect(asset.headers.get("content-type")).toContain("text/javascript");
      // Only the built files: nothing else under the package is reachable.
      for (const path of ["nope.js", "..%2Fpackage.json", "%2e%2e/%2e%2e/package.json", "assets/..%2F..%2Findex.js"]) {
        expect((await fetch(`${base}/dashboard/${path}`)).status).toBe(404);
      }
    } finally {
      await stopServe(server);
    }
  }, 120_000);

  it("is off by default", async () => {
    const server = startServe(serveArgs("--host", "127.0.0.1"));
    try {
      const base = `http://127.0.0.1:${(await server.serving).http as number}`;
      expect((await fetch(`${base}/dashboard/status`)).status).toBe(404);
      expect((await fetch(`${base}/dashboard/`)).status).toBe(404);
    } finally {
      await stopServe(server);
    }
  }, 120_000);

  it("is refused on a wildcard address unless metadata needs the token, and then the feed needs it", async () => {
    // Open to the world without a token: refused before any model loads; and with a
    // token that only control requests need, the feed would still be open: refused too.
    const tokenFile = join(mkdtempSync(join(tmpdir(), "coil-dashboard-token-")), "token");
    writeFileSync(tokenFile, "dashboard-secret\n");
    for (const more of [[], ["--auth-token-file", tokenFile]]) {
      const refused = startServe(serveArgs("--dashboard", "--host", "0.0.0.0", ...more));
      void refused.serving.catch(() => undefined);
      let stderr = "";
      refused.child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      expect((await refused.exited).code).toBe(2); // INVALID_ARGUMENT: a usage error
      expect(stderr).toContain("the dashboard would show this server to anyone who reaches 0.0.0.0");
      expect(stderr).toContain("[INVALID_ARGUMENT]");
      expect(refused.logs.map((l) => l.msg)).not.toContain("model ready");
    }

    const server = startServe(serveArgs("--dashboard", "--host", "0.0.0.0", "--auth-token-file", tokenFile, "--auth-inference"));
    try {
      const base = `http://127.0.0.1:${(await server.serving).http as number}`;
      const anonymous = await fetch(`${base}/dashboard/status`);
      expect(anonymous.status).toBe(401);
      expect((await fetch(`${base}/dashboard/status`, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
      expect((await status(base, "dashboard-secret")).models[0]).toMatchObject({ name: "ranker", version: "3" });
      // The page itself holds no data: a browser loads it without the token, then the page asks for it.
      expect((await fetch(`${base}/dashboard/`)).status).toBe(200);
    } finally {
      await stopServe(server);
    }
  }, 120_000);

  it("covers every worker with --workers", async () => {
    const server = startServe(serveArgs("--dashboard", "--host", "127.0.0.1", "--workers", "2", "--instances", "1"));
    try {
      const base = `http://127.0.0.1:${(await server.serving).http as number}`;
      // Both workers serving, each in the feed (the other worker's figures come with the primary's next round).
      let feed = await status(base);
      for (let tries = 0; tries < 60 && !(feed.workers?.alive === 2 && feed.interpreters.length === 2); tries++) {
        await new Promise((r) => setTimeout(r, 500));
        feed = await status(base);
      }
      expect(feed.workers).toMatchObject({ alive: 2, configured: 2, givenUp: 0 });
      expect(Object.keys(feed.workers!.residentBytes).sort()).toEqual(["0", "1"]);
      expect(feed.interpreters.map((i) => i.worker).sort()).toEqual(["0", "1"]);
      expect(feed.models).toEqual([expect.objectContaining({ name: "ranker", version: "3", state: "READY" })]);
    } finally {
      await stopServe(server);
    }
  }, 180_000);
});
