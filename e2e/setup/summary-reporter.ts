// Ends a run as e2e/run.sh did: the failed tests by name, the time, the work dir, one
// line of counts; the work dir is removed when everything passed (unless E2E_KEEP=1).
import { rmSync } from "node:fs";

import type { Reporter, TestModule } from "vitest/node";

import { KNOBS } from "../harness/knobs.js";

export default class SummaryReporter implements Reporter {
  #started = Date.now();

  onTestRunEnd(modules: ReadonlyArray<TestModule>, errors: ReadonlyArray<unknown>, reason: string): void {
    let passed = 0;
    const failed: string[] = [];
    for (const module of modules) {
      // A file that failed to load, or whose hooks failed, has no failed test: name it.
      if (module.state() === "failed" && ![...module.children.allTests("failed")].length) failed.push(`${module.moduleId} (file)`);
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failed.push(test.fullName);
      }
    }
    const work = process.env["COIL_E2E_WORK"];
    console.log("");
    for (const name of failed) console.log(`failed: ${name}`);
    console.log(`elapsed: ${Math.round((Date.now() - this.#started) / 1000)} s, work dir: ${work ?? "(none)"}`);
    console.log(`e2e: ${passed} passed, ${failed.length + errors.length} failed`);
    const clean = reason === "passed" && failed.length === 0 && errors.length === 0;
    if (work && clean && !KNOBS.keep) rmSync(work, { recursive: true, force: true });
    else if (work) console.log(`kept ${work} (logs/, install.log, build.log)`);
  }
}
