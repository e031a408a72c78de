import {
  ACCESS_CONTROL,
  OPEN_ACCESS,
  protocolDatatype,
  TOKENS,
  type AccessControl,
  type Adapter,
  type InferenceService,
  type TensorSignature,
} from "@coil/core";
import { CoilError } from "@coil/errors";
import {
  Server,
  ServerCredentials,
  type sendUnaryData,
  type ServerUnaryCall,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { inject, injectable, type InjectionToken } from "tsyringe";

import { accessInterceptor, authorizationOf, METHOD_ACCESS, type ServiceMethod } from "./access-interceptor.js";
import type {
  ModelInferRequest,
  ModelInferResponse,
  ModelMetadataResponse,
  NameVersion,
  RepositoryIndexRequest,
  RepositoryIndexResponse,
  RepositoryModelRequest,
} from "./messages.js";
import { inferenceServiceDefinition } from "./proto.js";
import { toServiceError } from "./status.js";
import { decodeInputs, encodeOutputs } from "./tensors.js";

export interface GrpcAdapterOptions {
  /** TCP port; 0 picks a free one. Default 8001, as Triton. */
  port?: number;
  /** Address to listen on. Default "0.0.0.0" (every interface, as Triton and the HTTP adapter). */
  host?: string;
  /** Largest request or response message, in bytes. Default 64 MiB. */
  maxMessageBytes?: number;
  /** Answer with raw_output_contents (default, as Triton) rather than typed
   * contents. A request can choose with its `binary_data_output` bool parameter. */
  rawOutput?: boolean;
  /** How long stop() lets calls in flight finish before cancelling them. Default 10 s. */
  shutdownTimeoutMs?: number;
  /** Serve over TLS with this certificate chain and private key (PEM). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Credentials of any other kind (overrides tls); default insecure. */
  credentials?: ServerCredentials;
}

export const GRPC_ADAPTER_OPTIONS = Symbol.for("@coil/adapter-grpc.Options") as InjectionToken<GrpcAdapterOptions>;

const DEFAULT_PORT = 8001;
const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

/** Throws INVALID_ARGUMENT for options the adapter cannot use. */
export function validateGrpcAdapterOptions(options: GrpcAdapterOptions): void {
  const { port, maxMessageBytes, shutdownTimeoutMs, tls } = options ?? {};
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new CoilError("INVALID_ARGUMENT", `grpc adapter: port must be an integer in 0..65535, got ${port}`);
  }
  if (maxMessageBytes !== undefined && (!Number.isInteger(maxMessageBytes) || maxMessageBytes < 1024 || maxMessageBytes > 2 ** 31 - 1)) {
    throw new CoilError("INVALID_ARGUMENT", `grpc adapter: maxMessageBytes must be an integer in 1024..2^31-1, got ${maxMessageBytes}`);
  }
  if (shutdownTimeoutMs !== undefined && !(Number.isFinite(shutdownTimeoutMs) && shutdownTimeoutMs >= 0)) {
    throw new CoilError("INVALID_ARGUMENT", `grpc adapter: shutdownTimeoutMs must be a non-negative number, got ${shutdownTimeoutMs}`);
  }
  if (tls !== undefined && !(tls.cert && tls.key)) {
    throw new CoilError("INVALID_ARGUMENT", "grpc adapter: tls needs both cert and key (PEM)");
  }
}

function serverCredentials(options: GrpcAdapterOptions): ServerCredentials {
  if (options.credentials) return options.credentials;
  if (!options.tls) return ServerCredentials.createInsecure();
  const pem = (value: string | Buffer) => (Buffer.isBuffer(value) ? value : Buffer.from(value));
  return ServerCredentials.createSsl(null, [{ cert_chain: pem(options.tls.cert), private_key: pem(options.tls.key) }], false);
}

