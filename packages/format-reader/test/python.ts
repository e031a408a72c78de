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
 * Writes, with torch.package.PackageExporter, an archive of a small MLP whose
 * class lives in an interned package `mymodels` (so the archive holds sources,
 * a package __init__, pickles and storages). Prints a JSON summary read with
 * Python's zipfile: each record's name, local header offset, data offset, size
 * and CRC, plus the model's output for a fixed input and the torch version that wrote it.
 */
export const EXPORT_MLP = String.raw`
import sys, os, json, zipfile, struct
workdir, out = sys.argv[1], sys.argv[2]
pkg = os.path.join(workdir, "mymodels")
os.makedirs(pkg, exist_ok=True)
with open(os.path.join(pkg, "__init__.py"), "w") as f:
    f.write("from .mlp import MLP\n")
with open(os.path.join(pkg, "mlp.py"), "w") as f:
    f.write("import torch\n\nclass MLP(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.a = torch.nn.Linear(4, 8)\n        self.b = torch.nn.Linear(8, 2)\n    def forward(self, x):\n        return self.b(torch.relu(self.a(x)))\n")
sys.path.insert(0, workdir)
import torch
from torch.package import PackageExporter
import mymodels
torch.manual_seed(0)
model = mymodels.MLP().eval()
with PackageExporter(out) as e:
    e.extern("torch.**")
    e.intern("mymodels.**")
    e.save_pickle("model", "model.pkl", model)
    e.save_text("model", "notes.txt", "hello")
x = torch.arange(8, dtype=torch.float32).reshape(2, 4) / 8
with torch.no_grad():
    y = model(x)
records = []
with open(out, "rb") as f, zipfile.ZipFile(out) as z:
    for i in z.infolist():
        f.seek(i.header_offset)
        h = f.read(30)
        n, m = struct.unpack("<HH", h[26:30])
        records.append({"name": i.filename, "headerOffset": i.header_offset, "offset": i.header_offset + 30 + n + m,
                        "size": i.file_size, "crc32": i.CRC, "method": i.compress_type, "extra": f.read(n + m)[n:n+4].hex()})
print(json.dumps({"torch": torch.__version__, "records": records, "output": y.flatten().tolist(), "input": x.flatten().tolist()}))
`;
