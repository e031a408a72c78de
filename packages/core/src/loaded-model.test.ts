import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { fileMappings, Tensor, type Interpreter } from "@coil/native";
import { afterEach, beforeAll, describe, expect, inject, it } from "vitest";

import { PlainPythonBackend } from "../test/plain-backend.js";
import { InterpreterPool } from "./pool.js";

const PYTHON = inject("testPython");
const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), "../test/fixtures");
const ENTRY = { package: "artifacts", resource: "model.pkl" };
let dir: string;
let archiveA: string;
let archiveB: string;

beforeAll(() => {
  // Archives written by stock torch.package, as a user's existing tooling would.
  dir = mkdtempSync(join(tmpdir(), "coil-archives-"));
  archiveA = join(dir, "a.pt");
  archiveB = join(dir, "b.pt");
  const make = join(FIXTURES, "make_archive.py");
  execFileSync(PYTHON, [make, join(FIXTURES, "archive_a"), archiveA]);
  execFileSync(PYTHON, [make, join(FIXTURES, "archive_b"), archiveB]);
});

let pool: InterpreterPool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

const ones = () => Tensor.from("float32", [4], [1, 1, 1, 1]);

describe("loading archives", () => {
  it("loads an archive written by torch.package's PackageExporter", async () => {
    pool = await InterpreterPool.create({ size: 1, python: PYTHON, backend: new PlainPythonBackend() });
    const model = await pool.loadArchive(archiveA);
    expect(model.entryPoint).toEqual(ENTRY); // found: the archive's only pickle
    expect(model.manifest).toBeUndefined();
    expect(Array.from((await model.call<Tensor<"float32">>([ones()])).data)).toEqual([2, 2, 2, 2]);
  });

  it("is lazy per interpreter by default, eager on request", async () => {
    pool = await InterpreterPool.create({ size: 2, python: PYTHON, backend: new PlainPythonBackend() });
    const lazy = await pool.loadArchive(archiveA);
    expect(lazy.object.instances).toBe(0);
    const eager = await pool.loadArchive(archiveA, { eager: true });
    expect(eager.object.instances).toBe(2);
  });

  it("maps the archive once per interpreter: pages shared, writes kept apart", async () => {
    pool = await InterpreterPool.create({ size: 2, python: PYTHON, backend: new PlainPythonBackend() });
    const copy = join(dir, "shared.pt");
    copyFileSync(archiveA, copy);
    const model = await pool.loadArchive(copy, { eager: true });
    const [first, second] = pool.interpreters as [Interpreter, Interpreter];
    const weightSum = (i: Interpreter) =>
      i.call<number>("eval_expr", [`float(__import__('coil_bridge')._objects[${model.object.id}].weight.sum())`]);
    expect([await weightSum(first), await weightSum(second)]).toEqual([8, 8]);
    // Both mappings of the file are backed by the same page-cache pages: every
    // resident page of each is shared, none private.
    const mappings = fileMappings(copy);
    expect(mappings.length).toBe(2);
    for (const m of mappings) {
      expect(m.Rss).toBeGreaterThan(0);
      expect(m.Shared_Clean).toBe(m.Rss);
      expect(m.Private_Dirty).toBe(0);
    }
    // A model that writes its weights in place changes its own copy only.
    await first.call("exec_source", [
      `import torch\nwith torch.no_grad():\n    __import__('coil_bridge')._objects[${model.object.id}].weight.mul_(0)`,
    ]);
    expect([await weightSum(first), await weightSum(second)]).toEqual([0, 8]);
  });

  it("keeps modules of the same name from two archives apart", async () => {
    pool = await InterpreterPool.create({ size: 1, python: PYTHON, backend: new PlainPythonBackend() });
    const a = await pool.loadArchive(archiveA);
    const b = await pool.loadArchive(archiveB);
    expect(await a.object.callMethod("origin")).toBe("a");
    expect(await b.object.callMethod("origin")).toBe("b");
    expect(Array.from((await a.call<Tensor<"float32">>([ones()])).data)).toEqual([2, 2, 2, 2]);
    expect(Array.from((await b.call<Tensor<"float32">>([ones()])).data)).toEqual([4, 4, 4, 4]);
  });

  it("refuses a tampered archive before any interpreter sees it", async () => {
    pool = await InterpreterPool.create({ size: 1, python: PYTHON, backend: new PlainPythonBackend() });
    const broken = join(dir, "truncated.pt");
    writeFileSync(broken, readFileSync(archiveA).subarray(0, 300));
    await expect(pool.loadArchive(broken)).rejects.toMatchObject({ code: "ARCHIVE_INVALID" });
    await expect(pool.loadArchive(join(dir, "missing.pt"))).rejects.toMatchObject({ code: expect.any(String) });
  });

  it("requires a signature when asked", async () => {
    pool = await InterpreterPool.create({ size: 1, python: PYTHON, backend: new PlainPythonBackend() });
    await expect(pool.loadArchive(archiveA, { requireSignature: true })).rejects.toMatchObject({ code: "ARCHIVE_UNSIGNED" });
  });

  it("names the entry point it needs when an archive has several pickles", async () => {
    pool = await InterpreterPool.create({ size: 1, python: PYTHON, backend: new PlainPythonBackend() });
    const two = join(dir, "two.pt");
    execFileSync(PYTHON, [
      "-c",
      "import sys; sys.path.insert(0, sys.argv[1]); import model\n" +
        "from torch.package import PackageExporter\n" +
        "with PackageExporter(sys.argv[2]) as e:\n" +
        "    e.extern(['torch', 'torch.**']); e.intern('model')\n" +
        "    e.save_pickle('artifacts', 'first.pkl', model.Scale()); e.save_pickle('artifacts', 'second.pkl', model.Scale())",
      join(FIXTURES, "archive_a"),
      two,
    ]);
    await expect(pool.loadArchive(two)).rejects.toMatchObject({ code: "INVALID_ARGUMENT", message: expect.stringContaining("entryPoint") });
    const chosen = await pool.loadArchive(two, { entryPoint: { package: "artifacts", resource: "second.pkl" } });
    expect(await chosen.object.callMethod("origin")).toBe("a");
  });

  it("unloads: later calls are refused and the instances are gone", async () => {
    pool = await InterpreterPool.create({ size: 1, python: PYTHON, backend: new PlainPythonBackend() });
    const copy = join(dir, "copy.pt");
    copyFileSync(archiveA, copy);
    const model = await pool.loadArchive(copy, { eager: true });
    await model.unload();
    await expect(model.call([ones()])).rejects.toMatchObject({ code: "CLOSED" });
    expect(await pool.run("eval_expr", ["len(__import__('coil_bridge')._objects)"])).toBe(0);
  });
});

