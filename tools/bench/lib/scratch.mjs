// A temporary folder for one run (packed models, request bodies), removed at exit.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { onExit } from "./cleanup.mjs";

export function scratchDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  onExit(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
