/**
 * Open Inference Protocol (KServe v2 REST) infer request/response bodies, JSON and
 * Triton's binary tensor data extension, to and from Coil's InferenceRequest /
 * InferenceResponse. Everything a client may send is validated here, before any
 * tensor memory is allocated; failures are CoilErrors the adapter answers 400.
 */
import { Readable } from "node:stream";

import {
  BytesTensor,
  checkShape,
  countElements,
  dtypeOfDatatype,
  dtypeSize,
  encodeBytesElements,
  protocolDatatype,
  Tensor,
  tensorFromRawBytes,
  tensorFromValues,
  type InferenceRequest,
  type InferenceResponse,
  type NamedTensor,
  type ServedDType,
  type ServedTensor,
} from "@coil/core";
import { CoilError } from "@coil/errors";

import { NumericArray, parseRequestJson, TooManyNumbersError } from "./json.js";

/** The header that says how many leading body bytes are the JSON header. */
export const HEADER_LENGTH_HEADER = "inference-header-content-length";

export interface DecodeLimits {
  /** Most tensor elements one request may carry, over all its inputs. */
  maxElements: number;
}

/** A decoded infer request, plus how the client wants each output encoded. */
export interface DecodedInferRequest {
  request: InferenceRequest;
  /** Request-level `parameters.binary_data_output`. */
  binaryByDefault: boolean;
  /** Per-output `parameters.binary_data_output`, where given. */
  binaryOutputs: Map<string, boolean>;
}

export interface EncodedResponse {
  /** One piece, or a stream of a large JSON body's parts. */
  body: Buffer | string | Readable;
  /** Set when outputs travel as binary: the JSON header's byte length. */
  headerLength?: number;
  /** Set for a stream: its length in bytes. */
  contentLength?: number;
}

type JsonObject = Record<string, unknown>;

const REQUEST_FIELDS = new Set(["id", "parameters", "inputs", "outputs"]);
const INPUT_FIELDS = new Set(["name", "shape", "datatype", "parameters", "data"]);
const OUTPUT_FIELDS = new Set(["name", "parameters"]);

/** An error answered with its own HTTP status (413, ...) and headers (Retry-After, ...). */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

function tooManyElements(maxElements: number): HttpError {
  return new HttpError(413, `the request's inputs have more than ${maxElements} elements, the most this server accepts`);
}

function invalid(message: string): CoilError {
  return new CoilError("INVALID_ARGUMENT", message);
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkFields(value: JsonObject, allowed: ReadonlySet<string>, what: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.has(key)) throw invalid(`${what}: unknown field ${JSON.stringify(key)}`);
  }
}

function parameters(value: JsonObject, what: string): JsonObject {
  if (value.parameters === undefined) return {};
  if (!isObject(value.parameters)) throw invalid(`${what}: parameters must be an object`);
  return value.parameters;
}

function booleanParameter(params: JsonObject, key: string, what: string): boolean | undefined {
  const v = params[key];
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") throw invalid(`${what}: parameters.${key} must be a boolean`);
  return v;
}

/** Splits a body into its JSON header and binary tail per Inference-Header-Content-Length. */
export function splitBody(body: Buffer, headerLength: string | string[] | undefined): { json: Buffer; binary: Buffer } {
  if (headerLength === undefined) return { json: body, binary: body.subarray(body.length) };
  const text = Array.isArray(headerLength) ? headerLength[0] : headerLength;
  if (text === undefined || !/^\d+$/.test(text.trim())) {
    throw invalid(`Inference-Header-Content-Length must be a non-negative integer, got ${JSON.stringify(headerLength)}`);
  }
  const n = Number(text.trim());
  if (n > body.length) {
    throw invalid(`Inference-Header-Content-Length is ${n} but the body has only ${body.length} bytes`);
  }
  return { json: body.subarray(0, n), binary: body.subarray(n) };
}

