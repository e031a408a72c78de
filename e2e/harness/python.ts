// The suite's Python programs (e2e/python/*.py), run with Debian's python3 and torch:
// the eager PyTorch reference and the checks of what the servers answered.
import { join } from "node:path";

import { E2E } from "./paths.js";
import { runOk } from "./process.js";

export const PYTHON = "/usr/bin/python3";

/** Runs e2e/python/<script> with `args`; returns its stdout, rejects with its output
 * when it exits non-zero (a failed assertion in the script). */
export function python(script: string, args: readonly string[]): Promise<string> {
  return runOk(PYTHON, [join(E2E, "python", script), ...args]);
}
