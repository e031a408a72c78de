import { createHash, timingSafeEqual } from "node:crypto";

import { ACCESS_CONTROL, type AccessControl, type AccessRequest } from "@coil/core";
import { CoilError } from "@coil/errors";

import type { RuntimeLogger } from "./serving-runtime.js";

export { ACCESS_CONTROL };

/** none: the repository is loaded at start-up and load/unload requests are refused
 * (Triton's default mode); explicit: clients may load and unload models. */
export type ModelControl = "none" | "explicit";

export const MODEL_CONTROLS: readonly ModelControl[] = ["none", "explicit"];

export interface AccessPolicyOptions {
  /** Default "none". */
  modelControl?: ModelControl;
  /** The bearer token control requests (and, with authInference, every request but
   * health) must carry. */
  token?: string;
  /** Inference and metadata need the token too. */
  authInference?: boolean;
  /** The audit log: every load and unload asked for, allowed or refused. */
  logger?: RuntimeLogger;
}

/** What a request's credentials were, as the audit log says it. */
type Credential = "valid" | "invalid" | "missing" | "not required";

/**
 * Who may do what over HTTP and gRPC (the adapters ask it before serving a request):
 * model load/unload only with model control explicit; the bearer token, when one is
 * set, for control and (with authInference) for inference and metadata, never for
 * health. Every load and unload asked for is logged with the client's address and
 * whether it presented the token.
 */
export class AccessPolicy implements AccessControl {
  readonly modelControl: ModelControl;
  readonly authInference: boolean;
  readonly #tokenDigest: Buffer | undefined;
  readonly #logger: RuntimeLogger | undefined;

  constructor(options: AccessPolicyOptions = {}) {
    const { modelControl = "none", token, authInference = false, logger } = options;
    if (!MODEL_CONTROLS.includes(modelControl)) {
      throw new CoilError("INVALID_ARGUMENT", `model control must be one of ${MODEL_CONTROLS.join(", ")}, got ${JSON.stringify(modelControl)}`);
    }
    if (token !== undefined && token === "") throw new CoilError("INVALID_ARGUMENT", "the bearer token is empty");
    if (authInference && token === undefined) {
      throw new CoilError("INVALID_ARGUMENT", "authInference needs a token (--auth-token-file)");
    }
    this.modelControl = modelControl;
    this.authInference = authInference;
    this.#tokenDigest = token === undefined ? undefined : digest(token);
    this.#logger = logger;
  }

  /** Whether a token is set. */
  get hasToken(): boolean {
    return this.#tokenDigest !== undefined;
  }

  authorize(request: AccessRequest): void {
    const { kind, protocol } = request;
    const credential = this.#credential(request.authorization);
    const needsToken = this.#tokenDigest !== undefined && (kind === "control" || (kind !== "health" && this.authInference));
    let refusal: CoilError | undefined;
    if (needsToken && credential !== "valid") {
      const how = protocol === "grpc" ? "authorization metadata" : "an Authorization header";
      refusal = new CoilError(
        "UNAUTHENTICATED",
        credential === "missing"
          ? `this ${kind === "control" ? "operation" : "endpoint"} needs the server's bearer token: send ${how} "Bearer <token>"`
          : "the bearer token is not the server's",
      );
    } else if (kind === "control" && this.modelControl !== "explicit" && !request.beforeBody) {
      // Refused once the message is read, so that the audit log names the model.
      refusal = new CoilError(
        "PERMISSION_DENIED",
        `model ${request.action ?? "load/unload"} is off: this server loads its repository at start-up only (model control "none"); ` +
          "start it with --model-control explicit to allow load and unload",
      );
    }
    // Asked before the message is read, an allowed request is audited when asked again with its model.
    if (kind === "control" && (refusal || !request.beforeBody)) this.#audit(request, credential, refusal);
    if (refusal) throw refusal;
  }

  #credential(authorization: string | undefined): Credential {
    if (this.#tokenDigest === undefined) return "not required";
    if (authorization === undefined || authorization === "") return "missing";
    const match = /^Bearer +(.+)$/i.exec(authorization.trim());
    // Digests compared, so the time taken says nothing of the token's length or content.
    return match && timingSafeEqual(digest(match[1]!), this.#tokenDigest) ? "valid" : "invalid";
  }

  #audit(request: AccessRequest, credential: Credential, refusal: CoilError | undefined): void {
    const fields = {
      audit: "model-control",
      action: request.action,
      model: request.model,
      protocol: request.protocol,
      remote: request.remote,
      token: credential,
      allowed: refusal === undefined,
      ...(refusal && { reason: refusal.code }),
    };
    if (refusal) this.#logger?.warn(fields, `model ${request.action} refused`);
    else this.#logger?.info?.(fields, `model ${request.action} allowed`);
  }
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
