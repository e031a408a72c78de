import { describe, expect, it } from "vitest";

import { exitCause } from "./exit-cause.js";
import { RestartPolicy } from "./restart-policy.js";

describe("RestartPolicy", () => {
  it("restarts after 0.5 s doubling up to 30 s while deaths come close together", () => {
    const policy = new RestartPolicy({ crashLoopDeaths: 100, crashLoopWindowMs: 600_000 });
    const delays = Array.from({ length: 9 }, (_, i) => policy.onDeath(0, i * 1000));
    expect(delays.map((d) => (d.action === "restart" ? d.delayMs : d.action))).toEqual([
      500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000,
    ]);
  });

  it("gives a slot up at the fifth death within 60 s, and counts slots apart", () => {
    const policy = new RestartPolicy();
    for (let i = 0; i < 4; i++) expect(policy.onDeath(0, i * 10_000).action).toBe("restart");
    expect(policy.onDeath(1, 40_000)).toEqual({ action: "restart", delayMs: 500 });
    expect(policy.onDeath(0, 45_000)).toEqual({ action: "give-up", deaths: 5, windowMs: 60_000 });
  });

  it("starts over after a quiet minute: deaths outside the window are forgotten", () => {
    const policy = new RestartPolicy();
    for (let i = 0; i < 4; i++) policy.onDeath(0, i * 1000);
    expect(policy.onDeath(0, 200_000)).toEqual({ action: "restart", delayMs: 500 });
  });
});

describe("exitCause", () => {
  it("names the signal and gives the shell's status, 128 + its number", () => {
    expect(exitCause(null, "SIGSEGV")).toEqual({ cause: "SIGSEGV", signal: "SIGSEGV", status: 139 });
    expect(exitCause(null, "SIGKILL")).toMatchObject({ cause: "SIGKILL", status: 137 });
    expect(exitCause(null, "SIGABRT")).toMatchObject({ status: 134 });
  });

  it("gives the exit code when the process exited", () => {
    expect(exitCause(1, null)).toEqual({ cause: "exit code 1", code: 1, status: 1 });
  });
});
