import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

import { nextJobId, type Interpreter } from "./interpreter.js";
import { discoverPython } from "./python.js";
import { acquireInterpreters, interpreterStats, releaseInterpreters } from "./registry.js";
import { DTYPES, Tensor, type TypedArrayOf } from "./tensor.js";

const PYTHON = inject("testPython");
let a: Interpreter;
let b: Interpreter;

beforeAll(async () => {
  const python = await discoverPython({ python: PYTHON, requiredModules: ["torch"] });
  [a, b] = (await acquireInterpreters(2, python)) as [Interpreter, Interpreter];
  await a.exec("import torch");
  await b.exec("import torch");
});

afterAll(async () => {
  await releaseInterpreters([a, b]);
});

describe("values across the boundary", () => {
  it("round-trips JSON-like values, bytes and big integers", async () => {
    const value = {
      none: null,
      yes: true,
      int: -42,
      float: 2.5,
      text: "grüße 🐍",
      list: [1, [2, [3]], { deep: "x" }],
      bytes: Buffer.from([0, 1, 254, 255]),
      big: 2n ** 62n,
      huge: 2n ** 64n - 1n,
    };
    const back = await a.call<Record<string, unknown>>("echo", [value]);
    expect(back).toEqual({ ...value, bytes: Buffer.from([0, 1, 254, 255]) });
    expect(Buffer.isBuffer(back.bytes)).toBe(true);
  });

  it("turns Python tuples into arrays and keeps dict order", async () => {
    expect(await a.eval("(1, 'two', (3.5, None))")).toEqual([1, "two", [3.5, null]]);
    expect(Object.keys((await a.eval("{'z': 1, 'a': 2, 'm': 3}")) as object)).toEqual(["z", "a", "m"]);
    expect(await a.eval("{3: 'int key'}")).toEqual({ "3": "int key" });
  });

  it("never lets a dict key reach the prototype", async () => {
    const out = (await a.eval("{'__proto__': {'polluted': True}}")) as Record<string, unknown>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.hasOwn(out, "__proto__")).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  // A result crosses in one call of the decoder (result-decoder.ts): its values spread
  // over the call's arguments where they are few (<= 256), else packed in one array.
  it("crosses results of any size and nesting, tensors among them", async () => {
    await a.exec("import torch");
    for (const count of [0, 1, 255, 256, 257, 20_000]) {
      expect(await a.eval(`list(range(${count}))`)).toEqual(Array.from({ length: count }, (_, i) => i));
    }
    const many = (await a.eval("{f'k{i}': torch.full((2, i % 3 + 1), float(i)) for i in range(300)}")) as Record<string, Tensor>;
    expect(Object.keys(many)).toHaveLength(300);
    expect(many.k299!.shape).toEqual([2, 3]);
    expect([...many.k299!.data]).toEqual(new Array(6).fill(299));
    expect(many.k0).toBeInstanceOf(Tensor);
    const nested = (await a.eval("[{'a': (torch.arange(3), None, b'x')}, [[torch.zeros(())]], {}, [], 'end']")) as unknown[];
    const [first, second, empty, emptyList, end] = nested as [{ a: [Tensor, null, Buffer] }, [[Tensor]], object, unknown[], string];
    expect([...first.a[0].data]).toEqual([0n, 1n, 2n]);
    expect(first.a[1]).toBeNull();
    expect(first.a[2]).toEqual(Buffer.from("x"));
    expect(second[0][0].shape).toEqual([]);
    expect([empty, emptyList, end]).toEqual([{}, [], "end"]);
  });

  it("gives each result tensor its own shape, frozen, when shapes change from call to call", async () => {
    const shapes = async (python: string) => ((await a.eval(python)) as Tensor[]).map((t) => t.shape);
    const first = await shapes("[torch.zeros(2, 3), torch.zeros(4)]");
    const same = await shapes("[torch.ones(2, 3), torch.ones(4)]");
    const changed = await shapes("[torch.zeros(3, 2), torch.zeros(4, 1), torch.zeros(())]");
    expect(first).toEqual([[2, 3], [4]]);
    expect(same).toEqual([[2, 3], [4]]);
    expect(changed).toEqual([[3, 2], [4, 1], []]);
    for (const shape of [...first, ...same, ...changed]) expect(Object.isFrozen(shape)).toBe(true);
  });

  it("takes instances of a Tensor subclass as tensors", async () => {
    class Named extends Tensor<"float32"> {
      readonly name = "named";
    }
    const named = new Named("float32", [2], new Float32Array([1.5, -2]));
    const back = (await a.call("echo", [named])) as Tensor;
    expect(back).toBeInstanceOf(Tensor);
    expect([...back.data]).toEqual([1.5, -2]);
  });

  it.each(DTYPES)("round-trips a %s tensor bit-exactly", async (dtype) => {
    const t = Tensor.zeros(dtype, [3, 5]);
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (dtype === "bool") bytes.set(Array.from(randomBytes(bytes.length), (x) => x & 1));
    else bytes.set(randomBytes(bytes.length)); // NaN payloads and subnormals included
    const back = await a.call<Tensor>("echo", [t]);
    expect(back).toBeInstanceOf(Tensor);
    expect(back.dtype).toBe(dtype);
    expect(back.shape).toEqual([3, 5]);
    expect(Buffer.from(back.data.buffer, back.data.byteOffset, back.data.byteLength)).toEqual(Buffer.from(bytes));
  });

  it("round-trips empty and zero-dimensional tensors", async () => {
    const empty = await a.call<Tensor>("echo", [Tensor.zeros("float32", [0, 4])]);
    expect(empty.shape).toEqual([0, 4]);
    const scalar = await a.call<Tensor>("echo", [Tensor.from("int64", [], [7n])]);
    expect(scalar.shape).toEqual([]);
    expect(scalar.toArray()).toEqual([7n]);
  });

  it("returns results small and large intact, each in memory of its own", async () => {
    // Up to 16 KiB a result is copied into a buffer V8 allocates, above it handed over: both sides of that line.
    for (const elements of [1, 4095, 4096, 4097, 300_000]) {
      const t = Tensor.from("float32", [elements], Array.from({ length: elements }, (_, i) => i % 1000));
      const [x, y] = await a.call<[Tensor<"float32">, Tensor<"float32">]>("eval_expr", [`(lambda x: (x * 2, x + 1))(__import__("torch").arange(${elements}, dtype=__import__("torch").float32) % 1000)`]);
      expect(x.shape).toEqual([elements]);
      expect(Array.from(x.data)).toEqual(Array.from(t.data, (v) => v * 2));
      expect(Array.from(y.data)).toEqual(Array.from(t.data, (v) => v + 1));
      expect(x.data.buffer).not.toBe(y.data.buffer);
      expect(x.data.byteLength).toBe(4 * elements);
    }
  });

  it("gives Python a view of Node's memory: no copy on the way in", async () => {
    const t = Tensor.from("float32", [4], [1, 2, 3, 4]);
    const cls = writeModule("class Bump:\n    def __call__(self, x):\n        x.add_(10)\n        return x.shape[0]\n");
    await a.call("create_object", [2, cls, "Bump", [], {}]);
    expect(await a.call("call_object", [2, null, [t], {}])).toBe(4);
    // The model's in-place change is visible in Node's own buffer.
    expect(Array.from(t.data)).toEqual([11, 12, 13, 14]);
  });

  it("hands uint16/32/64 to Python as numpy arrays where torch lacks the dtype, over Node's memory", async () => {
    // .item(), not int(): torch 2.x's int() of a uint64 above 2^63 overflows int64.
    const t = Tensor.from("uint64", [2], [2n ** 64n - 1n, 1n]);
    const cls = writeModule(
      "import torch\nclass Describe:\n    def __call__(self, x):\n        x[1] = 7\n" +
        "        return [type(x).__module__, str(x.dtype), str(x[0].item()), hasattr(torch, 'uint64')]\n",
    );
    await a.call("create_object", [4, cls, "Describe", [], {}]);
    const [module, dtype, first, torchHasIt] = await a.call<[string, string, string, boolean]>("call_object", [4, null, [t], {}]);
    expect([module, dtype]).toEqual(torchHasIt ? ["torch", "torch.uint64"] : ["numpy", "uint64"]);
    expect(first).toBe(String(2n ** 64n - 1n));
    expect(Array.from(t.data as BigUint64Array)).toEqual([2n ** 64n - 1n, 7n]); // a view: no copy
  });

  it("returns non-contiguous tensors contiguous, with the right values", async () => {
    const t = Tensor.from("int32", [2, 3], [1, 2, 3, 4, 5, 6]);
    const cls = writeModule("class T:\n    def __call__(self, x):\n        return {'t': x.t(), 'sum': x.sum()}\n");
    await a.call("create_object", [3, cls, "T", [], {}]);
    const out = await a.call<{ t: Tensor<"int32">; sum: Tensor<"int64"> }>("call_object", [3, null, [t], {}]);
    expect(out.t.shape).toEqual([3, 2]);
    expect(Array.from(out.t.data)).toEqual([1, 4, 2, 5, 3, 6]);
    expect(out.sum.toArray()).toEqual([21n]);
  });

  it("makes inputs and reads results over DLPack where torch has it, and the rest as before", async () => {
    // Inputs: a tensor of its own over Node's memory (make_tensor's is a view of a flat
    // one). Results: a Parameter, a tensor that requires grad, bool (no DLPack in torch
    // 1.13: read by the bridge instead), a column (not contiguous), a dict subclass.
    const t = Tensor.from("float32", [2, 3], [1, 2, 3, 4, 5, 6]);
    const cls = writeModule(
      "import collections, torch\nclass Kinds:\n    def __init__(self):\n        self.p = torch.nn.Parameter(torch.ones(2))\n" +
        "    def __call__(self, x):\n        return {'own': x._base is None, 'param': self.p, 'grad': self.p * 2, 'big': x > 2,\n" +
        "                'column': x[:, 1], 'ordered': collections.OrderedDict(z=x.sum(), a=x.to(torch.float16))}\n",
    );
    await a.call("create_object", [5, cls, "Kinds", [], {}]);
    for (let round = 0; round < 2; round++) {
      const out = await a.call<Record<string, unknown>>("call_object", [5, null, [t], {}]);
      expect(out.own).toBe(await a.eval<boolean>("__import__('coil_bridge').NATIVE_TENSORS[1] is not None"));
      expect((out.param as Tensor).toArray()).toEqual([1, 1]);
      expect((out.grad as Tensor).toArray()).toEqual([2, 2]);
      expect(out.big).toMatchObject({ dtype: "bool", shape: [2, 3] });
      expect((out.big as Tensor).toArray()).toEqual([false, false, true, true, true, true]);
      expect((out.column as Tensor).toArray()).toEqual([2, 5]);
      const ordered = out.ordered as Record<string, Tensor>;
      expect(Object.keys(ordered)).toEqual(["z", "a"]);
      expect(ordered.z!.toArray()).toEqual([21]);
      expect(ordered.a).toMatchObject({ dtype: "float16", shape: [2, 3] });
      expect(ordered.a!.toArray()).toEqual([1, 2, 3, 4, 5, 6]);
    }
  });

  it("converts numpy arrays and scalars in results", async () => {
    await a.exec("import numpy as np");
    const out = await a.eval<[Tensor<"float64">, number]>("(np.arange(3, dtype=np.float64), np.int32(5))");
    expect(Array.from(out[0].data)).toEqual([0, 1, 2]);
    expect(out[1]).toBe(5);
  });

  it("refuses values that cannot cross, with a clear error, and keeps serving", async () => {
    await expect(a.call("echo", [() => 1])).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(a.call("echo", [new Float32Array(2)])).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(a.eval("object()")).rejects.toMatchObject({ code: "PYTHON_ERROR", pythonType: "TypeError" });
    await expect(a.eval("torch.zeros(2, dtype=torch.complex64)")).rejects.toMatchObject({
      code: "PYTHON_ERROR",
      message: expect.stringContaining("complex64"),
    });
    await expect(a.eval("2 ** 70")).rejects.toMatchObject({ message: expect.stringContaining("64-bit") });
    const nested: unknown[] = [];
    let cursor = nested;
    for (let i = 0; i < 200; i++) cursor.push((cursor = []));
    await expect(a.call("echo", [nested])).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(a.eval("(lambda l: (l.append(l), l)[1])([])")).rejects.toMatchObject({
      code: "PYTHON_ERROR",
      message: expect.stringMatching(/recursion|nested too deeply/),
    });
    expect(await a.eval("1 + 1")).toBe(2);
  });

  it("refuses a tensor whose bytes do not match its shape before Python sees it", async () => {
    // Built around the constructor's own check, as a careless caller might.
    const forged = Object.assign(Object.create(Tensor.prototype) as Tensor, {
      dtype: "float32",
      shape: [4, 4],
      data: new Float32Array(3) as TypedArrayOf["float32"],
    });
    await expect(a.call("echo", [forged])).rejects.toMatchObject({
      code: "SHAPE_MISMATCH",
      message: expect.stringContaining("needs 64 bytes, its data has 12"),
    });
    expect(await a.eval("'still here'")).toBe("still here");
  });
});

describe("errors from Python", () => {
  it("carries the exception type and traceback, and the interpreter stays usable", async () => {
    await a.exec("def fail(n):\n    raise ValueError(f'bad value {n}')", "model.py");
    const error = await a.eval("fail(3)").catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "PYTHON_ERROR", pythonType: "ValueError", message: "bad value 3" });
    expect((error as { pythonTraceback: string }).pythonTraceback).toMatch(/File "model.py", line 2, in fail/);
    expect(await a.eval("21 * 2")).toBe(42);
  });

  it("reports syntax errors and missing modules", async () => {
    await expect(a.exec("def broken(:\n  pass")).rejects.toMatchObject({ code: "PYTHON_ERROR", pythonType: "SyntaxError" });
    await expect(a.exec("import coil_module_that_does_not_exist")).rejects.toMatchObject({
      pythonType: "ModuleNotFoundError",
      message: expect.stringContaining("coil_module_that_does_not_exist"),
    });
    expect(await a.eval("'ok'")).toBe("ok");
  });
});

