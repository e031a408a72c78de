#!/usr/bin/env bash
# Bootstraps, runs every package's tests one package at a time, then again those that
# start Python on the venv stack (.venv-torch2: pip's torch 2.x, docs/python.md), then
# the end-to-end suite (e2e/: vitest driving the packed packages installed and served,
# real clients), and prints one summary line "N passed, N failed" summed over the
# vitest JSON reports. Arguments go to nx and skip the venv stack and the end-to-end
# suite, as do COIL_SKIP_VENV=1 and COIL_SKIP_E2E=1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
source tools/env.sh   # exports GLIBC_TUNABLES before nx, so every forked test process starts with it

rm -f packages/*/test-results*.json examples/*/test-results*.json tools/*/test-results.json e2e/test-results.json

# --parallel=1: tests start Python interpreters; two packages at once overload 2 cores.
status=0
npx --no-install nx run-many -t test --parallel=1 --output-style=static "$@" || status=$?

# The packages that start Python, again on the venv stack. Skipped, saying why, when the
# venv is not ready (tools/python-envs.sh --check explains).
if [ $# -eq 0 ] && [ -z "${COIL_SKIP_VENV:-}" ]; then
  if bash tools/python-envs.sh --check; then
    for dir in packages/native packages/core packages/backend-cpu packages/backend-cuda packages/format-reader \
      packages/format-writer packages/adapter-http packages/accelerator-compile packages/accelerator-onnxruntime \
      packages/runtime examples/models examples/custom-runtime; do
      echo "[test] $dir on .venv-torch2"
      # These two choose their Pythons themselves (every CPython; the venv): once is enough.
      (cd "$dir" && COIL_TEST_PYTHON=.venv-torch2/bin/python npx --no-install vitest run \
        --exclude src/cpython-versions.test.ts --exclude src/pack-transformers.test.ts \
        --reporter=default --reporter=json --outputFile=test-results.venv.json) || status=$?
    done
  else
    echo "[test] the venv stack (torch 2.x) is skipped: .venv-torch2 is not ready (see above)"
  fi
fi

e2e_results=""  # set when the end-to-end suite ran: its vitest JSON report
if [ $# -eq 0 ] && [ -z "${COIL_SKIP_E2E:-}" ]; then
  e2e_results=e2e/test-results.json
  npx --no-install vitest run --config e2e/vitest.config.ts || status=$?
fi

node --input-type=module -e '
  import { readFileSync, readdirSync, existsSync } from "node:fs";
  let passed = 0, failed = 0;
  const count = (file) => {
    const r = JSON.parse(readFileSync(file, "utf8"));
    passed += r.numPassedTests ?? 0;
    failed += r.numFailedTests ?? 0;
    // A file that fails to load (bad import, syntax error) or whose hooks fail reports
    // no failed test: count it as one failure so it cannot pass silently.
    for (const file of r.testResults ?? []) {
      const failedTests = (file.assertionResults ?? []).filter((a) => a.status === "failed");
      if (file.status === "failed" && failedTests.length === 0) failed += 1;
    }
    return r;
  };
  for (const dir of ["packages", "examples", "tools"]) {
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      for (const report of ["test-results.json", "test-results.venv.json"]) {
        const file = `${dir}/${name}/${report}`;
        if (existsSync(file)) count(file);
      }
    }
  }
  const e2eResults = process.argv[1];
  if (e2eResults) {
    // vitest writes its report at the end: without one the suite stopped early (its
    // global setup threw, it was killed). A report that says it did not succeed with no
    // failure counted (an unhandled error) is one failure too.
    if (!existsSync(e2eResults)) failed += 1;
    else {
      const before = failed;
      if (count(e2eResults).success === false && failed === before) failed += 1;
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
' "$e2e_results" || status=1

exit "$status"
