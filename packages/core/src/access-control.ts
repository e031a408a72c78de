import type { InjectionToken } from "tsyringe";

/**
 * Who may do what: every protocol adapter asks before it serves a request (HTTP
 * before the body is read). One object answers for all adapters -- @coil/runtime's
 * AccessPolicy (model control, bearer token, audit log) -- registered under
 * ACCESS_CONTROL.
 */
export interface AccessControl {
  /** Throws a CoilError (UNAUTHENTICATED, PERMISSION_DENIED) to refuse. */
  authorize(request: AccessRequest): void;
}

/** health: liveness and readiness (never needs a token: Kubernetes probes);
 * metadata: server and model metadata, the repository index, metrics;
 * inference; control: model load and unload. */
export type AccessKind = "health" | "metadata" | "inference" | "control";

export interface AccessRequest {
  kind: AccessKind;
  /** For control: "load" or "unload". */
  action?: string;
  model?: string;
  /** The Authorization header (HTTP) or authorization metadata (gRPC), as sent. */
  authorization: string | undefined;
  /** The client's address and port. */
  remote: string;
  protocol: "http" | "grpc";
  /** Asked on the request's headers alone, before its message is read (gRPC), so the
   * model is not known yet; the same request is asked again, with it, once read. Refuse
   * here what the credentials alone decide (a missing or wrong token), so that a client
   * refused uploads nothing. */
  beforeBody?: boolean;
}

export const ACCESS_CONTROL = Symbol.for("@coil/access-control") as InjectionToken<AccessControl>;

/** An adapter on its own trusts whoever reaches it; `coil serve` and createRuntime
 * register their AccessPolicy (model control off by default) instead. */
export const OPEN_ACCESS: AccessControl = Object.freeze({ authorize: () => undefined });
