// KServe's multi-model flow, with this test in the model agent's part (kserve
// pkg/agent: puller.go, downloader.go): a `coil serve --model-control explicit` starts on
// an empty repository; for a TrainedModel the agent downloads its storageUri into
// <repository>/<name>/, writes SUCCESS.<sha256 of the model's spec> next to it, and
// POSTs /v2/repository/models/<name>/load with "{}"; on removal it deletes the folder,
// then POSTs .../unload. The agent sends no Authorization header: the token variant
// shows what a server with a token answers it (docs/deploy.md says how to run both).
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { installedContext, type E2eContext } from "../harness/context.js";
import { curl } from "../harness/curl.js";
import { python } from "../harness/python.js";
import { reference, type Reference } from "../harness/reference.js";
import { ensureRepository } from "../harness/repository.js";
import { CoilServer } from "../harness/server.js";

const MODEL = "mlp";
const TOKEN = "kserve-agent-test-token";
const JSON_BODY = { "Content-Type": "application/json" };

let context: E2eContext;
let ref: Reference;
/** The packed mlp the agent "downloads". */
let archive: string;

beforeAll(async () => {
  context = installedContext();
  archive = join(await ensureRepository(context, [MODEL]), `${MODEL}.coil`);
  ref = reference(context);
});

/** What the agent does for a TrainedModel it is told to add: download, mark, load. */
async function agentAdds(server: CoilServer, repository: string, name: string, headers: Record<string, string> = {}) {
  const spec = { storageUri: `s3://models/${name}/`, framework: "coil", memory: "1Gi" };
  const folder = join(repository, name);
  mkdirSync(folder, { recursive: true });
  copyFileSync(archive, join(folder, "model.coil"));
  writeFileSync(join(folder, `SUCCESS.${createHash("sha256").update(JSON.stringify(spec)).digest("hex")}`), JSON.stringify(spec));
  return curl(`${server.base}/v2/repository/models/${name}/load`, { method: "POST", headers: { ...JSON_BODY, ...headers }, data: "{}" });
}

/** What the agent does for one it is told to remove: delete the folder, unload. */
async function agentRemoves(server: CoilServer, repository: string, name: string, headers: Record<string, string> = {}) {
  rmSync(join(repository, name), { recursive: true, force: true });
  return curl(`${server.base}/v2/repository/models/${name}/unload`, { method: "POST", headers: { ...JSON_BODY, ...headers }, data: "{}" });
}

const infer = (server: CoilServer, name: string, headers: Record<string, string> = {}) =>
  curl(`${server.base}/v2/models/${name}/infer`, { method: "POST", headers: { ...JSON_BODY, ...headers }, dataFile: ref.inferJson });

