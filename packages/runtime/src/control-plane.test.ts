// The control plane end to end: `coil serve`'s settings (securityServeOptions, as the
// command reads them) into serve(), a real CPU pool, and real clients: curl over HTTP
// and HTTPS, grpcio in Python over plain and TLS channels.
import { execFile, execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { GLIBC_TUNABLE } from "@coil/native";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

import { netRepository } from "../test/net-repository.js";
import { startServe } from "../test/serve-process.js";
import { main } from "./commands.js";
import { securityServeOptions, type SecuritySettings } from "./security-settings.js";
import { serve, type Server } from "./serve.js";

const PYTHON = inject("testPython");
// grpcio stays on Debian's Python (docs/python.md), as in grpc-serving.test.ts.
const GRPC_CLIENT_PYTHON = "/usr/bin/python3";
const GRPC_CALL = resolve(dirname(fileURLToPath(import.meta.url)), "../test/fixtures/control-plane/grpc_call.py");
const TOKEN = "s3cret-token-for-tests";
const run = promisify(execFile);

let repo: string;
let dir: string;

/** A server started as `coil serve` would with these settings; its log lines kept. */
async function start(settings: SecuritySettings): Promise<{ server: Server; logs: Record<string, unknown>[] }> {
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const server = await serve({
    repository: repo,
    logger,
    host: "127.0.0.1",
    httpPort: 0,
    grpcPort: 0,
    interpreters: 1,
    python: PYTHON,
    ...securityServeOptions(settings),
  });
  return { server, logs };
}

/** curl's status code and headers (-i), body dropped; extra args before the URL. */
async function curl(url: string, ...args: string[]): Promise<{ status: number; headers: string; body: string }> {
  const { stdout } = await run("curl", ["-s", "-i", "-X", "POST", ...args, url]);
  const [head = "", ...rest] = stdout.split("\r\n\r\n");
  return { status: Number(/^HTTP\/[\d.]+ (\d+)/.exec(head)?.[1]), headers: head.toLowerCase(), body: rest.join("\r\n\r\n") };
}

interface GrpcOutcome {
  ok: boolean;
  response?: string;
  code?: string;
  details?: string;
}

/** One gRPC call through grpcio; `request`: the serialized message, hex. */
async function grpc(address: string, ca: string, method: string, request: string, token?: string): Promise<GrpcOutcome> {
  const { stdout } = await run(GRPC_CLIENT_PYTHON, [GRPC_CALL, address, ca, method, request, ...(token ? [token] : [])], { timeout: 60_000 });
  return JSON.parse(stdout) as GrpcOutcome;
}

/** A protobuf message of one string field. */
const stringField = (field: number, text: string) => Buffer.concat([Buffer.from([(field << 3) | 2, text.length]), Buffer.from(text)]).toString("hex");
const MODEL_NET = stringField(2, "net"); // RepositoryModelLoad/UnloadRequest.model_name
const METADATA_NET = stringField(1, "net"); // ModelMetadataRequest.name
const LIVE = "0801"; // ServerLiveResponse { live: true }

const INFER_BODY = JSON.stringify({ inputs: [{ name: "x", datatype: "FP32", shape: [1, 4], data: [1, 1, 1, 1] }] });

beforeAll(async () => {
  repo = await netRepository(PYTHON);
  dir = mkdtempSync(join(tmpdir(), "coil-control-plane-"));
  // A self-signed certificate for 127.0.0.1 and localhost, made by openssl here.
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
  ], { stdio: "pipe" });
  writeFileSync(join(dir, "token"), `${TOKEN}\n`);
  writeFileSync(join(dir, "empty-token"), "\n");
}, 120_000);

