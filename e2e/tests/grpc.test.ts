// `coil serve` over gRPC with Python's grpcio client, its stubs generated from the
// proto the installed @coil/adapter-grpc ships.
import { existsSync } from "node:fs";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { serveForThisFile } from "../harness/file-server.js";
import { grpcStubs } from "../harness/grpc-stubs.js";
import { python } from "../harness/python.js";

const live = serveForThisFile("grpc", ["mlp"]);
const stubs = () => join(live.context.work, "stubs");

describe("gRPC", () => {
  it("grpc_tools.protoc makes stubs from the installed proto", async () => {
    expect(await grpcStubs(live.context)).toBe(stubs());
    expect(existsSync(join(stubs(), "grpc_service_pb2.py"))).toBe(true);
  });

  it("ServerLive, ModelInfer with raw contents == eager (1e-5), unknown model NOT_FOUND", async () => {
    const { reference, server } = live;
    const output = await python("grpc_client.py", [await grpcStubs(live.context), `127.0.0.1:${server.grpcPort}`, reference.inputF32, reference.expected]);
    expect(JSON.parse(output)).toMatchObject({ live: true, id: "e2e-1", model: "mlp", missing: "NOT_FOUND" });
  });
});
