import {
  BytesTensor,
  checkShape,
  countElements,
  dtypeOfDatatype,
  dtypeSize,
  encodeBytesElements,
  protocolDatatype,
  tensorFromRawBytes,
  tensorFromValues,
  wireInteger,
  type NamedTensor,
  type ServedDType,
  type ServedTensor,
} from "@coil/core";
import { CoilError } from "@coil/errors";

import type { InferOutputTensor, InferTensorContents, InputTensorMessage, Int64 } from "./messages.js";

type ContentsField = keyof InferTensorContents;

/** Where each element type's values go in InferTensorContents; float16/bfloat16 have no field. */
const CONTENTS_FIELD: Record<ServedDType, ContentsField | undefined> = {
  bool: "bool_contents",
  uint8: "uint_contents",
  uint16: "uint_contents",
  uint32: "uint_contents",
  uint64: "uint64_contents",
  int8: "int_contents",
  int16: "int_contents",
  int32: "int_contents",
  int64: "int64_contents",
  float16: undefined,
  bfloat16: undefined,
  float32: "fp32_contents",
  float64: "fp64_contents",
  bytes: "bytes_contents",
};

/** A shape from the wire (int64s as strings, numbers or Longs), checked: non-negative
 * integers whose element count (and, for fixed-size types, byte length) stays within `maxBytes`. */
export function parseShape(dims: readonly Int64[], dtype: ServedDType, maxBytes: number, what: string): { shape: number[]; count: number } {
  const shape = checkShape(dims.map((d) => Number(wireInteger(d) ?? NaN)), what);
  const elementBytes = dtype === "bytes" ? 1 : dtypeSize(dtype); // a BYTES element is at least its 4-byte length
  const count = countElements(shape, Math.floor(maxBytes / elementBytes));
  if (count === Infinity) {
    throw new CoilError("INVALID_ARGUMENT", `${what}: shape [${shape.join(", ")}] is larger than this server accepts (${maxBytes} bytes)`);
  }
  return { shape, count };
}

/**
 * The request's input tensors. Raw contents are viewed in place when aligned (copied
 * once otherwise); typed contents are converted. Every size is checked against the
 * shape before anything is allocated.
 */
export function decodeInputs(inputs: readonly InputTensorMessage[], raw: readonly Buffer[], maxBytes: number): NamedTensor[] {
  if (raw.length > 0 && raw.length !== inputs.length) {
    throw new CoilError("INVALID_ARGUMENT", `raw_input_contents has ${raw.length} entries but the request has ${inputs.length} inputs`);
  }
  const seen = new Set<string>();
  return inputs.map((input, i) => {
    const what = `input "${input.name}"`;
    if (seen.has(input.name)) throw new CoilError("INVALID_ARGUMENT", `${what} is given twice`);
    seen.add(input.name);
    const dtype = dtypeOfDatatype(input.datatype, what);
    const { shape, count } = parseShape(input.shape, dtype, maxBytes, what);
    const bytes = raw[i];
    if (bytes) {
      if (hasContents(input.contents)) {
        throw new CoilError("INVALID_ARGUMENT", `${what}: contents and raw_input_contents cannot both be given`);
      }
      return { name: input.name, tensor: tensorFromRawBytes(dtype, shape, bytes, what) };
    }
    return { name: input.name, tensor: fromContents(dtype, shape, count, input.contents, what) };
  });
}

function hasContents(contents: InferTensorContents | null | undefined): boolean {
  return !!contents && Object.values(contents).some((v) => Array.isArray(v) && v.length > 0);
}

function fromContents(
  dtype: ServedDType,
  shape: number[],
  count: number,
  contents: InferTensorContents | null | undefined,
  what: string,
): ServedTensor {
  const field = CONTENTS_FIELD[dtype];
  if (!field) {
    throw new CoilError("INVALID_ARGUMENT", `${what}: ${protocolDatatype(dtype)} tensors must be sent in raw_input_contents`);
  }
  const values: readonly unknown[] = contents?.[field] ?? [];
  const others = Object.entries(contents ?? {}).filter(([k, v]) => k !== field && Array.isArray(v) && v.length > 0);
  if (others.length > 0) {
    throw new CoilError("INVALID_ARGUMENT", `${what}: a ${protocolDatatype(dtype)} tensor takes its elements in ${field}, not ${others.map(([k]) => k).join(", ")}`);
  }
  if (values.length !== count) {
    throw new CoilError(
      "INVALID_ARGUMENT",
      `${what}: ${field} has ${values.length} elements but shape [${shape.join(", ")}] needs ${count}`,
    );
  }
  return tensorFromValues(dtype, shape, values, what);
}

/** The response's tensors: raw little-endian bytes (views, no copy) — the default, as
 * Triton answers — or typed contents. FP16/BF16 outputs force raw for every output,
 * since the protocol has no typed field for them and forbids mixing the two. */
export function encodeOutputs(outputs: readonly NamedTensor[], raw: boolean): { outputs: InferOutputTensor[]; raw_output_contents: Buffer[] } {
  const useRaw = raw || outputs.some((o) => CONTENTS_FIELD[o.tensor.dtype] === undefined);
  const tensors = outputs.map(({ name, tensor }): InferOutputTensor => {
    const message: InferOutputTensor = { name, datatype: protocolDatatype(tensor.dtype), shape: tensor.shape.map(String) };
    if (!useRaw) message.contents = { [CONTENTS_FIELD[tensor.dtype]!]: toContents(tensor) };
    return message;
  });
  const bytes = useRaw ? outputs.map(({ tensor }) => rawBytes(tensor)) : [];
  return { outputs: tensors, raw_output_contents: bytes };
}

function rawBytes(tensor: ServedTensor): Buffer {
  if (tensor instanceof BytesTensor) return encodeBytesElements(tensor);
  return Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
}

function toContents(tensor: ServedTensor): (number | boolean | string | Buffer)[] {
  if (tensor instanceof BytesTensor) return tensor.data.map((d) => Buffer.from(d.buffer, d.byteOffset, d.byteLength));
  switch (tensor.dtype) {
    case "bool":
      return Array.from(tensor.data as Uint8Array, (b) => b !== 0);
    case "int64":
    case "uint64":
      return Array.from(tensor.data as BigInt64Array, String);
    default:
      return Array.from(tensor.data as Float32Array);
  }
}
