// A served answer against eager PyTorch (python/eager.py) on the inputs the client sent,
// run on the model's own Python.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import type { E2eContext } from "./context.js";
import type { TensorValues } from "./metadata-request.js";
import { E2E } from "./paths.js";
import { runOk } from "./process.js";
import type { ModelToPack } from "./repository.js";

/** What a client sent and was answered, and the metadata's output names. */
export interface Exchange {
  inputs: TensorValues[];
  outputs: TensorValues[];
  output_names: string[];
}

let count = 0;

/** A new file for an exchange, in the run's work dir (a client may write it itself). */
export function exchangePath(context: E2eContext, label: string): string {
  const dir = join(context.work, "exchanges");
  mkdirSync(dir, { recursive: true });
  return join(dir, `${++count}-${label}.json`);
}

/** Writes an exchange where eager.py reads it. */
export function writeExchange(context: E2eContext, label: string, exchange: Exchange): string {
  const file = exchangePath(context, label);
  writeFileSync(file, JSON.stringify(exchange));
  return file;
}

/** eager.py on the exchange in `file`: resolves with each output's largest difference,
 * rejects saying which output differs. */
export async function compareWithEager(model: ModelToPack, file: string, tolerance: number): Promise<Record<string, number>> {
  const printed = await runOk(model.python, [join(E2E, "python/eager.py"), model.file, model.factory, file, String(tolerance)]);
  const diffs = (JSON.parse(printed.trim().split("\n").at(-1)!) as { max_abs_diff: Record<string, number> }).max_abs_diff;
  console.log(`${model.name} vs eager: ${JSON.stringify(diffs)}`);
  return diffs;
}
