import { CoilError } from "@coil/errors";

import { Tensor, type DType, type TypedArrayOf } from "./tensor.js";

// How many of a result's tensors, the first ones, have their shape kept for the next.
const MAX_SHAPES = 64;

function sameShape(shape: readonly number[], args: unknown[], at: number, rank: number): boolean {
  if (shape.length !== rank) return false;
  for (let i = 0; i < rank; i++) if (shape[i] !== args[at + i]) return false;
  return true;
}

/**
 * Builds a call's result from the engine's encoding (native/src/addon/convert.cc,
 * FromValue): one call from C++ a result instead of an N-API call for every object,
 * property and shape element. `program` has a letter a node, in prefix order; each node
 * takes the values it needs, in order, from `packed` or, where the engine spread them
 * over the call's arguments, from `spread`:
 * - `n`: null;
 * - `v`: the next value, as it is;
 * - `l`: a count, then that many nodes: an array;
 * - `d`: a count, then a key and a node for each entry: an object;
 * - `t`: a dtype's code (an index into `dtypeNames`), the data, the number of
 *   dimensions, then each: a Tensor.
 */
export function resultDecoder(dtypeNames: readonly string[]) {
  // A model returns tensors of the same shapes call after call: the shape of a
  // result's n-th tensor is frozen once and shared while the n-th tensor of the results
  // that follow has it too (Tensor keeps a frozen shape as it is; freezing is a call
  // into V8's runtime that cost more than the rest of decoding).
  const lastShapes: (readonly number[])[] = [];
  return function decodeResult(program: string, packed: unknown[] | null, ...spread: unknown[]): unknown {
    const args = packed ?? spread;
    let op = 0;
    let at = 0;
    let tensors = 0;
    const node = (): unknown => {
      const letter = program.charCodeAt(op++);
      switch (letter) {
        case 110: // n
          return null;
        case 118: // v
          return args[at++];
        case 108: {
          // l
          const count = args[at++] as number;
          const items = new Array<unknown>(count);
          for (let i = 0; i < count; i++) items[i] = node();
          return items;
        }
        case 100: {
          // d
          const count = args[at++] as number;
          const object: Record<string, unknown> = {};
          for (let i = 0; i < count; i++) {
            const key = args[at++] as string;
            const value = node();
            // A "__proto__" key is defined, not assigned: it must not reach the setter
            // (Object.prototype has no other).
            if (key === "__proto__") Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
            else object[key] = value;
          }
          return object;
        }
        case 116: {
          // t
          const dtype = dtypeNames[args[at++] as number] as DType;
          const data = args[at++] as TypedArrayOf[DType];
          const rank = args[at++] as number;
          const ordinal = tensors++;
          let shape = ordinal < MAX_SHAPES ? lastShapes[ordinal] : undefined;
          if (shape === undefined || !sameShape(shape, args, at, rank)) {
            shape = Object.freeze(args.slice(at, at + rank) as number[]);
            if (ordinal < MAX_SHAPES) lastShapes[ordinal] = shape;
          }
          at += rank;
          return new Tensor(dtype, shape, data);
        }
        default:
          throw new CoilError("INTERNAL", `the engine's result encoding has ${JSON.stringify(program[op - 1])} at ${op - 1}`);
      }
    };
    return node();
  };
}
