import { loadAddon } from "./addon.js";

/**
 * Reads the JSON array of numbers (nested arrays of numbers too, flattened) that
 * starts at bytes[position] ('[') in native code (the addon's JSON codec,
 * native/src/codecs/json_numbers.h): each number rounded exactly as
 * JSON.parse rounds it, none boxed. The numbers land in `scratch` when they fit,
 * else in a new array of their own size -- unless there are more than `maxCount`:
 * then `values` is undefined and nothing is allocated. null when the array holds
 * anything else, is malformed, or nests deeper than `maxLevels`. `regular`: the
 * nesting is an N-d array (no [[1, 2], [3]], no [1, [2]]; lengths compared to 32 levels deep).
 */
export function scanJsonNumberArray(
  bytes: Uint8Array,
  position: number,
  maxLevels: number,
  scratch: Float64Array,
  maxCount = Infinity,
): { end: number; count: number; regular: boolean; values?: Float64Array } | null {
  const addon = loadAddon();
  const scan = addon.scanJsonNumbers(bytes, position, maxLevels, scratch);
  if (!scan) return null;
  const [end, count, regular] = scan;
  if (count <= scratch.length) return { end, count, regular, values: scratch.subarray(0, count) };
  if (count > maxCount) return { end, count, regular };
  const values = new Float64Array(count);
  addon.scanJsonNumbers(bytes, position, maxLevels, values);
  return { end, count, regular, values };
}
