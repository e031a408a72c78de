/** Runs the test Python (vitest.shared.ts: $COIL_TEST_PYTHON, default /usr/bin/python3) for tests that need torch. */
import { spawnSync } from "node:child_process";

import { inject } from "vitest";

export const PYTHON = inject("testPython");

let torchAvailable: boolean | undefined;

/** True when PYTHON can import torch.package; tests that need it are skipped otherwise. */
export function hasTorch(): boolean {
  torchAvailable ??= spawnSync(PYTHON, ["-c", "import torch.package"], { stdio: "ignore" }).status === 0;
  return torchAvailable;
}

/** Runs `script` with `args` (sys.argv[1:]); returns stdout, throws with stderr on failure. */
export function runPython(script: string, args: string[] = []): string {
  const result = spawnSync(PYTHON, ["-c", script, ...args], {
    encoding: "utf8",
    env: { ...process.env, PYTHONWARNINGS: "ignore", PYTHONDONTWRITEBYTECODE: "1" },
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) {
    throw new Error(`python failed (${result.status ?? result.signal}):\n${result.stderr}`);
  }
  return result.stdout;
}

/**
 * Writes, with torch.package.PackageExporter, an MLP whose class is interned
 * from a package `mymodels`; prints its output for a fixed input as JSON.
 */
export const EXPORT_MLP = String.raw`
import sys, os, json
workdir, out = sys.argv[1], sys.argv[2]
pkg = os.path.join(workdir, "mymodels")
os.makedirs(pkg, exist_ok=True)
with open(os.path.join(pkg, "__init__.py"), "w") as f:
    f.write("")
with open(os.path.join(pkg, "mlp.py"), "w") as f:
    f.write("import torch\n\nclass MLP(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.a = torch.nn.Linear(4, 8)\n        self.b = torch.nn.Linear(8, 2)\n    def forward(self, x):\n        return self.b(torch.relu(self.a(x)))\n")
sys.path.insert(0, workdir)
import torch
from torch.package import PackageExporter
import mymodels.mlp
torch.manual_seed(0)
model = mymodels.mlp.MLP().eval()
with PackageExporter(out) as e:
    e.extern("torch.**")
    e.intern("mymodels.**")
    e.save_pickle("model", "model.pkl", model)
x = torch.arange(8, dtype=torch.float32).reshape(2, 4) / 8
with torch.no_grad():
    print(json.dumps({"output": model(x).flatten().tolist()}))
`;

/**
 * Loads an archive with torch.package.PackageImporter (in a fresh process, so
 * nothing of the exporter's modules is around), runs the model on the fixed
 * input, and prints the output and where the class came from as JSON.
 */
export const IMPORT_MLP = String.raw`
import sys, json, zipfile
import torch
from torch.package import PackageImporter
path = sys.argv[1]
imp = PackageImporter(path)
model = imp.load_pickle("model", "model.pkl")
x = torch.arange(8, dtype=torch.float32).reshape(2, 4) / 8
with torch.no_grad():
    y = model(x)
with zipfile.ZipFile(path) as z:
    bad = z.testzip()
print(json.dumps({"output": y.flatten().tolist(), "module": type(model).__module__, "testzip": bad,
                  "names": zipfile.ZipFile(path).namelist()}))
`;