describe("the model agent's flow against coil serve --model-control explicit", () => {
  let server: CoilServer;
  let repository: string;

  beforeAll(async () => {
    repository = mkdtempSync(join(context.work, "kserve-mnt-models-"));
    server = await CoilServer.start(context, { name: "kserve-agent", repository, args: ["--model-control", "explicit"] });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("starts on an empty repository: live and ready, no model", async () => {
    expect((await curl(`${server.base}/v2/health/live`)).status).toBe(200);
    expect((await curl(`${server.base}/v2/health/ready`)).status).toBe(200);
    expect((await curl(`${server.base}/v2/models/${MODEL}/ready`)).status).toBe(404);
    const index = await curl(`${server.base}/v2/repository/index`, { method: "POST", headers: JSON_BODY, data: "{}" });
    expect(index.json()).toEqual([]);
  });

  it("loads a model the agent put in <repository>/<name>/ by name; it answers like eager PyTorch", async () => {
    const load = await agentAdds(server, repository, MODEL);
    expect(load.status, load.body.toString()).toBe(200);
    expect((await curl(`${server.base}/v2/models/${MODEL}/ready`)).status).toBe(200);
    const metadata = (await curl(`${server.base}/v2/models/${MODEL}`)).json();
    expect(metadata).toMatchObject({ name: MODEL, versions: ["1"], inputs: [{ name: "x", datatype: "FP32", shape: [-1, 64] }] });
    const answer = await infer(server, MODEL);
    expect(answer.status, answer.body.toString()).toBe(200);
    await python("compare.py", ["json", answer.bodyFile, ref.expected]);
    expect(server.logged("repository: skipped").map((line) => line["reason"])).toContain("KServe's model agent's download marker");
  });

  it("serves a second model loaded next to the first, under the name the agent gave it", async () => {
    const load = await agentAdds(server, repository, "mlp-copy");
    expect(load.status, load.body.toString()).toBe(200);
    const answer = await infer(server, "mlp-copy");
    expect(answer.status, answer.body.toString()).toBe(200);
    await python("compare.py", ["json", answer.bodyFile, ref.expected]);
    const index = await curl(`${server.base}/v2/repository/index`, { method: "POST", headers: JSON_BODY, data: "{}" });
    expect(index.json()).toEqual([
      { name: MODEL, version: "1", state: "READY" },
      { name: "mlp-copy", version: "1", state: "READY" },
    ]);
  });

  it("unloads it when the agent removes it: not ready, inference refused, the other model still answers", async () => {
    const unload = await agentRemoves(server, repository, "mlp-copy");
    expect(unload.status, unload.body.toString()).toBe(200);
    // It stays listed, UNAVAILABLE "unloaded" (as Triton lists one), so not ready is a 503.
    expect((await curl(`${server.base}/v2/models/mlp-copy/ready`)).status).toBe(503);
    const refused = await infer(server, "mlp-copy");
    expect(refused.status).toBe(503);
    expect(refused.json()).toEqual({ error: expect.stringContaining("is not ready (UNAVAILABLE: unloaded)") });
    expect((await infer(server, MODEL)).status).toBe(200);
  });

  it("a load of a model whose files the agent removed is a 404, and the server stays up", async () => {
    const load = await curl(`${server.base}/v2/repository/models/mlp-copy/load`, { method: "POST", headers: JSON_BODY, data: "{}" });
    expect(load.status).toBe(404);
    expect((await curl(`${server.base}/v2/health/live`)).status).toBe(200);
  });
});

describe("the agent's flow against a server with a control-plane token", () => {
  let server: CoilServer;
  let repository: string;

  beforeAll(async () => {
    repository = mkdtempSync(join(context.work, "kserve-mnt-models-token-"));
    const tokenFile = join(context.work, "kserve-agent-token");
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    server = await CoilServer.start(context, {
      name: "kserve-agent-token",
      repository,
      args: ["--model-control", "explicit", "--auth-token-file", tokenFile],
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("refuses the agent's load as it sends it (no Authorization header): 401, nothing loaded", async () => {
    const load = await agentAdds(server, repository, MODEL);
    expect(load.status).toBe(401);
    expect(load.headers["www-authenticate"]).toMatch(/^Bearer realm="coil"/);
    expect((await curl(`${server.base}/v2/models/${MODEL}/ready`)).status).toBe(404);
  });

  it("loads, serves and unloads with the bearer token; health and inference need none", async () => {
    const bearer = { Authorization: `Bearer ${TOKEN}` };
    const load = await agentAdds(server, repository, MODEL, bearer);
    expect(load.status, load.body.toString()).toBe(200);
    expect((await curl(`${server.base}/v2/models/${MODEL}/ready`)).status).toBe(200);
    const answer = await infer(server, MODEL);
    expect(answer.status).toBe(200);
    await python("compare.py", ["json", answer.bodyFile, ref.expected]);
    expect((await agentRemoves(server, repository, MODEL)).status).toBe(401);
    expect((await infer(server, MODEL)).status).toBe(200);
    const unload = await curl(`${server.base}/v2/repository/models/${MODEL}/unload`, { method: "POST", headers: { ...JSON_BODY, ...bearer }, data: "{}" });
    expect(unload.status).toBe(200);
    expect((await curl(`${server.base}/v2/models/${MODEL}/ready`)).status).toBe(503);
  });
});
