import { setMaxListeners } from "node:events";
import type { AddressInfo, Socket } from "node:net";
import { totalmem } from "node:os";
import type { Readable } from "node:stream";

import {
  ACCESS_CONTROL,
  httpStatusFor,
  OPEN_ACCESS,
  protocolDatatype,
  TOKENS,
  type AccessControl,
  type AccessKind,
  type Adapter,
  type InferenceService,
  type ServedModel,
  type TensorSignature,
} from "@coil/core";
import { CoilError, isCoilError } from "@coil/errors";
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from "fastify";
import { inject, injectable, injectAll, type InjectionToken } from "tsyringe";

import { decodeInferRequest, encodeInferResponse, HEADER_LENGTH_HEADER, HttpError } from "./codec.js";
import { PendingBodies, readBody } from "./request-body.js";

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
  /** A request body must arrive whole within this; 408 and the connection closed
   * after it. Default 30 s. */
  bodyTimeoutMs?: number;
  /** Most bytes held by all request bodies still arriving, together; a new body past
   * it is answered 503 with Retry-After. Default: 1 GiB or a quarter of the RAM,
   * whichever is less. */
  maxPendingBodyBytes?: number;
  /** Largest JSON infer response; larger ones are refused (RESPONSE_TOO_LARGE, 400),
   * suggesting binary outputs. Default 64 MiB. */
  maxResponseBytes?: number;
  /** Serve HTTPS with this certificate chain and private key (PEM). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** fastify's logger option (false, true, or pino options). Default false. */
  logger?: FastifyServerOptions["logger"];
}

export const DEFAULT_BODY_LIMIT = 64 * 1024 * 1024;
export const DEFAULT_MAX_ELEMENTS = 2 ** 26;
export const DEFAULT_BODY_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_PENDING_BODY_BYTES = Math.min(2 ** 30, Math.floor(totalmem() / 4));
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/**
 * Routes other plugins add to the HTTP port (the dashboard): each a fastify plugin,
 * registered on the adapter's app after its own routes, so the access hook (a route's
 * `config.access`, "metadata" when not said) and the error handler cover them too.
 * Register any number under this token; the adapter takes them all.
 */
export const HTTP_ROUTES = Symbol.for("@coil/adapter-http.Routes") as InjectionToken<FastifyPluginAsync>;

/** The HttpAdapter's options in a container. */
export const HTTP_ADAPTER_OPTIONS = Symbol.for("@coil/adapter-http.Options") as InjectionToken<HttpAdapterOptions>;

/** Throws INVALID_ARGUMENT for options the adapter cannot use. */
export function validateHttpAdapterOptions(options: HttpAdapterOptions): void {
  const { port, bodyLimit, maxElements, host, bodyTimeoutMs, maxPendingBodyBytes, maxResponseBytes, tls } = options;
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new CoilError("INVALID_ARGUMENT", `http adapter: port must be an integer in 0..65535, got ${port}`);
  }
  for (const [name, value] of Object.entries({ bodyLimit, maxElements, bodyTimeoutMs, maxPendingBodyBytes, maxResponseBytes })) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
      throw new CoilError("INVALID_ARGUMENT", `http adapter: ${name} must be a positive integer, got ${value}`);
    }
  }
  if (host !== undefined && (typeof host !== "string" || host === "")) {
    throw new CoilError("INVALID_ARGUMENT", `http adapter: host must be a non-empty string`);
  }
  if (tls !== undefined && !(tls.cert && tls.key)) {
    throw new CoilError("INVALID_ARGUMENT", "http adapter: tls needs both cert and key (PEM)");
  }
}


declare module "fastify" {
  interface FastifyContextConfig {
    /** Who may call the route (see AccessControl); "metadata" when not said. */
    access?: AccessKind;
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
  readonly #access: AccessControl;
  readonly #options: Required<Omit<HttpAdapterOptions, "logger" | "tls">> & Pick<HttpAdapterOptions, "logger" | "tls">;
  readonly #pending: PendingBodies;
  readonly #routes: readonly FastifyPluginAsync[];
  #app: FastifyInstance | undefined;
  #url: string | undefined;
  #port: number | undefined;
  #closing = false;

  constructor(
    @inject(TOKENS.InferenceService) service: InferenceService,
    @inject(HTTP_ADAPTER_OPTIONS) options: HttpAdapterOptions = {},
    @inject(ACCESS_CONTROL) access: AccessControl = OPEN_ACCESS,
    @injectAll(HTTP_ROUTES, { isOptional: true }) routes: FastifyPluginAsync[] = [],
  ) {
    validateHttpAdapterOptions(options);
    this.#service = service;
    this.#access = access;
    this.#routes = routes;
    this.#options = {
      host: options.host ?? "0.0.0.0",
      port: options.port ?? 8000,
      bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
      maxElements: options.maxElements ?? DEFAULT_MAX_ELEMENTS,
      bodyTimeoutMs: options.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS,
      maxPendingBodyBytes: options.maxPendingBodyBytes ?? DEFAULT_MAX_PENDING_BODY_BYTES,
      maxResponseBytes: options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
      logger: options.logger ?? false,
      ...(options.tls && { tls: options.tls }),
    };
    this.#pending = new PendingBodies(this.#options.maxPendingBodyBytes);
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
    this.#url = `${this.#options.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
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
    const { maxElements, maxResponseBytes, bodyLimit, bodyTimeoutMs, tls } = this.#options;
    const access = this.#access;
    const app = Fastify({
      logger: this.#options.logger ?? false,
      bodyLimit,
      // Idle keep-alive connections close at stop(); busy ones finish first.
      forceCloseConnections: "idle",
      ...(tls && { https: { cert: tls.cert, key: tls.key } }),
    } as FastifyServerOptions) as unknown as FastifyInstance;

