import { Tensor, type DType, type NamedTensor, type TypedArrayOf } from "@coil/core";
import { CoilError } from "@coil/errors";

import type { InferOutputTensor, InferTensorContents, InputTensorMessage, Long } from "./messages.js";

/** Open Inference Protocol datatypes Coil serves, as Triton names them. */
const TO_DTYPE: Record<string, DType> = {
  BOOL: "bool",
  UINT8: "uint8",
  INT8: "int8",
  INT16: "int16",
  INT32: "int32",
  INT64: "int64",
  FP16: "float16",
  BF16: "bfloat16",
  FP32: "float32",
  FP64: "float64",
};

const FROM_DTYPE = Object.fromEntries(Object.entries(TO_DTYPE).map(([k, v]) => [v, k])) as Record<DType, string>;

/** Protocol datatypes Coil knows but cannot serve (no matching torch/Coil dtype yet). */
const NOT_YET = new Set(["UINT16", "UINT32", "UINT64", "BYTES"]);

type ContentsField = Exclude<keyof InferTensorContents, "bytes_contents">;

/** Where each dtype's elements go in InferTensorContents; float16/bfloat16 have no field. */
const CONTENTS_FIELD: Record<DType, ContentsField | undefined> = {
  bool: "bool_contents",
  uint8: "uint_contents",
  int8: "int_contents",
  int16: "int_contents",
  int32: "int_contents",
  int64: "int64_contents",
  float16: undefined,
  bfloat16: undefined,
  float32: "fp32_contents",
  float64: "fp64_contents",
};

const INT_RANGE: Partial<Record<DType, [number, number]>> = {
  uint8: [0, 255],
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-(2 ** 31), 2 ** 31 - 1],
};

const ELEMENT_BYTES: Record<DType, number> = {
  bool: 1,
  uint8: 1,
  int8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  float16: 2,
  bfloat16: 2,
  float32: 4,
  float64: 8,
};

const STORAGE = {
  bool: Uint8Array,
  uint8: Uint8Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  float32: Float32Array,
  float64: Float64Array,
} as const;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The Coil dtype for a protocol datatype; INVALID_ARGUMENT for the rest. */
export function dtypeOf(datatype: string, what: string): DType {
  const dtype = TO_DTYPE[datatype];
  if (dtype) return dtype;
  if (NOT_YET.has(datatype)) {
    throw new CoilError("INVALID_ARGUMENT", `${what}: datatype ${datatype} is not supported by this server yet`);
  }
  throw new CoilError("INVALID_ARGUMENT", `${what}: unknown datatype "${datatype}"; one of ${Object.keys(TO_DTYPE).join(", ")}`);
}

/** The protocol datatype for a Coil dtype. */
export function datatypeOf(dtype: DType): string {
  return FROM_DTYPE[dtype];
}

/** A shape from the wire (int64s as strings, numbers or Longs), checked: non-negative
 * integers whose element count and byte length stay within `maxBytes`. */
export function parseShape(shape: readonly (string | number | Long)[], dtype: DType, maxBytes: number, what: string): { shape: number[]; count: number } {
  const dims: number[] = [];
  let count = 1;
  for (const raw of shape) {
    const d = Number(typeof raw === "object" ? raw.toString() : raw);
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new CoilError("INVALID_ARGUMENT", `${what}: shape dimensions must be non-negative integers, got [${shape.join(", ")}]`);
    }
    dims.push(d);
    count *= d;
    if (count * ELEMENT_BYTES[dtype] > maxBytes) {
      throw new CoilError("INVALID_ARGUMENT", `${what}: shape [${shape.join(", ")}] is larger than this server accepts (${maxBytes} bytes)`);
    }
  }
  return { shape: dims, count };
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
    const dtype = dtypeOf(input.datatype, what);
    const { shape, count } = parseShape(input.shape, dtype, maxBytes, what);
    const bytes = raw[i];
    if (bytes) {
      if (hasContents(input.contents)) {
        throw new CoilError("INVALID_ARGUMENT", `${what}: contents and raw_input_contents cannot both be given`);
      }
      return { name: input.name, tensor: fromRaw(dtype, shape, count, bytes, what) };
    }
    return { name: input.name, tensor: fromContents(dtype, shape, count, input.contents, what) };
  });
}

function hasContents(contents: InferTensorContents | null | undefined): boolean {
  return !!contents && Object.values(contents).some((v) => Array.isArray(v) && v.length > 0);
}

