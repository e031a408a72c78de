import "reflect-metadata";

import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { registerCpuBackend } from "@coil/backend-cpu";
import { Tensor, TOKENS } from "@coil/core";
import { afterEach, describe, expect, inject, it } from "vitest";

import { createCustomRuntime, TracingBackend, type CustomRuntime } from "../src/index.js";

const MODEL = resolve(dirname(fileURLToPath(import.meta.url)), "../python/model.py");
const PYTHON = inject("testPython");

let runtime: CustomRuntime | undefined;
afterEach(async () => {
  await runtime?.close();
  runtime = undefined;
});

describe("a custom runtime with plugins of its own", () => {
  it("builds its pool with its own backend and scheduler, and runs a model", async () => {
    runtime = await createCustomRuntime({ size: 2, python: PYTHON, tracing: { label: "example" } });
    const { pool, scheduler } = runtime;
    expect(pool.backend).toBeInstanceOf(TracingBackend);
    expect(pool.backendInfo.map((info) => [info.backend, info["label"], info.threads])).toEqual([
      ["tracing", "example", 1],
      ["tracing", "example", 1],
    ]);

    const model = pool.replicate({ file: MODEL, factory: "build" });
    const x = Tensor.from("float32", [2, 3], [0, 1, 2, 3, 4, 5]);
    const ys = await Promise.all([1, 2, 3, 4].map(() => model.call<Tensor<"float32">>([x])));
    for (const y of ys) expect(Array.from(y.data)).toEqual([1, 3, 5, 7, 9, 11]);
    expect(await model.callMethod("grad_mode")).toEqual({ inference_mode: true });

    // The scheduler rotated strictly over the pool...
    expect(scheduler.picks.slice(0, 4)).toEqual([0, 1, 0, 1]);
    // ...and each interpreter's Python side saw its share of tensors cross the bridge.
    const traces = await Promise.all(pool.interpreters.map((interpreter) => TracingBackend.trace(interpreter)));
    expect(traces.map((t) => t.inputs)).toEqual([2, 2]);
    expect(traces.map((t) => t.outputs)).toEqual([2, 2]);
    expect(traces.reduce((sum, t) => sum + t.calls, 0)).toBe(5);
    expect(traces[0]!.input_shapes).toEqual([
      [2, 3],
      [2, 3],
    ]);
  });

  it("lets a later registration swap the backend back to a stock one", async () => {
    runtime = await createCustomRuntime({
      size: 1,
      python: PYTHON,
      configure: (container) => registerCpuBackend(container, { threadsPerInterpreter: 1 }),
    });
    expect(runtime.container.resolve(TOKENS.Backend).name).toBe("cpu");
    expect(runtime.pool.backend.name).toBe("cpu");
    const y = await runtime.pool.replicate({ file: MODEL, factory: "build" }).call<Tensor<"float32">>([Tensor.from("float32", [1], [4])]);
    expect(Array.from(y.data)).toEqual([9]);
  });

  it("refuses bad options of its own plugin with INVALID_ARGUMENT", async () => {
    await expect(createCustomRuntime({ size: 1, python: PYTHON, tracing: { label: "" } })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
  });
});
