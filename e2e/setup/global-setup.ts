// Once per run, before any test file: the tools, the workspace build, the tarballs
// installed into a scratch project, the eager reference. Slow (the native addon builds
// from the tarball), so every file shares it. A failed step does not throw: it is
// recorded, tests/install.test.ts reports it, and every other file fails on it.
import { mkdirSync, mkdtempSync } from "node:fs";
import { join } from "node:path";

import type { TestProject } from "vitest/node";

import type { E2eContext, SetupStep } from "../harness/context.js";
import { ROOT } from "../harness/paths.js";
import { writeReference } from "../harness/reference.js";
import {
  buildWorkspace,
  installTarballs,
  packPackages,
  publishablePackages,
  writeProjectPackageJson,
} from "../harness/scratch-project.js";
import { installMissingTools } from "../harness/tools.js";
import { PYTHON } from "../harness/python.js";
import { runOk } from "../harness/process.js";

export default async function setup(project: TestProject): Promise<void> {
  const work = mkdtempSync("/tmp/coil-e2e.");
  // The summary reporter (main process, like this) keeps or removes it at the end.
  process.env["COIL_E2E_WORK"] = work;
  const context: E2eContext = {
    root: ROOT,
    work,
    project: join(work, "project"),
    coil: join(work, "project/node_modules/.bin/coil"),
    packages: [],
    tarballs: [],
    steps: [],
  };
  const step = async (name: string, action: () => Promise<string>): Promise<boolean> => {
    const started = Date.now();
    try {
      const detail = await action();
      context.steps.push({ name, ok: true, detail });
      console.log(`e2e setup: ${name} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
      return true;
    } catch (error) {
      context.steps.push({ name, ok: false, detail: error instanceof Error ? error.message : String(error) });
      console.log(`e2e setup: FAILED ${name}\n${error instanceof Error ? error.message : String(error)}`);
      return false;
    }
  };

  // Each step needs the ones before it: stop at the first that fails.
  (await step("tools", () => installMissingTools(ROOT))) &&
    (await step(`torch importable by ${PYTHON}`, () => runOk(PYTHON, ["-c", "import torch; print(torch.__version__)"]))) &&
    (await step("workspace build", () => buildWorkspace(ROOT, join(work, "build.log")))) &&
    (await step("npm pack", async () => {
      context.packages = publishablePackages(ROOT);
      mkdirSync(join(work, "tarballs"));
      context.tarballs = await packPackages(ROOT, context.packages, join(work, "tarballs"));
      return context.tarballs.join("\n");
    })) &&
    (await step("npm install of the tarballs", async () => {
      mkdirSync(context.project);
      await runOk("npm", ["init", "-y"], { cwd: context.project });
      const native = context.tarballs.find((file) => /\/coil-native-[^/]*\.tgz$/.test(file));
      if (!native) throw new Error(`no @coil/native tarball among ${context.tarballs.join(", ")}`);
      writeProjectPackageJson(context.project, native);
      const output = await installTarballs(context.project, context.tarballs, join(work, "install.log"));
      return output.split("\n").filter((line) => /^added|install-scripts|Linking CXX shared/.test(line)).slice(0, 10).join("\n");
    })) &&
    (await step("eager reference", () => writeReference(work)));

  project.provide("e2e", context);
}
