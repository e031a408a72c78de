import { spawn } from "node:child_process";

import { GLIBC_TUNABLE, startupTunables } from "@coil/native";

/**
 * glibc reads GLIBC_TUNABLES only when a process starts, and a pool of more than a
 * few interpreters needs glibc.rtld.nns=16 (DESIGN.md fact 2). If this process
 * started without it, run the same command again with it and mirror the child's
 * exit; returns true when that happened (the caller must then do nothing else).
 */
export function reexecWithTunable(): Promise<number> | undefined {
  const tunables = startupTunables();
  if (tunables && /(?:^|:)glibc\.rtld\.nns=/.test(tunables)) return undefined;
  if (process.env.COIL_NO_REEXEC === "1") return undefined;
  const env = { ...process.env, GLIBC_TUNABLES: tunables ? `${tunables}:${GLIBC_TUNABLE}` : GLIBC_TUNABLE };
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: "inherit", env });
  // The child owns the terminal's signals too; forward those sent to us alone.
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, forward);
  return new Promise((resolve) => {
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 + signalNumber(signal) : 1)));
    child.on("error", () => resolve(1));
  });
}

function signalNumber(signal: NodeJS.Signals): number {
  return ({ SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal] ?? 0;
}
