import cluster, { type Worker } from "node:cluster";

import type { Logger } from "pino";

import { Exposition, type Sample } from "../exposition.js";
import { exitCause, type ExitCause } from "./exit-cause.js";
import { allStalledSeconds } from "./interpreter-watch.js";
import { isWorkerMessage, type GroupStatus, type PrimaryMessage } from "./messages.js";
import { ModelControlBroadcast } from "./model-control.js";
import { RestartPolicy, type RestartPolicyOptions } from "./restart-policy.js";
import { freePort, WORKER_PORT_ENV } from "./ports.js";
import { residentBytes } from "./worker-memory.js";
import { STATUS_INTERVAL_MS, WORKER_SLOT_ENV } from "./worker.js";

export interface SupervisorOptions {
  /** Worker processes, each a whole Coil server on the shared ports. */
  workers: number;
  /** Where the workers listen: a port of 0 is chosen here once, for every worker; null: that protocol is off. */
  host: string;
  httpPort: number | null;
  grpcPort: number | null;
  logger: Logger;
  /** A worker in which every interpreter of a model group has run one call for this
   * long is replaced; 0: never. */
  stuckGraceSeconds: number;
  /** A worker whose resident memory exceeds this many MiB is drained and replaced; 0: no limit. */
  maxWorkerMemoryMb: number;
  /** How long a draining worker may take to finish its requests before it is killed. */
  drainTimeoutSeconds: number;
  restartPolicy?: RestartPolicyOptions;
}

interface WorkerStatus {
  metrics: string;
  groups: GroupStatus[];
}

/** One of the N places a worker serves from; its worker is replaced, the slot stays. */
interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  /** The worker being replaced: it serves until `worker` does, then drains. */
  outgoing: Worker | undefined;
  serving: boolean;
  status: WorkerStatus | undefined;
  residentBytes: number | undefined;
  restartTimer: NodeJS.Timeout | undefined;
  /** Given up as crash-looping: no worker, no restart. */
  gaveUp: boolean;
}

/**
 * The primary of `coil serve --workers N` (node:cluster): forks the workers, restarts
 * one that dies (the log names the signal or the exit code; backoff; a slot that
 * crash-loops is given up and readiness turns false), replaces a worker in which a
 * model group's interpreters are all stuck or whose memory is over the limit (the old
 * one serves until its successor does, then drains), and serves the
 * cluster's view (readiness, every worker's metrics, its own series) to every worker.
 * The workers share the primary's listening sockets and accept from them themselves:
 * a new connection goes to a live worker; a dead worker's connections close with it.
 *
 * SIGINT and SIGTERM (to the primary or its process group) drain every worker: each
 * stops accepting and finishes what it accepted, then the primary returns 0. If every
 * slot is given up, it stops and returns the shell's status for the last cause
 * (128 + the signal's number, or the exit code), the log naming it.
 */
