// The HTTP clients of the metadata-driven checks, with curl: the model's metadata, and
// an infer request built from it sent as JSON or through the binary extension.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { e2eContext } from "./context.js";
import { curl } from "./curl.js";
import {
  binaryBody,
  jsonBody,
  outputsFromBinary,
  outputsFromJson,
  type ModelMetadata,
  type TensorValues,
} from "./metadata-request.js";

/** GET <base>/v2/models/<name>; throws with the body unless it answers 200. */
export async function fetchMetadata(base: string, name: string): Promise<ModelMetadata> {
  const response = await curl(`${base}/v2/models/${name}`);
  if (response.status !== 200) throw new Error(`GET /v2/models/${name}: ${response.status} ${response.body.toString()}`);
  return response.json<ModelMetadata>();
}

export interface Answer {
  status: number;
  /** The response body, for messages. */
  text: string;
  outputs: TensorValues[];
}

let count = 0;

/** A request body in the run's work dir (curl sends it with --data-binary @file). */
function bodyFile(label: string, body: string | Buffer): string {
  const dir = join(e2eContext().work, "requests");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${++count}-${label}`);
  writeFileSync(file, body);
  return file;
}

function answered(status: number, body: Buffer, decode: () => TensorValues[]): Answer {
  return { status, text: body.toString("utf8").slice(0, 2000), outputs: status === 200 ? decode() : [] };
}

/** POST <base>/v2/models/<name>/infer with a JSON body. */
export async function inferJson(base: string, name: string, inputs: readonly TensorValues[]): Promise<Answer> {
  const response = await curl(`${base}/v2/models/${name}/infer`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    dataFile: bodyFile(`${name}.json`, jsonBody(inputs)),
  });
  return answered(response.status, response.body, () => outputsFromJson(response.body));
}

/** POST <base>/v2/models/<name>/infer through Triton's binary extension, every output binary. */
export async function inferBinary(base: string, name: string, inputs: readonly TensorValues[]): Promise<Answer> {
  const { body, headerLength } = binaryBody(inputs);
  const response = await curl(`${base}/v2/models/${name}/infer`, {
    method: "POST",
    headers: { "Inference-Header-Content-Length": String(headerLength), "Content-Type": "application/octet-stream" },
    dataFile: bodyFile(`${name}.bin`, body),
  });
  return answered(response.status, response.body, () => {
    const length = response.headers["inference-header-content-length"];
    if (length === undefined) throw new Error("a binary response without Inference-Header-Content-Length");
    return outputsFromBinary(response.body, Number(length));
  });
}
