import { describe, expect, it } from "vitest";

import { Exposition } from "../exposition.js";
import { mergeExpositions } from "./metrics-aggregation.js";

function workerExposition(requests: number): string {
  const e = new Exposition();
  e.counter("coil_inference_requests_total", "Inference requests answered", [[{ model: "m", version: "1", outcome: "success" }, requests]]);
  e.histogram("coil_request_duration_seconds", "Per request", [[{ model: "m" }, { bounds: [0.1], cumulative: [requests], count: requests, sum: 0.5 }]]);
  e.gauge("coil_interpreter_load", "Calls queued", [[{ interpreter: "0" }, 0]]);
  return e.text();
}

describe("mergeExpositions", () => {
  it("labels each worker's samples with its slot and gives each family once, its samples together", () => {
    const primary = new Exposition();
    primary.gauge("coil_workers_alive", "Worker processes serving", [[{}, 2]]);
    const text = mergeExpositions(primary.text(), [
      { slot: 0, metrics: workerExposition(3) },
      { slot: 1, metrics: workerExposition(5) },
    ]);
    const lines = text.trim().split("\n");
    expect(lines.filter((l) => l === "# TYPE coil_inference_requests_total counter")).toHaveLength(1);
    expect(lines.filter((l) => l === "# TYPE coil_request_duration_seconds histogram")).toHaveLength(1);
    expect(lines).toContain("coil_workers_alive 2");
    expect(lines).toContain('coil_inference_requests_total{worker="0",model="m",version="1",outcome="success"} 3');
    expect(lines).toContain('coil_inference_requests_total{worker="1",model="m",version="1",outcome="success"} 5');
    expect(lines).toContain('coil_request_duration_seconds_bucket{worker="1",model="m",le="+Inf"} 5');
    expect(lines).toContain('coil_interpreter_load{worker="0",interpreter="0"} 0');
    // A family's samples follow its TYPE line, before the next family begins.
    const type = lines.indexOf("# TYPE coil_inference_requests_total counter");
    expect(lines.slice(type + 1, type + 3).every((l) => l.startsWith("coil_inference_requests_total{"))).toBe(true);
  });
});
