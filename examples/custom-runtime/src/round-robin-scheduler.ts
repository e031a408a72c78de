import type { Scheduler } from "@coil/core";
import type { Interpreter } from "@coil/native";

/** A scheduler of this example's own: strict rotation, whatever the load, and a
 * record of its picks (by position in the pool). */
export class RoundRobinScheduler implements Scheduler {
  #next = 0;
  readonly picks: number[] = [];

  pick(interpreters: readonly Interpreter[]): Interpreter {
    const position = this.#next % interpreters.length;
    this.#next = position + 1;
    this.picks.push(position);
    return interpreters[position]!;
  }
}
