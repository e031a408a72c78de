import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";

import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";

import { handOff, handOffStats, type HandOffSettings } from "./hand-off.js";
import type { Interpreter } from "./interpreter.js";
import { discoverPython } from "./python.js";
import { acquireInterpreters, releaseInterpreters } from "./registry.js";

const PYTHON = inject("testPython");
let one: Interpreter;
let defaults: HandOffSettings;

beforeAll(async () => {
  defaults = handOff();
  const python = await discoverPython({ python: PYTHON });
  [one] = (await acquireInterpreters(1, python)) as [Interpreter];
  await one.exec("import time");
});

afterEach(() => {
  handOff(defaults);
});

afterAll(async () => {
  await releaseInterpreters([one]);
});

describe("hand-off settings", () => {
  it("has defaults, applies what is given and keeps the rest", () => {
    expect(defaults).toEqual({ batchWhileQueued: 2, batchWindowUs: 200, spinUs: 50, maxSpinUs: 1000, callerSpinUs: 1000, contentionCheckMs: 20 });
    expect(handOff({ spinUs: 0 })).toEqual({ ...defaults, spinUs: 0 });
    expect(handOff()).toEqual({ ...defaults, spinUs: 0 });
    expect(handOff({ batchWindowUs: 0, batchWhileQueued: 5 })).toEqual({ ...defaults, batchWhileQueued: 5, batchWindowUs: 0, spinUs: 0 });
  });

  it.each([
    [{ spinUs: -1 }, "spinUs"],
    [{ batchWindowUs: 1.5 }, "batchWindowUs"],
    [{ batchWhileQueued: 0 }, "batchWhileQueued"],
    [{ spinUs: "50" as unknown as number }, "spinUs"],
    [{ batchWindowUs: 2e6 }, "batchWindowUs"],
    [{ callerSpinUs: Number.NaN }, "callerSpinUs"],
    [{ contentionCheckMs: -1 }, "contentionCheckMs"],
  ])("refuses %j with INVALID_ARGUMENT and changes nothing", (settings, field) => {
    expect(() => handOff(settings)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT", message: expect.stringContaining(field) }));
    expect(handOff()).toEqual(defaults);
  });
});

describe("results held back and delivered in batches", () => {
  it.each([
    ["defaults", {}],
    ["a wide window", { batchWindowUs: 100_000 }],
    ["no batching, no spinning", { batchWindowUs: 0, spinUs: 0, callerSpinUs: 0 }],
    ["Node's thread polling long", { callerSpinUs: 100_000 }],
  ])("delivers every result of 500 concurrent calls to its own caller (%s)", async (_name, settings) => {
    handOff(settings);
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => one.call("echo", [i])));
    expect(results).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });

  it("delivers held results when cancels empty the queue", async () => {
    handOff({ batchWindowUs: 1_000_000 });
    // Quick calls finish with more queued behind them (held back); the calls queued
    // behind a slow one are then cancelled away: every result and rejection arrives.
    const quick = Array.from({ length: 4 }, (_, i) => one.call("echo", [i]));
    const slow = one.eval("time.sleep(0.3)");
    const abort = new AbortController();
    const queued = Array.from({ length: 4 }, () => one.eval("time.sleep(10)", { signal: abort.signal }));
    setTimeout(() => abort.abort(), 100);
    const outcome = await Promise.race([
      Promise.allSettled([Promise.all(quick), slow, ...queued]),
      new Promise((resolve) => setTimeout(() => resolve("timeout"), 5_000)),
    ]);
    expect(outcome).not.toBe("timeout");
    const [results, slept, ...cancelled] = outcome as PromiseSettledResult<unknown>[];
    expect(results).toEqual({ status: "fulfilled", value: [0, 1, 2, 3] });
    expect(slept.status).toBe("fulfilled");
    for (const c of cancelled) expect(c).toMatchObject({ status: "rejected", reason: { code: "CANCELLED" } });
  }, 20_000);

  it("does not hold a result for a long call once long calls have been seen", async () => {
    // Recent history has a 200 ms call: a quick result behind it is not held for the next one.
    await one.eval("time.sleep(0.2)");
    const started = performance.now();
    const quick = one.call("echo", [1]).then(() => performance.now() - started);
    const second = one.call("echo", [2]);
    const slow = one.eval("time.sleep(0.3)");
    const tail = one.call("echo", [3]);
    const quickMs = await quick;
    expect(quickMs).toBeLessThan(250);
    await Promise.all([second, slow, tail]);
  });
});

