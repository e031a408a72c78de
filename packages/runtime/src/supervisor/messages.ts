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

/** A load or an unload through the repository API, run in every worker (model-control.ts). */
export type ModelControlAction = "load" | "unload";

/** A worker's failure to run one, as it travels (a CoilError's code and message). */
export interface ModelControlFailure {
  code: string;
  message: string;
}

export type WorkerMessage =
  /** The worker serves: its ports as its adapters report them. */
  | { coil: "serving"; http?: number; grpc?: number }
  /** Every second: its own metrics and what the interpreters of each model group are doing. */
  | { coil: "status"; metrics: string; groups: GroupStatus[] }
  /** A load or unload this worker was asked through the API: for every worker. */
  | { coil: "model-control"; id: number; action: ModelControlAction; name: string }
  /** This worker ran the primary's broadcast `id`. */
  | { coil: "model-control-done"; id: number; failure?: ModelControlFailure };

export type PrimaryMessage =
  /** Stop accepting, finish what is in flight, exit 0. */
  | { coil: "drain"; reason: string }
  /** After each round of statuses: the cluster's readiness, every live worker's last
   * metrics by slot, and the primary's own series. */
  | { coil: "cluster"; ready: boolean; workers: { slot: number; metrics: string }[]; primaryMetrics: string }
  /** Run this load or unload here, then say done (id 0: a catch-up, no answer awaited). */
  | { coil: "model-control-run"; id: number; action: ModelControlAction; name: string }
  /** The cluster's outcome of this worker's request `id`. */
  | { coil: "model-control-result"; id: number; failure?: ModelControlFailure };

const WORKER_MESSAGES = new Set(["serving", "status", "model-control", "model-control-done"]);
const PRIMARY_MESSAGES = new Set(["drain", "cluster", "model-control-run", "model-control-result"]);

export function isWorkerMessage(message: unknown): message is WorkerMessage {
  return typeof message === "object" && message !== null && "coil" in message && WORKER_MESSAGES.has(message.coil as string);
}

export function isPrimaryMessage(message: unknown): message is PrimaryMessage {
  return typeof message === "object" && message !== null && "coil" in message && PRIMARY_MESSAGES.has(message.coil as string);
}
