// The model repositories the servers serve, packed with the installed `coil pack`:
// the example models with their signatures given ("repo"), models packed with zero
// config whose signature comes from example_inputs() ("repo-inferred"), and a
// transformers model packed and served on the project venv's Python ("repo-venv").
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";

import type { E2eContext } from "./context.js";
import { E2E, MODELS } from "./paths.js";
import { PYTHON } from "./python.js";
import { runOk } from "./process.js";
import { VENV_PYTHON } from "./venv.js";

export interface ModelToPack {
  /** The served name (<repository>/<name>.coil). */
  name: string;
  /** The model's Python file and its factory. */
  file: string;
  factory: string;
  /** `coil pack` arguments after the target and -o: none for zero config. */
  args: string[];
  /** The Python that packs it (and serves it, and runs its eager reference). */
  python: string;
}

const example = (name: string, args: string[]): ModelToPack => ({ name, file: join(MODELS, `${name}.py`), factory: "build", args, python: PYTHON });
const fixture = (name: string, python = PYTHON): ModelToPack => ({ name, file: join(E2E, "models", `${name}.py`), factory: "build", args: [], python });

// text_classifier's BYTES input cannot be inferred from example_inputs(). resnet18's
// could, but as x/output__0 (forward's parameter, no output name): the requests of the
// suite name image/logits. Neither needs a pattern: torchvision is found installed.
const RESNET18 = example("resnet18", ["--input", "image:float32:-1,3,224,224", "--output-spec", "logits:float32:-1,1000"]);
const TEXT_CLASSIFIER = example("text_classifier", ["--input", "text:bytes:-1", "--output-spec", "logits:float32:-1,4"]);

export interface Repository {
  /** Its folder in the run's work dir. */
  dir: string;
  models: readonly ModelToPack[];
}

export const REPOSITORIES = {
  /** The example models with their signatures given: what http, grpc, load, signals and plugin serve. */
  examples: { dir: "repo", models: [example("mlp", ["--input", "x:float32:-1,64", "--output-spec", "y:float32:-1,10"]), RESNET18, TEXT_CLASSIFIER] },
  /** Signatures from example_inputs() alone (text_classifier's given: BYTES), for the metadata-driven clients. */
  inferred: { dir: "repo-inferred", models: [example("mlp", []), fixture("scorer"), TEXT_CLASSIFIER] },
  /** A transformers model, packed and served on the venv's Python. */
  venv: { dir: "repo-venv", models: [fixture("tiny_bert", VENV_PYTHON)] },
} as const satisfies Record<string, Repository>;

export const EXAMPLE_MODELS = REPOSITORIES.examples.models;
export type ExampleName = (typeof EXAMPLE_MODELS)[number]["name"];

/** A repository's folder in this run. */
export function repositoryDir(context: E2eContext, repository: Repository = REPOSITORIES.examples): string {
  return join(context.work, repository.dir);
}

/** `coil pack <file>:<factory> -o <repository>/<name>.coil --python <its python> ...`; its stdout. */
export function packModel(context: E2eContext, model: ModelToPack, repository: Repository = REPOSITORIES.examples): Promise<string> {
  const repo = repositoryDir(context, repository);
  mkdirSync(repo, { recursive: true });
  return runOk(
    context.coil,
    ["pack", `${model.file}:${model.factory}`, "-o", join(repo, `${model.name}.coil`), "--python", model.python, "--quiet", ...model.args],
    { cwd: context.work },
  );
}

/** The models of a repository a file needs, by name. */
export interface RepositoryNeeds {
  repository: Repository;
  models: readonly string[];
}

/** The repository, with the models a file needs packed if they are not there yet
 * (tests/pack.test.ts packs them first in a whole run; a file run alone packs its
 * own). A model that fails to pack is left out, with a warning: the tests that use it
 * fail, not the whole file (pack.test.ts reports why). Example names alone mean the
 * examples' repository. */
export async function ensureRepository(context: E2eContext, needs: readonly ExampleName[] | RepositoryNeeds): Promise<string> {
  const { repository, models }: RepositoryNeeds = Array.isArray(needs)
    ? { repository: REPOSITORIES.examples, models: needs as readonly ExampleName[] }
    : (needs as RepositoryNeeds);
  for (const model of repository.models.filter((m) => models.includes(m.name))) {
    if (existsSync(join(repositoryDir(context, repository), `${model.name}.coil`))) continue;
    await packModel(context, model, repository).catch((error: unknown) =>
      console.warn(`coil pack ${model.name} into ${repository.dir} failed, serving without it: ${String(error)}`),
    );
  }
  return repositoryDir(context, repository);
}