describe("what the hand-off counts", () => {
  // Up to three runs until one is as expected: the host stalls this VM's CPUs for
  // milliseconds now and then, and a stall in the middle of a call ends a poll or a
  // spin early. A hand-off that did not work would fail all three.
  const bestOfThree = async <T,>(run: () => Promise<T>, expected: (result: T) => boolean) => {
    let result = await run();
    for (let again = 0; again < 2 && !expected(result); again++) result = await run();
    return result;
  };
  // One caller's calls back to back, with `between` run in Node between them.
  const sequential = async (calls: number, between?: () => Promise<unknown> | void) => {
    const before = handOffStats();
    for (let i = 0; i < calls; i++) {
      await one.call("echo", [i]);
      await between?.();
    }
    const after = handOffStats();
    return { sleeps: after.jobWaitSleeps - before.jobWaitSleeps, wakeups: after.callerWakeups - before.callerWakeups };
  };
  const pause = (ms: number) => () => new Promise((resolve) => setTimeout(resolve, ms));
  const busy = (us: number) => () => {
    const until = performance.now() + us / 1000;
    while (performance.now() < until);
  };

  it("counts the sleeps and wake-ups it exists to avoid: each call without it, almost none with it", async () => {
    // Neither side spins: the interpreter sleeps before each call, and wakes Node's thread
    // after it. (A pause between calls makes the interpreter's wait certain: back to back,
    // a loaded machine can preempt it between delivering a result and looking for the
    // next job for long enough that the next job is already there.) The first call may
    // find the thread still spinning from before, and the last sleep may come after the
    // count is read.
    handOff({ spinUs: 0, callerSpinUs: 0 });
    const off = await bestOfThree(() => sequential(200, pause(1)), ({ sleeps, wakeups }) => sleeps >= 198 && wakeups >= 198);
    expect(off.sleeps).toBeGreaterThanOrEqual(198);
    expect(off.wakeups).toBeGreaterThanOrEqual(198);
    // Node's thread polls for the result: nobody needs to wake it (a CPU is free for it
    // unless other processes want them all: the contention look is off here).
    handOff({ ...defaults, contentionCheckMs: 0 });
    // With one CPU none is free beside the interpreter's, so Node's thread must be woken.
    const polls = availableParallelism() >= 2;
    const on = await bestOfThree(() => sequential(200), ({ wakeups }) => (polls ? wakeups < 20 : wakeups >= 190));
    if (polls) expect(on.wakeups).toBeLessThan(20);
    else expect(on.wakeups).toBeGreaterThanOrEqual(190);
  });

  it.runIf(availableParallelism() >= 2)(
    "spins through the caller's usual turn between calls, past spinUs, if it is under maxSpinUs",
    async () => {
      // Node takes 200 us and its own share (15-160 us here) between one result and the
      // next call: four times spinUs or more, and twice it still under maxSpinUs (1 ms).
      handOff({ ...defaults, contentionCheckMs: 0 });
      const within = await bestOfThree(() => sequential(200, busy(200)), ({ sleeps }) => sleeps < 20);
      expect(within.sleeps).toBeLessThan(20);
      // The same turn longer than maxSpinUs: spinUs only, so the thread sleeps each time.
      handOff({ ...defaults, contentionCheckMs: 0, maxSpinUs: 250 });
      const beyond = await bestOfThree(() => sequential(200, busy(200)), ({ sleeps }) => sleeps >= 180);
      expect(beyond.sleeps).toBeGreaterThanOrEqual(180);
    },
  );
});

describe("contention from other processes", () => {
  it("suspends spinning and polling while other processes keep the CPUs busy", async () => {
    // A busy loop on every CPU: runnable threads outnumber the CPUs -- what the engine
    // backs off on.
    const hogs = Array.from({ length: availableParallelism() }, () => spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }));
    try {
      const before = handOffStats().contentionBackoffs;
      // Calls that keep the interpreter busy for a while, so that the scheduler's
      // time slices (a few ms) come round many times.
      for (let round = 0; round < 40 && handOffStats().contentionBackoffs === before; round++) {
        await Promise.all(Array.from({ length: 8 }, () => one.eval("sum(range(200_000))")));
      }
      expect(handOffStats().contentionBackoffs).toBeGreaterThan(before);
      // Results still reach their callers while backed off.
      expect(await Promise.all(Array.from({ length: 50 }, (_, i) => one.call("echo", [i])))).toEqual(Array.from({ length: 50 }, (_, i) => i));
    } finally {
      for (const hog of hogs) hog.kill("SIGKILL");
    }
  });

  it("never looks with contentionCheckMs 0 (CPUs that are this process's alone)", async () => {
    const hogs = Array.from({ length: availableParallelism() }, () => spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }));
    try {
      handOff({ contentionCheckMs: 0 });
      const before = handOffStats().contentionBackoffs;
      for (let round = 0; round < 10; round++) {
        await Promise.all(Array.from({ length: 8 }, () => one.eval("sum(range(200_000))")));
      }
      expect(handOffStats().contentionBackoffs).toBe(before);
    } finally {
      handOff(defaults);
      for (const hog of hogs) hog.kill("SIGKILL");
    }
  });
});
