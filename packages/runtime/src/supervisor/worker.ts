import cluster from "node:cluster";

import type { Logger } from "pino";

import { serve, type ServeOptions } from "../serve.js";
import { ClusterInferenceService } from "./cluster-service.js";
import { InterpreterWatch } from "./interpreter-watch.js";
import { isPrimaryMessage, type WorkerMessage } from "./messages.js";
import { describeFailure, ModelControlRelay } from "./model-control.js";
import { WORKER_PORT_ENV } from "./ports.js";

/** The environment variable that tells a worker its slot (0..workers-1). */
export const WORKER_SLOT_ENV = "COIL_WORKER_SLOT";

/** How often a worker tells the primary its status (and so how old the other workers' /metrics may be). */
export const STATUS_INTERVAL_MS = 1000;

/**
 * A worker of `coil serve --workers N`: a whole Coil server (its own interpreters, the
 * repository loaded, HTTP and gRPC listening on the ports the cluster shares), which
 * reports its status to the primary every second and drains when the primary asks.
 * SIGINT and SIGTERM are the primary's to act on: a Ctrl-C reaches the whole process
 * group, and the primary then drains every worker; a worker that acted on its own
 * would race it. Resolves with the exit code once drained.
 */
export async function runWorker(options: ServeOptions & { logger: Logger }): Promise<number> {
  const slot = Number(process.env[WORKER_SLOT_ENV] ?? cluster.worker?.id ?? 0);
  const logger = options.logger.child({ worker: slot });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => logger.debug({ signal }, "signal received: the primary drains the workers"));
  }
  let service: ClusterInferenceService | undefined;
  const port = (protocol: "http" | "grpc") => {
    const chosen = process.env[WORKER_PORT_ENV[protocol]];
    return chosen === undefined ? null : Number(chosen);
  };
  /** Whether the message could be sent (the primary is there). */
  const send = (message: WorkerMessage): boolean => {
    if (!process.connected) return false;
    process.send!(message);
    return true;
  };
  const relay = new ModelControlRelay(send);
  const server = await serve({
    ...options,
    httpPort: port("http"),
    grpcPort: port("grpc"),
    logger,
    wrapService: (local) => (service = new ClusterInferenceService(local, slot, relay)),
  });
  const watch = new InterpreterWatch();
  const report = () =>
    send({
      coil: "status",
      metrics: service!.localMetrics(),
      groups: server.runtime.groups
        .list()
        .flatMap((group) => (group.pool ? [{ name: group.name, interpreters: watch.sample(group.pool.interpreters, Date.now()) }] : [])),
    });
  const timer = setInterval(report, STATUS_INTERVAL_MS);
  timer.unref();
  return new Promise<number>((resolve) => {
    process.on("message", (message: unknown) => {
      if (!isPrimaryMessage(message)) return;
      if (message.coil === "cluster") {
        service!.update(message);
        return;
      }
      if (message.coil === "model-control-run") {
        const { id, action, name } = message;
        const local = service!.local;
        void (action === "load" ? local.loadModel(name) : local.unloadModel(name)).then(
          () => send({ coil: "model-control-done", id }),
          (error: unknown) => send({ coil: "model-control-done", id, failure: describeFailure(error) }),
        );
        return;
      }
      if (message.coil === "model-control-result") {
        relay.settle(message.id, message.failure);
        return;
      }
      clearInterval(timer);
      logger.info({ reason: message.reason }, "worker draining");
      void server.shutdown().then(
        () => {
          cluster.worker?.disconnect();
          resolve(0);
        },
        (error: unknown) => {
          logger.error({ err: error }, "worker drain failed");
          resolve(1);
        },
      );
    });
    send({ coil: "serving", ...(server.httpPort !== undefined && { http: server.httpPort }), ...(server.grpcPort !== undefined && { grpc: server.grpcPort }) });
    report();
  });
}
