import { describe, expect, it } from "vitest";

import { planPlacement, validateDevices, validatePlacement } from "./placement.js";

describe("planPlacement", () => {
  it("round-robins interpreters over the devices by default", () => {
    expect(planPlacement(5, [0, 1])).toEqual([0, 1, 0, 1, 0]);
    expect(planPlacement(3, [2, 0, 1], "round-robin")).toEqual([2, 0, 1]);
    expect(planPlacement(4, [3])).toEqual([3, 3, 3, 3]);
    expect(planPlacement(1, [0, 1, 2, 3])).toEqual([0]);
  });

  it("places listed interpreters where asked and round-robins the rest", () => {
    expect(planPlacement(4, [0, 1], { interpreters: { 0: 1, 3: 1 } })).toEqual([1, 1, 0, 1]);
    // Indexes past the pool's size are ignored: the same options serve smaller pools.
    expect(planPlacement(2, [0, 1], { interpreters: { 5: 0 } })).toEqual([0, 1]);
  });

  it("spreads interpreters in proportion to per-device weights, interleaved", () => {
    expect(planPlacement(8, [0, 1], { weights: { 0: 3, 1: 1 } })).toEqual([0, 0, 1, 0, 0, 0, 1, 0]);
    const plan = planPlacement(12, [0, 1, 2], { weights: { 0: 1, 1: 2, 2: 3 } });
    expect(plan.filter((d) => d === 0)).toHaveLength(2);
    expect(plan.filter((d) => d === 1)).toHaveLength(4);
    expect(plan.filter((d) => d === 2)).toHaveLength(6);
    // A device weighted 0, or left out, gets none.
    expect(planPlacement(3, [0, 1, 2], { weights: { 1: 1, 2: 0 } })).toEqual([1, 1, 1]);
  });

  it("asks a placement function for each interpreter", () => {
    const calls: Array<[number, number, readonly number[]]> = [];
    const plan = planPlacement(3, [0, 1], (index, poolSize, devices) => {
      calls.push([index, poolSize, devices]);
      return index === 0 ? 1 : 0;
    });
    expect(plan).toEqual([1, 0, 0]);
    expect(calls).toEqual([
      [0, 3, [0, 1]],
      [1, 3, [0, 1]],
      [2, 3, [0, 1]],
    ]);
  });

  it("is deterministic", () => {
    const options = { weights: { 0: 2, 1: 1, 3: 1 } };
    expect(planPlacement(15, [0, 1, 3], options)).toEqual(planPlacement(15, [0, 1, 3], options));
  });

  it("refuses devices outside the usable ones", () => {
    expect(() => planPlacement(2, [0, 1], { interpreters: { 1: 2 } })).toThrow(/device 2, which is not among the usable devices \[0, 1\]/);
    expect(() => planPlacement(2, [0], { weights: { 1: 1 } })).toThrow(/not among the usable devices/);
    expect(() => planPlacement(2, [0], () => 7)).toThrow(/placement function placed an interpreter on device 7/);
    expect(() => planPlacement(2, [0], () => 0.5)).toThrow(/INVALID|device 0.5/);
    try {
      planPlacement(1, [0], () => 1);
    } catch (error) {
      expect(error).toMatchObject({ code: "INVALID_ARGUMENT" });
    }
  });

  it("refuses bad pool sizes and device lists", () => {
    expect(() => planPlacement(0, [0])).toThrow(/pool size must be a positive integer/);
    expect(() => planPlacement(1, [])).toThrow(/non-empty/);
    expect(() => validateDevices([0, 0])).toThrow(/distinct/);
    expect(() => validateDevices([-1])).toThrow(/non-negative integers/);
    expect(() => validateDevices([1.5])).toThrow(/non-negative integers/);
  });

  it("refuses malformed placements", () => {
    expect(() => validatePlacement("packed" as never)).toThrow(/must be "round-robin"/);
    expect(() => validatePlacement({} as never)).toThrow(/"interpreters" or "weights"/);
    expect(() => validatePlacement({ interpreters: { a: 0 } as never })).toThrow(/interpreter indexes/);
    expect(() => validatePlacement({ interpreters: { 0: -1 } })).toThrow(/must be a device index/);
    expect(() => validatePlacement({ weights: { 0: -1 } })).toThrow(/finite number >= 0/);
    expect(() => validatePlacement({ weights: { 0: 0 } })).toThrow(/at least one device/);
    expect(() => validatePlacement({ weights: { x: 1 } as never })).toThrow(/device indexes/);
  });
});
