import "reflect-metadata";

import { container as root } from "tsyringe";
import { describe, expect, inject, it } from "vitest";

import { PlainPythonBackend } from "../test/plain-backend.js";
import { createCoilContainer, createPoolFromContainer } from "./container.js";
import type { Scheduler } from "./contracts.js";
import { LeastLoadedScheduler } from "./scheduler.js";
import { TOKENS } from "./tokens.js";

const PYTHON = inject("testPython");

describe("dependency injection", () => {
  it("assembles a pool from the backend, scheduler and options a container holds", async () => {
    const container = createCoilContainer({ size: 2, python: PYTHON });
    const backend = new PlainPythonBackend();
    container.register(TOKENS.Backend, { useValue: backend });
    const picks: number[] = [];
    const inner = new LeastLoadedScheduler();
    const counting: Scheduler = {
      pick: (interpreters) => {
        const chosen = inner.pick(interpreters);
        picks.push(chosen.index);
        return chosen;
      },
    };
    container.register(TOKENS.Scheduler, { useValue: counting });
    const pool = await createPoolFromContainer(container);
    try {
      expect(pool.size).toBe(2);
      expect(backend.prepared).toBe(2);
      await pool.run("noop", []);
      expect(picks).toHaveLength(1);
    } finally {
      await pool.close();
    }
  });

  it("keeps registrations in the child container", () => {
    const container = createCoilContainer({ size: 1 });
    container.register(TOKENS.Backend, { useValue: new PlainPythonBackend() });
    expect(root.isRegistered(TOKENS.Backend)).toBe(false);
  });

  it("says which registration is missing", async () => {
    await expect(createPoolFromContainer(createCoilContainer())).rejects.toMatchObject({ code: "BACKEND_UNAVAILABLE" });
  });
});
