// `coil pack` and `coil inspect`, the installed command, on the example models: the
// repository every server of the suite serves.
import { join } from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import { installedContext, type E2eContext } from "../harness/context.js";
import { EXAMPLE_MODELS, packExample, repositoryDir } from "../harness/repository.js";
import { runOk } from "../harness/process.js";

let context: E2eContext;
beforeAll(() => {
  context = installedContext();
});

const archive = (name: string) => join(repositoryDir(context), `${name}.coil`);
const packed = (name: string) => new RegExp(`^packed .* into ${archive(name).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: \\d+ records`, "m");

describe("coil pack", () => {
  it.each(EXAMPLE_MODELS.map((model) => [model.name, model] as const))("packs %s", async (name, model) => {
    expect(await packExample(context, model)).toMatch(packed(name));
  });
});

describe("coil inspect", () => {
  it("shows the mlp's signature and checks its hashes", async () => {
    const report = await runOk(context.coil, ["inspect", archive("mlp")], { cwd: context.work });
    expect(report).toContain("inputs: x float32[-1, 64]");
  });

  it("reports resnet18 as JSON, torchvision extern", async () => {
    const report = JSON.parse(await runOk(context.coil, ["inspect", archive("resnet18"), "--json"], { cwd: context.work }));
    expect(JSON.stringify(report)).toContain("torchvision");
  });
});
