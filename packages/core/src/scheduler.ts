import type { Interpreter } from "@coil/native";

import type { Scheduler } from "./contracts.js";

/** A free interpreter first, else the least loaded; ties rotate so that work
 * spreads over the pool instead of piling onto the first interpreter. */
export class LeastLoadedScheduler implements Scheduler {
  #next = 0;

  pick(interpreters: readonly Interpreter[]): Interpreter {
    const n = interpreters.length;
    let best = interpreters[this.#next % n]!;
    let bestLoad = best.load;
    for (let i = 1; i < n && bestLoad > 0; i++) {
      const candidate = interpreters[(this.#next + i) % n]!;
      const load = candidate.load;
      if (load < bestLoad) {
        best = candidate;
        bestLoad = load;
      }
    }
    this.#next = (this.#next + 1) % n;
    return best;
  }
}
