import type { Interpreter } from "@coil/native";
import { describe, expect, it } from "vitest";

import { LeastLoadedScheduler } from "./scheduler.js";

// The scheduler reads only `load`: plain objects stand in for interpreters here.
const withLoads = (...loads: number[]) => loads.map((load, index) => ({ load, index }) as unknown as Interpreter);

describe("LeastLoadedScheduler", () => {
  it("takes a free interpreter first", () => {
    const s = new LeastLoadedScheduler();
    expect(s.pick(withLoads(3, 0, 2)).index).toBe(1);
  });

  it("takes the least loaded when none is free", () => {
    const s = new LeastLoadedScheduler();
    expect(s.pick(withLoads(3, 2, 5)).index).toBe(1);
  });

  it("rotates among equally free interpreters", () => {
    const s = new LeastLoadedScheduler();
    const idle = withLoads(0, 0, 0);
    expect([0, 1, 2, 3].map(() => s.pick(idle).index)).toEqual([0, 1, 2, 0]);
  });
});
