import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";

import { CoilError } from "@coil/errors";

/** One version of a model found in a repository folder. */
export interface RepositoryEntry {
  name: string;
  version: string;
  path: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/**
 * Lists the models in a repository folder, as Triton lays one out:
 *   <repo>/<name>.coil                      version "1"
 *   <repo>/<name>/<version>/<any>.coil      numeric version folders, one archive each
 * Names outside [A-Za-z0-9_.-] and anything else are skipped. Sorted by name, then
 * version (numerically).
 */
export async function scanRepository(root: string): Promise<RepositoryEntry[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch (cause) {
    throw new CoilError("INVALID_ARGUMENT", `cannot read the model repository ${root}`, { cause });
  }
  const entries: RepositoryEntry[] = [];
  for (const entry of names.sort()) {
    const path = join(root, entry);
    const info = await stat(path).catch(() => undefined);
    if (info?.isFile() && entry.endsWith(".coil")) {
      const name = entry.slice(0, -".coil".length);
      if (NAME.test(name)) entries.push({ name, version: "1", path });
    } else if (info?.isDirectory() && NAME.test(entry)) {
      const versions = (await readdir(path)).filter((v) => /^\d{1,9}$/.test(v)).sort((a, b) => Number(a) - Number(b));
      for (const version of versions) {
        const archives = (await readdir(join(path, version)).catch(() => [])).filter((f) => f.endsWith(".coil")).sort();
        if (archives.length > 0) entries.push({ name: entry, version, path: join(path, version, archives[0]!) });
      }
    }
  }
  return entries;
}
