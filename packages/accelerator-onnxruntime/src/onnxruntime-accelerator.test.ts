import "reflect-metadata";

import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { CpuBackend } from "@coil/backend-cpu";
import { createCoilContainer, InterpreterPool, TOKENS, Tensor } from "@coil/core";
import { afterEach, describe, expect, inject, it } from "vitest";

import { defaultOnnxCacheDir, OnnxRuntimeAccelerator } from "./onnxruntime-accelerator.js";
import { registerOnnxRuntimeAccelerator } from "./register.js";

const PYTHON = inject("testPython");
const MODELS = resolve(dirname(fileURLToPath(import.meta.url)), "../test/fixtures/models.py");
const MLP_INPUTS = [
  { name: "x", dtype: "float32" as const, shape: [-1, 16] },
  { name: "ids", dtype: "int64" as const, shape: [-1] },
];
/** Why this stack cannot run the accelerator (no onnxruntime, or a torch without torch.onnx's exporters), or undefined. */
const MISSING = (() => {
  try {
    execFileSync(PYTHON, ["-c", "import onnxruntime, torch.onnx"], { stdio: "pipe" });
    return undefined;
  } catch (error) {
    return `${PYTHON} has no onnxruntime: ${String((error as { stderr?: Buffer }).stderr ?? error).trim().split("\n").pop()}`;
  }
})();

const HAS_TRANSFORMERS = (() => {
  if (MISSING !== undefined) return false; // not asked for
  try {
    execFileSync(PYTHON, ["-c", "import transformers"], { stdio: "pipe" });
    return true;
  } catch {
    return false;
  }
})();

let pool: InterpreterPool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

async function createPool(accelerator: OnnxRuntimeAccelerator): Promise<InterpreterPool> {
  pool = await InterpreterPool.create({ size: 2, python: PYTHON, backend: new CpuBackend({ threadsPerInterpreter: 1 }), accelerators: [accelerator] });
  return pool;
}

function rows(n: number, width: number): Tensor<"float32"> {
  return Tensor.from("float32", [n, width], Array.from({ length: n * width }, (_, i) => Math.sin(i)));
}

type MlpOutput = { y: Tensor<"float32">; parts: [Tensor<"float32">] };

