import type { InjectionToken } from "tsyringe";

/**
 * Who may do what: asked before each call is served. The same contract as
 * @coil/adapter-http's (one object, @coil/runtime's AccessPolicy, serves both; the
 * container holds it under the same Symbol.for key), declared here so that neither
 * adapter depends on the other.
 */
export interface AccessControl {
  /** Throws a CoilError (UNAUTHENTICATED, PERMISSION_DENIED) to refuse. */
  authorize(request: AccessRequest): void;
}

/** health: ServerLive, ServerReady, ModelReady (never need a token); metadata:
 * ServerMetadata, ModelMetadata, RepositoryIndex; inference: ModelInfer; control:
 * RepositoryModelLoad and RepositoryModelUnload. */
export type AccessKind = "health" | "metadata" | "inference" | "control";

export interface AccessRequest {
  kind: AccessKind;
  action?: string;
  model?: string;
  /** The call's `authorization` metadata, as sent. */
  authorization: string | undefined;
  remote: string;
  protocol: "http" | "grpc";
}

export const ACCESS_CONTROL = Symbol.for("@coil/access-control") as InjectionToken<AccessControl>;

/** An adapter on its own trusts whoever reaches it; `coil serve` and createRuntime
 * register their AccessPolicy (model control off by default) instead. */
export const OPEN_ACCESS: AccessControl = Object.freeze({ authorize: () => undefined });
