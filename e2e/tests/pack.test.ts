// `coil pack` and `coil inspect`, the installed command: the repositories every server
// of the suite serves. No pattern flags anywhere: torchvision (resnet18) is found
// installed and recorded; mlp and scorer in repo-inferred carry only example_inputs().
// The venv's model is packed here too when the venv is ready (tests/transformers.test.ts
// checks it).
import { join } from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import { installedContext, type E2eContext } from "../harness/context.js";
import { packModel, REPOSITORIES, repositoryDir, type ModelToPack, type Repository } from "../harness/repository.js";
import { runOk } from "../harness/process.js";
import { venvReadiness } from "../harness/venv.js";

let context: E2eContext;
beforeAll(() => {
  context = installedContext();
});

const archive = (name: string, repository: Repository = REPOSITORIES.examples) => join(repositoryDir(context, repository), `${name}.coil`);
const packed = (file: string) => new RegExp(`^packed .* into ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: \\d+ records`, "m");
const inspectJson = async (file: string) =>
  JSON.parse(await runOk(context.coil, ["inspect", file, "--json"], { cwd: context.work })) as {
    manifest: { inputs?: unknown[]; outputs?: unknown[]; distributions?: { name: string; version: string }[] };
  };

const venv = venvReadiness();
const packs: [string, ModelToPack, Repository][] = [REPOSITORIES.examples, REPOSITORIES.inferred, ...(venv.ready ? [REPOSITORIES.venv] : [])].flatMap(
  (repository) => repository.models.map((model) => [`${repository.dir}/${model.name}`, model, repository] as [string, ModelToPack, Repository]),
);

describe("coil pack", () => {
  it.each(packs)("packs %s", async (_label, model, repository) => {
    expect(await packModel(context, model, repository)).toMatch(packed(archive(model.name, repository)));
  });
});

describe("coil inspect", () => {
  it("shows the mlp's signature and checks its hashes", async () => {
    const report = await runOk(context.coil, ["inspect", archive("mlp")], { cwd: context.work });
    expect(report).toContain("inputs: x float32[-1, 64]");
  });

  it("reports resnet18 (packed without --extern) as JSON: torchvision a recorded distribution, with its version", async () => {
    const { manifest } = await inspectJson(archive("resnet18"));
    expect(manifest.distributions).toContainEqual(expect.objectContaining({ name: "torchvision", version: expect.stringMatching(/^\d+\./) }));
  });

  it("shows the signature coil pack inferred from example_inputs() alone (scorer)", async () => {
    const { manifest } = await inspectJson(archive("scorer", REPOSITORIES.inferred));
    expect(manifest.inputs).toEqual([
      { name: "features", dtype: "float32", shape: [-1, 6] },
      { name: "ids", dtype: "int64", shape: [-1, 5] },
    ]);
    expect(manifest.outputs).toEqual([
      { name: "scores", dtype: "float32", shape: [-1, 4] },
      { name: "best", dtype: "int64", shape: [-1] },
      { name: "norm", dtype: "float64", shape: [-1] },
    ]);
  });
});
