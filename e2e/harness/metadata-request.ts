// A client's request built from a model's metadata alone (GET /v2/models/<m>): each
// input's name, datatype and shape, -1 taken as 2, filled by one rule per datatype.
// Nothing about a model is known here; python/grpc_metadata_client.py fills its
// gRPC requests by the same rule.

/** One tensor of the metadata (`outputs` too). */
export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

/** A tensor with its values, flat in row-major order: a request's input, an answer's output. */
export interface TensorValues extends TensorMetadata {
  data: (number | boolean | string)[];
}

/** What -1 (a dynamic dimension) becomes in a request. */
export const DYNAMIC_DIM = 2;

const INTEGERS = new Set(["UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"]);
const FLOATS = new Set(["FP32", "FP64"]);

/** Element `i` of input number `k`: floats in [-1, 1], integers 0/1 (valid token ids,
 * masks and class indices of any vocabulary), booleans alternating, strings naming
 * themselves. */
function value(datatype: string, k: number, i: number): number | boolean | string {
  if (FLOATS.has(datatype)) return ((i * 37 + k * 11) % 101) / 50 - 1;
  if (INTEGERS.has(datatype)) return (i + k + 1) % 2;
  if (datatype === "BOOL") return (i + k) % 2 === 0;
  if (datatype === "BYTES") return `item ${k}.${i}`;
  throw new Error(`no request values for datatype ${datatype} (FP16/BF16 have no JSON or struct form here)`);
}

/** The request's inputs, in the metadata's order. */
export function inputsFromMetadata(metadata: ModelMetadata): TensorValues[] {
  if (metadata.inputs.length === 0) throw new Error(`the metadata of ${metadata.name} lists no inputs: nothing to build a request from`);
  return metadata.inputs.map((input, k) => {
    const shape = input.shape.map((d) => (d === -1 ? DYNAMIC_DIM : d));
    const count = shape.reduce((n, d) => n * d, 1);
    return { name: input.name, datatype: input.datatype, shape, data: Array.from({ length: count }, (_, i) => value(input.datatype, k, i)) };
  });
}

/** An infer request's JSON body. */
export function jsonBody(inputs: readonly TensorValues[]): string {
  return JSON.stringify({ inputs });
}

/** Typed-array views for the fixed-size datatypes, little-endian as the extension wants. */
const ELEMENT: Record<string, { bytes: number; write(view: DataView, at: number, v: number | boolean): void; read(view: DataView, at: number): number | boolean }> = {
  BOOL: { bytes: 1, write: (d, at, v) => d.setUint8(at, v ? 1 : 0), read: (d, at) => d.getUint8(at) !== 0 },
  UINT8: { bytes: 1, write: (d, at, v) => d.setUint8(at, Number(v)), read: (d, at) => d.getUint8(at) },
  INT8: { bytes: 1, write: (d, at, v) => d.setInt8(at, Number(v)), read: (d, at) => d.getInt8(at) },
  UINT16: { bytes: 2, write: (d, at, v) => d.setUint16(at, Number(v), true), read: (d, at) => d.getUint16(at, true) },
  INT16: { bytes: 2, write: (d, at, v) => d.setInt16(at, Number(v), true), read: (d, at) => d.getInt16(at, true) },
  UINT32: { bytes: 4, write: (d, at, v) => d.setUint32(at, Number(v), true), read: (d, at) => d.getUint32(at, true) },
  INT32: { bytes: 4, write: (d, at, v) => d.setInt32(at, Number(v), true), read: (d, at) => d.getInt32(at, true) },
  UINT64: { bytes: 8, write: (d, at, v) => d.setBigUint64(at, BigInt(Number(v)), true), read: (d, at) => Number(d.getBigUint64(at, true)) },
  INT64: { bytes: 8, write: (d, at, v) => d.setBigInt64(at, BigInt(Number(v)), true), read: (d, at) => Number(d.getBigInt64(at, true)) },
  FP32: { bytes: 4, write: (d, at, v) => d.setFloat32(at, Number(v), true), read: (d, at) => d.getFloat32(at, true) },
  FP64: { bytes: 8, write: (d, at, v) => d.setFloat64(at, Number(v), true), read: (d, at) => d.getFloat64(at, true) },
};

