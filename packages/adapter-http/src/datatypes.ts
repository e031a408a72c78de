import { CoilError } from "@coil/errors";
import type { DType } from "@coil/native";

/** Open Inference Protocol datatypes this server carries, by Coil dtype. */
const TO_PROTOCOL: Record<DType, string> = {
  bool: "BOOL",
  uint8: "UINT8",
  int8: "INT8",
  int16: "INT16",
  int32: "INT32",
  int64: "INT64",
  float16: "FP16",
  bfloat16: "BF16",
  float32: "FP32",
  float64: "FP64",
};

const FROM_PROTOCOL: ReadonlyMap<string, DType> = new Map(
  Object.entries(TO_PROTOCOL).map(([dtype, datatype]) => [datatype, dtype as DType]),
);

/** Protocol datatypes Coil's Tensor has no dtype for (yet). */
export const UNSUPPORTED_DATATYPES: readonly string[] = Object.freeze(["UINT16", "UINT32", "UINT64", "BYTES"]);

/** The protocol datatype of a Coil dtype ("float32" -> "FP32"). */
export function protocolDatatype(dtype: DType): string {
  const datatype = TO_PROTOCOL[dtype];
  if (datatype === undefined) throw new CoilError("UNSUPPORTED_DTYPE", `dtype ${String(dtype)} has no protocol datatype`);
  return datatype;
}

/** The Coil dtype of a protocol datatype ("FP32" -> "float32"); INVALID_ARGUMENT /
 * UNSUPPORTED_DTYPE (both answered 400) for the others. */
export function coilDtype(datatype: unknown): DType {
  if (typeof datatype !== "string") {
    throw new CoilError("INVALID_ARGUMENT", `datatype must be a string, got ${JSON.stringify(datatype)}`);
  }
  const dtype = FROM_PROTOCOL.get(datatype);
  if (dtype !== undefined) return dtype;
  if (UNSUPPORTED_DATATYPES.includes(datatype)) {
    throw new CoilError("UNSUPPORTED_DTYPE", `datatype ${datatype} is not supported by this server yet`);
  }
  throw new CoilError(
    "INVALID_ARGUMENT",
    `unknown datatype ${JSON.stringify(datatype)}; one of ${[...FROM_PROTOCOL.keys(), ...UNSUPPORTED_DATATYPES].join(", ")}`,
  );
}
