import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { afterEach, describe, expect, inject, it } from "vitest";

import { interpreterStats } from "@coil/native";

import { PlainPythonBackend } from "../test/plain-backend.js";
import { InterpreterPool } from "./pool.js";

const COUNTER = resolve(dirname(fileURLToPath(import.meta.url)), "../test/fixtures/counter.py");
const PYTHON = inject("testPython");

let pool: InterpreterPool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

async function createPool(size = 2): Promise<InterpreterPool> {
  pool = await InterpreterPool.create({ size, python: PYTHON, backend: new PlainPythonBackend() });
  return pool;
}

interface Tick {
  count: number;
  thread: number;
}

describe("InterpreterPool", () => {
  it("prepares every interpreter with its backend", async () => {
    const p = await createPool(2);
    expect(p.size).toBe(2);
    expect(p.backendInfo.map((i) => i.index)).toEqual([0, 1]);
    expect(p.backendInfo[0]!.python).toMatch(/^3\./);
  });

  it("refuses sizes out of range", async () => {
    for (const size of [0, 16, 2.5]) {
      await expect(
        InterpreterPool.create({ size, python: PYTHON, backend: new PlainPythonBackend() }),
      ).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    }
  });

  it("returns its interpreters on close and refuses work after", async () => {
    const p = await createPool(2);
    const model = p.replicate({ file: COUNTER, factory: "Counter" });
    await model.call();
    await p.close();
    await expect(model.call()).rejects.toMatchObject({ code: "CLOSED" });
    await expect(p.run("noop", [])).rejects.toMatchObject({ code: "CLOSED" });
    expect(() => p.replicate({ file: COUNTER, factory: "Counter" })).toThrow(/closed/);
    await p.close(); // idempotent
  });

  it("drains calls in flight when closing", async () => {
    const p = await createPool(1);
    const model = p.replicate({ file: COUNTER, factory: "Counter" });
    const inFlight = model.call<Tick>([0.3]);
    await new Promise((r) => setTimeout(r, 50));
    const closed = p.close();
    expect((await inFlight).count).toBe(1);
    await closed;
  });

  it("cancels calls in flight when closing without draining", async () => {
    const p = await createPool(1);
    const model = p.replicate({ file: COUNTER, factory: "Counter" });
    await model.materialize();
    const stuck = model.callMethod("spin").catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 50));
    await p.close({ drain: false });
    expect(await stuck).toMatchObject({ code: "CANCELLED", message: expect.stringContaining("pool was closed") });
  });
});

describe("a call stuck in C code", () => {
  it("cannot make close() hang: its interpreter is retired, not lent again", async () => {
    const p = await createPool(1);
    const [stuckInterpreter] = p.interpreters;
    // time.sleep blocks in C, where interrupts don't reach: the deadline rejects
    // the call, but the interpreter stays busy for the whole sleep.
    await expect(p.run("eval_expr", ["__import__('time').sleep(12)"], { timeoutMs: 100 })).rejects.toMatchObject({
      code: "DEADLINE_EXCEEDED",
    });
    const before = interpreterStats();
    await p.close(); // bounded by RESET_TIMEOUT_MS
    expect(interpreterStats().idle).toBe(before.idle);
    const next = await createPool(1);
    expect(next.interpreters[0]!.index).not.toBe(stuckInterpreter!.index);
  }, 30_000);

  it("counts an interpreter stuck while a call past its deadline goes on in C code, and not once it returns", async () => {
    pool = await InterpreterPool.create({ size: 1, python: PYTHON, backend: new PlainPythonBackend(), stuckAfterMs: 200 });
    const p = pool;
    const [interpreter] = p.interpreters;
    // A Python loop: the interrupt lands at once and the interpreter serves on.
    const model = p.replicate({ file: COUNTER, factory: "Counter" });
    await expect(model.callMethod("spin", [], { timeoutMs: 150 })).rejects.toMatchObject({ code: "DEADLINE_EXCEEDED" });
    expect(await model.callMethod("add", [1, 1])).toBe(2);
    expect(p.isStuck(interpreter!)).toBe(false);
    // time.sleep: the interrupt waits for it to return.
    await expect(p.run("eval_expr", ["__import__('time').sleep(2)"], { timeoutMs: 100 })).rejects.toMatchObject({ code: "DEADLINE_EXCEEDED" });
    while (!p.allStuck) await new Promise((r) => setTimeout(r, 50));
    expect(p.isStuck(interpreter!)).toBe(true);
    expect(await p.run("eval_expr", ["1 + 1"])).toBe(2); // runs once the sleep returns
    expect(p.allStuck).toBe(false);
  }, 30_000);

  it("returns its interpreters with what model code changed put back and the threads it started stopped", async () => {
    const p = await createPool(1);
    const [interpreter] = p.interpreters;
    await interpreter!.exec(
      "import os, threading, time\n" +
        "os.path.join = lambda *parts: 'patched'\n" +
        "threading.Thread(target=lambda: [time.sleep(0.01) for _ in iter(int, 1)], name='model-thread', daemon=True).start()",
    );
    expect(await interpreter!.eval("__import__('os').path.join('a', 'b')")).toBe("patched");
    await p.close();
    pool = undefined;
    expect(interpreterStats().quarantined).toBe(0); // its thread ended
    const next = await createPool(interpreterStats().idle);
    const again = next.interpreters.find((i) => i.index === interpreter!.index)!;
    expect(await again.eval("__import__('os').path.join('a', 'b')")).toBe("a/b");
    expect(await again.eval("[t.name for t in __import__('threading').enumerate()]")).not.toContain("model-thread");
  });

  it("holds an interpreter back while a thread its last holder started waits in C code, and lends it once the thread ends", async () => {
    const p = await createPool(1);
    const [interpreter] = p.interpreters;
    await interpreter!.exec("import threading, time\nthreading.Thread(target=time.sleep, args=(3,), name='sleeper', daemon=True).start()");
    await p.close();
    pool = undefined;
    expect(interpreterStats().quarantined).toBe(1);
    const other = await createPool(1);
    expect(other.interpreters[0]!.index).not.toBe(interpreter!.index);
    await other.close();
    pool = undefined;
    await new Promise((r) => setTimeout(r, 3000));
    // The next acquisition resets it again, finds the thread gone, and lends it.
    const next = await createPool(interpreterStats().idle + 1);
    expect(interpreterStats().quarantined).toBe(0);
    expect(next.interpreters.map((i) => i.index)).toContain(interpreter!.index);
  }, 30_000);

  it("samples each interpreter's own heap: what one allocates shows in its sample alone", async () => {
    const p = await createPool(2);
    const [first, second] = p.interpreters;
    await p.sampleMemory();
    const before = p.interpreters.map((i) => p.memory(i)!.heapBytes!);
    for (const heap of before) expect(heap).toBeGreaterThan(0);
    await first!.exec("kept = bytearray(64 * 1024 * 1024)");
    await p.sampleMemory();
    expect(p.memory(first!)!.heapBytes! - before[0]!).toBeGreaterThanOrEqual(64 * 1024 * 1024);
    expect(Math.abs(p.memory(second!)!.heapBytes! - before[1]!)).toBeLessThan(4 * 1024 * 1024);
  });
});

