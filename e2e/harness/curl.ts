// curl, the HTTP client of the checks: what a user types, run as a process.
import { mkdtempSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { e2eContext } from "./context.js";
import { runOk } from "./process.js";

export interface CurlRequest {
  method?: "GET" | "POST";
  /** Header name -> value. */
  headers?: Record<string, string>;
  /** A body given inline (curl -d), or read from a file (--data-binary @file). */
  data?: string;
  dataFile?: string;
}

export interface CurlResponse {
  /** 0 when curl got no answer (connection refused, reset). */
  status: number;
  /** Lower-case header name -> value, of the final response. */
  headers: Record<string, string>;
  body: Buffer;
  /** Where the body was written (for the Python checks). */
  bodyFile: string;
  json<T = unknown>(): T;
}

let scratch: string | undefined;
let count = 0;

/** One request with curl; the status, the headers and the body come back. */
export async function curl(url: string, request: CurlRequest = {}): Promise<CurlResponse> {
  // Bodies are kept in the run's work dir: removed with it, kept with it after a failure.
  scratch ??= mkdtempSync(join(e2eContext().work, "curl-"));
  const bodyFile = join(scratch, `response-${++count}`);
  const args = ["-s", "-o", bodyFile, "-w", "%{http_code}\n%{header_json}"];
  if (request.method) args.push("-X", request.method);
  for (const [name, value] of Object.entries(request.headers ?? {})) args.push("-H", `${name}: ${value}`);
  if (request.data !== undefined) args.push("-d", request.data);
  if (request.dataFile !== undefined) args.push("--data-binary", `@${request.dataFile}`);
  args.push(url);
  // curl exits non-zero when it got no answer; the status then reads 000.
  const written = await runOk("curl", args).catch(() => "000\n{}");
  const [status, headerJson] = [written.slice(0, written.indexOf("\n")), written.slice(written.indexOf("\n") + 1)];
  const headers = Object.fromEntries(
    Object.entries(JSON.parse(headerJson || "{}") as Record<string, string[]>).map(([name, values]) => [name.toLowerCase(), values.at(-1)!]),
  );
  const body = (() => {
    try {
      return readFileSync(bodyFile);
    } catch {
      return Buffer.alloc(0);
    }
  })();
  return { status: Number(status), headers, body, bodyFile, json: <T>() => JSON.parse(body.toString("utf8")) as T };
}
