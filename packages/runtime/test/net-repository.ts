import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { packModel } from "../src/pack.js";

/** The split/ fixture model (a Linear over sibling modules), x float32[-1, 4] -> y float32[-1, 2]. */
export const NET = resolve(dirname(fileURLToPath(import.meta.url)), "fixtures/split/net.py");

/** A fresh repository folder holding net.coil, packed with `python`. */
export async function netRepository(python: string): Promise<string> {
  const repo = mkdtempSync(join(tmpdir(), "coil-net-repo-"));
  await packModel({
    target: `${NET}:build`,
    output: join(repo, "net.coil"),
    intern: ["helper_*"],
    python,
    inputs: [{ name: "x", dtype: "float32", shape: [-1, 4] }],
    outputs: [{ name: "y", dtype: "float32", shape: [-1, 2] }],
  });
  return repo;
}
