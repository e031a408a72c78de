// The project venv (.venv-torch2: pip's torch 2.x and transformers), made by
// tools/python-envs.sh. Tests that need it are skipped, saying why, when it is not ready.
import { spawnSync } from "node:child_process";
import { join } from "node:path";

import { ROOT } from "./paths.js";

/** Absolute, so the scratch project's `coil` (run outside the workspace) finds it. */
export const VENV_PYTHON = join(ROOT, ".venv-torch2/bin/python");

export interface VenvReadiness {
  ready: boolean;
  /** What `tools/python-envs.sh --check` said. */
  reason: string;
}

/** `tools/python-envs.sh --check`, synchronously: a file decides what to skip when it loads. */
export function venvReadiness(): VenvReadiness {
  const check = spawnSync("bash", [join(ROOT, "tools/python-envs.sh"), "--check"], { encoding: "utf8", cwd: ROOT });
  const said = `${check.stdout ?? ""}${check.stderr ?? ""}`.trim() || (check.error?.message ?? `exit ${check.status}`);
  return { ready: check.status === 0, reason: said };
}
