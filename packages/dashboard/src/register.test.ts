import "reflect-metadata";

import { HTTP_ROUTES } from "@coil/adapter-http";
import { createCoilContainer } from "@coil/core";
import { describe, expect, it } from "vitest";

import { checkDashboardExposure } from "./exposure.js";
import { registerDashboard } from "./register.js";

describe("registerDashboard", () => {
  it("adds its routes to the HTTP port, and refuses options it does not take", () => {
    const container = registerDashboard(createCoilContainer());
    expect(container.resolveAll(HTTP_ROUTES)).toHaveLength(1);
    expect(() => registerDashboard(createCoilContainer(), { path: "/x" } as never)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
  });
});

describe("checkDashboardExposure", () => {
  it("allows loopback, or any address when metadata needs the token", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "::1", "localhost"]) expect(() => checkDashboardExposure({ host, metadataNeedsToken: false })).not.toThrow();
    for (const host of ["0.0.0.0", "::", "10.0.0.7"]) {
      expect(() => checkDashboardExposure({ host, metadataNeedsToken: true })).not.toThrow();
      expect(() => checkDashboardExposure({ host, metadataNeedsToken: false })).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    }
  });
});
