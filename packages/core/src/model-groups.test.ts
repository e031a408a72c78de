import { describe, expect, it } from "vitest";

import { defaultInstances, ModelGroups } from "./model-groups.js";

const neverCalled = () => Promise.reject(new Error("no pool in this test"));

describe("defaultInstances", () => {
  it("splits the budget evenly between the groups, at most one per core, at least one", () => {
    expect(defaultInstances(1, 2, 15)).toBe(2); // one model on 2 cores: both
    expect(defaultInstances(3, 2, 15)).toBe(2);
    expect(defaultInstances(2, 16, 15)).toBe(7); // 16 cores: the budget is what binds
    expect(defaultInstances(10, 16, 15)).toBe(1);
    expect(defaultInstances(20, 16, 15)).toBe(1); // past 15 models, the 16th fails to load
    expect(defaultInstances(0, 4, 4)).toBe(4);
  });
});

describe("ModelGroups", () => {
  it("names each model's group: its own, or the one it shares", () => {
    const groups = new ModelGroups({ createPool: neverCalled, models: { a: { group: "trusted" }, b: { group: "trusted" }, c: { instances: 3 } } });
    expect(["a", "b", "c", "d"].map((m) => groups.groupOf(m))).toEqual(["trusted", "trusted", "c", "d"]);
  });

  it("plans the default from the groups the repository's models form", () => {
    const groups = new ModelGroups({ createPool: neverCalled, models: { a: { group: "g" }, b: { group: "g" } } });
    groups.plan(["a", "b", "c", "d", "e", "f", "g", "h"]); // 7 groups
    expect(groups.defaultInstances).toBe(defaultInstances(7));
    const fixed = new ModelGroups({ createPool: neverCalled, instances: 3 });
    fixed.plan(["a", "b", "c", "d", "e", "f", "g", "h"]);
    expect(fixed.defaultInstances).toBe(3);
  });

  it("refuses settings out of range, naming the setting", () => {
    expect(() => new ModelGroups({ createPool: neverCalled, instances: 0 })).toThrow(/instances must be an integer from 1 to 15/);
    expect(() => new ModelGroups({ createPool: neverCalled, models: { bert: { instances: 16 } } })).toThrow(/models\.bert\.instances/);
    expect(() => new ModelGroups({ createPool: neverCalled, models: { bert: { group: "" } } })).toThrow(/models\.bert\.group/);
  });
});