describe("deadlines and cancellation", () => {
  it("interrupts a model stuck in a Python loop and gives the interpreter back", async () => {
    await a.exec("def spin():\n    while True:\n        pass");
    const started = Date.now();
    await expect(a.eval("spin()", { timeoutMs: 200 })).rejects.toMatchObject({ code: "DEADLINE_EXCEEDED" });
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await a.eval("'free again'")).toBe("free again");
    expect(a.load).toBe(0);
  });

  it("does not even start a call whose deadline passes in the queue", async () => {
    await a.exec("ran = []\ndef mark():\n    ran.append(1)");
    const stuck = a.eval("spin()", { timeoutMs: 300 });
    const queued = a.eval("mark()", { timeoutMs: 50 });
    await expect(queued).rejects.toMatchObject({ code: "DEADLINE_EXCEEDED" });
    await expect(stuck).rejects.toMatchObject({ code: "DEADLINE_EXCEEDED" });
    expect(await a.eval("len(ran)")).toBe(0);
  });

  it("cancels through an AbortSignal, even one that already fired", async () => {
    const controller = new AbortController();
    const call = a.eval("spin()", { signal: controller.signal });
    setTimeout(() => controller.abort(new Error("user went away")), 100);
    await expect(call).rejects.toMatchObject({ code: "CANCELLED" });
    await expect(a.eval("1", { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: "CANCELLED" });
    expect(await a.eval("'usable'")).toBe("usable");
  });

  it("cancels everything queued and running at once", async () => {
    const calls = [a.eval("spin()"), a.eval("spin()"), a.eval("21 * 2")].map((p) => p.catch((e: unknown) => e));
    await new Promise((r) => setTimeout(r, 50));
    expect(a.cancelAll("shutting down")).toBe(3);
    for (const outcome of await Promise.all(calls)) {
      expect(outcome).toMatchObject({ code: "CANCELLED", message: "call cancelled: shutting down" });
    }
    expect(await a.eval("'usable'")).toBe("usable");
    expect(a.cancelAll()).toBe(0);
  });

  it("keeps `except Exception` in the model from swallowing the interrupt", async () => {
    await a.exec("def stubborn():\n    while True:\n        try:\n            pass\n        except Exception:\n            pass");
    await expect(a.eval("stubborn()", { timeoutMs: 100 })).rejects.toMatchObject({ code: "DEADLINE_EXCEEDED" });
    expect(await a.eval("2")).toBe(2);
  });
});

