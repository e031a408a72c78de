// A process's memory as the kernel counts it (/proc/PID/smaps_rollup).
import { readFileSync } from "node:fs";

function rollupKb(pid: number, fields: readonly string[]): number {
  let sum = 0;
  for (const line of readFileSync(`/proc/${pid}/smaps_rollup`, "utf8").split("\n")) {
    const [name, kb] = line.split(/:\s+/);
    if (name !== undefined && fields.includes(name)) sum += Number.parseInt(kb!, 10);
  }
  return sum;
}

/** Private_Clean + Private_Dirty, kB: what the process alone holds (shared libraries'
 * pages counted once elsewhere, the mapped archives' clean pages included). */
export function privateKb(pid: number): number {
  return rollupKb(pid, ["Private_Clean", "Private_Dirty"]);
}

export function rssKb(pid: number): number {
  return rollupKb(pid, ["Rss"]);
}

export interface MemorySample {
  /** Seconds since the epoch. */
  t: number;
  kb: number;
}

/** Samples privateKb(pid) every `intervalMs` until stopped. */
export function sampleMemory(pid: number, intervalMs: number): { stop(): MemorySample[] } {
  const samples: MemorySample[] = [];
  const take = () => {
    try {
      samples.push({ t: Date.now() / 1000, kb: privateKb(pid) });
    } catch {
      // the process is gone: the checks after the soak say so
    }
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    stop: () => {
      clearInterval(timer);
      return samples;
    },
  };
}
