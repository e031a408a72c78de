import { readFileSync } from "node:fs";

import { CoilError, isCoilError } from "@coil/errors";

/** The most interpreters one process can ever create: glibc has 16 link-map
 * namespaces and the program itself takes one (docs/engine.md, fact 2). */
export const MAX_INTERPRETERS = 15;

/** Without glibc.rtld.nns, glibc reserves static TLS for only a few namespaces;
 * interpreters that import torch ran out at the 6th here. Stay below that. */
export const INTERPRETERS_WITHOUT_TUNABLE = 4;

export const GLIBC_TUNABLE = "glibc.rtld.nns=16";

/** glibc reads GLIBC_TUNABLES once, when the process starts: look at the
 * environment the process started with, not at today's process.env. */
export function startupTunables(): string | undefined {
  try {
    const environ = readFileSync("/proc/self/environ", "latin1").split("\0");
    const entry = environ.find((e) => e.startsWith("GLIBC_TUNABLES="));
    return entry?.slice("GLIBC_TUNABLES=".length);
  } catch {
    return process.env.GLIBC_TUNABLES;
  }
}

/** How many interpreters this process may hold, given how it was started. */
export function interpreterBudget(tunables = startupTunables()): number {
  const match = /(?:^|:)glibc\.rtld\.nns=(\d+)/.exec(tunables ?? "");
  if (!match) return INTERPRETERS_WITHOUT_TUNABLE;
  return Math.max(0, Math.min(MAX_INTERPRETERS, Number(match[1]) - 1));
}

export function tunableMissingError(wanted: number, budget: number): CoilError {
  return new CoilError(
    "GLIBC_TUNABLE_MISSING",
    `this process can hold ${budget} interpreters, ${wanted} were asked for. Start the process with ` +
      `GLIBC_TUNABLES=${GLIBC_TUNABLE} in its environment (glibc reads it only at start-up), e.g. ` +
      `\`GLIBC_TUNABLES=${GLIBC_TUNABLE} node app.js\`; the coil CLI does this itself. At most ${MAX_INTERPRETERS}.`,
    { details: { wanted, budget, tunable: GLIBC_TUNABLE } },
  );
}

/**
 * Explains an error that means glibc ran out of static TLS for its namespaces --
 * whether the engine saw it loading libpython, or Python saw it importing a library
 * (torch's libgomp) -- as GLIBC_TUNABLE_MISSING with the fix. Other errors pass through.
 */
export function explainTlsExhaustion(error: unknown): unknown {
  const exhausted =
    isCoilError(error, "GLIBC_TUNABLE_MISSING") || (isCoilError(error, "PYTHON_ERROR") && /static TLS/.test(error.message));
  if (!exhausted) return error;
  return new CoilError(
    "GLIBC_TUNABLE_MISSING",
    `${(error as Error).message.split("\n")[0]}: glibc ran out of static TLS for its link-map namespaces. ` +
      `Start the process with GLIBC_TUNABLES=${GLIBC_TUNABLE} in its environment (glibc reads it only at start-up); ` +
      "the coil CLI does this itself.",
    { cause: error, details: { tunable: GLIBC_TUNABLE } },
  );
}