describe("OnnxRuntimeAccelerator", () => {
  it("exports once, runs a session in every interpreter, equal to eager with a dynamic batch", async ({ skip }) => {
    skip(MISSING !== undefined, MISSING);
    const cacheDir = mkdtempSync(join(tmpdir(), "coil-onnx-"));
    const p = await createPool(new OnnxRuntimeAccelerator({ cacheDir }));
    const model = p.replicate({ file: MODELS, factory: "mlp", accelerator: "onnxruntime", inputs: MLP_INPUTS });
    const eager = p.replicate({ file: MODELS, factory: "mlp" });
    await model.materialize();
    expect(model.acceleration).toMatchObject({ accelerator: "onnxruntime", active: true, interpreters: 2, accelerated: 2 });
    expect(model.acceleration!.details).toMatchObject({ exporter: expect.stringMatching(/^(dynamo|cached)$/), intraOpThreads: 1 });
    // One export for both interpreters.
    expect(readdirSync(cacheDir).filter((f) => !f.endsWith(".lock"))).toHaveLength(1);
    for (const n of [1, 3]) {
      const ids = Tensor.from("int64", [n], Array.from({ length: n }, (_, i) => BigInt(i % 10)));
      const [got, want] = await Promise.all([model.call<MlpOutput>([rows(n, 16), ids]), eager.call<MlpOutput>([rows(n, 16), ids])]);
      expect(got.y.shape).toEqual([n, 4]);
      got.y.data.forEach((v, i) => expect(v).toBeCloseTo(want.y.data[i]!, 4));
      expect(got.parts[0].shape).toEqual([n]);
      got.parts[0].data.forEach((v, i) => expect(v).toBeCloseTo(want.parts[0].data[i]!, 4));
    }
  });

  it("keeps a model eager when its export froze a branch, with the mismatch as the reason", async ({ skip }) => {
    skip(MISSING !== undefined, MISSING);
    const p = await createPool(new OnnxRuntimeAccelerator({ cacheDir: mkdtempSync(join(tmpdir(), "coil-onnx-")), intraOpThreads: 2 }));
    const model = p.replicate({ file: MODELS, factory: "shape_branch", accelerator: "onnxruntime", inputs: [{ name: "x", dtype: "float32", shape: [-1, 4] }] });
    await model.materialize();
    expect(model.acceleration).toMatchObject({ active: false, accelerated: 0 });
    expect(model.acceleration!.reason).toMatch(/^not equal to eager on example inputs \[3, 4\]: output 0 differs from eager's by up to/);
    const y = await model.call<Tensor<"float32">>([rows(3, 4)]);
    y.data.forEach((v, i) => expect(v).toBeCloseTo(Math.sin(i) * 2, 5));
  });

  it("falls back to the TorchScript-based exporter where torch.export refuses the model", async ({ skip }) => {
    skip(MISSING !== undefined, MISSING);
    const p = await createPool(new OnnxRuntimeAccelerator({ cacheDir: mkdtempSync(join(tmpdir(), "coil-onnx-")), intraOpThreads: 2 }));
    const model = p.replicate({ file: MODELS, factory: "data_branch", accelerator: "onnxruntime", inputs: [{ name: "x", dtype: "float32", shape: [-1, 8] }] });
    await model.materialize();
    expect(model.acceleration).toMatchObject({ active: true, details: { exporter: expect.stringMatching(/^(torchscript|cached)$/), intraOpThreads: 2 } });
    expect((await model.call<Tensor<"float32">>([rows(3, 8)])).shape).toEqual([3, 8]);
  });

  it("gives a Hugging Face model's ModelOutput back with the same fields, at any batch and length", async ({ skip }) => {
    skip(MISSING !== undefined, MISSING);
    skip(!HAS_TRANSFORMERS, `${PYTHON} has no transformers`);
    const p = await createPool(new OnnxRuntimeAccelerator({ cacheDir: mkdtempSync(join(tmpdir(), "coil-onnx-")) }));
    const inputs = [
      { name: "input_ids", dtype: "int64" as const, shape: [-1, -1] },
      { name: "attention_mask", dtype: "int64" as const, shape: [-1, -1] },
    ];
    const model = p.replicate({ file: MODELS, factory: "tiny_bert", accelerator: "onnxruntime", inputs });
    const eager = p.replicate({ file: MODELS, factory: "tiny_bert" });
    await model.materialize();
    // If it stayed eager, the failure shows why.
    expect(model.acceleration?.reason).toBeUndefined();
    expect(model.acceleration).toMatchObject({ active: true });
    type BertOutput = { last_hidden_state: Tensor<"float32">; pooler_output: Tensor<"float32"> };
    for (const [batch, length] of [[1, 5], [3, 7]] as const) {
      const ids = Tensor.from("int64", [batch, length], Array.from({ length: batch * length }, (_, i) => BigInt((i * 7) % 100)));
      const mask = Tensor.from("int64", [batch, length], Array.from({ length: batch * length }, () => 1n));
      const [got, want] = await Promise.all([model.call<BertOutput>([ids, mask]), eager.call<BertOutput>([ids, mask])]);
      expect(Object.keys(got)).toEqual(Object.keys(want));
      expect(got.last_hidden_state.shape).toEqual([batch, length, 32]);
      got.last_hidden_state.data.forEach((v, i) => expect(v).toBeCloseTo(want.last_hidden_state.data[i]!, 3));
      got.pooler_output.data.forEach((v, i) => expect(v).toBeCloseTo(want.pooler_output.data[i]!, 3));
    }
  });

  it("keeps the model eager where the Python has no onnxruntime, saying so", async ({ skip }) => {
    skip(MISSING === undefined, `${PYTHON} has onnxruntime`);
    const p = await createPool(new OnnxRuntimeAccelerator({ cacheDir: mkdtempSync(join(tmpdir(), "coil-onnx-")) }));
    const model = p.replicate({ file: MODELS, factory: "mlp", accelerator: "onnxruntime", inputs: MLP_INPUTS });
    await model.materialize();
    expect(model.acceleration).toMatchObject({ active: false, reason: expect.stringMatching(/^AcceleratorUnavailable: this Python has no onnxruntime/) });
  });

  it("refuses bad options, and registers into a container among the accelerators", () => {
    expect(() => new OnnxRuntimeAccelerator({ intraOpThreads: 0 })).toThrow(/positive integer/);
    expect(() => new OnnxRuntimeAccelerator({ tolerance: { atol: Number.NaN } })).toThrow(/tolerance.atol/);
    expect(defaultOnnxCacheDir({ XDG_CACHE_HOME: "/var/cache/me" })).toBe("/var/cache/me/coil/onnx");
    const container = registerOnnxRuntimeAccelerator(createCoilContainer({ size: 1, python: PYTHON }), { cacheDir: "/tmp/x", interOpThreads: 2 });
    const [accelerator] = container.resolveAll(TOKENS.Accelerator);
    expect(accelerator!.name).toBe("onnxruntime");
    expect(accelerator!.tolerance).toEqual({ rtol: 1e-3, atol: 1e-4 });
    expect(accelerator!.hookOptions({ cacheKey: "k" })).toEqual({ cache_dir: "/tmp/x", cache_key: "k", intra_op_threads: 1, inter_op_threads: 2 });
  });
});
