/**
 * Zero-config packing of transformers architectures under torch 2.x: each packed
 * with no patterns and its signature inferred, loaded in Coil and by stock
 * torch.package, and compared with eager. Needs the venv at .venv-torch2 (CPython
 * 3.11, torch 2.x, transformers); skipped, saying so, without it.
 */
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool } from "@coil/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { compareWithEager } from "../test/fixtures/zero-config/equivalence.js";
import { packModel } from "./pack.js";

const here = dirname(fileURLToPath(import.meta.url));
const VENV_PYTHON = resolve(here, "../../../.venv-torch2/bin/python");
const MODELS_FILE = resolve(here, "../test/fixtures/zero-config/transformers/models.py");
const available = existsSync(VENV_PYTHON);
if (!available) {
  console.log(`pack-transformers: SKIPPED: no ${VENV_PYTHON} (make it: bash tools/python-envs.sh; is it ready: bash tools/python-envs.sh --check)`);
}

const ARCHITECTURES = [
  { family: "encoder", factory: "bert", example: "encoder_inputs" },
  { family: "encoder", factory: "deberta", example: "encoder_inputs" },
  { family: "encoder", factory: "distilbert", example: "encoder_inputs" },
  { family: "encoder", factory: "roberta", example: "encoder_inputs" },
  { family: "decoder", factory: "gpt2", example: "gpt2_inputs" },
  { family: "decoder", factory: "llama", example: "decoder_inputs" },
  { family: "encoder-decoder", factory: "t5", example: "seq2seq_inputs" },
  { family: "encoder-decoder", factory: "bart", example: "seq2seq_inputs" },
  { family: "vision", factory: "vit", example: "image_inputs" },
];

describe.skipIf(!available)("zero-config packing of transformers models (torch 2.x venv)", () => {
  let pool: InterpreterPool;
  let dir: string;
  const rows: string[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "coil-pack-hf-"));
    pool = await InterpreterPool.create({ size: 1, python: VENV_PYTHON, backend: new CpuBackend() });
  });
  afterAll(async () => {
    await pool?.close();
    console.log(["model | family | inputs | outputs | needs | Coil max abs error | PackageImporter max abs error", ...rows].join("\n"));
  });

  it.each(ARCHITECTURES)("$factory ($family): packs with no patterns, loads in Coil and torch.package, equals eager", async (model) => {
    const archive = join(dir, `${model.factory}.coil`);
    const result = await packModel({ target: `${MODELS_FILE}:${model.factory}`, output: archive, example: model.example, python: VENV_PYTHON });
    expect(result.signature).toEqual({ inputs: "inferred", outputs: "inferred" });
    expect(result.inputs.every((s) => s.shape[0] === -1)).toBe(true);
    expect(result.distributions.map((d) => d.name)).toEqual(expect.arrayContaining(["torch", "transformers"]));
    expect(result.decisions).toContainEqual(expect.objectContaining({ group: "transformers", action: "extern" }));
    const equivalence = await compareWithEager({ python: VENV_PYTHON, file: MODELS_FILE, factory: model.factory, example: model.example, archive, pool });
    const specs = (list: typeof result.inputs) => list.map((s) => `${s.name} ${s.dtype}[${s.shape.join(",")}]`).join("; ");
    rows.push(
      `${model.factory} | ${model.family} | ${specs(result.inputs)} | ${specs(result.outputs)} | ` +
        `${result.distributions.map((d) => `${d.name} ${d.version}`).join(", ")} | ${equivalence.coilError.toExponential(2)} | ${equivalence.packageImporterError.toExponential(2)}`,
    );
    expect(equivalence.outputs).toEqual(result.outputs.map((o) => o.name));
    expect(equivalence.sameShapes).toBe(true);
    expect(equivalence.coilError).toBeLessThanOrEqual(1e-4);
    expect(equivalence.packageImporterError).toBeLessThanOrEqual(1e-4);
  });
});
