import { loadAddon } from "./addon.js";

/**
 * Maps a file into memory: a Uint8Array over a private, copy-on-write mapping,
 * unmapped when the array is collected. Map a file once per interpreter: the
 * mappings share the page cache's clean pages (the data is in memory once), and a
 * write copies the page for that one mapping, so interpreters stay isolated.
 */
export function mapFile(path: string): Uint8Array {
  return loadAddon().mapFile(path);
}
