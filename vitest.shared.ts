// Base vitest config for every package: `export default defineCoilVitestConfig()`
// in packages/<name>/vitest.config.ts, with overrides merged on top.
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { defaultClientConditions, defaultServerConditions } from "vite";
import { mergeConfig, type ViteUserConfig } from "vitest/config";

declare module "vitest" {
  export interface ProvidedContext {
    /** The Python the tests embed: `inject("testPython")` (see testPython below). */
    testPython: string;
  }
}

// Workspace packages export "@coil/source" -> ./src/index.ts, so tests run the
// sources of their dependencies without a build. Setting conditions replaces
// Vite's defaults, hence the spreads.
const SOURCE = "@coil/source";

/**
 * The Python every test names: $COIL_TEST_PYTHON, default Debian's /usr/bin/python3
 * (torch 1.13). tools/test.sh runs the Python-touching packages a second time with
 * the project venv's Python (torch 2.13), so a test names its Python once, as
 * `inject("testPython")`, and runs on both stacks. A path with a slash is taken
 * from the repository root; a bare name is looked up on PATH.
 */
export function testPython(env: NodeJS.ProcessEnv = process.env): string {
  const named = env["COIL_TEST_PYTHON"];
  if (!named) return "/usr/bin/python3";
  if (!named.includes("/")) return named;
  const path = resolve(dirname(fileURLToPath(import.meta.url)), named);
  // Asked for by name: a missing one is a setup error, not a reason to test another.
  if (!existsSync(path)) throw new Error(`COIL_TEST_PYTHON=${named}: ${path} does not exist (tools/python-envs.sh makes .venv-torch2)`);
  return path;
}

export function defineCoilVitestConfig(overrides: ViteUserConfig = {}): ViteUserConfig {
  const base: ViteUserConfig = {
    // Tests in the node environment resolve through Vite's SSR environment
    // (verified: without ssr.resolve.conditions the source condition is ignored);
    // resolve.conditions serves browser-like environments (jsdom, the dashboard).
    ssr: { resolve: { conditions: [SOURCE, ...defaultServerConditions] } },
    resolve: { conditions: [SOURCE, ...defaultClientConditions] },
    test: {
      include: ["src/**/*.test.ts", "test/**/*.test.ts"],
      // Separate processes: glibc gives a process only 15 interpreters in its
      // lifetime (namespaces are never returned), and a crash stays contained.
      pool: "forks",
      // One test file at a time: files start Python interpreters, and 2 cores.
      fileParallelism: false,
      testTimeout: 60_000,
      hookTimeout: 120_000,
      provide: { testPython: testPython() },
    },
  };
  return mergeConfig(base, overrides);
}
