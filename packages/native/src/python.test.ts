import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { discoverPython, inspectPython } from "./python.js";

describe("Python discovery", () => {
  it("finds Debian's python3 with a shared libpython and torch", async () => {
    const python = await discoverPython({ python: "/usr/bin/python3", requiredModules: ["torch"] });
    expect(python.library).toMatch(/libpython3\.\d+\.so/);
    expect(python.version).toMatch(/^3\.\d+\.\d+$/);
    expect(python.modules.torch).toBe(true);
    expect(python.sysPath.some((p) => p.includes("dist-packages") || p.includes("site-packages"))).toBe(true);
  });

  it("says clearly when the named Python does not exist", async () => {
    await expect(discoverPython({ python: "/nonexistent/python3" })).rejects.toMatchObject({
      code: "PYTHON_NOT_FOUND",
      message: expect.stringContaining("/nonexistent/python3"),
    });
  });

  it("says which module is missing", async () => {
    await expect(
      discoverPython({ python: "/usr/bin/python3", requiredModules: ["coil_no_such_module"] }),
    ).rejects.toMatchObject({ code: "BACKEND_UNAVAILABLE", message: expect.stringContaining("coil_no_such_module") });
  });

  it("refuses a Python without a shared libpython", async () => {
    // A real CPython made to report a static build: sysconfig reads its build
    // variables from the module _PYTHON_SYSCONFIGDATA_NAME names.
    const dir = mkdtempSync(join(tmpdir(), "coil-static-"));
    const realName = execFileSync("/usr/bin/python3", ["-c", "import sysconfig; print(sysconfig._get_sysconfigdata_name())"])
      .toString()
      .trim();
    writeFileSync(
      join(dir, "_sysconfigdata_coil_static.py"),
      [
        "import importlib",
        `_real = importlib.import_module(${JSON.stringify(realName)})`,
        "build_time_vars = dict(_real.build_time_vars, Py_ENABLE_SHARED=0, LDLIBRARY='libpython3.a', INSTSONAME='libpython3.a')",
      ].join("\n"),
    );
    const script = join(dir, "python-static");
    writeFileSync(
      script,
      `#!/bin/sh\nexport PYTHONPATH=${dir} _PYTHON_SYSCONFIGDATA_NAME=_sysconfigdata_coil_static\nexec /usr/bin/python3 "$@"\n`,
      { mode: 0o755 },
    );
    await expect(inspectPython(script)).rejects.toMatchObject({
      code: "NO_SHARED_LIBPYTHON",
      message: expect.stringContaining("--enable-shared"),
    });
  });
});
