// `coil serve` over HTTP with curl: start-up, health, metadata, JSON / binary-extension
// / BYTES inference against eager PyTorch, and malformed requests answered 4xx while
// the server keeps serving.
import { readFileSync } from "node:fs";

import { describe, expect, it } from "vitest";

import { curl } from "../harness/curl.js";
import { serveForThisFile } from "../harness/file-server.js";
import { MODELS } from "../harness/paths.js";
import { python } from "../harness/python.js";

const live = serveForThisFile("http", ["mlp", "resnet18", "text_classifier"]);
const url = (path: string) => `${live.server.base}${path}`;
const JSON_BODY = { "Content-Type": "application/json" };

/** The mlp's eager reference request, as JSON. */
const inferJson = () => curl(url("/v2/models/mlp/infer"), { method: "POST", headers: JSON_BODY, dataFile: live.reference.inferJson });

describe("coil serve starts", () => {
  it('logs "serving"', () => {
    expect(live.server.serving).toMatchObject({ msg: "serving", http: live.server.httpPort, grpc: live.server.grpcPort });
  });

  it.each(["mlp", "resnet18", "text_classifier"])("logs model ready: %s", (model) => {
    expect(live.server.logged("model ready").map((line) => line["model"])).toContain(model);
  });

  it("restarts itself in place with GLIBC_TUNABLES: the process started is the one that serves", async () => {
    expect(await live.server.childNodePids()).toEqual([]);
    expect(live.server.logged("serving")[0]?.pid).toBe(live.server.pid);
    const environ = readFileSync(`/proc/${live.server.pid}/environ`, "utf8").split("\0");
    expect(environ.some((entry) => /^GLIBC_TUNABLES=.*glibc\.rtld\.nns=/.test(entry))).toBe(true);
  });
});

describe("health and metadata", () => {
  it.each(["/v2/health/live", "/v2/health/ready", "/v2/models/resnet18/ready"])("GET %s 200", async (path) => {
    expect((await curl(url(path))).status).toBe(200);
  });

  it("GET /v2: server metadata", async () => {
    const meta = (await curl(url("/v2"))).json<{ name: string; extensions: unknown }>();
    expect(meta.name).toBeTruthy();
    expect(Array.isArray(meta.extensions)).toBe(true);
  });

  it("GET /v2/models/mlp: its signature", async () => {
    const meta = (await curl(url("/v2/models/mlp"))).json();
    expect(meta).toMatchObject({
      name: "mlp",
      inputs: [{ name: "x", datatype: "FP32", shape: [-1, 64] }],
      outputs: [{ shape: [-1, 10] }],
    });
  });
});

describe("inference == eager PyTorch (1e-5)", () => {
  it("JSON infer on the mlp", async () => {
    const response = await inferJson();
    expect(response.status).toBe(200);
    await python("compare.py", ["json", response.bodyFile, live.reference.expected]);
  });

  it("binary-extension infer on the mlp: sizes and values", async () => {
    const response = await curl(url("/v2/models/mlp/infer"), {
      method: "POST",
      headers: { "Inference-Header-Content-Length": String(live.reference.inferBinHeader), "Content-Type": "application/octet-stream" },
      dataFile: live.reference.inferBin,
    });
    expect(response.status).toBe(200);
    const header = response.headers["inference-header-content-length"];
    expect(header).toBeDefined();
    await python("compare.py", ["binary", response.bodyFile, header!, live.reference.expected]);
  });

  it("binary-extension infer on resnet18: 1000 float32 logits", async () => {
    const response = await curl(url("/v2/models/resnet18/infer"), {
      method: "POST",
      headers: { "Inference-Header-Content-Length": String(live.reference.resnetBinHeader) },
      dataFile: live.reference.resnetBin,
    });
    expect(response.status).toBe(200);
    await python("compare.py", ["resnet", response.bodyFile, response.headers["inference-header-content-length"] ?? "0", "1"]);
  });

  it("BYTES JSON infer on text_classifier", async () => {
    const response = await curl(url("/v2/models/text_classifier/infer"), {
      method: "POST",
      headers: JSON_BODY,
      data: JSON.stringify({ inputs: [{ name: "text", datatype: "BYTES", shape: [3], data: ["hello", "wörld 🐍", ""] }] }),
    });
    expect(response.status).toBe(200);
    await python("compare.py", ["text", response.bodyFile, MODELS]);
  });
});

describe("malformed requests get 4xx, the server keeps serving", () => {
  const infer = () => url("/v2/models/mlp/infer");
  const cases: [string, number, () => Parameters<typeof curl>[1]][] = [
    ["malformed JSON", 400, () => ({ method: "POST", headers: JSON_BODY, data: '{"inputs": [' })],
    ["wrong shape", 400, () => ({ method: "POST", headers: JSON_BODY, data: JSON.stringify({ inputs: [{ name: "x", datatype: "FP32", shape: [1, 64], data: [1, 2, 3] }] }) })],
    ["unsupported datatype", 400, () => ({ method: "POST", headers: JSON_BODY, data: JSON.stringify({ inputs: [{ name: "x", datatype: "BYTES", shape: [1], data: ["a"] }] }) })],
    ["unknown field", 400, () => ({ method: "POST", headers: JSON_BODY, data: '{"inputz":[]}' })],
    ["binary header length past the body", 400, () => ({ method: "POST", headers: { "Inference-Header-Content-Length": "99999" }, dataFile: live.reference.inferBin })],
    // a JSON body announced as a binary header of the binary request's length
    ["binary_data_size mismatch", 400, () => ({ method: "POST", headers: { "Inference-Header-Content-Length": String(live.reference.inferBinHeader) }, dataFile: live.reference.inferJson })],
  ];
  it.each(cases)("%s -> %i", async (_name, status, request) => {
    expect((await curl(infer(), request())).status).toBe(status);
  });

  it("unknown model -> 404", async () => {
    const response = await curl(url("/v2/models/nope/infer"), { method: "POST", headers: JSON_BODY, dataFile: live.reference.inferJson });
    expect(response.status).toBe(404);
  });

  it("still ready after the bad requests, and still == eager", async () => {
    expect((await curl(url("/v2/health/ready"))).status).toBe(200);
    const response = await inferJson();
    expect(response.status).toBe(200);
    await python("compare.py", ["json", response.bodyFile, live.reference.expected]);
  });
});
