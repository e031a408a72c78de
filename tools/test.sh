#!/usr/bin/env bash
# Bootstraps, runs every package's tests one package at a time, then the end-to-end
# suite (e2e/run.sh: the packed packages installed and served, real clients), and prints
# one summary line "N passed, N failed" summed over the packages' vitest JSON reports
# and the end-to-end results. Arguments go to nx and skip the end-to-end suite, as does
# COIL_SKIP_E2E=1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
source tools/env.sh   # exports GLIBC_TUNABLES before nx, so every forked test process starts with it

rm -f packages/*/test-results.json examples/*/test-results.json tools/*/test-results.json

# --parallel=1: tests start Python interpreters; two packages at once overload 2 cores.
status=0
npx --no-install nx run-many -t test --parallel=1 --output-style=static "$@" || status=$?

e2e_results=""  # set when the end-to-end suite ran: where it wrote its counts
if [ $# -eq 0 ] && [ -z "${COIL_SKIP_E2E:-}" ]; then
  e2e_results=bench-results/e2e.json
  rm -f "$e2e_results"
  bash e2e/run.sh || status=$?
fi

node --input-type=module -e '
  import { readFileSync, readdirSync, existsSync } from "node:fs";
  let passed = 0, failed = 0;
  for (const dir of ["packages", "examples", "tools"]) {
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      const file = `${dir}/${name}/test-results.json`;
      if (!existsSync(file)) continue;
      const r = JSON.parse(readFileSync(file, "utf8"));
      passed += r.numPassedTests ?? 0;
      failed += r.numFailedTests ?? 0;
      // A file that fails to load (bad import, syntax error) reports no failed test:
      // count it as one failure so it cannot pass silently.
      for (const file of r.testResults ?? []) {
        const failedTests = (file.assertionResults ?? []).filter((a) => a.status === "failed");
        if (file.status === "failed" && failedTests.length === 0) failed += 1;
      }
    }
  }
  const e2eResults = process.argv[1];
  if (e2eResults) {
    // The end-to-end suite writes its counts last; without them it stopped early.
    const e2e = existsSync(e2eResults) ? JSON.parse(readFileSync(e2eResults, "utf8")).result : undefined;
    passed += e2e?.passed ?? 0;
    failed += e2e ? e2e.failed : 1;
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
' "$e2e_results" || status=1

exit "$status"
