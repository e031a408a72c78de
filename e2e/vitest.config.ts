// The end-to-end suite: `npm run e2e` (alone) or `npm test` (after the packages).
// Real processes only: the packed packages installed in a scratch project, `coil`,
// curl, Python's gRPC client, wrk. Nothing here imports the workspace's packages.
import { join } from "node:path";

import { defineConfig } from "vitest/config";

import FileOrder from "./setup/file-order.ts";

const HERE = import.meta.dirname;

export default defineConfig({
  test: {
    root: HERE,
    include: ["tests/**/*.test.ts"],
    globalSetup: ["./setup/global-setup.ts"],
    // One file at a time, in a fixed order (setup/file-order.ts): each starts its own
    // `coil serve`, and 2 cores hold one.
    pool: "forks",
    fileParallelism: false,
    sequence: { sequencer: FileOrder },
    testTimeout: 120_000,
    // beforeAll starts a server: up to 2 minutes to "serving", and packing a repository
    // when a file runs alone.
    hookTimeout: 300_000,
    // tools/test.sh counts the JSON report with the packages' ones.
    reporters: ["default", "./setup/summary-reporter.ts", ["json", { outputFile: join(HERE, "test-results.json") }]],
  },
});
