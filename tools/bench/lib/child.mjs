// Child processes of a benchmark: a program that answers with one JSON line (a
// Python baseline, a measurement that needs a fresh process), and servers that run
// in their own process group until the benchmark stops them.
import { spawn } from "node:child_process";
import { createServer } from "node:net";

import { onExit } from "./cleanup.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs `command argv` to its end (killed after `timeoutMs`: `timedOut`); resolves with
 * its exit code or signal and its whole output. */
export function runCommand(command, argv, { cwd, env = process.env, timeoutMs } = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, argv, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    let timedOut = false;
    const timer =
      timeoutMs &&
      setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
      }, timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, timedOut, stdout, stderr });
    });
  });
}

/**
 * Runs `command argv` and resolves with the last line of its stdout that is a JSON
 * object. Rejects, with the end of its output, when it exits with an error -- unless
 * `jsonOnFailure`, when such a line is its answer either way (a child that reports
 * its own failure) -- or when it runs past `timeoutMs`.
 */
export async function runJsonChild(command, argv, { jsonOnFailure = false, ...options } = {}) {
  const { code, signal, timedOut, stdout, stderr } = await runCommand(command, argv, options);
  const answer = lastJsonLine(stdout);
  if (answer !== undefined && (code === 0 || jsonOnFailure)) return answer;
  if (timedOut) throw new Error(`${command} ${argv[0] ?? ""} ran past its ${options.timeoutMs / 1000} s and was stopped`);
  // The end of its output without Node's stack frames: the error's message.
  const lines = (stderr || stdout).split("\n").filter((l) => l.trim() && !/^\s+at |^Node\.js v/.test(l));
  const output = lines.slice(-6).join(" | ");
  throw new Error(`${command} ${argv[0] ?? ""} exited with ${signal ?? code}${answer ? "" : ", no JSON answer"}: ${output}`);
}

/**
 * A child that stays up and answers requests, one JSON line each way (the zoo's plain
 * Python side of its interleaved rounds). `ready` resolves with the first JSON line it
 * prints; `ask(request)` writes one line and resolves with the next JSON line's
 * `answer`. Lines that are not JSON (a library's chatter) are skipped. If the child
 * exits, pending and later calls reject with the end of its stderr.
 */
export function startJsonChild(command, argv, { cwd, env = process.env } = {}) {
  const child = spawn(command, argv, { cwd, env, stdio: ["pipe", "pipe", "pipe"] });
  const waiting = [];
  let buffered = "";
  let stderr = "";
  let gone;
  const fail = (error) => {
    gone ??= error;
    waiting.splice(0).forEach((w) => w.reject(gone));
  };
  child.stderr.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
  child.stdin.on("error", () => {}); // a child that died: its "close" says why
  child.stdout.on("data", (d) => {
    buffered += d;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      let message;
      try {
        message = line.startsWith("{") ? JSON.parse(line) : undefined;
      } catch {
        message = undefined;
      }
      if (message !== undefined) waiting.shift()?.resolve(message);
    }
  });
  child.on("error", fail);
  const closed = new Promise((resolve) => child.on("close", resolve));
  child.on("close", (code, signal) => {
    const lines = stderr.split("\n").filter((l) => l.trim());
    fail(new Error(`${command} ${argv[0] ?? ""} exited with ${signal ?? code}: ${lines.slice(-4).join(" | ")}`));
  });
  const next = () => (gone ? Promise.reject(gone) : new Promise((resolve, reject) => waiting.push({ resolve, reject })));
  const ready = next();
  return {
    ready,
    async ask(request) {
      const answered = next();
      child.stdin.write(JSON.stringify(request) + "\n");
      return (await answered).answer;
    },
    close() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      return closed.finally(() => clearTimeout(timer));
    },
  };
}

function lastJsonLine(text) {
  for (const line of text.trim().split("\n").reverse()) {
    if (!line.startsWith("{")) continue;
    try {
      return JSON.parse(line);
    } catch {
      // Not the answer; look further up.
    }
  }
  return undefined;
}

const servers = new Set();
let stoppedOnExit = false;

/** Starts a server in a process group of its own (stdio inherited), stopped at the
 * latest when the benchmark exits. */
export function startServer(command, argv, options = {}) {
  const child = spawn(command, argv, { stdio: ["ignore", "inherit", "inherit"], ...options, detached: true });
  servers.add(child);
  child.once("exit", () => servers.delete(child));
  if (!stoppedOnExit) onExit(() => servers.forEach((s) => signalGroup(s, "SIGTERM")));
  stoppedOnExit = true;
  return child;
}

function signalGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** SIGTERM to a server's process group, SIGKILL if it is still there after 5 s. */
export async function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", () => r(true)));
  signalGroup(child, "SIGTERM");
  if (!(await Promise.race([exited, sleep(5000).then(() => false)]))) signalGroup(child, "SIGKILL");
}

export function stopAllServers() {
  return Promise.all([...servers].map(stopServer));
}

/** Calls `probe` until it resolves (its answer is returned), for at most `timeoutMs`;
 * gives up early if `child` exits. */
export async function waitUntilReady(probe, { label, timeoutMs, child, intervalMs = 200 }) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    if (child && child.exitCode !== null) throw new Error(`${label} exited (${child.exitCode}) before answering`);
    try {
      return await probe();
    } catch (error) {
      last = error;
      await sleep(intervalMs);
    }
  }
  throw new Error(`${label} did not answer within ${timeoutMs / 1000} s: ${last?.message}`);
}

/** A TCP port free on `host` now. */
export function freePort(host = "127.0.0.1") {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}
