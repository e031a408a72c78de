import { loadAddon } from "./addon.js";

/**
 * Maps a file into memory once: a Uint8Array over a private, copy-on-write mapping.
 * Tensors built over it in any number of interpreters share its pages, so an
 * archive's weights are in memory once. Unmapped when the array is collected.
 */
export function mapFile(path: string): Uint8Array {
  return loadAddon().mapFile(path);
}
