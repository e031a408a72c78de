// `coil serve --dashboard` from the installed tarballs: @coil/dashboard travels with
// @coil/runtime, its built page included, and its status feed follows the requests.
import { describe, expect, it } from "vitest";

import { curl } from "../harness/curl.js";
import { serveForThisFile } from "../harness/file-server.js";

const live = serveForThisFile("dashboard", ["mlp"], { args: ["--dashboard"] });
const url = (path: string) => `${live.server.base}${path}`;

describe("coil serve --dashboard (installed)", () => {
  it("logs where the dashboard is", () => {
    expect(live.server.serving).toMatchObject({ dashboard: `${live.server.base}/dashboard/` });
  });

  it("serves the built page and its script", async () => {
    const page = await curl(url("/dashboard/"));
    expect(page.status).toBe(200);
    const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(page.body.toString())?.[1];
    expect(script).toBeDefined();
    expect((await curl(url(`/dashboard/${script}`))).status).toBe(200);
  });

  it("reports the model and the requests it answered", async () => {
    for (let i = 0; i < 3; i++) {
      const response = await curl(url("/v2/models/mlp/infer"), { method: "POST", headers: { "Content-Type": "application/json" }, dataFile: live.reference.inferJson });
      expect(response.status).toBe(200);
    }
    const status = (await curl(url("/dashboard/status"))).json<{ models: { name: string; state: string; requests: Record<string, number> }[]; interpreters: unknown[] }>();
    expect(status.models).toContainEqual(expect.objectContaining({ name: "mlp", state: "READY" }));
    expect(status.models.find((m) => m.name === "mlp")!.requests.success).toBeGreaterThanOrEqual(3);
    expect(status.interpreters.length).toBeGreaterThan(0);
  });
});