describe("model control, by default", () => {
  let server: Server;
  let logs: Record<string, unknown>[];
  beforeAll(async () => void ({ server, logs } = await start({})), 120_000);
  afterAll(async () => server?.shutdown());

  it("refuses load and unload over HTTP (403) and gRPC (PERMISSION_DENIED), serves on, and logs who asked", async () => {
    const http = `http://127.0.0.1:${server.httpPort}`;
    const unload = await curl(`${http}/v2/repository/models/net/unload`);
    expect(unload.status).toBe(403);
    expect(JSON.parse(unload.body).error).toMatch(/model unload is off.*--model-control explicit/);
    expect((await curl(`${http}/v2/repository/models/net/load`)).status).toBe(403);
    const grpcAddress = `127.0.0.1:${server.grpcPort}`;
    expect(await grpc(grpcAddress, "insecure", "RepositoryModelUnload", MODEL_NET)).toMatchObject({
      ok: false,
      code: "PERMISSION_DENIED",
      details: expect.stringContaining("--model-control explicit"),
    });
    // Still served; the index stays readable, over both protocols.
    expect((await curl(`${http}/v2/models/net/infer`, "-d", INFER_BODY)).status).toBe(200);
    expect(JSON.parse((await curl(`${http}/v2/repository/index`)).body)).toEqual([{ name: "net", version: "1", state: "READY" }]);
    expect(await grpc(grpcAddress, "insecure", "RepositoryIndex", "")).toMatchObject({ ok: true });
    const audit = logs.filter((l) => l.audit === "model-control");
    expect(audit).toEqual([
      expect.objectContaining({ action: "unload", model: "net", protocol: "http", remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/), token: "not required", allowed: false, reason: "PERMISSION_DENIED" }),
      expect.objectContaining({ action: "load", model: "net", protocol: "http", allowed: false }),
      expect.objectContaining({ action: "unload", model: "net", protocol: "grpc", remote: expect.stringContaining("127.0.0.1"), allowed: false }),
    ]);
  });
});