/** A tensor's raw bytes: little-endian elements, or BYTES items each after its 4-byte length. */
export function rawBytes(tensor: TensorValues): Buffer {
  if (tensor.datatype === "BYTES") {
    return Buffer.concat(
      tensor.data.map((item) => {
        const bytes = Buffer.from(String(item), "utf8");
        const length = Buffer.alloc(4);
        length.writeUInt32LE(bytes.length);
        return Buffer.concat([length, bytes]);
      }),
    );
  }
  const element = ELEMENT[tensor.datatype];
  if (!element) throw new Error(`no raw form for datatype ${tensor.datatype}`);
  const raw = Buffer.alloc(element.bytes * tensor.data.length);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  tensor.data.forEach((v, i) => element.write(view, i * element.bytes, v as number | boolean));
  return raw;
}

/** The values of raw bytes of `datatype`. */
export function fromRawBytes(datatype: string, raw: Buffer): (number | boolean | string)[] {
  if (datatype === "BYTES") {
    const items: string[] = [];
    for (let at = 0; at < raw.length; ) {
      const length = raw.readUInt32LE(at);
      items.push(raw.subarray(at + 4, at + 4 + length).toString("utf8"));
      at += 4 + length;
    }
    return items;
  }
  const element = ELEMENT[datatype];
  if (!element) throw new Error(`no raw form for datatype ${datatype}`);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return Array.from({ length: raw.length / element.bytes }, (_, i) => element.read(view, i * element.bytes));
}

/** Triton's binary tensor extension: the JSON header (every input's binary_data_size,
 * every output asked for as binary), then the inputs' raw bytes; the header's length
 * goes in Inference-Header-Content-Length. */
export function binaryBody(inputs: readonly TensorValues[]): { body: Buffer; headerLength: number } {
  const raws = inputs.map(rawBytes);
  const header = Buffer.from(
    JSON.stringify({
      inputs: inputs.map(({ name, datatype, shape }, i) => ({ name, datatype, shape, parameters: { binary_data_size: raws[i]!.length } })),
      parameters: { binary_data_output: true },
    }),
  );
  return { body: Buffer.concat([header, ...raws]), headerLength: header.length };
}

interface ResponseOutput extends TensorMetadata {
  data?: unknown[];
  parameters?: { binary_data_size?: number };
}

/** The outputs of a JSON infer response (nested data flattened). */
export function outputsFromJson(body: Buffer): TensorValues[] {
  const { outputs } = JSON.parse(body.toString("utf8")) as { outputs: ResponseOutput[] };
  return outputs.map(({ name, datatype, shape, data }) => ({ name, datatype, shape, data: (data ?? []).flat(Infinity) as TensorValues["data"] }));
}

/** The outputs of a binary-extension response: the JSON header, then each binary
 * output's bytes in the header's order. */
export function outputsFromBinary(body: Buffer, headerLength: number): TensorValues[] {
  const { outputs } = JSON.parse(body.subarray(0, headerLength).toString("utf8")) as { outputs: ResponseOutput[] };
  let at = headerLength;
  const decoded = outputs.map(({ name, datatype, shape, data, parameters }) => {
    const size = parameters?.binary_data_size;
    if (size === undefined) return { name, datatype, shape, data: (data ?? []).flat(Infinity) as TensorValues["data"] };
    const raw = body.subarray(at, at + size);
    at += size;
    return { name, datatype, shape, data: fromRawBytes(datatype, raw) };
  });
  if (at !== body.length) throw new Error(`binary response: ${body.length - at} bytes after the outputs the header announces`);
  return decoded;
}