export class Supervisor {
  readonly #options: SupervisorOptions;
  readonly #log: Logger;
  readonly #policy: RestartPolicy;
  readonly #slots: Slot[];
  /** Workers asked to drain, until they exit, with their deadline. */
  readonly #retiring = new Map<Worker, NodeJS.Timeout>();
  readonly #restarts = new Map<string, number>();
  readonly #modelControl = new ModelControlBroadcast();
  #ports: { http?: number; grpc?: number } = {};
  #started = false;
  readonly #workerEnv: Record<string, string> = {};
  #stopping: { status: number } | undefined;
  #tick: NodeJS.Timeout | undefined;
  #finished!: (status: number) => void;
  readonly #done = new Promise<number>((resolve) => (this.#finished = resolve));

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#policy = new RestartPolicy(options.restartPolicy);
    this.#slots = Array.from({ length: options.workers }, (_, index) => ({
      index,
      worker: undefined,
      outgoing: undefined,
      serving: false,
      status: undefined,
      residentBytes: undefined,
      restartTimer: undefined,
      gaveUp: false,
    }));
  }

  /** Starts the workers and supervises them; resolves with the exit status once they are all gone. */
  async run(): Promise<number> {
    for (const protocol of ["http", "grpc"] as const) {
      const port = this.#options[`${protocol}Port`];
      if (port !== null) this.#workerEnv[WORKER_PORT_ENV[protocol]] = String(port === 0 ? await freePort(this.#options.host) : port);
    }
    // The workers accept from the one listening socket themselves (SCHED_NONE): a
    // connection is either still in the kernel's queue, for a live worker to take, or
    // accepted by one worker, and closed at once if that one dies. With round-robin
    // (SCHED_RR) the primary accepts and passes each connection over IPC, and one
    // passed to a worker as it dies is never answered nor closed: its client hangs
    // until its own timeout (supervisor.test.ts under SCHED_RR: one request sent as the
    // worker died waited out the client's 30 s; under SCHED_NONE, 3 connections reset at
    // once, none hung). The cost: the kernel balances connections less evenly.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => this.#onSignal(signal));
    for (const slot of this.#slots) this.#fork(slot);
    this.#tick = setInterval(
      () => void this.#round().catch((error: unknown) => this.#log.error({ err: error }, "supervisor round failed")),
      STATUS_INTERVAL_MS,
    );
    return this.#done;
  }

  #fork(slot: Slot): void {
    slot.restartTimer = undefined;
    slot.serving = false;
    slot.status = undefined;
    slot.residentBytes = undefined;
    const worker = cluster.fork({ ...this.#workerEnv, [WORKER_SLOT_ENV]: String(slot.index) });
    slot.worker = worker;
    this.#log.info({ worker: slot.index, workerPid: worker.process.pid }, "worker started");
    worker.on("message", (message: unknown) => {
      if (!isWorkerMessage(message) || slot.worker !== worker) return;
      if (message.coil === "status") {
        slot.status = message;
        return;
      }
      if (message.coil === "model-control") {
        this.#modelControl.start(worker, message, this.#servingWorkers());
        return;
      }
      if (message.coil === "model-control-done") {
        this.#modelControl.done(worker, message.id, message.failure);
        return;
      }
      slot.serving = true;
      this.#modelControl.catchUp(worker);
      if (slot.outgoing) {
        this.#drain(slot.outgoing, "replaced by its successor");
        slot.outgoing = undefined;
      }
      this.#ports = { ...(message.http !== undefined && { http: message.http }), ...(message.grpc !== undefined && { grpc: message.grpc }) };
      if (!this.#started && this.#slots.every((s) => s.serving)) {
        this.#started = true;
        this.#log.info({ workers: this.#slots.length, ...this.#ports }, "serving");
      }
    });
    worker.on("exit", (code: number | null, signal: string | null) => this.#onExit(slot, worker, exitCause(code, signal as NodeJS.Signals | null)));
    // A send racing the worker's death fails here; its exit is handled above.
    worker.on("error", (error: Error) => this.#log.debug({ worker: slot.index, err: error }, "worker channel error"));
  }

  #onExit(slot: Slot, worker: Worker, cause: ExitCause): void {
    const workerPid = worker.process.pid;
    this.#modelControl.gone(worker);
    const deadline = this.#retiring.get(worker);
    if (deadline !== undefined) {
      clearTimeout(deadline);
      this.#retiring.delete(worker);
      this.#log.info({ worker: slot.index, workerPid, cause: cause.cause }, "worker drained and exited");
    } else if (slot.outgoing === worker) {
      slot.outgoing = undefined;
      this.#log.warn({ worker: slot.index, workerPid, cause: cause.cause }, "worker being replaced exited before its successor served");
    } else if (slot.worker === worker) {
      slot.worker = undefined;
      slot.serving = false;
      if (this.#stopping) {
        this.#log.warn({ worker: slot.index, workerPid, cause: cause.cause }, "worker exited while stopping");
      } else {
        this.#onDeath(slot, workerPid, cause);
      }
    }
    this.#finishIfStopped();
  }

  #onDeath(slot: Slot, workerPid: number | undefined, cause: ExitCause): void {
    this.#log.error(
      { worker: slot.index, workerPid, cause: cause.cause, ...(cause.signal && { signal: cause.signal }), ...(cause.code !== undefined && { code: cause.code }) },
      `worker died: ${cause.cause}`,
    );
    if (!this.#started) {
      // Start-up failed (the repository, a flag, the Python): restarting cannot help.
      this.#log.error({ worker: slot.index, cause: cause.cause }, "a worker failed to start: stopping");
      this.#stop(cause.status);
      return;
    }
    this.#count(cause.signal ?? `exit_code_${cause.code}`);
    const decision = this.#policy.onDeath(slot.index, Date.now());
    if (decision.action === "restart") {
      this.#log.info({ worker: slot.index, delayMs: decision.delayMs }, "restarting worker");
      slot.restartTimer = setTimeout(() => this.#fork(slot), decision.delayMs);
      return;
    }
    slot.gaveUp = true;
    this.#log.error(
      { worker: slot.index, deaths: decision.deaths, windowMs: decision.windowMs, cause: cause.cause },
      "worker slot is crash-looping: not restarting it; the server is not ready",
    );
    if (this.#slots.every((s) => s.gaveUp)) {
      this.#log.error({ cause: cause.cause, status: cause.status }, `every worker slot is crash-looping: stopping (last cause ${cause.cause})`);
      this.#stop(cause.status);
    }
  }

  #count(reason: string): void {
    this.#restarts.set(reason, (this.#restarts.get(reason) ?? 0) + 1);
  }

  /** Every second: memory and stuck checks, then the cluster's view to every worker. */
  async #round(): Promise<void> {
    const { stuckGraceSeconds, maxWorkerMemoryMb } = this.#options;
    await Promise.all(
      this.#slots.map(async (slot) => {
        const pid = slot.worker?.process.pid;
        slot.residentBytes = pid === undefined ? undefined : await residentBytes(pid);
      }),
    );
    if (this.#stopping) return;
    for (const slot of this.#slots) {
      if (!slot.serving || !slot.status || slot.outgoing) continue;
      const stuck = slot.status.groups
        .map((group) => ({ group: group.name, stalled: allStalledSeconds(group.interpreters) }))
        .find(({ stalled }) => stuckGraceSeconds > 0 && stalled >= stuckGraceSeconds);
      if (stuck) {
        this.#replace(slot, "stuck", { group: stuck.group, stalledSeconds: Math.round(stuck.stalled), graceSeconds: stuckGraceSeconds });
      } else if (maxWorkerMemoryMb > 0 && (slot.residentBytes ?? 0) > maxWorkerMemoryMb * 1024 * 1024) {
        this.#replace(slot, "memory", { residentMb: Math.round(slot.residentBytes! / 2 ** 20), maxWorkerMemoryMb });
      }
    }
    const view: PrimaryMessage = {
      coil: "cluster",
      ready: this.#ready(),
      workers: this.#slots.flatMap((s) => (s.serving && s.status ? [{ slot: s.index, metrics: s.status.metrics }] : [])),
      primaryMetrics: this.#metrics(),
    };
    for (const slot of this.#slots) if (slot.serving && slot.worker?.isConnected()) slot.worker.send(view);
  }

  /** Starts the slot's next worker; the current one serves until that one does, then drains. */
  #replace(slot: Slot, reason: "stuck" | "memory", details: Record<string, number | string>): void {
    const old = slot.worker!;
    this.#log.warn(
      { worker: slot.index, workerPid: old.process.pid, reason, ...details },
      `worker ${reason === "stuck" ? "stuck" : "over its memory limit"}: replacing it (it drains once its successor serves)`,
    );
    this.#count(reason);
    slot.outgoing = old;
    this.#fork(slot);
  }

  /** Asks a worker to finish what it accepted and exit; kills it at the deadline. */
  #drain(worker: Worker, reason: string): void {
    if (this.#retiring.has(worker)) return;
    const deadline = setTimeout(() => {
      this.#log.error({ workerPid: worker.process.pid, drainTimeoutSeconds: this.#options.drainTimeoutSeconds }, "worker did not drain in time: killing it");
      worker.process.kill("SIGKILL");
    }, this.#options.drainTimeoutSeconds * 1000);
    this.#retiring.set(worker, deadline);
    if (worker.isConnected()) worker.send({ coil: "drain", reason } satisfies PrimaryMessage);
  }

  /** The workers serving now (a slot's outgoing worker still serves until it drains). */
  #servingWorkers(): Worker[] {
    return this.#slots.flatMap((s) => [...(s.serving && s.worker ? [s.worker] : []), ...(s.outgoing ? [s.outgoing] : [])]);
  }

  #ready(): boolean {
    return !this.#stopping && this.#slots.every((s) => !s.gaveUp);
  }

  #metrics(): string {
    const exposition = new Exposition();
    exposition.gauge("coil_workers_alive", "Worker processes serving (of the slots configured)", [
      [{}, this.#slots.filter((s) => s.serving).length],
    ]);
    exposition.gauge("coil_worker_slots", "Worker slots configured; given_up: slots that crash-looped and are no longer restarted", [
      [{ state: "configured" }, this.#slots.length],
      [{ state: "given_up" }, this.#slots.filter((s) => s.gaveUp).length],
    ]);
    exposition.counter(
      "coil_worker_restarts_total",
      "Workers replaced, by reason: the signal that ended one (SIGSEGV, ...), its exit code (exit_code_N), stuck or memory",
      [...this.#restarts].map(([reason, n]): Sample => [{ reason }, n]),
    );
    exposition.gauge(
      "coil_worker_resident_bytes",
      "Resident memory of each worker process",
      this.#slots.flatMap((s): Sample[] => (s.residentBytes === undefined ? [] : [[{ worker: String(s.index) }, s.residentBytes]])),
    );
    return exposition.text();
  }

  #onSignal(signal: NodeJS.Signals): void {
    if (this.#stopping) {
      this.#log.info({ signal }, "signal received: already draining");
      return;
    }
    this.#log.info({ signal }, "signal received");
    this.#stop(0);
  }

  /** Stops restarting, drains every worker (kills those not serving yet), then finishes with `status`. */
  #stop(status: number): void {
    this.#stopping ??= { status };
    for (const slot of this.#slots) {
      clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
      if (slot.outgoing) this.#drain(slot.outgoing, "the server is stopping");
      slot.outgoing = undefined;
      const worker = slot.worker;
      if (!worker) continue;
      if (slot.serving) {
        slot.worker = undefined;
        slot.serving = false;
        this.#drain(worker, "the server is stopping");
      } else {
        worker.process.kill("SIGKILL");
      }
    }
    this.#finishIfStopped();
  }

  #finishIfStopped(): void {
    if (!this.#stopping || this.#retiring.size > 0 || this.#slots.some((s) => s.worker)) return;
    clearInterval(this.#tick);
    this.#log.info("stopped");
    this.#finished(this.#stopping.status);
  }
}
