// Base vitest config for every package: `export default defineCoilVitestConfig()`
// in packages/<name>/vitest.config.ts, with overrides merged on top.
import { defaultClientConditions, defaultServerConditions } from "vite";
import { mergeConfig, type ViteUserConfig } from "vitest/config";

// Workspace packages export "@coil/source" -> ./src/index.ts, so tests run the
// sources of their dependencies without a build. Setting conditions replaces
// Vite's defaults, hence the spreads.
const SOURCE = "@coil/source";

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
    },
  };
  return mergeConfig(base, overrides);
}
