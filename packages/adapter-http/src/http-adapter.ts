import { setMaxListeners } from "node:events";
import type { AddressInfo, Socket } from "node:net";

import { httpStatusFor, protocolDatatype, TOKENS, type Adapter, type InferenceService, type ServedModel, type TensorSignature } from "@coil/core";
import { CoilError, isCoilError } from "@coil/errors";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from "fastify";
import { inject, injectable, type InjectionToken } from "tsyringe";

import { decodeInferRequest, encodeInferResponse, HEADER_LENGTH_HEADER } from "./codec.js";

export interface HttpAdapterOptions {
  /** Address to listen on. Default "0.0.0.0". */
  host?: string;
  /** TCP port; 0 picks a free one. Default 8000 (Triton's HTTP port). */
  port?: number;
  /** Largest request body in bytes; larger ones are answered 413 before they are read. Default 64 MiB. */
  bodyLimit?: number;
  /** Most tensor elements one infer request may carry over all its inputs; more is
   * answered 413 before any tensor is allocated. Default 2^26. */
  maxElements?: number;
  /** fastify's logger option (false, true, or pino options). Default false. */
  logger?: FastifyServerOptions["logger"];
}

export const DEFAULT_BODY_LIMIT = 64 * 1024 * 1024;
export const DEFAULT_MAX_ELEMENTS = 2 ** 26;

/** The HttpAdapter's options in a container. */
export const HTTP_ADAPTER_OPTIONS = Symbol.for("@coil/adapter-http.Options") as InjectionToken<HttpAdapterOptions>;

/** Throws INVALID_ARGUMENT for options the adapter cannot use. */
export function validateHttpAdapterOptions(options: HttpAdapterOptions): void {
  const { port, bodyLimit, maxElements, host } = options;
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new CoilError("INVALID_ARGUMENT", `http adapter: port must be an integer in 0..65535, got ${port}`);
  }
  for (const [name, value] of Object.entries({ bodyLimit, maxElements })) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
      throw new CoilError("INVALID_ARGUMENT", `http adapter: ${name} must be a positive integer, got ${value}`);
    }
  }
  if (host !== undefined && (typeof host !== "string" || host === "")) {
    throw new CoilError("INVALID_ARGUMENT", `http adapter: host must be a non-empty string`);
  }
}

interface ModelParams {
  model: string;
  version?: string;
}

const octetStream = "application/octet-stream";

/**
 * Serves an InferenceService over the Open Inference Protocol's REST API (KServe
 * v2, as Triton serves it), with Triton's binary tensor data extension, the model
 * repository extension and Prometheus metrics at /metrics.
 */
@injectable()
export class HttpAdapter implements Adapter {
  readonly name = "http";
  readonly #service: InferenceService;
  readonly #options: Required<Omit<HttpAdapterOptions, "logger">> & Pick<HttpAdapterOptions, "logger">;
  #app: FastifyInstance | undefined;
  #url: string | undefined;
  #port: number | undefined;
  #closing = false;

