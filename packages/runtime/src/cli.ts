#!/usr/bin/env node
// The `coil` command: re-executes itself with the glibc tunable the interpreters
// need (and, for `serve`, the Node flags a server wants), then runs the subcommand
// (commands.ts).
import cluster from "node:cluster";

import { isCoilError } from "@coil/errors";

import { main } from "./commands.js";
import { reexecWithTunable, SERVE_NODE_FLAGS } from "./reexec.js";

async function run(): Promise<void> {
  const child = reexecWithTunable(process.argv[2] === "serve" ? SERVE_NODE_FLAGS : []);
  if (child) {
    process.exitCode = await child;
    return;
  }
  try {
    process.exitCode = await main(process.argv.slice(2));
  } catch (error) {
    if (isCoilError(error)) {
      console.error(`coil: ${error.message}${error.pythonTraceback ? `\n${error.pythonTraceback}` : ""} [${error.code}]`);
    } else {
      console.error(`coil: ${(error as Error)?.stack ?? String(error)}`);
    }
    process.exitCode = isCoilError(error, "INVALID_ARGUMENT") ? 2 : 1;
  }
  // A supervised worker's IPC channel would keep it alive: it is done (drained, or
  // failed to start, which the primary reads from this exit code).
  if (cluster.isWorker) process.exit();
}

await run();
