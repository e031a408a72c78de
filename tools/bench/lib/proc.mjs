// What the benchmarks read from /proc about this process, another one, and the machine:
// CPU time and memory.
import { readFileSync } from "node:fs";

import { fileMappings, processMemory } from "@coil/native";

/** Private memory of this process (Private_Clean + Private_Dirty), in MB. Not
 * RSS: that counts the library pages every interpreter's namespace maps, which
 * the page cache holds once (docs/engine.md, fact 9). */
export function privateMb() {
  const kb = processMemory();
  return ((kb.Private_Clean ?? 0) + (kb.Private_Dirty ?? 0)) / 1024;
}

/** This process's memory from /proc/self/smaps_rollup, in MiB: private
 * (Private_Clean + Private_Dirty), Rss, Pss (each shared page divided among the
 * mappings that share it) and anonymous. */
export function memoryMiB() {
  const kb = processMemory();
  const mib = (k) => (k ?? 0) / 1024;
  return {
    private: mib(kb.Private_Clean + kb.Private_Dirty),
    privateClean: mib(kb.Private_Clean),
    privateDirty: mib(kb.Private_Dirty),
    rss: mib(kb.Rss),
    pss: mib(kb.Pss),
    anonymous: mib(kb.Anonymous),
  };
}

/** Totals over this process's mappings of `file`, in MiB. */
export function fileMappingsMiB(file) {
  const mappings = fileMappings(file);
  const sum = (field) => mappings.reduce((n, m) => n + (m[field] ?? 0), 0) / 1024;
  return { count: mappings.length, rssMiB: sum("Rss"), pssMiB: sum("Pss"), privateDirtyMiB: sum("Private_Dirty") };
}

// USER_HZ: the unit of /proc/stat. 100 on every Linux architecture Node runs on.
const USER_HZ = 100;

/** CPU seconds (utime + stime) in a /proc stat file: a process's or a thread's. */
function statCpu(path) {
  try {
    const stat = readFileSync(path, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
  } catch {
    return NaN;
  }
}

/** One thread of this process, from /proc: its minor page faults, and its voluntary
 * (it slept: waited for work, a lock, a wake-up) and involuntary (it was preempted)
 * context switches. */
export function threadCounters(tid) {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
  const minflt = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[7]);
  const status = readFileSync(`/proc/self/task/${tid}/status`, "utf8");
  const count = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)[1]);
  return { minflt, voluntary: count("voluntary_ctxt_switches"), involuntary: count("nonvoluntary_ctxt_switches") };
}

/** CPU seconds one thread of this process has used. */
const threadCpu = (tid) => statCpu(`/proc/self/task/${tid}/stat`);

/** CPU seconds another process (all its threads) has used. */
export const processCpu = (pid) => statCpu(`/proc/${pid}/stat`);

/** CPU seconds used so far by the whole machine, by this process and by the
 * given threads of it (e.g. the interpreters' threads), and when. */
export function sampleCpu(tids = []) {
  const fields = readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
  const busy = fields.slice(0, 8).reduce((a, b) => a + b, 0) - fields[3] - fields[4];
  const usage = process.cpuUsage();
  return {
    at: performance.now(),
    machine: busy / USER_HZ,
    self: (usage.user + usage.system) / 1e6,
    threads: tids.map(threadCpu),
  };
}

/** Cores' worth of CPU that other processes used between two samples: noise
 * that makes a measurement unreliable. */
export function otherCpu(before, after) {
  const seconds = (after.at - before.at) / 1e3;
  return Math.max(0, (after.machine - before.machine - (after.self - before.self)) / seconds);
}

/** How busy each sampled thread was between two samples (0..1). */
export function threadBusy(before, after) {
  const seconds = (after.at - before.at) / 1e3;
  return after.threads.map((t, i) => (t - before.threads[i]) / seconds);
}

/** The CPUs this process may run on (/proc/self/status, Cpus_allowed_list: "0-3,6"). */
export function allowedCpus() {
  const line = readFileSync("/proc/self/status", "utf8").match(/^Cpus_allowed_list:\s*(.+)$/m)?.[1] ?? "0";
  return line.split(",").flatMap((range) => {
    const [from, to = from] = range.split("-").map(Number);
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  });
}
