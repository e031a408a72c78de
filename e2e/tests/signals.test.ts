// SIGTERM with a request in flight: `coil serve` answers it, logs "stopped" and exits 0,
// leaving no process behind (it restarted itself in place: no child).
import { setTimeout as sleep } from "node:timers/promises";

import { beforeAll, describe, expect, it } from "vitest";

import { curl, type CurlResponse } from "../harness/curl.js";
import { serveForThisFile } from "../harness/file-server.js";
import { isAlive } from "../harness/process.js";
import { python } from "../harness/python.js";
import { RESNET_BATCH } from "../harness/reference.js";

const live = serveForThisFile("signals", ["resnet18"]);

/** Requests of a model waiting or running, from the server's /metrics. */
async function pending(model: string): Promise<number> {
  const metrics = await (await fetch(`${live.server.base}/metrics`)).text();
  const match = new RegExp(`^coil_queue_pending\\{[^}]*model="${model}"[^}]*\\} (\\d+)`, "m").exec(metrics);
  return match ? Number(match[1]) : 0;
}

let childNodePids: number[] = [];
let inFlight: CurlResponse | undefined;
let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

beforeAll(async () => {
  childNodePids = await live.server.childNodePids();
  const request = curl(`${live.server.base}/v2/models/resnet18/infer`, {
    method: "POST",
    headers: { "Inference-Header-Content-Length": String(live.reference.resnetBatchBinHeader) },
    dataFile: live.reference.resnetBatchBin,
  });
  let answered = false;
  void request.then(() => (answered = true), () => (answered = true));
  // SIGTERM once the server counts the request as its own (queued or running).
  while ((await pending("resnet18")) === 0) {
    if (answered) throw new Error("the resnet18 request was answered before it could be caught in flight");
    await sleep(5);
  }
  live.server.child.kill("SIGTERM");
  [inFlight, exit] = await Promise.all([request, live.server.exited]);
});

describe("SIGTERM", () => {
  it("coil serve exits 0", () => {
    expect(exit).toEqual({ code: 0, signal: null });
  });

  it('logs "stopped" after draining', () => {
    expect(live.server.logged("stopped")).toHaveLength(1);
  });

  it("answers the request in flight at SIGTERM: 200, its logits", async () => {
    expect(inFlight!.status).toBe(200);
    await python("compare.py", ["resnet", inFlight!.bodyFile, inFlight!.headers["inference-header-content-length"] ?? "0", String(RESNET_BATCH)]);
  });

  it("leaves no process behind: it serves in the process started (restarted in place), which is gone", () => {
    expect(childNodePids).toEqual([]);
    expect(isAlive(live.server.pid)).toBe(false);
  });
});
