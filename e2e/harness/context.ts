// What the global setup (setup/global-setup.ts) hands every test file: where the
// scratch project is, and how each of its steps went.
import { inject } from "vitest";

/** One step of the global setup: installing tools, building, packing, installing. */
export interface SetupStep {
  name: string;
  ok: boolean;
  /** What it printed or why it failed. */
  detail: string;
}

export interface E2eContext {
  /** The repository root (the workspace). */
  root: string;
  /** The run's scratch folder (/tmp/coil-e2e.*): tarballs, project, repository, logs. */
  work: string;
  /** The scratch project the tarballs are installed into. */
  project: string;
  /** Its node_modules/.bin/coil. */
  coil: string;
  /** The publishable packages' names, and their tarballs. */
  packages: string[];
  tarballs: string[];
  steps: SetupStep[];
}

declare module "vitest" {
  export interface ProvidedContext {
    e2e: E2eContext;
  }
}

export function e2eContext(): E2eContext {
  return inject("e2e");
}

/** The context, once every setup step went well; else throws naming the first that did
 * not, so a file's tests fail (and count) instead of running against half a setup. */
export function installedContext(): E2eContext {
  const context = e2eContext();
  const failed = context.steps.find((step) => !step.ok);
  if (failed) throw new Error(`the global setup failed at "${failed.name}" (see tests/install.test.ts):\n${failed.detail}`);
  return context;
}
