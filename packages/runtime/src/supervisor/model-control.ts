import type { Worker } from "node:cluster";

import { CoilError, isCoilError, type CoilErrorCode } from "@coil/errors";

import type { ModelControlAction, ModelControlFailure, PrimaryMessage, WorkerMessage } from "./messages.js";

/**
 * Loads and unloads through the repository API reach every worker of `coil serve
 * --workers N`, not only the one whose connection took the request: that worker asks
 * the primary (ModelControlRelay), the primary runs the action in every worker serving
 * and answers once all have (ModelControlBroadcast). Otherwise a model unloaded in one
 * worker would still answer from the others, by the luck of which accepted the
 * connection.
 */

/** A worker's side: its service's loadModel/unloadModel, asked of the whole cluster. */
export class ModelControlRelay {
  readonly #send: (message: WorkerMessage) => boolean;
  readonly #pending = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
  #next = 0;

  /** `send` says whether the message left (false: the primary is gone). */
  constructor(send: (message: WorkerMessage) => boolean) {
    this.#send = send;
  }

  /** Asks the primary to run `action` in every worker; settles with the cluster's outcome. */
  request(action: ModelControlAction, name: string): Promise<void> {
    const id = ++this.#next;
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      if (this.#send({ coil: "model-control", id, action, name })) return;
      // No primary to answer: refused now rather than left waiting.
      this.#pending.delete(id);
      reject(new CoilError("CLOSED", `model ${action} of ${name}: this worker has lost its primary (the server is stopping)`));
    });
  }

  /** The primary's answer to request `id`. */
  settle(id: number, failure: ModelControlFailure | undefined): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    if (failure) pending.reject(new CoilError(failure.code as CoilErrorCode, failure.message));
    else pending.resolve();
  }
}

/** How a worker's local failure travels to the primary (a CoilError's code survives). */
export function describeFailure(error: unknown): ModelControlFailure {
  return isCoilError(error) ? { code: error.code, message: error.message } : { code: "INTERNAL", message: String((error as Error)?.message ?? error) };
}

interface Broadcast {
  origin: Worker;
  requestId: number;
  waiting: Set<Worker>;
  failure?: ModelControlFailure;
}

/** The primary's side: runs each request in every serving worker, answers its origin. */
export class ModelControlBroadcast {
  readonly #broadcasts = new Map<number, Broadcast>();
  /** Models unloaded through the API: a worker started later (a restart) unloads them too. */
  readonly #unloaded = new Set<string>();
  #next = 0;

  /** A worker's request: sent to `workers` (those serving, the origin among them). */
  start(origin: Worker, request: Extract<WorkerMessage, { coil: "model-control" }>, workers: Worker[]): void {
    const id = ++this.#next;
    const broadcast: Broadcast = { origin, requestId: request.id, waiting: new Set(workers.filter((w) => w.isConnected())) };
    this.#broadcasts.set(id, broadcast);
    if (request.action === "unload") this.#unloaded.add(request.name);
    else this.#unloaded.delete(request.name);
    const run: PrimaryMessage = { coil: "model-control-run", id, action: request.action, name: request.name };
    for (const worker of broadcast.waiting) worker.send(run);
    this.#finishIfDone(id, broadcast);
  }

  /** A worker ran broadcast `id` (a failure: the first one is the answer). */
  done(worker: Worker, id: number, failure: ModelControlFailure | undefined): void {
    const broadcast = this.#broadcasts.get(id);
    if (!broadcast) return;
    broadcast.failure ??= failure;
    broadcast.waiting.delete(worker);
    this.#finishIfDone(id, broadcast);
  }

  /** A worker that exits is no longer waited for. */
  gone(worker: Worker): void {
    for (const [id, broadcast] of this.#broadcasts) {
      if (broadcast.waiting.delete(worker)) this.#finishIfDone(id, broadcast);
    }
  }

  /** A worker that starts serving: the models unloaded before it started are unloaded in it too. */
  catchUp(worker: Worker): void {
    for (const name of this.#unloaded) worker.send({ coil: "model-control-run", id: 0, action: "unload", name } satisfies PrimaryMessage);
  }

  #finishIfDone(id: number, broadcast: Broadcast): void {
    if (broadcast.waiting.size > 0) return;
    this.#broadcasts.delete(id);
    if (broadcast.origin.isConnected()) {
      broadcast.origin.send({ coil: "model-control-result", id: broadcast.requestId, ...(broadcast.failure && { failure: broadcast.failure }) } satisfies PrimaryMessage);
    }
  }
}
