import { loadAddon } from "./addon.js";

/**
 * How jobs and results cross between Node's main thread and the interpreters'
 * threads, for every interpreter of the process (native/src/engine/interpreter.h).
 * Each wake-up of another thread is a system call and a scheduler round trip --
 * on a VM, more than a small model's whole call (docs/engine.md, "Where a call's
 * time goes") -- so the engine avoids them where it can.
 */
export interface HandOffSettings {
  /** Results are held back and delivered together, one wake-up of Node's thread for
   * the lot, while at least this many jobs are still queued on that interpreter. */
  batchWhileQueued: number;
  /** ...as long as the next job, if no longer than the longest that interpreter ran
   * lately, ends within this many microseconds of the first held result (0: each
   * result on its own). Runs of small jobs batch; a result waits for a long job only
   * when it is the first long one in dozens. */
  batchWindowUs: number;
  /** With its queue empty, an interpreter's thread spins this long for the next job
   * before it sleeps -- only while a CPU is free for it (0: never). */
  spinUs: number;
  /** ...or through twice its usual wait for a job lately, where that is under this many
   * microseconds: one caller's turn in Node between two calls takes longer than
   * `spinUs` on many VMs, and a sleep costs the next call more than the spin (0: `spinUs`
   * only). */
  maxSpinUs: number;
  /** While calls are in flight, Node's main thread looks for results from
   * setImmediate (still serving I/O and timers) instead of sleeping until woken, for
   * this long after its last result or call, or through a call as long as twice the
   * longest lately, up to 20 times this -- only while a CPU is free for it (0:
   * never). */
  callerSpinUs: number;
  /** How often, in milliseconds, an interpreter's thread looks at the machine's
   * runnable threads (/proc/loadavg) to notice other processes wanting the CPUs;
   * three looks in a row over the CPUs suspend spinning and polling for 100 ms (0:
   * never look -- a machine whose CPUs are this process's alone). */
  contentionCheckMs: number;
}

/** What the hand-off did, process-wide, since the process started. */
export interface HandOffStats {
  /** Times spinning and polling were suspended (for 100 ms each) because the machine's
   * runnable threads outnumbered its CPUs (other processes wanted them). "A CPU is
   * free" counts this process's threads; this is how the engine notices the rest of
   * the machine. */
  contentionBackoffs: number;
  /** Times an interpreter's thread slept waiting for its next job (its spin ran out,
   * or it did not spin): Node's next call then had to wake it. */
  jobWaitSleeps: number;
  /** Times an interpreter woke Node's main thread for results (it was not polling). */
  callerWakeups: number;
}

/** Reads the hand-off settings, applying `settings` first; they take effect from each
 * interpreter's next job. */
export function handOff(settings?: Partial<HandOffSettings>): HandOffSettings {
  return loadAddon().handOff(settings);
}

/** Reads what the hand-off did (see HandOffStats). */
export function handOffStats(): HandOffStats {
  return loadAddon().handOffStats();
}
