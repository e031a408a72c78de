// The HTTP request limits end to end: serve() with coil serve's settings, a real CPU
// pool, raw sockets for unfinished bodies and curl for the rest.
import { execFile } from "node:child_process";
import { connect, type Socket } from "node:net";

import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

import { netRepository } from "../test/net-repository.js";
import { securityServeOptions } from "./security-settings.js";
import { serve, type Server } from "./serve.js";

const PYTHON = inject("testPython");

let server: Server;
let port: number;

const PENDING_CAP = 1_000_000;
const RESPONSE_CAP = 4_000;

beforeAll(async () => {
  server = await serve({
    repository: await netRepository(PYTHON),
    logger: pino({ level: "warn" }),
    host: "127.0.0.1",
    httpPort: 0,
    grpcPort: null,
    interpreters: 1,
    python: PYTHON,
    ...securityServeOptions({ bodyTimeoutS: 1, maxPendingBodyBytes: PENDING_CAP, maxResponseBytes: RESPONSE_CAP }),
  });
  port = server.httpPort!;
}, 120_000);

afterAll(async () => server?.shutdown());

/** A connection that has sent an infer request's head and `sent` bytes of a body of
 * `length`; `answer` is everything the server writes until it closes the connection. */
function unfinishedUpload(length: number, sent: number): { socket: Socket; answer: Promise<string> } {
  const socket = connect(port, "127.0.0.1");
  socket.write(`POST /v2/models/net/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`);
  socket.write(" ".repeat(sent));
  const answer = new Promise<string>((resolve, reject) => {
    let text = "";
    socket.on("data", (chunk: Buffer) => (text += chunk.toString("latin1")));
    socket.on("close", () => resolve(text));
    socket.on("error", reject);
  });
  return { socket, answer };
}

/** curl with `body` on its stdin. */
function post(body: string, ...args: string[]): Promise<{ status: number; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      "curl",
      ["-s", "-i", "-X", "POST", "--data-binary", "@-", ...args, `http://127.0.0.1:${port}/v2/models/net/infer`],
      { maxBuffer: 64 * 1024 * 1024 },
      (error, stdout) => {
        if (error && !stdout) return reject(error);
        const [head = "", ...rest] = stdout.split("\r\n\r\n");
        resolve({ status: Number(/^HTTP\/[\d.]+ (\d+)/.exec(head)?.[1]), headers: head.toLowerCase(), body: rest.join("\r\n\r\n") });
      },
    );
    child.stdin!.end(body);
  });
}

const inferBody = (rows: number, binaryOutput?: boolean) =>
  JSON.stringify({
    inputs: [{ name: "x", datatype: "FP32", shape: [rows, 4], data: Array.from({ length: rows * 4 }, (_, i) => (i % 7) / 3) }],
    ...(binaryOutput && { parameters: { binary_data_output: true } }),
  });

describe("HTTP request limits", () => {
  it("cuts a body that does not arrive within --body-timeout-s: 408, connection closed; the server serves on", async () => {
    const { answer } = unfinishedUpload(1000, 10);
    const text = await answer; // the server closes the connection itself
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(text.toLowerCase()).toContain("connection: close");
    expect(text).toContain("did not arrive within 1 s");
    expect((await post(inferBody(1))).status).toBe(200);
  }, 30_000);

  it("refuses new bodies with 503 and Retry-After while unfinished ones hold --max-pending-body-bytes", async () => {
    // 800 kB reserved by a body still arriving; 300 kB more would pass the 1 MB cap.
    const slow = unfinishedUpload(800_000, 1);
    const refused = await post(" ".repeat(300_000));
    expect(refused.status).toBe(503);
    expect(refused.headers).toContain("retry-after: 1");
    expect(JSON.parse(refused.body).error).toMatch(/request bodies still arriving/);
    // A body larger than the cap could never be read: 413, not "retry".
    expect((await post(" ".repeat(PENDING_CAP + 1))).status).toBe(413);
    // Once the slow body is complete, its memory is the request's, not the cap's.
    slow.socket.write(" ".repeat(800_000 - 1));
    expect(await Promise.race([slow.answer, new Promise((resolve) => slow.socket.once("data", (d: Buffer) => resolve(d.toString("latin1"))))])).toMatch(
      /^HTTP\/1\.1 400 /, // all spaces: not a JSON request
    );
    slow.socket.destroy();
    expect((await post(" ".repeat(300_000))).status).toBe(400);
    expect((await post(inferBody(1))).status).toBe(200);
  }, 30_000);

  it("counts a chunked body against the cap as it arrives: 503 while others hold the memory, 413 past the cap itself", async () => {
    const chunked = (size: number) => {
      const socket = connect(port, "127.0.0.1");
      socket.write("POST /v2/models/net/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
      for (let sent = 0; sent < size; sent += 100_000) socket.write(`${(100_000).toString(16)}\r\n${" ".repeat(100_000)}\r\n`);
      socket.write("0\r\n\r\n");
      return new Promise<string>((resolve) => {
        let text = "";
        socket.on("data", (chunk: Buffer) => {
          text += chunk.toString("latin1");
          if (text.includes("\r\n\r\n")) {
            socket.destroy();
            resolve(text);
          }
        });
        socket.on("error", () => resolve(text));
      });
    };
    expect(await chunked(PENDING_CAP + 100_000)).toMatch(/^HTTP\/1\.1 413 /);
    const slow = unfinishedUpload(800_000, 1);
    expect(await chunked(300_000)).toMatch(/^HTTP\/1\.1 503 [\s\S]*retry-after: 1/i);
    slow.socket.destroy();
    await slow.answer;
  }, 30_000);

  it("refuses a JSON response over --max-response-bytes, pointing at binary outputs, which it then serves", async () => {
    const small = await post(inferBody(2));
    expect(small.status).toBe(200);
    const big = await post(inferBody(200));
    expect(big.status).toBe(400);
    expect(JSON.parse(big.body).error).toMatch(new RegExp(`more than ${RESPONSE_CAP} bytes.*binary_data_output: true`));
    const binary = await post(inferBody(200, true));
    expect(binary.status).toBe(200);
    expect(binary.headers).toContain("inference-header-content-length:");
  });
});