/** Parses and validates an infer request body into Coil tensors. */
export function decodeInferRequest(
  body: Buffer,
  headerLength: string | string[] | undefined,
  limits: DecodeLimits,
): DecodedInferRequest {
  const { json, binary } = splitBody(body, headerLength);
  if (json.length === 0) throw invalid("request body is empty; expected a JSON inference request");
  let parsed: unknown;
  try {
    parsed = parseRequestJson(json, limits.maxElements);
  } catch (error) {
    if (error instanceof TooManyNumbersError) throw tooManyElements(limits.maxElements);
    throw invalid(`malformed JSON in the request: ${(error as Error).message}`);
  }
  if (!isObject(parsed)) throw invalid("the request must be a JSON object");
  checkFields(parsed, REQUEST_FIELDS, "request");
  if (parsed.id !== undefined && typeof parsed.id !== "string") throw invalid("request: id must be a string");
  const requestParams = parameters(parsed, "request");
  const binaryByDefault = booleanParameter(requestParams, "binary_data_output", "request") ?? false;
  let timeoutMs: number | undefined;
  if (requestParams.timeout !== undefined) {
    // Triton's request timeout, in microseconds.
    const t = requestParams.timeout;
    if (typeof t !== "number" || !Number.isSafeInteger(t) || t < 0) {
      throw invalid("request: parameters.timeout must be a non-negative integer (microseconds)");
    }
    if (t > 0) timeoutMs = Math.max(1, Math.ceil(t / 1000));
  }

  if (!Array.isArray(parsed.inputs)) throw invalid("request: inputs must be an array");

  // First pass: validate every input's header and count elements, allocating nothing.
  interface Planned {
    name: string;
    dtype: ServedDType;
    shape: number[];
    count: number;
    binarySize?: number;
    data?: unknown;
  }
  const planned: Planned[] = [];
  const names = new Set<string>();
  let totalElements = 0;
  let binaryTotal = 0;
  for (const [i, input] of parsed.inputs.entries()) {
    const what = `input ${i}`;
    if (!isObject(input)) throw invalid(`${what} must be an object`);
    checkFields(input, INPUT_FIELDS, what);
    if (typeof input.name !== "string" || input.name === "") throw invalid(`${what}: name must be a non-empty string`);
    const label = `input ${JSON.stringify(input.name)}`;
    if (names.has(input.name)) throw invalid(`${label} is given twice`);
    names.add(input.name);
    const dtype = dtypeOfDatatype(input.datatype, label);
    const shape = checkShape(input.shape, label);
    const count = countElements(shape, limits.maxElements);
    totalElements += count;
    if (totalElements > limits.maxElements) {
      throw tooManyElements(limits.maxElements);
    }
    const params = parameters(input, label);
    const plan: Planned = { name: input.name, dtype, shape, count };
    if (params.binary_data_size !== undefined) {
      const size = params.binary_data_size;
      if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
        throw invalid(`${label}: parameters.binary_data_size must be a non-negative integer`);
      }
      if (headerLength === undefined) {
        throw invalid(`${label} has binary_data_size but the request has no Inference-Header-Content-Length header`);
      }
      if (input.data !== undefined) throw invalid(`${label} has both data and binary_data_size`);
      if (dtype === "bytes") {
        // Each element is a 4-byte length and its bytes; decoding checks the lengths.
        if (size < count * 4) {
          throw invalid(`${label}: binary_data_size is ${size} bytes, too few for ${count} BYTES elements (4 bytes of length each)`);
        }
      } else if (size !== count * dtypeSize(dtype)) {
        const expected = count * dtypeSize(dtype);
        throw invalid(
          `${label}: binary_data_size is ${size} bytes but shape [${shape.join(", ")}] of ${input.datatype} needs ${expected}`,
        );
      }
      plan.binarySize = size;
      binaryTotal += size;
    } else {
      if (input.data === undefined) throw invalid(`${label} has neither data nor parameters.binary_data_size`);
      plan.data = input.data;
    }
    planned.push(plan);
  }
  if (binaryTotal !== binary.length) {
    throw invalid(
      `the inputs' binary_data_size add up to ${binaryTotal} bytes but the body carries ${binary.length} bytes after the JSON header`,
    );
  }

  // Second pass: build the tensors.
  const inputs: NamedTensor[] = [];
  let offset = 0;
  for (const plan of planned) {
    let tensor: ServedTensor;
    if (plan.binarySize !== undefined) {
      tensor = tensorFromRawBytes(plan.dtype, plan.shape, binary.subarray(offset, offset + plan.binarySize), `input ${JSON.stringify(plan.name)}`);
      offset += plan.binarySize;
    } else {
      tensor = tensorFromJson(plan.name, plan.dtype, plan.shape, plan.count, plan.data);
    }
    inputs.push({ name: plan.name, tensor });
  }

  const binaryOutputs = new Map<string, boolean>();
  let outputs: string[] | undefined;
  if (parsed.outputs !== undefined) {
    if (!Array.isArray(parsed.outputs)) throw invalid("request: outputs must be an array");
    outputs = [];
    for (const [i, output] of parsed.outputs.entries()) {
      const what = `output ${i}`;
      if (!isObject(output)) throw invalid(`${what} must be an object`);
      checkFields(output, OUTPUT_FIELDS, what);
      if (typeof output.name !== "string" || output.name === "") throw invalid(`${what}: name must be a non-empty string`);
      if (outputs.includes(output.name)) throw invalid(`output ${JSON.stringify(output.name)} is requested twice`);
      outputs.push(output.name);
      const params = parameters(output, `output ${JSON.stringify(output.name)}`);
      const binaryOut = booleanParameter(params, "binary_data_output", `output ${JSON.stringify(output.name)}`);
      if (binaryOut !== undefined) binaryOutputs.set(output.name, binaryOut);
    }
  }

  const request: InferenceRequest = { inputs };
  if (parsed.id !== undefined) request.id = parsed.id as string;
  if (outputs !== undefined) request.outputs = outputs;
  if (timeoutMs !== undefined) request.timeoutMs = timeoutMs;
  return { request, binaryByDefault, binaryOutputs };
}