describe("explicit model control with a bearer token, inference too, over TLS", () => {
  let server: Server;
  let logs: Record<string, unknown>[];
  let https: string;
  let grpcAddress: string;
  let cert: string;
  beforeAll(async () => {
    cert = join(dir, "cert.pem");
    ({ server, logs } = await start({
      modelControl: "explicit",
      authTokenFile: join(dir, "token"),
      authInference: true,
      tlsCert: cert,
      tlsKey: join(dir, "key.pem"),
    }));
    https = `https://127.0.0.1:${server.httpPort}`;
    grpcAddress = `127.0.0.1:${server.grpcPort}`;
  }, 120_000);
  afterAll(async () => server?.shutdown());

  it("HTTPS: unload needs the token (none: 401, wrong: 401, right: 200), and each try is logged", async () => {
    const unload = `${https}/v2/repository/models/net/unload`;
    const none = await curl(unload, "--cacert", cert);
    expect(none.status).toBe(401);
    expect(none.headers).toContain('www-authenticate: bearer realm="coil"');
    const wrong = await curl(unload, "--cacert", cert, "-H", "Authorization: Bearer not-the-token");
    expect(wrong.status).toBe(401);
    expect(wrong.headers).toContain('error="invalid_token"');
    expect(server.runtime.service.isModelReady("net")).toBe(true);
    expect((await curl(unload, "--cacert", cert, "-H", `Authorization: Bearer ${TOKEN}`)).status).toBe(200);
    expect(server.runtime.service.isModelReady("net")).toBe(false);
    expect((await curl(`${https}/v2/repository/models/net/load`, "--cacert", cert, "-H", `Authorization: Bearer ${TOKEN}`)).status).toBe(200);
    expect(server.runtime.service.isModelReady("net")).toBe(true);
    expect(logs.filter((l) => l.audit === "model-control").map((l) => [l.action, l.token, l.allowed])).toEqual([
      ["unload", "missing", false],
      ["unload", "invalid", false],
      ["unload", "valid", true],
      ["load", "valid", true],
    ]);
    // The token never reaches the log.
    expect(JSON.stringify(logs)).not.toContain(TOKEN);
  });

  it("HTTPS: inference and metadata need the token; health never does", async () => {
    const infer = `${https}/v2/models/net/infer`;
    expect((await curl(infer, "--cacert", cert, "-d", INFER_BODY)).status).toBe(401);
    expect((await curl(infer, "--cacert", cert, "-d", INFER_BODY, "-H", `Authorization: Bearer ${TOKEN}`)).status).toBe(200);
    const get = async (path: string, ...args: string[]) =>
      Number((await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", cert, ...args, `${https}${path}`])).stdout);
    expect(await get("/v2/models/net")).toBe(401);
    expect(await get("/v2/models/net", "-H", `Authorization: Bearer ${TOKEN}`)).toBe(200);
    expect(await get("/v2/health/live")).toBe(200);
    expect(await get("/v2/health/ready")).toBe(200);
    expect(await get("/v2/models/net/ready")).toBe(200);
    // Plain HTTP is not served on the TLS port.
    await expect(run("curl", ["-s", "-f", `http://127.0.0.1:${server.httpPort}/v2/health/live`])).rejects.toThrow();
  });

  it("gRPC over TLS: the authorization metadata, for control and inference; health without", async () => {
    expect(await grpc(grpcAddress, cert, "ServerLive", "")).toEqual({ ok: true, response: LIVE });
    expect(await grpc(grpcAddress, cert, "ModelMetadata", METADATA_NET)).toMatchObject({ ok: false, code: "UNAUTHENTICATED" });
    expect(await grpc(grpcAddress, cert, "ModelMetadata", METADATA_NET, TOKEN)).toMatchObject({ ok: true });
    expect(await grpc(grpcAddress, cert, "RepositoryModelUnload", MODEL_NET)).toMatchObject({ ok: false, code: "UNAUTHENTICATED" });
    expect(await grpc(grpcAddress, cert, "RepositoryModelUnload", MODEL_NET, "not-the-token")).toMatchObject({ ok: false, code: "UNAUTHENTICATED" });
    expect(server.runtime.service.isModelReady("net")).toBe(true);
    expect(await grpc(grpcAddress, cert, "RepositoryModelUnload", MODEL_NET, TOKEN)).toEqual({ ok: true, response: "" });
    expect(server.runtime.service.isModelReady("net")).toBe(false);
    expect(await grpc(grpcAddress, cert, "RepositoryModelLoad", MODEL_NET, TOKEN)).toEqual({ ok: true, response: "" });
    expect(server.runtime.service.isModelReady("net")).toBe(true);
    // A plaintext client gets nothing from the TLS port.
    expect(await grpc(grpcAddress, "insecure", "ServerLive", "")).toMatchObject({ ok: false, code: "UNAVAILABLE" });
    expect(logs.filter((l) => l.audit === "model-control" && l.protocol === "grpc").map((l) => [l.action, l.token, l.allowed])).toEqual([
      ["unload", "missing", false],
      ["unload", "invalid", false],
      ["unload", "valid", true],
      ["load", "valid", true],
    ]);
  });
});

describe("coil serve's control-plane flags", () => {
  it("the real command, by default: unload is refused (403) and logged, the model serves on", async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, GLIBC_TUNABLES: GLIBC_TUNABLE };
    delete env.NODE_OPTIONS;
    const args = ["serve", repo, "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "-1", "--interpreters", "1", "--python", PYTHON];
    const { child, logs, serving, exited } = startServe(args, { env, stderr: "inherit" });
    const ready = await serving;
    expect(ready).toMatchObject({ modelControl: "none", token: false, authInference: false, tls: false });
    const http = `http://127.0.0.1:${ready.http as number}`;
    const unload = await curl(`${http}/v2/repository/models/net/unload`);
    expect(unload.status).toBe(403);
    expect((await curl(`${http}/v2/models/net/infer`, "-d", INFER_BODY)).status).toBe(200);
    child.kill("SIGTERM");
    expect((await exited).code).toBe(0);
    expect(logs).toContainEqual(
      expect.objectContaining({ audit: "model-control", action: "unload", model: "net", allowed: false, reason: "PERMISSION_DENIED", token: "not required" }),
    );
  }, 120_000);

  it("refuses bad combinations and unusable files before starting anything", async () => {
    const refused = (args: string[], message: RegExp) =>
      expect(main(["serve", repo, ...args])).rejects.toMatchObject({ code: "INVALID_ARGUMENT", message: expect.stringMatching(message) });
    await refused(["--model-control", "poll"], /--model-control must be one of none, explicit/);
    await refused(["--auth-token-file", join(dir, "empty-token")], /is empty/);
    await refused(["--auth-token-file", join(dir, "no-such-file")], /--auth-token-file .*no-such-file: cannot read it \(ENOENT\)/);
    const unreadable = join(dir, "unreadable-token");
    writeFileSync(unreadable, TOKEN);
    chmodSync(unreadable, 0o000);
    if (process.getuid?.() !== 0) await refused(["--auth-token-file", unreadable], /cannot read it \(EACCES\)/);
    await refused(["--auth-inference"], /--auth-inference needs --auth-token-file/);
    await refused(["--tls-cert", join(dir, "cert.pem")], /--tls-cert and --tls-key go together/);
    await refused(["--tls-cert", join(dir, "token"), "--tls-key", join(dir, "key.pem")], /--tls-cert .* is not PEM/);
    await refused(["--body-timeout-s", "0"], /--body-timeout-s must be a positive integer/);
  });
});
