import { CoilError } from "@coil/errors";
import { Tensor } from "@coil/native";

import { splitList, splitRows } from "./batch-tensors.js";
import { BytesTensor } from "./bytes-tensor.js";
import type { ServedTensor } from "./datatypes.js";
import type { NamedTensor, TensorSignature } from "./serving.js";

/** What a model returned, read by one rule: one output, a list of outputs, or named outputs. */
type Outputs =
  | { kind: "one"; value: unknown }
  | { kind: "list"; values: unknown[] }
  | { kind: "dict"; entries: [string, unknown][] };

/**
 * How a served model's tensors meet its Python call: named request inputs become
 * positional arguments in the signature's order; the result becomes named outputs;
 * a batched result splits back into one result per request. The model queue (which
 * splits batches) and the serving runtime (which names outputs) both use it, so one
 * rule decides what a result is.
 *
 * A model with no signature takes its inputs in request order and names its outputs
 * output__0, output__1, ...
 */
export class SignatureBinding {
  readonly inputs: readonly TensorSignature[];
  readonly outputs: readonly TensorSignature[];

  constructor(inputs: readonly TensorSignature[] = [], outputs: readonly TensorSignature[] = []) {
    this.inputs = inputs;
    this.outputs = outputs;
  }

  /** The request's tensors in the order the model takes them, checked against the signature. */
  bindInputs(inputs: readonly NamedTensor[]): ServedTensor[] {
    const signature = this.inputs;
    if (signature.length === 0) return inputs.map((i) => i.tensor);
    const byName = new Map(inputs.map((i) => [i.name, i.tensor]));
    const unknown = inputs.filter((i) => !signature.some((s) => s.name === i.name)).map((i) => i.name);
    if (unknown.length > 0) {
      throw new CoilError("INVALID_ARGUMENT", `unknown input(s) ${unknown.join(", ")}; the model takes ${signature.map((s) => s.name).join(", ")}`);
    }
    return signature.map((s) => {
      const t = byName.get(s.name);
      if (!t) throw new CoilError("INVALID_ARGUMENT", `missing input "${s.name}"`);
      if (t.dtype !== s.dtype) throw new CoilError("UNSUPPORTED_DTYPE", `input "${s.name}" must be ${s.dtype}, got ${t.dtype}`);
      const fits = t.shape.length === s.shape.length && s.shape.every((d, i) => d === -1 || d === t.shape[i]);
      if (!fits) {
        throw new CoilError("SHAPE_MISMATCH", `input "${s.name}" must have shape [${s.shape.join(", ")}] (-1: any), got [${t.shape.join(", ")}]`);
      }
      return t;
    });
  }

  /** Splits a batched model's result into one result per request, `rows` rows each:
   * tensors along dim 0 (views), lists (BYTES outputs) item by item, and in a list or
   * dict of outputs, each one. */
  splitBatch(output: unknown, rows: readonly number[]): unknown[] {
    const outputs = this.#read(output);
    switch (outputs.kind) {
      case "one":
        return splitOne(outputs.value, rows);
      case "list": {
        const split = outputs.values.map((value) => splitOne(value, rows));
        return rows.map((_, i) => split.map((parts) => parts[i]));
      }
      case "dict": {
        const split = outputs.entries.map(([name, value]) => [name, splitOne(value, rows)] as const);
        return rows.map((_, i) => Object.fromEntries(split.map(([name, parts]) => [name, parts[i]])));
      }
    }
  }

  /** Names a model's result (a tensor, a BYTES output as nested lists of bytes or str,
   * or a list or dict of them); only the `wanted` outputs when given. */
  nameOutputs(output: unknown, wanted?: readonly string[]): NamedTensor[] {
    const nameAt = (i: number) => this.outputs[i]?.name ?? `output__${i}`;
    const outputs = this.#read(output);
    const named =
      outputs.kind === "one"
        ? [{ name: nameAt(0), tensor: servedTensor(nameAt(0), outputs.value) }]
        : outputs.kind === "list"
          ? outputs.values.map((value, i) => ({ name: nameAt(i), tensor: servedTensor(nameAt(i), value) }))
          : outputs.entries.map(([name, value]) => ({ name, tensor: servedTensor(name, value) }));
    if (!wanted) return named;
    const missing = wanted.filter((w) => !named.some((n) => n.name === w));
    if (missing.length > 0) {
      throw new CoilError("INVALID_ARGUMENT", `unknown output(s) ${missing.join(", ")}; the model returns ${named.map((n) => n.name).join(", ")}`);
    }
    return named.filter((n) => wanted.includes(n.name));
  }

  /** A list holding a Tensor is a list of outputs, and so is any list from a model
   * with several; otherwise a list is one output's rows (a BYTES output). A plain
   * object is outputs by name. */
  #read(output: unknown): Outputs {
    if (Array.isArray(output)) {
      return this.outputs.length > 1 || output.some((item) => item instanceof Tensor) ? { kind: "list", values: output } : { kind: "one", value: output };
    }
    if (output !== null && typeof output === "object" && !(output instanceof Tensor) && !(output instanceof Uint8Array)) {
      return { kind: "dict", entries: Object.entries(output) };
    }
    return { kind: "one", value: output };
  }
}

function splitOne(value: unknown, rows: readonly number[]): unknown[] {
  if (value instanceof Tensor) return splitRows(value, rows);
  if (Array.isArray(value)) return splitList(value, rows);
  throw new CoilError(
    "SHAPE_MISMATCH",
    "a batched model must return a Tensor or a list of rows, or a list or dict of them, batched along dim 0",
  );
}

/** An output value as a tensor: a Tensor, or a BYTES tensor from nested lists of bytes or str. */
function servedTensor(name: string, value: unknown): ServedTensor {
  if (value instanceof Tensor) return value;
  const bytes = BytesTensor.fromNested(value);
  if (bytes) return bytes;
  const kind = value === null ? "None" : Array.isArray(value) ? "a ragged or mixed list" : typeof value;
  throw new CoilError(
    "INTERNAL",
    `the model returned ${kind} for output "${name}": a served model returns tensors, nested lists of bytes or str (BYTES), or a list or dict of them`,
  );
}
