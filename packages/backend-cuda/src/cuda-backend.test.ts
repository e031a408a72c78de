import "reflect-metadata";

import { execFileSync } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { createCoilContainer, createPoolFromContainer, InterpreterPool, TOKENS } from "@coil/core";
import { CoilError } from "@coil/errors";
import { describe, expect, inject, it } from "vitest";

import { CUDA_OUT_OF_MEMORY_TYPE, CudaBackend, isCudaOutOfMemory } from "./cuda-backend.js";
import { registerCudaBackend } from "./register.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PYTHON = inject("testPython");

/** What this machine's torch says about CUDA, asked of a plain Python process. */
function torchCuda(): { version: string; cuda: string | null; available: boolean } {
  const out = execFileSync(PYTHON, [
    "-c",
    "import json, torch; print(json.dumps({'version': torch.__version__, 'cuda': torch.version.cuda, 'available': torch.cuda.is_available()}))",
  ]);
  return JSON.parse(out.toString());
}

const torch = torchCuda();

describe("CudaBackend options", () => {
  it("has a name and needs torch", () => {
    const backend = new CudaBackend();
    expect(backend.name).toBe("cuda");
    expect(backend.requiredModules).toEqual(["torch"]);
  });

  it("accepts every documented placement", () => {
    expect(() => new CudaBackend({ devices: [0, 1], placement: "round-robin" })).not.toThrow();
    expect(() => new CudaBackend({ placement: { interpreters: { 0: 1 } } })).not.toThrow();
    expect(() => new CudaBackend({ placement: { weights: { 0: 2, 1: 1 } } })).not.toThrow();
    expect(() => new CudaBackend({ placement: (i) => i % 2, pinnedStaging: false, warmup: true })).not.toThrow();
  });

  it("refuses bad options with INVALID_ARGUMENT", () => {
    for (const options of [
      { devices: [] },
      { devices: [0, 0] },
      { devices: [-1] },
      { placement: "packed" },
      { placement: { weights: { 0: 0 } } },
      { pinnedStaging: "yes" },
      { warmup: 1 },
    ]) {
      expect(() => new CudaBackend(options as never), JSON.stringify(options)).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT", message: expect.stringMatching(/^cuda backend: /) }),
      );
    }
  });

  it("checks options when registered, so a container never holds bad ones", () => {
    expect(() => registerCudaBackend(createCoilContainer(), { devices: [1, 1] })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT", message: expect.stringMatching(/distinct/) }),
    );
  });

  it("recognises a device out-of-memory error by its Python type", () => {
    const oom = new CoilError("PYTHON_ERROR", "cuda:0 ran out of memory", { pythonType: CUDA_OUT_OF_MEMORY_TYPE });
    expect(isCudaOutOfMemory(oom)).toBe(true);
    expect(isCudaOutOfMemory(new CoilError("PYTHON_ERROR", "x", { pythonType: "RuntimeError" }))).toBe(false);
    expect(isCudaOutOfMemory(new Error("x"))).toBe(false);
  });
});

