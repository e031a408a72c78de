// The npm packages Coil's benchmarks compare against (tools/bench/peers): loaded from
// there when tools/bench/peers/install.sh installed them, else a clear error the
// benchmark reports in that cell.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

import { BENCH_DIR } from "./paths.mjs";

export const PEERS_DIR = join(BENCH_DIR, "peers");

/** import()s `name` from tools/bench/peers. */
export async function importPeer(name) {
  const require = createRequire(join(PEERS_DIR, "package.json"));
  let entry;
  try {
    entry = require.resolve(name);
  } catch {
    const installed = existsSync(join(PEERS_DIR, "node_modules"));
    throw new Error(`${name} is not installed${installed ? "" : " (no tools/bench/peers/node_modules)"}: run bash tools/bench/peers/install.sh`);
  }
  return import(pathToFileURL(entry).href);
}