describe("timings", () => {
  it("reports how long a call waited and ran, and each interpreter's busy time", async () => {
    const busyBefore = a.busySeconds;
    const first = { queuedSeconds: -1, runSeconds: -1 };
    const second = { queuedSeconds: -1, runSeconds: -1 };
    await Promise.all([
      a.eval("__import__('time').sleep(0.1)", { timings: first }),
      a.eval("__import__('time').sleep(0.05)", { timings: second }),
    ]);
    expect(first.runSeconds).toBeGreaterThanOrEqual(0.1);
    expect(second.runSeconds).toBeGreaterThanOrEqual(0.05);
    expect(second.queuedSeconds).toBeGreaterThanOrEqual(0.1); // behind the first
    expect(a.busySeconds - busyBefore).toBeGreaterThanOrEqual(0.15);

    const failed = { queuedSeconds: -1, runSeconds: -1 };
    await expect(a.eval("1/0", { timings: failed })).rejects.toMatchObject({ code: "PYTHON_ERROR" });
    expect(failed.runSeconds).toBeGreaterThan(0);
    expect(failed.queuedSeconds).toBeGreaterThanOrEqual(0);
  });
});

describe("isolation and parallelism", () => {
  it("keeps each interpreter's state to itself", async () => {
    await a.exec("import json\njson.coil_marker = 'a'\nsecret = 1");
    expect(await b.eval("'secret' in globals()")).toBe(false);
    expect(await b.eval("hasattr(__import__('json'), 'coil_marker')")).toBe(false);
    expect(await a.eval("__import__('json').coil_marker")).toBe("a");
    // Separate copies of libpython, not subinterpreters of one runtime: even the
    // None singleton lives at a different address in each.
    expect(await a.eval("id(None)")).not.toBe(await b.eval("id(None)"));
  });

  it("runs two interpreters at the same time: two spinning calls meet at a barrier", async () => {
    // Each call holds its GIL in a pure-Python spin until the other's file exists.
    // Only truly parallel interpreters (separate GILs, separate threads) can both
    // see the other's file before the timeout.
    const dir = mkdtempSync(join(tmpdir(), "coil-barrier-"));
    const meet = (me: string, other: string) =>
      `(lambda os, time: (open(${JSON.stringify(join(dir, me))}, 'w').close(), ` +
      `next((True for _ in iter(int, 1) if os.path.exists(${JSON.stringify(join(dir, other))}) ` +
      `or time.monotonic() > deadline), None), os.path.exists(${JSON.stringify(join(dir, other))}))[2])` +
      `(__import__('os'), __import__('time'))`;
    await a.exec("import time\ndeadline = time.monotonic() + 20");
    await b.exec("import time\ndeadline = time.monotonic() + 20");
    const [sawB, sawA] = await Promise.all([a.eval(meet("a", "b")), b.eval(meet("b", "a"))]);
    expect(sawB).toBe(true);
    expect(sawA).toBe(true);
  });
});

