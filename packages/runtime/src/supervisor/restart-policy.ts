/**
 * When the primary restarts a worker slot whose worker died: after a delay that starts
 * at `initialDelayMs` and doubles with each death close to the last one (up to
 * `maxDelayMs`), and never again once the slot died `crashLoopDeaths` times within
 * `crashLoopWindowMs` (a crash loop: restarting would only burn CPU and fill the log).
 */
export interface RestartPolicyOptions {
  initialDelayMs?: number;
  maxDelayMs?: number;
  crashLoopDeaths?: number;
  crashLoopWindowMs?: number;
}

export type RestartDecision = { action: "restart"; delayMs: number } | { action: "give-up"; deaths: number; windowMs: number };

export const DEFAULT_RESTART_POLICY: Required<RestartPolicyOptions> = {
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  crashLoopDeaths: 5,
  crashLoopWindowMs: 60_000,
};

export class RestartPolicy {
  readonly #options: Required<RestartPolicyOptions>;
  /** Per slot: when its workers died, oldest first (only those still inside the window). */
  readonly #deaths = new Map<number, number[]>();
  /** Per slot: the delay given after its last death. */
  readonly #lastDelay = new Map<number, number>();

  constructor(options: RestartPolicyOptions = {}) {
    this.#options = { ...DEFAULT_RESTART_POLICY, ...options };
  }

  /** Records that the worker of `slot` died at `nowMs` and says what to do. */
  onDeath(slot: number, nowMs: number): RestartDecision {
    const { initialDelayMs, maxDelayMs, crashLoopDeaths, crashLoopWindowMs } = this.#options;
    const deaths = [...(this.#deaths.get(slot) ?? []), nowMs].filter((t) => nowMs - t < crashLoopWindowMs);
    this.#deaths.set(slot, deaths);
    if (deaths.length >= crashLoopDeaths) return { action: "give-up", deaths: deaths.length, windowMs: crashLoopWindowMs };
    // A death long after the previous one (none other in the window) starts over.
    const delayMs = deaths.length === 1 ? initialDelayMs : Math.min(maxDelayMs, (this.#lastDelay.get(slot) ?? initialDelayMs / 2) * 2);
    this.#lastDelay.set(slot, delayMs);
    return { action: "restart", delayMs };
  }
}
