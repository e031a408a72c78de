import { readFile } from "node:fs/promises";

/** A process's resident set in bytes, read from /proc (Linux: Coil's only platform);
 * undefined once the process is gone. Read by the primary, so it works while the
 * worker's event loop is busy. */
export async function residentBytes(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const kb = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}
