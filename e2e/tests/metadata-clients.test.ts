// Clients that know nothing of a model: each builds its request from the served
// metadata alone (names, datatypes, shapes; -1 -> a batch of 2) and its answer is
// compared with eager PyTorch on the same inputs (1e-5). The models are packed with
// zero config, their signatures inferred from example_inputs() (text_classifier's
// given: BYTES cannot be inferred). Clients: curl with JSON, curl with the binary
// extension, Python's gRPC client (ModelMetadata -> ModelInfer, raw contents).
import { readFileSync } from "node:fs";

import { describe, expect, it } from "vitest";

import { compareWithEager, exchangePath, writeExchange, type Exchange } from "../harness/eager.js";
import { serveForThisFile } from "../harness/file-server.js";
import { grpcStubs } from "../harness/grpc-stubs.js";
import { DYNAMIC_DIM, inputsFromMetadata, type ModelMetadata, type TensorValues } from "../harness/metadata-request.js";
import { fetchMetadata, inferBinary, inferJson, type Answer } from "../harness/oip-clients.js";
import { python } from "../harness/python.js";
import { REPOSITORIES } from "../harness/repository.js";

const repository = REPOSITORIES.inferred;
const live = serveForThisFile("metadata-clients", { repository, models: repository.models.map((m) => m.name) });
const TOLERANCE = 1e-5;

/** The outputs answered are the metadata's: names and datatypes in its order, shapes
 * with the dynamic dimensions the request's. */
function expectMetadataOutputs(outputs: readonly TensorValues[], metadata: ModelMetadata): void {
  expect(outputs.map(({ name, datatype }) => ({ name, datatype }))).toEqual(metadata.outputs.map(({ name, datatype }) => ({ name, datatype })));
  outputs.forEach((output, i) => expect(output.shape).toEqual(metadata.outputs[i]!.shape.map((d) => (d === -1 ? DYNAMIC_DIM : d))));
}

describe("the served metadata, from example_inputs()", () => {
  it("mlp (packed with no flags): forward's parameter, one unnamed output, a dynamic batch", async () => {
    expect(await fetchMetadata(live.server.base, "mlp")).toMatchObject({
      name: "mlp",
      inputs: [{ name: "input", datatype: "FP32", shape: [-1, 64] }],
      outputs: [{ name: "output__0", datatype: "FP32", shape: [-1, 10] }],
    });
  });

  it("scorer (e2e/models/scorer.py): FP32 and INT64 inputs, a dict of FP32, INT64 and FP64 outputs", async () => {
    expect(await fetchMetadata(live.server.base, "scorer")).toMatchObject({
      name: "scorer",
      inputs: [
        { name: "features", datatype: "FP32", shape: [-1, 6] },
        { name: "ids", datatype: "INT64", shape: [-1, 5] },
      ],
      outputs: [
        { name: "scores", datatype: "FP32", shape: [-1, 4] },
        { name: "best", datatype: "INT64", shape: [-1] },
        { name: "norm", datatype: "FP64", shape: [-1] },
      ],
    });
  });
});

describe.each(repository.models.map((model) => [model.name, model] as const))("%s: a request built from its metadata alone == eager (1e-5)", (name, model) => {
  const viaHttp = async (send: (base: string, name: string, inputs: readonly TensorValues[]) => Promise<Answer>, label: string) => {
    const metadata = await fetchMetadata(live.server.base, name);
    const inputs = inputsFromMetadata(metadata);
    const answer = await send(live.server.base, name, inputs);
    expect(answer.status, answer.text).toBe(200);
    expectMetadataOutputs(answer.outputs, metadata);
    const exchange: Exchange = { inputs, outputs: answer.outputs, output_names: metadata.outputs.map((o) => o.name) };
    await compareWithEager(model, writeExchange(live.context, `${name}-${label}`, exchange), TOLERANCE);
  };

  it("curl, JSON body", () => viaHttp(inferJson, "json"));

  it("curl, Triton's binary tensor extension (raw little-endian bytes both ways)", () => viaHttp(inferBinary, "binary"));

  it("Python's gRPC client: ModelMetadata -> ModelInfer with raw_input_contents", async () => {
    const stubs = await grpcStubs(live.context);
    const file = exchangePath(live.context, `${name}-grpc`);
    console.log(await python("grpc_metadata_client.py", [stubs, `127.0.0.1:${live.server.grpcPort}`, name, file]));
    const metadata = await fetchMetadata(live.server.base, name);
    const exchange = JSON.parse(readFileSync(file, "utf8")) as Exchange;
    expect(exchange.inputs.map((i) => i.name)).toEqual(metadata.inputs.map((i) => i.name));
    expectMetadataOutputs(exchange.outputs, metadata);
    await compareWithEager(model, file, TOLERANCE);
  });
});
