import type { InterpreterStatus } from "./messages.js";

/** What the watch reads of an interpreter (@coil/native's Interpreter has both). */
export interface WatchedInterpreter {
  /** Which of the process's interpreters (they come and go with the models' groups). */
  readonly index: number;
  readonly load: number;
  readonly busySeconds: number;
}

/**
 * Tells, for each interpreter of a worker, how long it has had calls without finishing
 * one: its busy time grows only when a call ends, so an interpreter with load whose
 * busy time stands still is running one call all along (a model blocked in C, whose
 * caller may long have timed out). The primary replaces a worker in which the
 * interpreters of one model group are all stalled past the grace period: nothing else
 * gets that model's interpreters back from a call blocked in C.
 */
export class InterpreterWatch {
  /** Per interpreter: its busy time when last looked at, and since when it has stood still with calls. */
  readonly #seen = new Map<number, { busySeconds: number; since: number }>();

  /** Looks at the interpreters now (call it every second or so). */
  sample(interpreters: readonly WatchedInterpreter[], nowMs: number): InterpreterStatus[] {
    return interpreters.map(({ index, load, busySeconds }) => {
      const seen = this.#seen.get(index);
      if (load === 0 || !seen || seen.busySeconds !== busySeconds) {
        this.#seen.set(index, { busySeconds, since: nowMs });
        return { load, stalledSeconds: 0 };
      }
      return { load, stalledSeconds: (nowMs - seen.since) / 1000 };
    });
  }
}

/** Seconds every interpreter has been stalled (0 if one is idle or progressing, or there are none). */
export function allStalledSeconds(interpreters: readonly InterpreterStatus[]): number {
  if (interpreters.length === 0) return 0;
  return Math.min(...interpreters.map((i) => i.stalledSeconds));
}
