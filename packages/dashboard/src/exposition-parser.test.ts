import { describe, expect, it } from "vitest";

import { parseExposition } from "./exposition-parser.js";

describe("parseExposition", () => {
  it("reads samples with their labels, unescaped, and skips comments", () => {
    const text = [
      "# HELP coil_queue_pending Requests waiting or running",
      "# TYPE coil_queue_pending gauge",
      'coil_queue_pending{worker="1",model="a \\"quoted\\" name",version="2"} 3',
      "coil_workers_alive 2",
      'coil_request_duration_seconds_bucket{model="m",version="1",le="+Inf"} 7',
      'coil_path{p="C:\\\\dir\\nnext"} 1.5e-3',
      "",
    ].join("\n");
    expect(parseExposition(text)).toEqual([
      { name: "coil_queue_pending", labels: { worker: "1", model: 'a "quoted" name', version: "2" }, value: 3 },
      { name: "coil_workers_alive", labels: {}, value: 2 },
      { name: "coil_request_duration_seconds_bucket", labels: { model: "m", version: "1", le: "+Inf" }, value: 7 },
      { name: "coil_path", labels: { p: "C:\\dir\nnext" }, value: 0.0015 },
    ]);
  });
});
