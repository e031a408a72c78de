import { spawn } from "node:child_process";

import { GLIBC_TUNABLE, replaceProcess, startupTunables } from "@coil/native";

import { exitCause } from "./supervisor/exit-cause.js";

/**
 * Node flags `coil serve` runs with unless the user set them. Each one removed
 * mark-compacts under load (bursts of dozens in a second, or one every half second)
 * that took p99 at 16 connections from ~3.5 ms to 8-14 ms in tools/bench/http.mjs,
 * at no cost in private memory:
 *  - a young generation of fixed size: V8 starts it small and doubles it as a busy
 *    server allocates, and each growth under load set off a burst;
 *  - no memory reducer: with it, load that came back after idle gaps met a burst;
 *  - no allocation-site pretenuring: with dynamic batching, requests wait for their
 *    batch, V8 saw their objects survive scavenges and from then on allocated them in
 *    old space, where they died: a mark-compact every ~0.6 s under load.
 */
export const SERVE_NODE_FLAGS: readonly string[] = [
  "--min-semi-space-size=16",
  "--max-semi-space-size=16",
  "--no-memory-reducer",
  "--no-allocation-site-pretenuring",
];

/**
 * glibc reads GLIBC_TUNABLES only when a process starts, and a pool of more than a
 * few interpreters needs glibc.rtld.nns=16 (docs/engine.md, fact 2); V8's heap flags too
 * are read only at start-up. If this process started without the tunable, or
 * without one of `nodeFlags` (a flag counts as set when its name appears in the
 * process's Node flags or NODE_OPTIONS, whatever its value or --no- prefix), run
 * the same command again with what was missing, in this very process (execve): no
 * parent stays behind, so a signal to the process group reaches the server once,
 * its exit status is the caller's, and nothing is orphaned if a parent dies. Only
 * if the kernel refuses that, a child process runs it and this one mirrors its
 * exit: then it returns the child's exit code (the caller must do nothing else).
 * Returns undefined when nothing was missing. COIL_NO_REEXEC=1 turns it off.
 */
export function reexecWithTunable(nodeFlags: readonly string[] = []): Promise<number> | undefined {
  if (process.env.COIL_NO_REEXEC === "1") return undefined;
  const tunables = startupTunables();
  const hasTunable = tunables !== undefined && /(?:^|:)glibc\.rtld\.nns=/.test(tunables);
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)].map(flagName);
  const missingFlags = nodeFlags.filter((flag) => !given.includes(flagName(flag)));
  if (hasTunable && missingFlags.length === 0) return undefined;
  const env = hasTunable
    ? process.env
    : { ...process.env, GLIBC_TUNABLES: tunables ? `${tunables}:${GLIBC_TUNABLE}` : GLIBC_TUNABLE };
  const argv = [...missingFlags, ...process.execArgv, ...process.argv.slice(1)];
  try {
    replaceProcess(process.execPath, [process.argv0, ...argv], env);
  } catch (error) {
    console.error(`coil: restarting in place failed (${(error as Error).message}); running the command as a child process`);
  }
  const child = spawn(process.execPath, argv, { stdio: "inherit", env });
  // The child owns the terminal's signals too; forward those sent to us alone.
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, forward);
  return new Promise((resolve) => {
    child.on("exit", (code, signal) => resolve(exitCause(code, signal).status));
    child.on("error", () => resolve(1));
  });
}

/** "--max-semi-space-size=16" -> "--max-semi-space-size", "--no-memory-reducer" ->
 * "--memory-reducer" (V8 takes _ for - too). */
function flagName(flag: string): string {
  return flag.split("=")[0]!.replaceAll("_", "-").replace(/^--no-/, "--");
}
