// `coil serve` as a user starts it: the scratch project's installed command, run from
// outside the workspace, ready once it logs "serving", its log kept in the work dir.
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { once } from "node:events";

import type { E2eContext } from "./context.js";
import { KNOBS } from "./knobs.js";
import { PYTHON } from "./python.js";
import { childEnv, run, tail } from "./process.js";

/** A TCP port nothing listens on now (the kernel's pick). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
}

export interface ServeOptions {
  /** Names the log files (work/logs/<name>.log and .err). */
  name: string;
  /** The model repository; left out when a --config file names it. */
  repository?: string;
  /** More arguments for `coil serve` (--plugin, --config, ...). */
  args?: string[];
  /** Where it runs: the work dir by default, outside the workspace, so nothing
   * resolves back into it. */
  cwd?: string;
  /** Serve HTTP and gRPC on free ports (default); false turns both off. */
  builtInAdapters?: boolean;
  /** The interpreters' Python (--python): Debian's python3 by default. */
  python?: string;
}

export interface LogLine {
  msg?: string;
  [key: string]: unknown;
}

const READY_TIMEOUT_MS = 120_000;

export class CoilServer {
  /** Every line it logged (pino JSON on stdout), parsed. */
  readonly lines: LogLine[] = [];
  /** The "serving" line, once ready. */
  serving: LogLine | undefined;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #stderr = "";

  private constructor(
    readonly child: ChildProcess,
    readonly httpPort: number | undefined,
    readonly grpcPort: number | undefined,
    readonly logFile: string,
  ) {
    this.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => resolve({ code, signal }));
      // it never started (no such file): say so in its log, count it as exited
      child.on("error", (error) => {
        this.#stderr += `${error.message}\n`;
        resolve({ code: null, signal: null });
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** http://127.0.0.1:<port> of the built-in HTTP adapter. */
  get base(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  /** The log so far, as text, for messages. */
  get log(): string {
    return `${this.lines.map((line) => JSON.stringify(line)).join("\n")}\n${this.#stderr}`;
  }

  /** Starts `coil serve` and waits until it logs "serving"; rejects with its log if it
   * exits or takes more than two minutes first. */
  static async start(context: E2eContext, options: ServeOptions): Promise<CoilServer> {
    const builtIn = options.builtInAdapters ?? true;
    const httpPort = builtIn ? await freePort() : undefined;
    let grpcPort = builtIn ? await freePort() : undefined;
    while (builtIn && grpcPort === httpPort) grpcPort = await freePort();
    const args = [
      "serve",
      ...(options.repository ? [options.repository] : []),
      "--host", "127.0.0.1",
      "--http-port", String(httpPort ?? -1),
      "--grpc-port", String(grpcPort ?? -1),
      "--interpreters", String(KNOBS.interpreters),
      "--python", options.python ?? PYTHON,
      ...(options.args ?? []),
    ];
    const logs = join(context.work, "logs");
    mkdirSync(logs, { recursive: true });
    // Without GLIBC_TUNABLES, as a user's shell: `coil serve` re-executes itself with it.
    const child = spawn(context.coil, args, {
      cwd: options.cwd ?? context.work,
      env: childEnv({}, ["GLIBC_TUNABLES"]),
      stdio: ["ignore", "pipe", "pipe"],
    });
    const server = new CoilServer(child, httpPort, grpcPort, join(logs, `${options.name}.log`));
    server.#capture(join(logs, options.name));
    await server.#ready();
    return server;
  }

  #capture(logPrefix: string): void {
    const log = createWriteStream(`${logPrefix}.log`);
    const err = createWriteStream(`${logPrefix}.err`);
    let partial = "";
    this.child.stdout!.on("data", (chunk: Buffer) => {
      log.write(chunk);
      const text = partial + chunk.toString("utf8");
      const lines = text.split("\n");
      partial = lines.pop()!;
      for (const line of lines) {
        if (line.trim() === "") continue;
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          this.lines.push({ text: line });
        }
      }
    });
    this.child.stderr!.on("data", (chunk: Buffer) => {
      err.write(chunk);
      this.#stderr += chunk.toString("utf8");
    });
    this.child.on("close", () => {
      log.end();
      err.end();
    });
  }

  async #ready(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let exited = false;
    void this.exited.then(() => (exited = true));
    while (!(this.serving = this.lines.find((line) => line.msg === "serving"))) {
      if (exited || Date.now() > deadline) {
        await this.stop();
        throw new Error(`coil serve did not reach "serving" (${exited ? "it exited" : "timed out"}):\n${tail(this.log, 60)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** The lines logged with this message. */
  logged(msg: string): LogLine[] {
    return this.lines.filter((line) => line.msg === msg);
  }

  /** Node processes started by the server process (it restarts itself in place, so
   * none are expected: a non-empty list is a process left behind). */
  async childNodePids(): Promise<number[]> {
    const result = await run("pgrep", ["-P", String(this.pid), "node"]);
    return result.stdout.split("\n").map((line) => Number.parseInt(line.trim(), 10)).filter(Number.isInteger);
  }

  /** SIGTERM, and the exit; SIGKILL after 20 s if it still runs (cleanup after a
   * failed test). */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const running = this.child.exitCode === null && this.child.signalCode === null;
    if (running) this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 20_000);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
