import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, beforeAll, describe, expect, inject, it } from "vitest";

import { Tensor } from "@coil/native";

import { PlainPythonBackend } from "../test/plain-backend.js";
import type { Accelerator } from "./accelerator.js";
import { InterpreterPool } from "./pool.js";

const PYTHON = inject("testPython");

// A model with a nested output and a method, and an accelerator's hooks that each do
// one thing: the same computation, a wrong one, another structure, a refusal.
const MODEL = `
import torch

class Scale(torch.nn.Module):
    def forward(self, x, ids):
        return {"y": x * 2 + ids.float().sum(), "total": (x.sum(),)}

    def probe(self):
        return "eager"

def build():
    return Scale()
`;

const HOOKS = `
import coil_bridge

CALLS = [0]

def counting(model, request):
    def run(x, ids):
        CALLS[0] += 1
        return model(x, ids)
    return run

def same(model, request):
    assert [list(t.shape) for t in request.examples[0]] == [[2, 3], [2]], request.examples[0]
    assert request.dynamic == [[0], [0]] and request.names == ["x", "ids"] and request.options == {"tag": 7}
    def run(x, ids):
        out = model(x, ids)
        return {"y": out["y"] + 1e-7, "total": out["total"]}
    return run

def wrong(model, request):
    return lambda x, ids: {"y": model(x, ids)["y"] + 1, "total": model(x, ids)["total"]}

def other_structure(model, request):
    return lambda x, ids: model(x, ids)["y"]

FLAKY_CALLS = [0]

def flaky(model, request):
    """Equal to eager, but fails on a batch of 5 (as a graph that cannot take a shape)."""
    def run(x, ids):
        if x.shape[0] == 5:
            raise RuntimeError("no kernel for a batch of 5")
        FLAKY_CALLS[0] += 1
        return model(x, ids)
    return run

def refuse(model, request):
    raise coil_bridge.AcceleratorUnavailable("not on this interpreter")
`;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "coil-accelerator-"));
  writeFileSync(join(dir, "scale.py"), MODEL);
  writeFileSync(join(dir, "hooks.py"), HOOKS);
});

let pool: InterpreterPool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

function accelerator(fn: string): Accelerator {
  return { name: fn, hook: { file: join(dir, "hooks.py"), function: fn }, tolerance: { rtol: 1e-5, atol: 1e-6 }, hookOptions: () => ({ tag: 7 }) };
}

const INPUTS = [
  { name: "x", dtype: "float32" as const, shape: [-1, 3] },
  { name: "ids", dtype: "int64" as const, shape: [-1] },
];

async function replicate(choice: Accelerator | string, inputs = INPUTS, accelerators: Accelerator[] = []) {
  pool ??= await InterpreterPool.create({ size: 2, python: PYTHON, backend: new PlainPythonBackend(), accelerators });
  const model = pool.replicate({ file: join(dir, "scale.py"), factory: "build", accelerator: choice, inputs });
  await model.materialize();
  return model;
}

const x = Tensor.from("float32", [1, 3], [1, 2, 3]);
const ids = Tensor.from("int64", [1], [0n]);

describe("accelerators", () => {
  it("run the accelerated form in every interpreter when it equals eager; other methods reach the eager model", async () => {
    const model = await replicate("same", INPUTS, [accelerator("same")]);
    expect(model.acceleration).toEqual({ accelerator: "same", active: true, interpreters: 2, accelerated: 2 });
    const y = await model.call<{ y: Tensor<"float32"> }>([x, ids]);
    expect(Array.from(y.y.data)).toEqual([2, 4, 6].map((v) => Math.fround(v + 1e-7)));
    expect(await model.callMethod("probe")).toBe("eager");
  });

  it("run the accelerated form from an interpreter's first call, without materializing first", async () => {
    pool = await InterpreterPool.create({ size: 1, python: PYTHON, backend: new PlainPythonBackend() });
    const model = pool.replicate({ file: join(dir, "scale.py"), factory: "build", accelerator: accelerator("counting"), inputs: INPUTS });
    await model.call([x, ids]);
    expect(model.acceleration).toMatchObject({ active: true, interpreters: 1 });
    // The check ran it on both example sets, then the call itself.
    expect(await pool.run("eval_expr", ["__import__('sys').modules['coil_plugin_hooks'].CALLS[0]"])).toBe(3);
  });

  it("leave the model eager when its accelerated form differs, with the difference as the reason", async () => {
    const model = await replicate(accelerator("wrong"));
    expect(model.acceleration).toMatchObject({ active: false, accelerated: 0, interpreters: 2 });
    expect(model.acceleration!.reason).toMatch(/not equal to eager on example inputs \[2, 3\], \[2\]: output 0 differs from eager's by up to 1/);
    const y = await model.call<{ y: Tensor<"float32"> }>([x, ids]);
    expect(Array.from(y.y.data)).toEqual([2, 4, 6]);
  });

  it("answer a call the accelerated form fails on with eager, and send that shape to eager from then on", async () => {
    pool = await InterpreterPool.create({ size: 1, python: PYTHON, backend: new PlainPythonBackend() });
    const model = pool.replicate({ file: join(dir, "scale.py"), factory: "build", accelerator: accelerator("flaky"), inputs: INPUTS });
    const served = () => pool!.run<number>("eval_expr", ["__import__('sys').modules['coil_plugin_hooks'].FLAKY_CALLS[0]"]);
    const five = [Tensor.from("float32", [5, 3], new Float32Array(15).fill(1)), Tensor.from("int64", [5], [1n, 1n, 1n, 1n, 1n])];
    for (let i = 0; i < 3; i++) {
      const y = await model.call<{ y: Tensor<"float32"> }>(five);
      expect(Array.from(y.y.data)).toEqual(new Array(15).fill(2 + 5));
    }
    await model.sampleAcceleration();
    expect(model.acceleration).toMatchObject({ active: true, fallbackCalls: 3, fallbackError: "RuntimeError: no kernel for a batch of 5" });
    // Other shapes still run the accelerated form (2 example sets at load, then this call).
    await model.call([x, ids]);
    expect(await served()).toBe(3);
    // A call eager fails on too gets eager's own error, and is not counted.
    await expect(model.call([five[0]])).rejects.toThrow(/forward\(\) missing 1 required positional argument: 'ids'/);
    await model.sampleAcceleration();
    expect(model.acceleration?.fallbackCalls).toBe(3);
  });

  it("leave it eager when the accelerated form returns another structure", async () => {
    const model = await replicate(accelerator("other_structure"));
    expect(model.acceleration!.reason).toMatch(/another structure than eager/);
  });

  it("leave it eager when the hook refuses, with its message", async () => {
    const model = await replicate(accelerator("refuse"));
    expect(model.acceleration).toMatchObject({ active: false, reason: "AcceleratorUnavailable: not on this interpreter" });
  });

  it("need an input signature to make example inputs from", async () => {
    const model = await replicate(accelerator("same"), []);
    expect(model.acceleration).toMatchObject({ active: false, reason: expect.stringMatching(/no input signature/) });
    expect(await model.callMethod("probe")).toBe("eager");
  });

  it("are named among the pool's accelerators; an unknown name says which package to install", async () => {
    pool = await InterpreterPool.create({ size: 1, python: PYTHON, backend: new PlainPythonBackend() });
    expect(() => pool!.replicate({ file: join(dir, "scale.py"), factory: "build", accelerator: "compile" })).toThrow(
      expect.objectContaining({ code: "PLUGIN_FAILED", message: expect.stringMatching(/@coil\/accelerator-compile/) }),
    );
  });
});