type Unary<Req, Res> = (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void;

/** A unary handler that answers what `handle` returns, or the error it throws mapped
 * to its gRPC status. */
function unary<Req, Res>(handle: (call: ServerUnaryCall<Req, Res>) => Res | Promise<Res>): Unary<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => handle(call))
      .then(
        (response) => callback(null, response),
        (error: unknown) => callback(toServiceError(error)),
      );
  };
}

const versionOf = (version: string): string | undefined => (version === "" ? undefined : version);

/**
 * The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`, KServe v2 /
 * Triton): ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata and
 * ModelInfer, with typed and raw tensor contents, over an InferenceService.
 */
@injectable()
export class GrpcAdapter implements Adapter {
  readonly name = "grpc";
  readonly #service: InferenceService;
  readonly #options: GrpcAdapterOptions;
  readonly #access: AccessControl;
  #server: Server | undefined;
  #port: number | undefined;

  constructor(
    @inject(TOKENS.InferenceService) service: InferenceService,
    @inject(GRPC_ADAPTER_OPTIONS) options: GrpcAdapterOptions = {},
    @inject(ACCESS_CONTROL) access: AccessControl = OPEN_ACCESS,
  ) {
    if (!service || typeof service.infer !== "function") {
      throw new CoilError("INVALID_ARGUMENT", "grpc adapter: it serves an InferenceService (a ServingRuntime, ...)");
    }
    validateGrpcAdapterOptions(options);
    this.#service = service;
    this.#options = options;
    this.#access = access;
  }

  /** The port it listens on, once started. */
  get port(): number | undefined {
    return this.#port;
  }

