import { CoilError } from "@coil/errors";
import type { DType, Tensor } from "@coil/native";

import { BytesTensor } from "./bytes-tensor.js";

/** An element type a served model's signature may name: a Tensor dtype, or "bytes". */
export type ServedDType = DType | "bytes";

/** What a request or response carries: a numeric Tensor or a BytesTensor. */
export type ServedTensor = Tensor | BytesTensor;

/** Open Inference Protocol datatypes, as Triton, KServe and MLServer name them. */
const TO_PROTOCOL: Readonly<Record<ServedDType, string>> = Object.freeze({
  bool: "BOOL",
  uint8: "UINT8",
  uint16: "UINT16",
  uint32: "UINT32",
  uint64: "UINT64",
  int8: "INT8",
  int16: "INT16",
  int32: "INT32",
  int64: "INT64",
  float16: "FP16",
  bfloat16: "BF16",
  float32: "FP32",
  float64: "FP64",
  bytes: "BYTES",
});

const FROM_PROTOCOL: ReadonlyMap<string, ServedDType> = new Map(
  Object.entries(TO_PROTOCOL).map(([dtype, datatype]) => [datatype, dtype as ServedDType]),
);

/** The protocol datatype of an element type ("float32" -> "FP32"). */
export function protocolDatatype(dtype: ServedDType): string {
  return TO_PROTOCOL[dtype];
}

/** The element type of a protocol datatype ("FP32" -> "float32"); INVALID_ARGUMENT
 * naming the known ones otherwise. */
export function dtypeOfDatatype(datatype: unknown, what = "datatype"): ServedDType {
  const dtype = typeof datatype === "string" ? FROM_PROTOCOL.get(datatype) : undefined;
  if (dtype === undefined) {
    throw new CoilError(
      "INVALID_ARGUMENT",
      `${what}: unknown datatype ${JSON.stringify(datatype)}; one of ${[...FROM_PROTOCOL.keys()].join(", ")}`,
    );
  }
  return dtype;
}

export function isBytesTensor(tensor: ServedTensor): tensor is BytesTensor {
  return tensor instanceof BytesTensor;
}
