// A transformers model from the project venv (.venv-torch2: pip's torch 2.x and
// transformers): a tiny BERT sequence classifier from a random config (nothing
// downloads), packed with zero config on the venv's Python, served on it, and a curl
// JSON request built from its metadata alone compared with eager on the venv's Python
// (1e-4). Skipped, saying why, when the venv is not ready (tools/python-envs.sh).
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { compareWithEager, writeExchange } from "../harness/eager.js";
import { serveForThisFile } from "../harness/file-server.js";
import { inputsFromMetadata } from "../harness/metadata-request.js";
import { fetchMetadata, inferJson } from "../harness/oip-clients.js";
import { runOk } from "../harness/process.js";
import { REPOSITORIES, repositoryDir } from "../harness/repository.js";
import { VENV_PYTHON, venvReadiness } from "../harness/venv.js";

const venv = venvReadiness();
if (!venv.ready) console.log(`transformers: SKIPPED: the venv is not ready (make it: bash tools/python-envs.sh):\n${venv.reason}`);

const repository = REPOSITORIES.venv;
const model = repository.models[0];
const TOLERANCE = 1e-4;

describe.skipIf(!venv.ready)(`${model.name}: transformers on ${VENV_PYTHON}`, () => {
  const live = serveForThisFile("transformers", { repository, models: [model.name] }, { python: VENV_PYTHON });

  it("is packed with zero config: signature from example_inputs(), torch and transformers recorded", async () => {
    const report = JSON.parse(
      await runOk(live.context.coil, ["inspect", join(repositoryDir(live.context, repository), `${model.name}.coil`), "--json"], { cwd: live.context.work }),
    ) as { pythonVersion?: string; manifest: { inputs: unknown[]; outputs: unknown[]; distributions: { name: string }[] } };
    expect(report.manifest.inputs).toEqual([
      { name: "input_ids", dtype: "int64", shape: [-1, 8] },
      { name: "attention_mask", dtype: "int64", shape: [-1, 8] },
    ]);
    expect(report.manifest.outputs).toEqual([{ name: "logits", dtype: "float32", shape: [-1, 3] }]);
    expect(report.manifest.distributions.map((d) => d.name)).toEqual(expect.arrayContaining(["torch", "transformers"]));
  });

  it("is served on the venv's Python: model ready, its metadata", async () => {
    expect(live.server.logged("model ready").map((line) => line["model"])).toContain(model.name);
    expect(await fetchMetadata(live.server.base, model.name)).toMatchObject({
      inputs: [
        { name: "input_ids", datatype: "INT64", shape: [-1, 8] },
        { name: "attention_mask", datatype: "INT64", shape: [-1, 8] },
      ],
      outputs: [{ name: "logits", datatype: "FP32", shape: [-1, 3] }],
    });
  });

  it(`curl JSON built from the metadata == eager on the venv's Python (${TOLERANCE})`, async () => {
    const metadata = await fetchMetadata(live.server.base, model.name);
    const inputs = inputsFromMetadata(metadata);
    const answer = await inferJson(live.server.base, model.name, inputs);
    expect(answer.status, answer.text).toBe(200);
    expect(answer.outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([["logits", "FP32", [2, 3]]]);
    const exchange = { inputs, outputs: answer.outputs, output_names: metadata.outputs.map((o) => o.name) };
    await compareWithEager(model, writeExchange(live.context, `${model.name}-json`, exchange), TOLERANCE);
  });
});
