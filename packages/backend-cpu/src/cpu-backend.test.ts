import "reflect-metadata";

import { execFileSync } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { createCoilContainer, createPoolFromContainer, InterpreterPool, Tensor } from "@coil/core";
import { afterEach, describe, expect, inject, it } from "vitest";

import { CpuBackend } from "./cpu-backend.js";
import { registerCpuBackend } from "./register.js";

const PYTHON = inject("testPython");
const MLP = resolve(dirname(fileURLToPath(import.meta.url)), "../test/fixtures/mlp.py");

let pool: InterpreterPool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

function input(): Tensor<"float32"> {
  return Tensor.from("float32", [8, 64], Array.from({ length: 512 }, (_, i) => Math.sin(i)));
}

describe("CpuBackend", () => {
  it("reports what it found, and gives each interpreter its share of the cores", async () => {
    pool = await InterpreterPool.create({ size: 2, python: PYTHON, backend: new CpuBackend() });
    const [info] = pool.backendInfo;
    expect(info).toMatchObject({ backend: "cpu", python: expect.stringMatching(/^3\./), torch: expect.any(String) });
    expect(info!.cores).toBeGreaterThanOrEqual(1);
    // 2 interpreters on the cores: floor(cores / 2), at least 1.
    expect(info!.threads).toBe(Math.max(1, Math.floor(info!.cores / 2)));
  });

  it("takes an explicit thread count", async () => {
    pool = await InterpreterPool.create({
      size: 1,
      python: PYTHON,
      backend: new CpuBackend({ threadsPerInterpreter: 3 }),
    });
    expect(pool.backendInfo[0]!.threads).toBe(3);
    const model = pool.replicate({ file: MLP, factory: "build" });
    expect(await model.callMethod("probe")).toEqual({ inference_mode: true, threads: 3 });
  });

  it("prepares an interpreter again when a later pool reuses it", async () => {
    // torch 1.13 aborts the process on a second set_num_interop_threads: the backend
    // must set it once per interpreter, whatever the number of pools.
    for (const threads of [1, 2, 1]) {
      const p = await InterpreterPool.create({
        size: 1,
        python: PYTHON,
        backend: new CpuBackend({ threadsPerInterpreter: threads }),
      });
      expect(p.backendInfo[0]!.threads).toBe(threads);
      await p.close();
    }
  });

  it("refuses bad options", () => {
    expect(() => new CpuBackend({ threadsPerInterpreter: 0 })).toThrow(/positive integer/);
    expect(() => new CpuBackend({ interopThreads: 1.5 })).toThrow(/positive integer/);
  });

  it("computes what eager PyTorch computes in a plain Python process", async () => {
    pool = await InterpreterPool.create({ size: 2, python: PYTHON, backend: new CpuBackend() });
    const model = pool.replicate({ file: MLP, factory: "build" });
    const x = input();
    const outputs = await Promise.all([model.call<Tensor<"float32">>([x]), model.call<Tensor<"float32">>([x])]);
    const reference = execFileSync(PYTHON, [MLP], { input: Buffer.from(x.data.buffer) });
    const expected = new Float32Array(reference.buffer, reference.byteOffset, reference.byteLength / 4);
    for (const y of outputs) {
      expect(y.shape).toEqual([8, 10]);
      y.data.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 5));
    }
  });

  it("registers into a container as the backend", async () => {
    const container = registerCpuBackend(createCoilContainer({ size: 1, python: PYTHON }));
    pool = await createPoolFromContainer(container);
    expect(pool.backend.name).toBe("cpu");
    const y = await pool.replicate({ file: MLP, factory: "build", kwargs: { seed: 1 } }).call<Tensor>([input()]);
    expect(y.shape).toEqual([8, 10]);
  });
});