    // Every body arrives as a Buffer: infer decodes JSON itself, since a request with
    // Inference-Header-Content-Length is JSON then binary whatever its content-type.
    // Read under the body limits (size, time, memory held by unfinished bodies).
    app.removeAllContentTypeParsers();
    const limits = { maxBytes: bodyLimit, timeoutMs: bodyTimeoutMs, pending: this.#pending };
    const raw = async (request: FastifyRequest, payload: NodeJS.ReadableStream) => {
      const length = request.headers["content-length"];
      const headerLength = Number(request.headers[HEADER_LENGTH_HEADER]);
      return readBody(payload as Readable, length === undefined ? undefined : Number(length), limits, {
        ...(Number.isSafeInteger(headerLength) && headerLength >= 0 && { alignAt: headerLength }),
      });
    };
    app.addContentTypeParser(octetStream, raw);
    app.addContentTypeParser("application/json", raw);
    app.addContentTypeParser("*", raw);

    // Access first, before a body is read: a refused client uploads nothing.
    app.addHook("onRequest", (request, _reply, done) => {
      const params = request.params as Partial<ModelParams> | undefined;
      const kind = request.routeOptions.config?.access ?? "metadata";
      try {
        access.authorize({
          kind,
          ...(kind === "control" && { action: request.routeOptions.url?.endsWith("/unload") ? "unload" : "load" }),
          ...(params?.model !== undefined && { model: params.model }),
          authorization: request.headers.authorization,
          remote: `${request.socket.remoteAddress}:${request.socket.remotePort}`,
          protocol: "http",
        });
        done();
      } catch (error) {
        done(error as Error);
      }
    });

    app.setErrorHandler((error: unknown, request, reply) => {
      let status = 500;
      if (isCoilError(error)) status = httpStatusFor(error.code);
      else {
        const code = (error as { statusCode?: unknown }).statusCode;
        if (typeof code === "number" && code >= 400 && code < 600) status = code;
      }
      if (error instanceof HttpError) void reply.headers(error.headers);
      if (isCoilError(error, "UNAUTHENTICATED")) {
        void reply.header("www-authenticate", request.headers.authorization ? 'Bearer realm="coil", error="invalid_token"' : 'Bearer realm="coil"');
      }
      // A body not read (refused, cut, too large) is not read to its end: the connection closes.
      if (!request.raw.complete) void reply.header("connection", "close");
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

    const health = { config: { access: "health" as const } };
    const inference = { config: { access: "inference" as const } };
    const control = { config: { access: "control" as const } };
    app.get("/v2/health/live", health, async (_request, reply) => empty(reply, service.isLive()));
    app.get("/v2/health/ready", health, async (_request, reply) => empty(reply, service.isReady()));
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
    // Model readiness is health, as Triton counts it.
    app.get("/v2/models/:model/ready", health, ready);
    app.get("/v2/models/:model/versions/:version/ready", health, ready);

    const infer = async (request: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) => {
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const decoded = decodeInferRequest(body, request.headers[HEADER_LENGTH_HEADER], { maxElements });
      // A client that goes away cancels its requests in flight.
      decoded.request.signal = connectionSignal(request.raw.socket);
      const response = await service.infer(request.params.model, request.params.version, decoded.request);
      const encoded = await encodeInferResponse(response, decoded, { maxJsonBytes: maxResponseBytes });
      if (encoded.contentLength !== undefined) void reply.header("content-length", String(encoded.contentLength));
      if (encoded.headerLength !== undefined) {
        return reply
          .header("Inference-Header-Content-Length", String(encoded.headerLength))
          .type(octetStream)
          .send(encoded.body);
      }
      return reply.type("application/json").send(encoded.body);
    };
    app.post("/v2/models/:model/infer", inference, infer);
    app.post("/v2/models/:model/versions/:version/infer", inference, infer);

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
    app.post("/v2/repository/models/:model/load", control, async (request: FastifyRequest<{ Params: ModelParams }>, reply) => {
      await service.loadModel(request.params.model);
      return reply.code(200).send();
    });
    app.post("/v2/repository/models/:model/unload", control, async (request: FastifyRequest<{ Params: ModelParams }>, reply) => {
      await service.unloadModel(request.params.model);
      return reply.code(200).send();
    });

    // Other plugins' routes (HTTP_ROUTES), loaded when the app starts listening.
    for (const routes of this.#routes) void app.register(routes);
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