function tensorFromJson(name: string, dtype: ServedDType, shape: number[], count: number, data: unknown): ServedTensor {
  const label = `input ${JSON.stringify(name)}`;
  if (data instanceof NumericArray) {
    if (!data.regular) throw ragged(label);
    if (data.values.length !== count) {
      throw shapeMismatch(label, shape, count, data.values.length > count ? "more" : data.values.length);
    }
    return tensorFromValues(dtype, shape, data.values, label); // "data": [] is numeric too, BYTES or not
  }
  if (!Array.isArray(data)) throw invalid(`${label}: data must be an array`);
  return tensorFromValues(dtype, shape, flattenJson(label, shape, count, data), label);
}

/** Nested arrays' elements row-major, gathered without recursion, stopping at the
 * first surplus element; SHAPE_MISMATCH unless there are exactly `count`,
 * INVALID_ARGUMENT when the nesting is ragged. */
function flattenJson(label: string, shape: number[], count: number, data: unknown[]): unknown[] {
  const elements: unknown[] = [];
  // Regularity: the length of the arrays of each depth, the depth of the elements, and
  // the deepest depth with an array among its elements (the elements' must be deeper).
  const lengths: number[] = [data.length];
  let leafDepth = -1;
  let deepestArray = 0;
  const stack: { array: unknown[]; index: number }[] = [{ array: data, index: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.index >= top.array.length) {
      stack.pop();
      continue;
    }
    const v = top.array[top.index++];
    const depth = stack.length; // of v's own level, 1 for data's elements
    if (Array.isArray(v)) {
      if ((leafDepth !== -1 && depth >= leafDepth) || (lengths[depth] ??= v.length) !== v.length) throw ragged(label);
      deepestArray = Math.max(deepestArray, depth);
      stack.push({ array: v, index: 0 });
      continue;
    }
    if (leafDepth === -1) leafDepth = depth;
    if (depth !== leafDepth || depth <= deepestArray) throw ragged(label);
    if (elements.length >= count) throw shapeMismatch(label, shape, count, "more");
    elements.push(v);
  }
  if (elements.length !== count) throw shapeMismatch(label, shape, count, elements.length);
  return elements;
}

function ragged(label: string): CoilError {
  return invalid(`${label}: data is a ragged nested array; nested arrays of one level must have one length, with every element at the same depth (or send the data flat)`);
}

function shapeMismatch(label: string, shape: number[], count: number, got: number | "more"): CoilError {
  return new CoilError(
    "SHAPE_MISMATCH",
    `${label}: shape [${shape.join(", ")}] has ${count} elements but data has ${got === "more" ? "more" : got}`,
  );
}

/** JSON text of a tensor's elements, row-major. INT64 and UINT64 keep every digit;
 * NaN and infinities (which JSON cannot write) become null; BYTES elements are
 * strings, so they must be UTF-8 (others travel with binary_data_output). */
export function jsonData(tensor: ServedTensor, name = "output"): string {
  if (tensor instanceof BytesTensor) {
    try {
      return JSON.stringify(tensor.strings());
    } catch {
      throw invalid(`output ${JSON.stringify(name)} holds bytes that are not UTF-8 text; request it with parameters.binary_data_output: true`);
    }
  }
  if (tensor.dtype === "int64" || tensor.dtype === "uint64") {
    const d = tensor.data as BigInt64Array | BigUint64Array;
    const parts = new Array<string>(d.length);
    for (let i = 0; i < d.length; i++) parts[i] = d[i]!.toString();
    return `[${parts.join(",")}]`;
  }
  // JSON.stringify writes each number into its output as String(x) would, and null for
  // NaN and infinities. String(x) itself must not be used per element: V8 keeps the
  // strings it makes from numbers in a cache in old space, so outputs that change from
  // request to request filled the old generation by ~40 bytes a number, and the
  // mark-compacts that followed were the server's p99 (docs/engine.md).
  return JSON.stringify(tensor.toArray());
}

export interface EncodeLimits {
  /** Largest JSON response body in bytes: RESPONSE_TOO_LARGE past it. */
  maxJsonBytes: number;
}

/** Elements encoded between two returns to the event loop: JSON-encoding 16 M floats
 * in one go blocked the loop 5 s, during which the server answered nothing. */
