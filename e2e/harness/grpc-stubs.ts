// Python's gRPC stubs (grpc_tools.protoc) from the proto the installed
// @coil/adapter-grpc ships, made once per run in the work dir.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";

import type { E2eContext } from "./context.js";
import { PYTHON } from "./python.js";
import { runOk } from "./process.js";

/** The stubs' folder, made if it is not there yet. */
export async function grpcStubs(context: E2eContext): Promise<string> {
  const stubs = join(context.work, "stubs");
  if (existsSync(join(stubs, "grpc_service_pb2_grpc.py"))) return stubs;
  const proto = join(context.project, "node_modules/@coil/adapter-grpc/proto");
  mkdirSync(stubs, { recursive: true });
  await runOk(PYTHON, ["-m", "grpc_tools.protoc", "-I", proto, `--python_out=${stubs}`, `--grpc_python_out=${stubs}`, join(proto, "grpc_service.proto")]);
  return stubs;
}
