// A benchmark's results: one JSON file, bench-results/<name>.json by default, that
// starts with when and on what machine it ran.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

import { describeMachine } from "./machine.mjs";
import { REPO_ROOT } from "./paths.mjs";

/** The default results file of benchmark `name`. */
export function resultsPath(name) {
  return join(REPO_ROOT, "bench-results", `${name}.json`);
}

/** The --out flag every benchmark takes. */
export function outFlag(name) {
  return { type: "path", default: resultsPath(name), defaultHelp: `bench-results/${name}.json`, help: "where to write the JSON results" };
}

/** The results object, begun: the start time and the machine, then `fields`. */
export function startResults(fields = {}) {
  return { startedAt: new Date().toISOString(), machine: describeMachine(), ...fields };
}

/** Writes `results` as JSON to `file` and says where. */
export function writeResults(file, results) {
  const path = resolve(file);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(results, null, 2) + "\n");
  const shown = relative(process.cwd(), path);
  console.log(`results written to ${shown.startsWith("..") ? path : shown}`);
}

/** The path as results record it: relative to the repository. */
export function repoRelative(path) {
  return relative(REPO_ROOT, resolve(path));
}