export const JSON_SLICE_ELEMENTS = 1 << 16;

/** Bodies up to this size are sent as one string; larger ones as a stream of parts. */
const ONE_PIECE_BYTES = 1 << 20;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A JSON text built in parts, counting its UTF-8 bytes against a cap. */
class JsonText {
  readonly #parts: string[] = [];
  #bytes = 0;

  constructor(readonly maxBytes: number) {}

  get bytes(): number {
    return this.#bytes;
  }

  push(text: string): void {
    this.#bytes += Buffer.byteLength(text, "utf8");
    if (this.#bytes > this.maxBytes) {
      throw new CoilError(
        "RESPONSE_TOO_LARGE",
        `the JSON response would be more than ${this.maxBytes} bytes, the most this server sends as JSON (--max-response-bytes): ` +
          `ask for the outputs in binary with parameters.binary_data_output: true (Triton's binary tensor data extension)`,
        { details: { maxBytes: this.maxBytes } },
      );
    }
    this.#parts.push(text);
  }

  text(): string {
    return this.#parts.join("");
  }

  /** The parts as Buffers, each converted only when the stream reaches it, with a turn
   * of the event loop between parts: a socket that takes every write at once (loopback)
   * would otherwise run the whole send in one stretch of nextTicks (0.8 s for 336 MB). */
  stream(): Readable {
    const parts = this.#parts;
    return Readable.from(
      (async function* () {
        for (const [i, part] of parts.entries()) {
          if (i > 0) await nextTurn();
          yield Buffer.from(part, "utf8");
        }
      })(),
      { highWaterMark: 1 }, // one part converted per read, not 16
    );
  }
}

/** Writes a tensor's `data` array, a slice at a time with a turn of the event loop
 * between slices when it is large; stops if `signal` aborts (the client left). */
async function writeJsonData(json: JsonText, tensor: ServedTensor, name: string, signal: AbortSignal | undefined): Promise<void> {
  const count = tensor.data.length;
  if (count <= JSON_SLICE_ELEMENTS) {
    json.push(jsonData(tensor, name));
    return;
  }
  json.push("[");
  for (let start = 0; start < count; start += JSON_SLICE_ELEMENTS) {
    const end = Math.min(count, start + JSON_SLICE_ELEMENTS);
    const slice =
      tensor instanceof BytesTensor
        ? new BytesTensor([end - start], tensor.data.slice(start, end))
        : new Tensor(tensor.dtype, [end - start], tensor.data.subarray(start, end) as typeof tensor.data);
    const text = jsonData(slice, name);
    json.push(start === 0 ? text.slice(1, -1) : `,${text.slice(1, -1)}`);
    await nextTurn();
    signal?.throwIfAborted();
  }
  json.push("]");
}

/** The response body: JSON, or a JSON header followed by the binary outputs. A large
 * JSON body is encoded a slice at a time, yielding to the event loop in between, and
 * refused with RESPONSE_TOO_LARGE as soon as it passes `limits.maxJsonBytes`. */
export async function encodeInferResponse(
  response: InferenceResponse,
  decoded: DecodedInferRequest,
  limits: EncodeLimits = { maxJsonBytes: Infinity },
): Promise<EncodedResponse> {
  const json = new JsonText(limits.maxJsonBytes);
  const head = [`"model_name":${JSON.stringify(response.modelName)}`, `"model_version":${JSON.stringify(response.modelVersion)}`];
  const id = response.id ?? decoded.request.id;
  if (id !== undefined) head.push(`"id":${JSON.stringify(id)}`);
  json.push(`{${head.join(",")},"outputs":[`);
  const blobs: Buffer[] = [];
  for (const [i, { name, tensor }] of response.outputs.entries()) {
    const fields = `${i > 0 ? "," : ""}{"name":${JSON.stringify(name)},"datatype":"${protocolDatatype(tensor.dtype)}","shape":${JSON.stringify(tensor.shape)}`;
    const binary = decoded.binaryOutputs.get(name) ?? decoded.binaryByDefault;
    if (!binary) {
      json.push(`${fields},"data":`);
      await writeJsonData(json, tensor, name, decoded.request.signal);
      json.push("}");
      continue;
    }
    const blob =
      tensor instanceof BytesTensor
        ? encodeBytesElements(tensor)
        : Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
    blobs.push(blob);
    json.push(`${fields},"parameters":{"binary_data_size":${blob.byteLength}}}`);
  }
  json.push("]}");
  if (blobs.length === 0) {
    return json.bytes <= ONE_PIECE_BYTES ? { body: json.text() } : { body: json.stream(), contentLength: json.bytes };
  }
  const header = Buffer.from(json.text(), "utf8");
  return { body: Buffer.concat([header, ...blobs]), headerLength: header.length };
}
