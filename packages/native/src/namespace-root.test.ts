import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { beforeAll, describe, expect, inject, it } from "vitest";

const PYTHON = inject("testPython");
const CHILD = join(resolve(dirname(fileURLToPath(import.meta.url))), "rtld-global.child.mjs");
const execFileAsync = promisify(execFile);

// Native code in a namespace that asks for RTLD_GLOBAL itself: a library called
// through ctypes, and an extension module (docs/engine.md, fact 5).
const DLOPENER_C = `#include <dlfcn.h>
int open_global(const char* path) { return dlopen(path, RTLD_NOW | RTLD_GLOBAL) != 0; }`;
const TARGET_C = "int coil_target_answer(void) { return 42; }";
const EXTENSION_C = `#include <Python.h>
#include <dlfcn.h>
static PyObject* load(PyObject* self, PyObject* path) {
  const char* file = PyUnicode_AsUTF8(path);
  if (file == NULL) return NULL;
  if (dlopen(file, RTLD_NOW | RTLD_GLOBAL) == NULL) return PyErr_Format(PyExc_OSError, "%s", dlerror());
  Py_RETURN_TRUE;
}
static PyMethodDef methods[] = {{"load", load, METH_O, "dlopen(path, RTLD_NOW | RTLD_GLOBAL)"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "rtld_global_ext", NULL, -1, methods};
PyMODINIT_FUNC PyInit_rtld_global_ext(void) { return PyModule_Create(&module); }`;

let dir: string;
const lib = (name: string) => join(dir, `lib${name}.so`);
let extension: string;

function compile(source: string, output: string, flags: string[] = []): void {
  const file = `${output}.c`;
  writeFileSync(file, source);
  execFileSync("cc", ["-shared", "-fPIC", "-O1", ...flags, "-o", output, file]);
}

/** Python source that loads the extension and the ctypes library, each asking for
 * RTLD_GLOBAL, and reads back what the namespace root cleared. */
function loadingSource(targets: { viaExtension: string; viaCtypes: string }): string {
  return `
import ctypes, importlib.util, os
spec = importlib.util.spec_from_file_location("rtld_global_ext", ${JSON.stringify(extension)})
ext = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ext)
loaded_by_extension = ext.load(${JSON.stringify(targets.viaExtension)})
loaded_by_library = ctypes.CDLL(${JSON.stringify(lib("dlopener"))}).open_global(${JSON.stringify(targets.viaCtypes)}.encode())
answer = ctypes.CDLL(${JSON.stringify(targets.viaCtypes)}).coil_target_answer()
try:
    root = ctypes.CDLL("libcoil_namespace.so", mode=os.RTLD_NOLOAD)
    root.coil_namespace_cleared_path.restype = ctypes.c_char_p
    cleared = [root.coil_namespace_cleared_path(i).decode() for i in range(root.coil_namespace_cleared())]
except OSError:
    cleared = None
result = {"extension": loaded_by_extension, "library": loaded_by_library, "answer": answer, "cleared": cleared}
`;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "coil-rtld-"));
  compile(DLOPENER_C, lib("dlopener"));
  compile(TARGET_C, lib("target_a"));
  compile(TARGET_C, lib("target_b"));
  const [include, suffix] = execFileSync(PYTHON, ["-c", "import sysconfig as s; print(s.get_paths()['include']); print(s.get_config_var('EXT_SUFFIX'))"], {
    encoding: "utf8",
  })
    .trim()
    .split("\n");
  extension = join(dir, `rtld_global_ext${suffix}`);
  compile(EXTENSION_C, extension, [`-I${include}`]);
});

async function runChild(mode: "root" | "none", source: string) {
  return execFileAsync(process.execPath, [CHILD, PYTHON, mode, source], { timeout: 120_000 });
}

describe("RTLD_GLOBAL inside an interpreter's namespace", () => {
  it("is cleared for every dlopen, from an extension module or a library, and the process lives", async () => {
    const { stdout } = await runChild("root", loadingSource({ viaExtension: lib("target_a"), viaCtypes: lib("target_b") }));
    expect(JSON.parse(stdout)).toEqual({
      extension: true,
      library: 1,
      answer: 42,
      cleared: expect.arrayContaining([lib("target_a"), lib("target_b")]),
    });
  }, 150_000);

  it("crashes the whole process without the namespace root (why it exists)", async () => {
    const failure = await runChild("none", loadingSource({ viaExtension: lib("target_a"), viaCtypes: lib("target_b") })).then(
      () => undefined,
      (error: { signal?: string; code?: number }) => error,
    );
    expect(failure).toBeDefined();
    expect(failure?.signal).toBe("SIGSEGV");
  }, 150_000);
});