describe.runIf(!torch.available)("CudaBackend on a machine where torch sees no CUDA", () => {
  const expected = new RegExp(
    `no CUDA device visible to torch in ${PYTHON.replace(/\//g, "\\/")} \\(torch ${torch.version.replace(/[.+]/g, "\\$&")}, ` +
      (torch.cuda === null ? "built without CUDA\\)" : `built with CUDA ${torch.cuda.replace(/\./g, "\\.")}\\)`),
  );

  it("refuses to create a pool, with BACKEND_UNAVAILABLE saying why", async () => {
    const error = await InterpreterPool.create({ size: 2, python: PYTHON, backend: new CudaBackend() }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CoilError);
    expect(error).toMatchObject({ code: "BACKEND_UNAVAILABLE", message: expect.stringMatching(expected) });
    expect((error as CoilError).message).toMatch(/^cuda backend: /);
    // The Python error it came from is kept as the cause, traceback included.
    expect((error as CoilError).cause).toMatchObject({ code: "PYTHON_ERROR", pythonType: "coil_backend_cuda.CudaUnavailable" });
    expect((error as CoilError).details).toMatchObject({ python: PYTHON });
  });

  it("gives the interpreters back each time it refuses (no leak of the process's 15)", async () => {
    // 8 refusals of 2 interpreters would need 16 > 15 if any were kept.
    for (let i = 0; i < 8; i++) {
      await expect(InterpreterPool.create({ size: 2, python: PYTHON, backend: new CudaBackend() })).rejects.toMatchObject({
        code: "BACKEND_UNAVAILABLE",
      });
    }
  });

  it("says the same when registered into a container", async () => {
    const container = registerCudaBackend(createCoilContainer({ size: 1, python: PYTHON }), { devices: [0], warmup: true });
    expect(container.resolve(TOKENS.Backend).name).toBe("cuda");
    await expect(createPoolFromContainer(container)).rejects.toMatchObject({
      code: "BACKEND_UNAVAILABLE",
      message: expect.stringMatching(expected),
    });
  });
});

describe("the Python side's probe, against stand-ins for torch", () => {
  // Each case runs coil_backend_cuda.probe in a plain Python process whose `torch`
  // is a stand-in, to check the messages for builds and machines not at hand here.
  function probeWith(fake: string): string {
    const script = [
      "import sys, types",
      "torch = types.ModuleType('torch'); torch.__version__ = '2.3.0'",
      "torch.version = types.SimpleNamespace(cuda=None)",
      "torch.cuda = types.SimpleNamespace(is_available=lambda: False, device_count=lambda: 0)",
      "torch._C = types.SimpleNamespace()",
      fake,
      "sys.modules['torch'] = torch",
      `sys.path.insert(0, ${JSON.stringify(resolve(ROOT, "python"))})`,
      "import coil_backend_cuda as m",
      "try:",
      "    print(m.probe('/opt/venv/bin/python'))",
      "except m.CudaUnavailable as e:",
      "    print(type(e).__module__ + '.' + type(e).__qualname__ + ': ' + str(e))",
    ].join("\n");
    // -B: write no __pycache__ into the package's python/ folder.
    return execFileSync(PYTHON, ["-B", "-c", script]).toString().trim();
  }

  it("names a torch built without CUDA", () => {
    expect(probeWith("")).toMatch(
      /^coil_backend_cuda\.CudaUnavailable: no CUDA device visible to torch in \/opt\/venv\/bin\/python \(torch 2\.3\.0, built without CUDA\)/,
    );
  });

  it("names a CUDA build with no usable driver or device", () => {
    expect(probeWith("torch.version.cuda = '12.1'")).toMatch(
      /no CUDA device visible to torch in \/opt\/venv\/bin\/python \(torch 2\.3\.0, built with CUDA 12\.1\): torch\.cuda\.is_available\(\) is False/,
    );
  });

  it("reports devices, memory and versions when CUDA is there", () => {
    const out = probeWith(
      [
        "torch.version.cuda = '12.1'",
        "props = types.SimpleNamespace(name='Fake GPU', major=9, minor=0, total_memory=80 << 30, multi_processor_count=132)",
        "torch.cuda = types.SimpleNamespace(is_available=lambda: True, device_count=lambda: 2, get_device_properties=lambda i: props, mem_get_info=lambda i: (70 << 30, 80 << 30))",
        "torch._C = types.SimpleNamespace(_cuda_getDriverVersion=lambda: 12040)",
        "torch.backends = types.SimpleNamespace(cudnn=types.SimpleNamespace(version=lambda: 8902))",
      ].join("\n"),
    );
    expect(out).toContain("'runtime': '12.1'");
    expect(out).toContain("'driver': '12.4'");
    expect(out).toContain("'cudnn': 8902");
    expect(out).toContain("'index': 1, 'name': 'Fake GPU', 'capability': [9, 0]");
    expect(out).toContain(`'freeMemory': ${70 * 2 ** 30}`);
  });
});
