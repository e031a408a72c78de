import { spawn, type ChildProcessByStdio } from "node:child_process";
import { dirname, resolve } from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";

/** The built command line (tests of the real command build @coil/runtime first). */
export const CLI = resolve(dirname(fileURLToPath(import.meta.url)), "../dist/cli.js");

export interface ServeProcess {
  child: ChildProcessByStdio<null, Readable, Readable | null>;
  /** Every JSON line it logged so far (lines that are not JSON, e.g. torch's prints, are skipped). */
  logs: Record<string, unknown>[];
  /** Its "serving" line; rejects if it exits first. */
  serving: Promise<Record<string, unknown>>;
  /** How it ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `coil <args>` (`serve ...`) as a user would, its stdout read as JSON log lines. */
export function startServe(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; detached?: boolean; stderr?: "pipe" | "inherit" } = {},
): ServeProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: options.env ?? process.env,
    ...(options.cwd !== undefined && { cwd: options.cwd }),
    detached: options.detached ?? false,
    stdio: ["ignore", "pipe", options.stderr ?? "pipe"],
  }) as ChildProcessByStdio<null, Readable, Readable | null>;
  const logs: Record<string, unknown>[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on("exit", (code, signal) => r({ code, signal })));
  let buffered = "";
  const serving = new Promise<Record<string, unknown>>((resolveServing, reject) => {
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!line.startsWith("{")) continue;
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === "serving") resolveServing(entry);
      }
    });
    void exited.then(({ code, signal }) => reject(new Error(`coil serve exited early with ${code ?? signal}`)));
  });
  return { child, logs, serving, exited };
}
