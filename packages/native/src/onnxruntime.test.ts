import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, describe, expect, inject, it } from "vitest";

import { interpreterBudget } from "./capacity.js";
import type { Interpreter } from "./interpreter.js";
import { discoverPython } from "./python.js";
import { acquireInterpreters, releaseInterpreters } from "./registry.js";

const PYTHON = inject("testPython");
const hasOnnxruntime = (() => {
  try {
    execFileSync(PYTHON, ["-c", "import onnx, onnxruntime"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

// onnxruntime's C++ dlopens its providers library with RTLD_GLOBAL: before the
// namespace root (docs/engine.md, fact 5) importing it killed the process.
const RUN_ONNX = `
import numpy as np
import onnx, onnxruntime
from onnx import TensorProto, helper
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
options = onnxruntime.SessionOptions()
options.intra_op_num_threads = 1
session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
relu = session.run(None, {"x": np.array([[-1, 2, -3, 4], [5, -6, 7, -8]], dtype=np.float32)})[0].tolist()
`;

describe.skipIf(!hasOnnxruntime)(`onnxruntime in every interpreter (${PYTHON} ${hasOnnxruntime ? "has" : "lacks"} onnx and onnxruntime)`, () => {
  let interpreters: Interpreter[] = [];
  afterAll(() => releaseInterpreters(interpreters));

  it("imports and runs a session in as many interpreters as the process may hold", async () => {
    // Where onnxruntime would keep its telemetry database: every interpreter's own
    // SQLite writing one file crashed the process (SIGBUS) now and then; the bridge
    // turns the telemetry off.
    const cache = mkdtempSync(join(tmpdir(), "coil-ort-cache-"));
    process.env.XDG_CACHE_HOME = cache;
    const python = await discoverPython({ python: PYTHON, requiredModules: ["onnxruntime"] });
    interpreters = await acquireInterpreters(interpreterBudget(), python);
    await Promise.all(interpreters.map((i) => i.exec(RUN_ONNX)));
    const results = await Promise.all(interpreters.map((i) => i.eval("relu")));
    expect(results).toHaveLength(interpreterBudget());
    for (const result of results) expect(result).toEqual([[0, 2, 0, 4], [5, 0, 7, 0]]);
    expect(existsSync(join(cache, "Microsoft", "DeveloperTools", ".onnxruntime", "onnxruntime.db"))).toBe(false);
  }, 300_000);
});
