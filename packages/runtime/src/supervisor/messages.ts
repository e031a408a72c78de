/**
 * What the primary and its workers tell each other over the cluster's IPC channel
 * (JSON). Every message carries `coil` so that anything else on the channel (Node's
 * own cluster messages are separate, a plugin's may not be) is ignored.
 */

/** What a worker knows of its interpreters, for the primary's stuck check. */
export interface InterpreterStatus {
  /** Calls queued on it or running. */
  load: number;
  /** Seconds since it last finished a call while it had calls (0 when idle or progressing). */
  stalledSeconds: number;
}

/** A model group (a model's own interpreters, or a shared group's) in a worker. */
export interface GroupStatus {
  name: string;
  interpreters: InterpreterStatus[];
}

export type WorkerMessage =
  /** The worker serves: its ports as its adapters report them. */
  | { coil: "serving"; http?: number; grpc?: number }
  /** Every second: its own metrics and what the interpreters of each model group are doing. */
  | { coil: "status"; metrics: string; groups: GroupStatus[] };

export type PrimaryMessage =
  /** Stop accepting, finish what is in flight, exit 0. */
  | { coil: "drain"; reason: string }
  /** After each round of statuses: the cluster's readiness, every live worker's last
   * metrics by slot, and the primary's own series. */
  | { coil: "cluster"; ready: boolean; workers: { slot: number; metrics: string }[]; primaryMetrics: string };

export function isWorkerMessage(message: unknown): message is WorkerMessage {
  return typeof message === "object" && message !== null && "coil" in message && (message.coil === "serving" || message.coil === "status");
}

export function isPrimaryMessage(message: unknown): message is PrimaryMessage {
  return typeof message === "object" && message !== null && "coil" in message && (message.coil === "drain" || message.coil === "cluster");
}