describe("ReplicatedObject", () => {
  it("instantiates lazily, once per interpreter, or everywhere on materialize()", async () => {
    const p = await createPool(2);
    const model = p.replicate({ file: COUNTER, factory: "Counter", kwargs: { start: 10, step: 5 } });
    expect(model.instances).toBe(0);
    expect(((await model.call()) as Tick).count).toBe(15);
    expect(model.instances).toBe(1);
    await model.materialize();
    expect(model.instances).toBe(2);
  });

  it("sends concurrent calls to different interpreters: a free one first", async () => {
    const p = await createPool(2);
    const model = p.replicate({ file: COUNTER, factory: "Counter" });
    const ticks = await Promise.all([model.call<Tick>([0.2]), model.call<Tick>([0.2])]);
    expect(new Set(ticks.map((t) => t.thread)).size).toBe(2);
    // Each interpreter has its own instance, so each counted one call.
    expect(ticks.map((t) => t.count)).toEqual([1, 1]);
  });

  it("calls methods with positional and keyword arguments", async () => {
    const p = await createPool(1);
    const model = p.replicate({ file: COUNTER, factory: "Counter" });
    expect(await model.callMethod("add", [2], { kwargs: { b: 40 } })).toBe(42);
    await expect(model.callMethod("no_such_method")).rejects.toMatchObject({
      code: "PYTHON_ERROR",
      pythonType: "AttributeError",
    });
  });

  it("reports a failing factory with its Python error, and retries it on the next call", async () => {
    const p = await createPool(1);
    const flag = join(mkdtempSync(join(tmpdir(), "coil-flag-")), "ready");
    const model = p.replicate({ file: COUNTER, factory: "build_from_flag", args: [flag] });
    await expect(model.call()).rejects.toMatchObject({
      code: "PYTHON_ERROR",
      pythonType: "RuntimeError",
      message: expect.stringContaining("factory not ready"),
    });
    expect(model.instances).toBe(0);
    writeFileSync(flag, "");
    expect(existsSync(flag)).toBe(true);
    expect(((await model.call()) as Tick).count).toBe(101);
  });

  it("reports a missing file or factory clearly", async () => {
    const p = await createPool(1);
    await expect(p.replicate({ file: "/nonexistent/model.py", factory: "build" }).call()).rejects.toMatchObject({
      pythonType: "FileNotFoundError",
    });
    await expect(p.replicate({ file: COUNTER, factory: "nope" }).call()).rejects.toMatchObject({
      pythonType: "AttributeError",
      message: expect.stringContaining("'nope'"),
    });
  });

  it("applies a deadline to a call and keeps the interpreter", async () => {
    const p = await createPool(1);
    const model = p.replicate({ file: COUNTER, factory: "Counter" });
    await expect(model.callMethod("spin", [], { timeoutMs: 150 })).rejects.toMatchObject({ code: "DEADLINE_EXCEEDED" });
    expect(await model.callMethod("add", [1, 1])).toBe(2);
  });

  it("keeps two objects from the same file apart", async () => {
    const p = await createPool(1);
    const one = p.replicate({ file: COUNTER, factory: "Counter", kwargs: { start: 0 } });
    const two = p.replicate({ file: COUNTER, factory: "Counter", kwargs: { start: 1000 } });
    expect(((await one.call()) as Tick).count).toBe(1);
    expect(((await two.call()) as Tick).count).toBe(1001);
    expect(((await one.call()) as Tick).count).toBe(2);
  });

  it("refuses calls after dispose", async () => {
    const p = await createPool(1);
    const model = p.replicate({ file: COUNTER, factory: "Counter" });
    await model.call();
    await model.dispose();
    await expect(model.call()).rejects.toMatchObject({ code: "CLOSED" });
    expect(await p.run("eval_expr", ["len(__import__('coil_bridge')._objects)"])).toBe(0);
  });
});