describe("the interpreter registry", () => {
  it("refuses pool sizes out of range", async () => {
    const python = a.python;
    for (const count of [0, 16, 1.5, -1]) {
      await expect(acquireInterpreters(count, python)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    }
  });

  it("refuses calls after release, and lends the interpreter back reset", async () => {
    const python = a.python;
    const [c] = (await acquireInterpreters(1, python)) as [Interpreter];
    await c.exec("leftover = 1");
    const created = interpreterStats().created;
    await releaseInterpreters([c]);
    await expect(c.eval("1")).rejects.toMatchObject({ code: "CLOSED" });
    const [again] = (await acquireInterpreters(1, python)) as [Interpreter];
    expect(again.index).toBe(c.index);
    expect(interpreterStats().created).toBe(created);
    expect(await again.eval("'leftover' in globals()")).toBe(false);
    await releaseInterpreters([again]);
  });

  it("refuses a Python bridge of another version than the engine's", async () => {
    const { bridgePath } = await import("./addon.js");
    const stale = join(mkdtempSync(join(tmpdir(), "coil-bridge-")), "coil_bridge.py");
    writeFileSync(stale, readFileSync(bridgePath(), "utf8").replace(/^BRIDGE_VERSION = \d+$/m, "BRIDGE_VERSION = 0"));
    const { loadAddon, namespaceRootPath } = await import("./addon.js");
    const { interpreter, ready } = loadAddon().startInterpreter({
      library: a.python.library,
      executable: a.python.executable,
      sysPath: a.python.sysPath,
      bridgePath: stale,
      namespaceRoot: namespaceRootPath(),
      jobId: nextJobId(),
    });
    await expect(ready).rejects.toMatchObject({ code: "PYTHON_INIT_FAILED", message: expect.stringContaining("has version 0") });
    await expect(interpreter.call("noop", [], nextJobId())).rejects.toMatchObject({ code: "PYTHON_INIT_FAILED" });
  });

  it("fails clearly when libpython cannot be loaded, and other interpreters carry on", async () => {
    const bogus = { ...a.python, library: "/nonexistent/libpython3.99.so" };
    await expect(acquireInterpreters(1, bogus)).rejects.toMatchObject({
      code: "PYTHON_INIT_FAILED",
      message: expect.stringContaining("/nonexistent/libpython3.99.so"),
    });
    expect(await a.eval("'fine'")).toBe("fine");
  });
});

let moduleCount = 0;
function writeModule(source: string): string {
  const dir = mkdtempSync(join(tmpdir(), "coil-mod-"));
  const file = join(dir, `mod_${++moduleCount}.py`);
  writeFileSync(file, source);
  return file;
}
