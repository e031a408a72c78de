#!/usr/bin/env node
// Which libraries ask for RTLD_GLOBAL inside an interpreter (docs/engine.md, fact 5).
// Starts one interpreter per Python given (default: Debian's and the venv's), with the
// bridge's own ctypes/setdlopenflags guard taken out so that every request reaches
// the namespace root, imports common libraries and runs a little of each, and prints
// what the root cleared, as a table. Needs @coil/native built.
//   node tools/survey/rtld-global.mjs [python ...]
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { bridgePath, discoverPython, loadAddon, namespaceRootPath } from "@coil/native";

const pythons = process.argv.slice(2);
if (pythons.length === 0) pythons.push("/usr/bin/python3", new URL("../../.venv-torch2/bin/python", import.meta.url).pathname);

// The bridge without its Python-level guard: the root alone clears the flag.
const unguarded = join(mkdtempSync(join(tmpdir(), "coil-survey-")), "coil_bridge.py");
const bridge = readFileSync(bridgePath(), "utf8");
const guard = /^ctypes\.CDLL\.__init__ = _cdll_init_local\nsys\.setdlopenflags\(.*\)\n/m;
if (!guard.test(bridge)) throw new Error("the survey no longer recognises the bridge's RTLD_GLOBAL guard: update it");
writeFileSync(unguarded, bridge.replace(guard, ""));

// Each step imports or runs something; the root's notes are read after each.
const STEPS = {
  numpy: "import numpy; numpy.linalg.inv(numpy.eye(3))",
  torch: "import torch; torch.ones(2) @ torch.ones(2)",
  "torch.ops.load_library (torchvision)": "import torchvision; torchvision.ops.nms(torch.rand(3, 4) * 10, torch.rand(3), 0.5)",
  "torch.compile": "torch.compile(lambda x: (x * 2).sin())(torch.ones(4))",
  transformers: "import transformers",
  tokenizers: "import tokenizers",
  safetensors: "import safetensors.torch",
  onnx: "import onnx",
  onnxruntime:
    "import onnxruntime; from onnx import helper, TensorProto as T\n" +
    "g = helper.make_graph([helper.make_node('Relu', ['x'], ['y'])], 'g', [helper.make_tensor_value_info('x', T.FLOAT, [1])], [helper.make_tensor_value_info('y', T.FLOAT, [1])])\n" +
    "onnxruntime.InferenceSession(helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)], ir_version=8).SerializeToString(), providers=['CPUExecutionProvider'])",
  scipy: "import scipy.linalg",
  sklearn: "import sklearn.linear_model",
};

const READ = `
import ctypes, os
_root = ctypes.CDLL("libcoil_namespace.so", mode=os.RTLD_NOLOAD)
_root.coil_namespace_cleared_path.restype = ctypes.c_char_p
def _cleared():
    return [(_root.coil_namespace_cleared_path(i) or b"?").decode() for i in range(_root.coil_namespace_cleared())]
`;

const addon = loadAddon();
let jobId = 1;
const rows = [];
for (const executable of pythons) {
  const python = await discoverPython({ python: executable });
  const { interpreter, ready } = addon.startInterpreter({
    library: python.library,
    executable: python.executable,
    sysPath: python.sysPath,
    bridgePath: unguarded,
    namespaceRoot: namespaceRootPath(),
    jobId: jobId++,
  });
  const version = await ready;
  await interpreter.call("exec_source", [READ], jobId++);
  let seen = 0;
  for (const [name, source] of Object.entries(STEPS)) {
    let outcome;
    try {
      await interpreter.call("exec_source", [source], jobId++);
      const cleared = await interpreter.call("eval_expr", ["_cleared()"], jobId++);
      outcome = cleared.slice(seen).map((path) => path.replace(/^.*site-packages\//, "").replace(/^.*dist-packages\//, "")).join(", ") || "none";
      seen = cleared.length;
    } catch (error) {
      outcome = `not run: ${String(error.message).split("\n")[0].slice(0, 60)}`;
    }
    rows.push({ python: `${version} ${executable}`, step: name, cleared: outcome });
  }
}
console.log("| Python | step | dlopen with RTLD_GLOBAL (cleared by the namespace root) |\n| --- | --- | --- |");
for (const r of rows) console.log(`| ${r.python} | ${r.step} | ${r.cleared} |`);
process.exit(0);
