import { describe, expect, it } from "vitest";

import type { WorkerMessage } from "./messages.js";
import { ModelControlRelay } from "./model-control.js";

describe("ModelControlRelay", () => {
  it("asks the primary and settles with its answer, a failure as a typed CoilError", async () => {
    const sent: WorkerMessage[] = [];
    const relay = new ModelControlRelay((message) => (sent.push(message), true));
    const load = relay.request("load", "mlp");
    const unload = relay.request("unload", "nope");
    expect(sent).toEqual([
      { coil: "model-control", id: 1, action: "load", name: "mlp" },
      { coil: "model-control", id: 2, action: "unload", name: "nope" },
    ]);
    relay.settle(2, { code: "MODEL_NOT_FOUND", message: "no model nope" });
    relay.settle(1, undefined);
    await expect(load).resolves.toBeUndefined();
    await expect(unload).rejects.toMatchObject({ code: "MODEL_NOT_FOUND", message: "no model nope" });
  });

  it("refuses at once when the primary is gone, rather than waiting for an answer that cannot come", async () => {
    const relay = new ModelControlRelay(() => false);
    await expect(relay.request("load", "mlp")).rejects.toMatchObject({ code: "CLOSED" });
  });
});