  constructor(
    @inject(TOKENS.InferenceService) service: InferenceService,
    @inject(HTTP_ADAPTER_OPTIONS) options: HttpAdapterOptions = {},
  ) {
    validateHttpAdapterOptions(options);
    this.#service = service;
    this.#options = {
      host: options.host ?? "0.0.0.0",
      port: options.port ?? 8000,
      bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
      maxElements: options.maxElements ?? DEFAULT_MAX_ELEMENTS,
      logger: options.logger ?? false,
    };
  }

  /** Where it listens, once started (http://host:port; 127.0.0.1 for a wildcard host). */
  get url(): string | undefined {
    return this.#url;
  }

  /** The port it listens on, once started (the one picked when port was 0). */
  get port(): number | undefined {
    return this.#port;
  }

  async start(): Promise<void> {
    if (this.#app) return;
    this.#closing = false;
    const app = this.#build();
    try {
      await app.listen({ host: this.#options.host, port: this.#options.port });
    } catch (error) {
      await app.close().catch(() => undefined);
      throw error;
    }
    const address = app.server.address() as AddressInfo;
    const host = address.address === "0.0.0.0" || address.address === "::" ? "127.0.0.1" : address.address;
    this.#port = address.port;
    this.#url = `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
    this.#app = app;
  }

  /** Stops accepting, lets requests in flight finish, closes the connections. */
  async stop(): Promise<void> {
    const app = this.#app;
    if (!app) return;
    this.#app = undefined;
    this.#url = undefined;
    this.#port = undefined;
    // Responses still to be sent close their connections, so close() need not wait
    // for keep-alive timeouts.
    this.#closing = true;
    try {
      await app.close();
    } finally {
      this.#closing = false;
    }
  }

  #build(): FastifyInstance {
    const service = this.#service;
    const maxElements = this.#options.maxElements;
    const app = Fastify({
      logger: this.#options.logger ?? false,
      bodyLimit: this.#options.bodyLimit,
      // Idle keep-alive connections close at stop(); busy ones finish first.
      forceCloseConnections: "idle",
    });

    // Every body arrives as a Buffer: infer decodes JSON itself, since a request with
    // Inference-Header-Content-Length is JSON then binary whatever its content-type.
    app.removeAllContentTypeParsers();
    const raw = (_request: FastifyRequest, body: Buffer, done: (error: Error | null, body?: Buffer) => void) =>
      done(null, body);
    app.addContentTypeParser(octetStream, { parseAs: "buffer" }, raw);
    app.addContentTypeParser("application/json", { parseAs: "buffer" }, raw);
    app.addContentTypeParser("*", { parseAs: "buffer" }, raw);

    app.setErrorHandler((error: unknown, _request, reply) => {
      let status = 500;
      if (isCoilError(error)) status = httpStatusFor(error.code);
      else {
        const code = (error as { statusCode?: unknown }).statusCode;
        if (typeof code === "number" && code >= 400 && code < 600) status = code;
      }
      if (status >= 500) reply.log.error(error);
      void reply
        .code(status)
        .type("application/json")
        .send(JSON.stringify({ error: error instanceof Error ? error.message : String(error) }));
    });
    app.setNotFoundHandler((request, reply) => {
      void reply
        .code(404)
        .type("application/json")
        .send(JSON.stringify({ error: `no route for ${request.method} ${request.url}` }));
    });

    // A callback hook, not an async one: it runs on every response.
    app.addHook("onSend", (_request, reply, payload, done) => {
      if (this.#closing) reply.header("connection", "close");
      done(null, payload);
    });

    const empty = (reply: FastifyReply, ok: boolean) => reply.code(ok ? 200 : 503).send();

    app.get("/v2/health/live", async (_request, reply) => empty(reply, service.isLive()));
    app.get("/v2/health/ready", async (_request, reply) => empty(reply, service.isReady()));
    app.get("/v2", async () => service.serverMetadata());
    app.get("/metrics", async (_request, reply) =>
      reply.type("text/plain; version=0.0.4; charset=utf-8").send(service.metrics()),
    );

    const metadata = async (request: FastifyRequest<{ Params: ModelParams }>) =>
      modelMetadata(service.model(request.params.model, request.params.version));
    app.get("/v2/models/:model", metadata);
    app.get("/v2/models/:model/versions/:version", metadata);

    const ready = async (request: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) => {
      const { model, version } = request.params;
      // Unknown models and versions: model() throws MODEL_NOT_FOUND (404).
      service.model(model, version);
      return empty(reply, service.isModelReady(model, version));
    };
    app.get("/v2/models/:model/ready", ready);
    app.get("/v2/models/:model/versions/:version/ready", ready);

    const infer = async (request: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) => {
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const decoded = decodeInferRequest(body, request.headers[HEADER_LENGTH_HEADER], { maxElements });
      // A client that goes away cancels its requests in flight.
      decoded.request.signal = connectionSignal(request.raw.socket);
      const response = await service.infer(request.params.model, request.params.version, decoded.request);
      const encoded = encodeInferResponse(response, decoded);
      if (encoded.headerLength !== undefined) {
        return reply
          .header("Inference-Header-Content-Length", String(encoded.headerLength))
          .type(octetStream)
          .send(encoded.body);
      }
      return reply.type("application/json").send(encoded.body);
    };
    app.post("/v2/models/:model/infer", infer);
    app.post("/v2/models/:model/versions/:version/infer", infer);

    // Model repository extension.
    app.post("/v2/repository/index", async (request) => {
      let onlyReady = false;
      const body = request.body;
      if (Buffer.isBuffer(body) && body.length > 0) {
        const parsed = parseJson(body);
        if (parsed !== null && typeof parsed === "object" && "ready" in parsed) {
          if (typeof parsed.ready !== "boolean") throw new CoilError("INVALID_ARGUMENT", "ready must be a boolean");
          onlyReady = parsed.ready;
        }
      }
      const index = service.modelIndex();
      return onlyReady ? index.filter((entry) => entry.state === "READY") : index;
    });
    app.post("/v2/repository/models/:model/load", async (request: FastifyRequest<{ Params: ModelParams }>, reply) => {
      await service.loadModel(request.params.model);
      return reply.code(200).send();
    });
    app.post("/v2/repository/models/:model/unload", async (request: FastifyRequest<{ Params: ModelParams }>, reply) => {
      await service.unloadModel(request.params.model);
      return reply.code(200).send();
    });

    return app;
  }
}

const CONNECTION_ABORT = Symbol("coil.connectionAbort");

/** An AbortSignal that fires when the connection closes: one per connection rather
 * than per request, since keep-alive clients send thousands over one. */
function connectionSignal(socket: Socket & { [CONNECTION_ABORT]?: AbortController }): AbortSignal {
  let controller = socket[CONNECTION_ABORT];
  if (!controller) {
    const created = new AbortController();
    setMaxListeners(0, created.signal); // one listener per request in flight: pipelining has many
    socket[CONNECTION_ABORT] = controller = created;
    socket.once("close", () => created.abort(new Error("the client closed the connection")));
  }
  return controller.signal;
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch (error) {
    throw new CoilError("INVALID_ARGUMENT", `malformed JSON in the request: ${(error as Error).message}`);
  }
}

function signature(tensor: TensorSignature): { name: string; datatype: string; shape: number[] } {
  return { name: tensor.name, datatype: protocolDatatype(tensor.dtype), shape: [...tensor.shape] };
}

/** The protocol's model metadata response. */
export function modelMetadata(model: ServedModel): {
  name: string;
  versions: string[];
  platform: string;
  inputs: ReturnType<typeof signature>[];
  outputs: ReturnType<typeof signature>[];
  parameters?: Record<string, string | number | boolean>;
} {
  return {
    name: model.name,
    versions: [...model.versions],
    platform: model.platform,
    inputs: model.inputs.map(signature),
    outputs: model.outputs.map(signature),
    ...(model.parameters && { parameters: model.parameters }),
  };
}
