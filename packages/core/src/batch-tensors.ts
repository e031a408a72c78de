import { CoilError } from "@coil/errors";
import { Tensor, type DType, type TypedArrayOf } from "@coil/native";

import { BytesTensor } from "./bytes-tensor.js";
import type { ServedTensor } from "./datatypes.js";

/** What must match for tensors to be stacked along dim 0: dtype and trailing dims. */
export function rowSignature(t: ServedTensor): string {
  return `${t.dtype}[${t.shape.slice(1).join(",")}]`;
}

/** Stacks tensors along dimension 0 (one copy into a new buffer; BYTES elements are shared). */
export function concatRows<T extends ServedTensor>(tensors: readonly T[]): T {
  const first = tensors[0]!;
  if (tensors.length === 1) return first;
  const signature = rowSignature(first);
  let rows = 0;
  for (const t of tensors) {
    if (t.shape.length === 0 || rowSignature(t) !== signature) {
      throw new CoilError("SHAPE_MISMATCH", `cannot stack ${rowSignature(t)} onto ${signature} along dimension 0`);
    }
    rows += t.shape[0]!;
  }
  if (first instanceof BytesTensor) {
    return new BytesTensor([rows, ...first.shape.slice(1)], (tensors as readonly BytesTensor[]).flatMap((t) => t.data)) as T;
  }
  return concatNumeric(tensors as readonly Tensor[], rows) as T;
}

function concatNumeric<D extends DType>(tensors: readonly Tensor<D>[], rows: number): Tensor<D> {
  const first = tensors[0]!;
  const stacked = Tensor.zeros(first.dtype, [rows, ...first.shape.slice(1)]);
  const data = stacked.data as unknown as { set(a: ArrayLike<number | bigint>, o: number): void };
  let offset = 0;
  for (const t of tensors) {
    data.set(t.data as ArrayLike<number | bigint>, offset);
    offset += t.data.length;
  }
  return stacked;
}

/** Splits a list a batched model returned (one item per row) into pieces of `rows` items. */
export function splitList(list: readonly unknown[], rows: readonly number[]): unknown[][] {
  const total = rows.reduce((a, b) => a + b, 0);
  if (list.length !== total) {
    throw new CoilError("SHAPE_MISMATCH", `a batched model must return one list item per row (${total}), got ${list.length}`);
  }
  let start = 0;
  return rows.map((r) => list.slice(start, (start += r)));
}

/** Splits a tensor along dimension 0 into pieces of `rows` rows: views, no copy. */
export function splitRows<D extends DType>(tensor: Tensor<D>, rows: readonly number[]): Tensor<D>[] {
  const total = rows.reduce((a, b) => a + b, 0);
  if (tensor.shape.length === 0 || tensor.shape[0] !== total) {
    throw new CoilError(
      "SHAPE_MISMATCH",
      `a batched model must return tensors whose first dimension is the batch (${total}), got shape [${tensor.shape.join(", ")}]`,
    );
  }
  const rowSize = tensor.data.length / Math.max(total, 1);
  const pieces: Tensor<D>[] = [];
  let start = 0;
  for (const r of rows) {
    const data = (tensor.data as unknown as { subarray(a: number, b: number): TypedArrayOf[D] }).subarray(
      start * rowSize,
      (start + r) * rowSize,
    );
    pieces.push(new Tensor(tensor.dtype, [r, ...tensor.shape.slice(1)], data));
    start += r;
  }
  return pieces;
}
