// `npm run image` prints what it is doing: each step when it starts and how long it
// took, on stderr (stdout keeps the image's name for scripts).
import { spawn } from "node:child_process";

const started = Date.now();

/** "[image] message" on stderr. */
export function say(message) {
  process.stderr.write(`[image] ${message}\n`);
}

/** Seconds since `since`, one decimal. */
export function secondsSince(since) {
  return Number(((Date.now() - since) / 1000).toFixed(1));
}

/** Runs `action` as a numbered step; prints its start, then its end with the time it
 * took and `describe(result)` (a short detail); returns the result. */
export async function step(name, action, describe = (result) => result) {
  const since = Date.now();
  say(`${name} ...`);
  const result = await action();
  const detail = describe(result);
  say(`${name}: ${secondsSince(since)} s${detail ? ` (${detail})` : ""}`);
  return result;
}

/** Seconds since the build started. */
export function totalSeconds() {
  return secondsSince(started);
}

/**
 * Runs a program. `show`: its output goes to this terminal as it comes (long steps:
 * mmdebstrap, npm install), else it is collected. Resolves with stdout; rejects with
 * a message that ends with what it printed when it exits non-zero.
 */
export function exec(command, args, { show = false, cwd, env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      if (show) process.stderr.write(chunk);
    });
    child.stderr.on("data", (chunk) => {
      err += chunk;
      if (show) process.stderr.write(chunk);
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (code === 0) resolve(out);
      else {
        const tail = `${out}\n${err}`.trim().split("\n").slice(-30).join("\n");
        reject(new Error(`${command} ${args.join(" ")} exited with ${code ?? signal}\n${tail}`));
      }
    });
  });
}