  /** grpc://host:port, once started (127.0.0.1 for a wildcard host). */
  get url(): string | undefined {
    if (this.#port === undefined) return undefined;
    const host = this.#options.host ?? "0.0.0.0";
    const shown = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
    return `grpc://${shown.includes(":") ? `[${shown}]` : shown}:${this.#port}`;
  }

  /** "host:port" for a client, once started. */
  get address(): string | undefined {
    if (this.#port === undefined) return undefined;
    const host = this.#options.host ?? "0.0.0.0";
    return `${host.includes(":") ? `[${host}]` : host}:${this.#port}`;
  }

  async start(): Promise<void> {
    if (this.#server) return;
    const max = this.#options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const server = new Server({
      "grpc.max_receive_message_length": max,
      "grpc.max_send_message_length": max,
      interceptors: [accessInterceptor(this.#access)],
    });
    server.addService(inferenceServiceDefinition(), this.#handlers(max));
    const host = this.#options.host ?? "0.0.0.0";
    const target = `${host.includes(":") ? `[${host}]` : host}:${this.#options.port ?? DEFAULT_PORT}`;
    this.#port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(target, serverCredentials(this.#options), (error, port) =>
        error ? reject(new CoilError("INTERNAL", `grpc adapter: cannot listen on ${target}: ${error.message}`, { cause: error })) : resolve(port),
      );
    });
    this.#server = server;
  }

  /** Stops accepting calls and lets those in flight finish; after shutdownTimeoutMs
   * cancels what is left (their inferences see an aborted signal). */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    this.#port = undefined;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, this.#options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** A handler that asks the access control first, with the model once the message
   * is read (accessInterceptor asked on the metadata alone, before it). */
  #guarded<Req, Res>(
    method: ServiceMethod,
    handle: (call: ServerUnaryCall<Req, Res>) => Res | Promise<Res>,
    model: (request: Req) => string | undefined = () => undefined,
  ): Unary<Req, Res> {
    return unary<Req, Res>((call) => {
      const subject = model(call.request);
      this.#access.authorize({
        ...METHOD_ACCESS[method],
        ...(subject !== undefined && { model: subject }),
        authorization: authorizationOf(call.metadata),
        remote: call.getPeer(),
        protocol: "grpc",
      });
      return handle(call);
    });
  }

  #handlers(maxBytes: number): UntypedServiceImplementation {
    const service = this.#service;
    const modelOf = (request: RepositoryModelRequest) => request.model_name;
    return {
      ServerLive: this.#guarded("ServerLive", () => ({ live: service.isLive() })),
      ServerReady: this.#guarded("ServerReady", () => ({ ready: service.isReady() })),
      ModelReady: this.#guarded<NameVersion, { ready: boolean }>("ModelReady", ({ request }) => ({
        ready: service.isModelReady(request.name, versionOf(request.version)),
      })),
      ServerMetadata: this.#guarded("ServerMetadata", () => {
        const { name, version, extensions } = service.serverMetadata();
        return { name, version, extensions };
      }),
      ModelMetadata: this.#guarded<NameVersion, ModelMetadataResponse>("ModelMetadata", ({ request }) => {
        const model = service.model(request.name, versionOf(request.version));
        const tensor = (t: TensorSignature) => ({
          name: t.name,
          datatype: protocolDatatype(t.dtype),
          shape: t.shape.map(String),
        });
        return {
          name: model.name,
          versions: model.versions,
          platform: model.platform,
          inputs: model.inputs.map(tensor),
          outputs: model.outputs.map(tensor),
        };
      }),
      ModelInfer: this.#guarded<ModelInferRequest, ModelInferResponse>(
        "ModelInfer",
        (call) => this.#infer(call, maxBytes),
        (request) => request.model_name,
      ),
      RepositoryIndex: this.#guarded<RepositoryIndexRequest, RepositoryIndexResponse>("RepositoryIndex", ({ request }) => ({
        models: service
          .modelIndex()
          .filter((entry) => !request.ready || entry.state === "READY")
          .map((entry) => ({ name: entry.name, version: entry.version, state: entry.state, reason: entry.reason ?? "" })),
      })),
      RepositoryModelLoad: this.#guarded<RepositoryModelRequest, object>(
        "RepositoryModelLoad",
        async ({ request }) => {
          await service.loadModel(request.model_name);
          return {};
        },
        modelOf,
      ),
      RepositoryModelUnload: this.#guarded<RepositoryModelRequest, object>(
        "RepositoryModelUnload",
        async ({ request }) => {
          await service.unloadModel(request.model_name);
          return {};
        },
        modelOf,
      ),
    };
  }

  async #infer(call: ServerUnaryCall<ModelInferRequest, ModelInferResponse>, maxBytes: number): Promise<ModelInferResponse> {
    const request = call.request;
    if (!request.model_name) throw new CoilError("INVALID_ARGUMENT", "model_name is required");
    const inputs = decodeInputs(request.inputs, request.raw_input_contents, maxBytes);

    // The client's deadline, as the time left; its cancellation, as an AbortSignal.
    const deadline = call.getDeadline();
    const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
    let timeoutMs: number | undefined;
    if (Number.isFinite(deadlineMs)) {
      timeoutMs = deadlineMs - Date.now();
      if (timeoutMs <= 0) throw new CoilError("DEADLINE_EXCEEDED", "the call's deadline passed before inference started");
    }
    const abort = new AbortController();
    const onCancelled = () => abort.abort(new CoilError("CANCELLED", "the client cancelled the call"));
    if (call.cancelled) onCancelled();
    call.once("cancelled", onCancelled);

    try {
      const response = await this.#service.infer(request.model_name, versionOf(request.model_version), {
        ...(request.id !== "" && { id: request.id }),
        inputs,
        ...(request.outputs.length > 0 && { outputs: request.outputs.map((o) => o.name) }),
        ...(timeoutMs !== undefined && { timeoutMs }),
        signal: abort.signal,
      });
      const binary = request.parameters?.binary_data_output;
      const raw = binary?.parameter_choice === "bool_param" ? binary.bool_param === true : (this.#options.rawOutput ?? true);
      return {
        model_name: response.modelName,
        model_version: response.modelVersion,
        id: response.id ?? "",
        ...encodeOutputs(response.outputs, raw),
      };
    } finally {
      call.removeListener("cancelled", onCancelled);
    }
  }
}
