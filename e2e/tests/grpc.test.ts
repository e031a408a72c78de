// `coil serve` over gRPC with Python's grpcio client, its stubs generated from the
// proto the installed @coil/adapter-grpc ships.
import { mkdirSync } from "node:fs";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { serveForThisFile } from "../harness/file-server.js";
import { PYTHON, python } from "../harness/python.js";
import { runOk } from "../harness/process.js";

const live = serveForThisFile("grpc", ["mlp"]);
const stubs = () => join(live.context.work, "stubs");

describe("gRPC", () => {
  it("grpc_tools.protoc makes stubs from the installed proto", async () => {
    const proto = join(live.context.project, "node_modules/@coil/adapter-grpc/proto");
    mkdirSync(stubs(), { recursive: true });
    await runOk(PYTHON, ["-m", "grpc_tools.protoc", "-I", proto, `--python_out=${stubs()}`, `--grpc_python_out=${stubs()}`, join(proto, "grpc_service.proto")]);
  });

  it("ServerLive, ModelInfer with raw contents == eager (1e-5), unknown model NOT_FOUND", async () => {
    const { reference, server } = live;
    const output = await python("grpc_client.py", [stubs(), `127.0.0.1:${server.grpcPort}`, reference.inputF32, reference.expected]);
    expect(JSON.parse(output)).toMatchObject({ live: true, id: "e2e-1", model: "mlp", missing: "NOT_FOUND" });
  });
});
