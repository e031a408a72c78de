import "reflect-metadata";

import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { CpuBackend } from "@coil/backend-cpu";
import { createCoilContainer, InterpreterPool, TOKENS, Tensor } from "@coil/core";
import { afterEach, describe, expect, inject, it } from "vitest";

import { CompileAccelerator } from "./compile-accelerator.js";
import { registerCompileAccelerator } from "./register.js";

const PYTHON = inject("testPython");
const MLP = resolve(dirname(fileURLToPath(import.meta.url)), "../test/fixtures/mlp.py");
const INPUTS = [{ name: "x", dtype: "float32" as const, shape: [-1, 16] }];
const TORCH = execFileSync(PYTHON, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" }).trim();
const HAS_COMPILE = Number(TORCH.split(".")[0]) >= 2;

let pool: InterpreterPool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

function input(rows: number): Tensor<"float32"> {
  return Tensor.from("float32", [rows, 16], Array.from({ length: rows * 16 }, (_, i) => Math.sin(i)));
}

type Output = { y: Tensor<"float32">; norm: Tensor<"float32"> };

describe("CompileAccelerator", () => {
  it("compiles the model in each interpreter, equal to eager, and serving recompiles nothing", async ({ skip }) => {
    skip(!HAS_COMPILE, `this stack's torch ${TORCH} has no torch.compile (< 2.0)`);
    const cacheDir = mkdtempSync(join(tmpdir(), "coil-inductor-"));
    const accelerator = new CompileAccelerator({ cacheDir });
    pool = await InterpreterPool.create({ size: 2, python: PYTHON, backend: new CpuBackend({ threadsPerInterpreter: 1 }), accelerators: [accelerator] });
    const compiled = pool.replicate({ file: MLP, factory: "build", accelerator: "compile", inputs: INPUTS });
    const eager = pool.replicate({ file: MLP, factory: "build" });
    await compiled.materialize();
    expect(compiled.acceleration).toEqual({ accelerator: "compile", active: true, interpreters: 2, accelerated: 2 });
    // Inductor's on-disk cache, shared by the interpreters, is where it was told.
    expect(existsSync(join(cacheDir, "fxgraph"))).toBe(true);
    const graphs = () =>
      Promise.all(pool!.interpreters.map((i) => i.call<number>("run_hook", [accelerator.hook.file, "graphs_compiled", {}])));
    const before = await graphs();
    // Batches of one, of the warm-up sizes and of others: the same graphs serve them all.
    for (const rows of [1, 2, 3, 5, 1, 8]) {
      const [got, want] = await Promise.all([compiled.call<Output>([input(rows)]), eager.call<Output>([input(rows)])]);
      expect(got.y.shape).toEqual([rows, 4]);
      got.y.data.forEach((v, i) => expect(v).toBeCloseTo(want.y.data[i]!, 4));
      got.norm.data.forEach((v, i) => expect(v).toBeCloseTo(want.norm.data[i]!, 4));
    }
    expect(await graphs()).toEqual(before);
  }, 600_000);

  it("keeps the model eager on torch < 2.0, saying why", async ({ skip }) => {
    skip(HAS_COMPILE, `this stack's torch ${TORCH} has torch.compile`);
    pool = await InterpreterPool.create({ size: 1, python: PYTHON, backend: new CpuBackend(), accelerators: [new CompileAccelerator()] });
    const model = pool.replicate({ file: MLP, factory: "build", accelerator: "compile", inputs: INPUTS });
    const y = await model.call<Output>([input(2)]);
    expect(y.y.shape).toEqual([2, 4]);
    expect(model.acceleration).toMatchObject({
      active: false,
      reason: `AcceleratorUnavailable: torch.compile needs torch >= 2.0; this interpreter has torch ${TORCH} (use a Python with torch 2.x)`,
    });
  });

  it("refuses bad options", () => {
    expect(() => new CompileAccelerator({ compileThreads: 0 })).toThrow(/positive integer/);
    expect(() => new CompileAccelerator({ tolerance: { rtol: -1 } })).toThrow(/tolerance.rtol/);
  });

  it("registers into a container among the accelerators, with its options", () => {
    const container = registerCompileAccelerator(createCoilContainer({ size: 1, python: PYTHON }), { mode: "max-autotune-no-cudagraphs", tolerance: { atol: 1e-3 } });
    const [accelerator] = container.resolveAll(TOKENS.Accelerator);
    expect(accelerator!.name).toBe("compile");
    expect(accelerator!.tolerance).toEqual({ rtol: 1e-4, atol: 1e-3 });
    expect(accelerator!.hookOptions({ cacheKey: "k" })).toEqual({ compile_threads: 1, mode: "max-autotune-no-cudagraphs" });
  });
});
