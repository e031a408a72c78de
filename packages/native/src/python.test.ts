import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import { describe, expect, inject, it } from "vitest";

import { discoverPython, inspectPython } from "./python.js";

const PYTHON = inject("testPython");

/** A real CPython made to report other build variables: sysconfig reads them from
 * the module _PYTHON_SYSCONFIGDATA_NAME names (no static CPython exists here: pyenv's
 * builds are shared, and Debian's statically linked python3 reports its shared twin's
 * variables). Returns the wrapper's path. */
function pythonReporting(overrides: string): string {
  const dir = mkdtempSync(join(tmpdir(), "coil-sysconfig-"));
  const realName = execFileSync(PYTHON, ["-c", "import sysconfig; print(sysconfig._get_sysconfigdata_name())"]).toString().trim();
  writeFileSync(
    join(dir, "_sysconfigdata_coil_test.py"),
    [
      "import importlib",
      `_real = importlib.import_module(${JSON.stringify(realName)})`,
      `build_time_vars = dict(_real.build_time_vars, ${overrides})`,
    ].join("\n"),
  );
  const script = join(dir, "python");
  writeFileSync(script, `#!/bin/sh\nexport PYTHONPATH=${dir} _PYTHON_SYSCONFIGDATA_NAME=_sysconfigdata_coil_test\nexec ${PYTHON} "$@"\n`, {
    mode: 0o755,
  });
  return script;
}

/** A new virtual environment of the test Python (no pip: nothing to download); its python. */
function makeVenv(): string {
  const venv = join(mkdtempSync(join(tmpdir(), "coil-venv-")), "env");
  execFileSync(PYTHON, ["-m", "venv", "--without-pip", venv]);
  return join(venv, "bin", "python");
}

describe("Python discovery", () => {
  it("finds the test Python with a shared libpython and torch", async () => {
    const python = await discoverPython({ python: PYTHON, requiredModules: ["torch"] });
    expect(python.library).toMatch(/libpython3\.\d+\.so/);
    expect(python.version).toMatch(/^3\.\d+\.\d+$/);
    expect(python.modules.torch).toBe(true);
    expect(python.sysPath.some((p) => p.includes("dist-packages") || p.includes("site-packages"))).toBe(true);
  });

  it("gives a virtual environment its own sys.path and its base's libpython", async () => {
    const base = await inspectPython(PYTHON);
    const python = makeVenv();
    const venv = dirname(dirname(python));
    const inVenv = await inspectPython(python);
    expect(inVenv.prefix).toBe(venv);
    expect(inVenv.basePrefix).toBe(base.basePrefix);
    expect(inVenv.sysPath).toContain(join(venv, "lib", `python${base.version.split(".").slice(0, 2).join(".")}`, "site-packages"));
    expect(inVenv.library).toBe(base.library);
    expect(inVenv.version).toBe(base.version);
  });

  it("says clearly when the named Python does not exist", async () => {
    await expect(discoverPython({ python: "/nonexistent/python3" })).rejects.toMatchObject({
      code: "PYTHON_NOT_FOUND",
      message: expect.stringContaining("/nonexistent/python3"),
    });
  });

  it("says which module is missing, and how to install it there", async () => {
    await expect(discoverPython({ python: PYTHON, requiredModules: ["coil_no_such_module"] })).rejects.toMatchObject({
      code: "BACKEND_UNAVAILABLE",
      message: expect.stringContaining("coil_no_such_module"),
    });
    const venv = makeVenv();
    await expect(discoverPython({ python: venv, requiredModules: ["coil_no_such_module"] })).rejects.toThrow(
      `${venv} -m pip install coil_no_such_module`,
    );
  });

  it("refuses a Python built without a shared libpython, naming --enable-shared", async () => {
    const python = pythonReporting("Py_ENABLE_SHARED=0, LDLIBRARY='libpython3.a', INSTSONAME='libpython3.a'");
    const refusal = inspectPython(python);
    await expect(refusal).rejects.toMatchObject({ code: "NO_SHARED_LIBPYTHON", details: { shared: false } });
    const { version } = await inspectPython(PYTHON);
    await expect(refusal).rejects.toThrow(`PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install ${version}`);
    await expect(refusal).rejects.toThrow("conda");
  });

  it("refuses a shared build whose libpython is not installed, naming the package", async () => {
    // Debian's python3.X runs without the libpython3.X package: its executable is static.
    const python = pythonReporting("LDLIBRARY='libpython3.99.so', INSTSONAME='libpython3.99.so.1.0'");
    const { version } = await inspectPython(PYTHON);
    const minor = version.split(".").slice(0, 2).join(".");
    const refusal = inspectPython(python);
    await expect(refusal).rejects.toMatchObject({ code: "NO_SHARED_LIBPYTHON", details: { shared: true } });
    await expect(refusal).rejects.toThrow("libpython3.99.so.1.0 is in none of");
    await expect(refusal).rejects.toThrow(`apt-get install libpython${minor}`);
  });
});
