// The eager PyTorch reference and request bodies (python/reference.py), written once
// per run by the global setup into work/reference.
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

import type { E2eContext } from "./context.js";
import { MODELS } from "./paths.js";
import { python } from "./python.js";

/** Images in the resnet18 request that a signal catches in flight: long enough a call. */
export const RESNET_BATCH = 8;

export function referenceDir(work: string): string {
  return join(work, "reference");
}

/** Writes the reference files; returns what reference.py printed. */
export function writeReference(work: string): Promise<string> {
  mkdirSync(referenceDir(work), { recursive: true });
  return python("reference.py", [referenceDir(work), MODELS, String(RESNET_BATCH)]);
}

export interface Reference {
  /** JSON infer request for the mlp, and its eager output {shape, data}. */
  inferJson: string;
  expected: string;
  /** The same input through the binary extension, and its JSON header's length. */
  inferBin: string;
  inferBinHeader: number;
  /** The raw float32 input (gRPC raw contents). */
  inputF32: string;
  /** resnet18 binary requests: one image, and RESNET_BATCH images. */
  resnetBin: string;
  resnetBinHeader: number;
  resnetBatchBin: string;
  resnetBatchBinHeader: number;
}

export function reference(context: E2eContext): Reference {
  const dir = referenceDir(context.work);
  const file = (name: string) => join(dir, name);
  const header = (name: string) => Number(readFileSync(file(`${name}.hdrlen`), "utf8"));
  return {
    inferJson: file("infer.json"),
    expected: file("expected.json"),
    inferBin: file("infer.bin"),
    inferBinHeader: header("infer.bin"),
    inputF32: file("input.f32"),
    resnetBin: file("resnet.bin"),
    resnetBinHeader: header("resnet.bin"),
    resnetBatchBin: file("resnet-batch.bin"),
    resnetBatchBinHeader: header("resnet-batch.bin"),
  };
}
