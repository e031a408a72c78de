import { execFile } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { describe, expect, inject, it } from "vitest";

import { CoilError } from "@coil/errors";

import { explainTlsExhaustion, interpreterBudget, MAX_INTERPRETERS } from "./capacity.js";
import { discoverPython } from "./python.js";
import { acquireInterpreters, interpreterStats, releaseInterpreters } from "./registry.js";

const PYTHON = inject("testPython");
const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

describe("the namespace budget", () => {
  it("follows glibc.rtld.nns, capped at 15", () => {
    expect(interpreterBudget("")).toBe(4);
    expect(interpreterBudget("glibc.malloc.check=0")).toBe(4);
    expect(interpreterBudget("glibc.rtld.nns=16")).toBe(15);
    expect(interpreterBudget("glibc.malloc.check=0:glibc.rtld.nns=8")).toBe(7);
    expect(interpreterBudget("glibc.rtld.nns=64")).toBe(MAX_INTERPRETERS);
  });

  it("explains running out of static TLS, from the engine or from Python, and nothing else", () => {
    const fromPython = new CoilError("PYTHON_ERROR", "libgomp.so.1: cannot allocate memory in static TLS block", {
      pythonType: "OSError",
    });
    expect(explainTlsExhaustion(fromPython)).toMatchObject({
      code: "GLIBC_TUNABLE_MISSING",
      message: expect.stringContaining("GLIBC_TUNABLES=glibc.rtld.nns=16"),
      cause: fromPython,
    });
    const fromEngine = new CoilError("GLIBC_TUNABLE_MISSING", "cannot load libpython: cannot allocate memory in static TLS block");
    expect(explainTlsExhaustion(fromEngine)).toMatchObject({ code: "GLIBC_TUNABLE_MISSING", cause: fromEngine });
    const other = new CoilError("PYTHON_ERROR", "division by zero");
    expect(explainTlsExhaustion(other)).toBe(other);
  });

  it("names the fix when a process started without the tunable asks for more", async () => {
    // A real process started without GLIBC_TUNABLES (uses the built package).
    const script = `
      import { acquireInterpreters, discoverPython } from "@coil/native";
      const python = await discoverPython({ python: ${JSON.stringify(PYTHON)} });
      try { await acquireInterpreters(6, python); console.log("started"); }
      catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }
      process.exit(0);`;
    const env = { ...process.env };
    delete env.GLIBC_TUNABLES;
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
      cwd: packageRoot,
      env,
    });
    const result = JSON.parse(stdout.trim()) as { code: string; message: string };
    expect(result.code).toBe("GLIBC_TUNABLE_MISSING");
    expect(result.message).toContain("GLIBC_TUNABLES=glibc.rtld.nns=16");
  });
});

describe("a full process", () => {
  it("starts 15 interpreters that import torch, and refuses a 16th", async () => {
    expect(interpreterBudget()).toBe(15); // the test command starts processes with the tunable
    const python = await discoverPython({ python: PYTHON, requiredModules: ["torch"] });
    const all = await acquireInterpreters(15, python);
    const sums = await Promise.all(all.map((i) => i.exec("import torch").then(() => i.eval("float(torch.ones(3).sum())"))));
    expect(sums).toEqual(Array(15).fill(3));
    expect(new Set(await Promise.all(all.map((i) => i.eval("id(None)")))).size).toBe(15);
    expect(interpreterStats().created).toBe(15);
    await expect(acquireInterpreters(1, python)).rejects.toMatchObject({ code: "INTERPRETER_LIMIT" });
    await releaseInterpreters(all);
    // Returned interpreters serve again: no new namespace is needed.
    const again = await acquireInterpreters(2, python);
    expect(await again[0]!.eval("1 + 1")).toBe(2);
    await releaseInterpreters(again);
  }, 240_000);
});
