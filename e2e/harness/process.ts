// Child processes of the suite: run one to its end and collect what it printed.
import { spawn, type ChildProcess } from "node:child_process";

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** The environment for the programs the suite starts: this one's, less what vitest
 * set for its own workers (VITEST*, TEST, NODE_ENV=test, NODE_OPTIONS) and colours,
 * and less `drop`. */
export function childEnv(extra: NodeJS.ProcessEnv = {}, drop: readonly string[] = []): NodeJS.ProcessEnv {
  const vitests = (key: string, value: string | undefined) =>
    key.startsWith("VITEST") || key === "TEST" || key === "NODE_OPTIONS" || (key === "NODE_ENV" && value === "test");
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key, value]) => !vitests(key, value) && key !== "FORCE_COLOR" && !drop.includes(key)),
  );
  return { ...env, NO_COLOR: "1", ...extra };
}

/** A program started, and its end: `done` resolves with what it printed. */
export interface Started {
  child: ChildProcess;
  done: Promise<RunResult>;
}

/** Starts `command`; `done` never rejects for a non-zero exit (see runOk). */
export function start(command: string, args: readonly string[], options: RunOptions = {}): Started {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? childEnv(), stdio: ["ignore", "pipe", "pipe"] });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout!.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr!.on("data", (chunk: Buffer) => stderr.push(chunk));
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(stdout).toString("utf8"), stderr: Buffer.concat(stderr).toString("utf8") }),
    );
  });
  return { child, done };
}

/** Runs `command` to its end; never rejects for a non-zero exit (see runOk). */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return start(command, args, options).done;
}

/** Runs `command` and returns its stdout; rejects with everything it printed when it fails. */
export async function runOk(command: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new Error(
      `${command} ${args.join(" ")} exited with ${result.code ?? result.signal}${options.cwd ? ` (in ${options.cwd})` : ""}\n` +
        `${tail(result.stdout)}\n${tail(result.stderr)}`,
    );
  }
  return result.stdout;
}

/** The last `lines` lines of a program's output, for error messages. */
export function tail(text: string, lines = 40): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** Whether a process is alive (signal 0 reaches it). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