function fromRaw(dtype: DType, shape: number[], count: number, bytes: Buffer, what: string): Tensor {
  const size = ELEMENT_BYTES[dtype];
  if (bytes.byteLength !== count * size) {
    throw new CoilError(
      "INVALID_ARGUMENT",
      `${what}: raw contents have ${bytes.byteLength} bytes but shape [${shape.join(", ")}] of ${datatypeOf(dtype)} needs ${count * size}`,
    );
  }
  if (!LITTLE_ENDIAN && size > 1) throw new CoilError("INTERNAL", "raw tensor contents need a little-endian host");
  const Storage = STORAGE[dtype];
  let data: TypedArrayOf[DType];
  if (bytes.byteOffset % size === 0) {
    data = new Storage(bytes.buffer as ArrayBuffer, bytes.byteOffset, count); // a view: no copy
  } else {
    data = new Storage(count);
    new Uint8Array(data.buffer).set(bytes);
  }
  if (dtype === "bool") {
    const u8 = data as Uint8Array;
    for (let j = 0; j < u8.length; j++) {
      if (u8[j]! > 1) throw new CoilError("INVALID_ARGUMENT", `${what}: BOOL elements must be bytes 0 or 1, got ${u8[j]}`);
    }
  }
  return new Tensor(dtype, shape, data);
}

function fromContents(dtype: DType, shape: number[], count: number, contents: InferTensorContents | null | undefined, what: string): Tensor {
  const field = CONTENTS_FIELD[dtype];
  if (!field) {
    throw new CoilError("INVALID_ARGUMENT", `${what}: ${datatypeOf(dtype)} tensors must be sent in raw_input_contents`);
  }
  const values = (contents?.[field] ?? []) as readonly (number | boolean | string | Long)[];
  const others = Object.entries(contents ?? {}).filter(([k, v]) => k !== field && Array.isArray(v) && v.length > 0);
  if (others.length > 0) {
    throw new CoilError("INVALID_ARGUMENT", `${what}: a ${datatypeOf(dtype)} tensor takes its elements in ${field}, not ${others.map(([k]) => k).join(", ")}`);
  }
  if (values.length !== count) {
    throw new CoilError(
      "INVALID_ARGUMENT",
      `${what}: ${field} has ${values.length} elements but shape [${shape.join(", ")}] needs ${count}`,
    );
  }
  const data = new STORAGE[dtype](count);
  if (dtype === "int64") {
    const out = data as BigInt64Array;
    for (let j = 0; j < count; j++) out[j] = BigInt.asIntN(64, BigInt(String(values[j])));
  } else if (dtype === "bool") {
    const out = data as Uint8Array;
    for (let j = 0; j < count; j++) out[j] = values[j] ? 1 : 0;
  } else {
    const range = INT_RANGE[dtype];
    const out = data as Float32Array;
    for (let j = 0; j < count; j++) {
      const v = Number(values[j]);
      if (range && (v < range[0] || v > range[1])) {
        throw new CoilError("INVALID_ARGUMENT", `${what}: ${v} is out of range for ${datatypeOf(dtype)}`);
      }
      out[j] = v;
    }
  }
  return new Tensor(dtype, shape, data);
}

/** The response's tensors: raw little-endian bytes (views, no copy) — the default, as
 * Triton answers — or typed contents. FP16/BF16 outputs force raw for every output,
 * since the protocol has no typed field for them and forbids mixing the two. */
export function encodeOutputs(outputs: readonly NamedTensor[], raw: boolean): { outputs: InferOutputTensor[]; raw_output_contents: Buffer[] } {
  const useRaw = raw || outputs.some((o) => CONTENTS_FIELD[o.tensor.dtype] === undefined);
  const tensors = outputs.map(({ name, tensor }): InferOutputTensor => {
    const message: InferOutputTensor = { name, datatype: datatypeOf(tensor.dtype), shape: tensor.shape.map(String) };
    if (!useRaw) message.contents = { [CONTENTS_FIELD[tensor.dtype]!]: toContents(tensor) };
    return message;
  });
  const bytes = useRaw ? outputs.map(({ tensor }) => Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength)) : [];
  return { outputs: tensors, raw_output_contents: bytes };
}

function toContents(tensor: Tensor): (number | boolean | string)[] {
  switch (tensor.dtype) {
    case "bool":
      return Array.from(tensor.data as Uint8Array, (b) => b !== 0);
    case "int64":
      return Array.from(tensor.data as BigInt64Array, String);
    default:
      return Array.from(tensor.data as Float32Array);
  }
}
