// The model repository the servers serve: three example models packed with the
// installed `coil pack`.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";

import type { E2eContext } from "./context.js";
import { MODELS } from "./paths.js";
import { PYTHON } from "./python.js";
import { runOk } from "./process.js";

export interface ExampleModel {
  name: string;
  /** `coil pack` arguments after the target and -o. */
  args: string[];
}

export const EXAMPLE_MODELS: readonly ExampleModel[] = [
  { name: "mlp", args: ["--input", "x:float32:-1,64", "--output-spec", "y:float32:-1,10"] },
  {
    name: "resnet18",
    args: ["--extern", "torchvision.**", "--input", "image:float32:-1,3,224,224", "--output-spec", "logits:float32:-1,1000"],
  },
  { name: "text_classifier", args: ["--input", "text:bytes:-1", "--output-spec", "logits:float32:-1,4"] },
];

/** The repository folder of this run. */
export function repositoryDir(context: E2eContext): string {
  return join(context.work, "repo");
}

/** `coil pack examples/models/<name>.py:build -o <repo>/<name>.coil ...`; its stdout. */
export function packExample(context: E2eContext, model: ExampleModel): Promise<string> {
  const repo = repositoryDir(context);
  mkdirSync(repo, { recursive: true });
  return runOk(
    context.coil,
    ["pack", join(MODELS, `${model.name}.py:build`), "-o", join(repo, `${model.name}.coil`), "--python", PYTHON, "--quiet", ...model.args],
    { cwd: context.work },
  );
}

export type ExampleName = "mlp" | "resnet18" | "text_classifier";

/** The repository, with the models a file needs packed if they are not there yet
 * (tests/pack.test.ts packs them all first in a whole run; a file run alone packs its
 * own). A model that fails to pack is left out, with a warning: the tests that use it
 * fail, not the whole file (pack.test.ts reports why). */
export async function ensureRepository(context: E2eContext, needs: readonly ExampleName[]): Promise<string> {
  for (const model of EXAMPLE_MODELS.filter((m) => needs.includes(m.name as ExampleName))) {
    if (existsSync(join(repositoryDir(context), `${model.name}.coil`))) continue;
    await packExample(context, model).catch((error: unknown) => console.warn(`coil pack ${model.name} failed, serving without it: ${String(error)}`));
  }
  return repositoryDir(context);
}
