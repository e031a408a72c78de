import type { AccessControl, AccessKind } from "@coil/core";
import { Metadata, ResponderBuilder, ServerInterceptingCall, ServerListenerBuilder, type ServerInterceptor } from "@grpc/grpc-js";

import { toServiceError } from "./status.js";

/** What each method of the inference service asks the access control for. */
export const METHOD_ACCESS = {
  ServerLive: { kind: "health" },
  ServerReady: { kind: "health" },
  ModelReady: { kind: "health" },
  ServerMetadata: { kind: "metadata" },
  ModelMetadata: { kind: "metadata" },
  ModelInfer: { kind: "inference" },
  RepositoryIndex: { kind: "metadata" },
  RepositoryModelLoad: { kind: "control", action: "load" },
  RepositoryModelUnload: { kind: "control", action: "unload" },
} as const satisfies Record<string, { kind: AccessKind; action?: string }>;

export type ServiceMethod = keyof typeof METHOD_ACCESS;

/** The authorization metadata of a call, as sent. */
export function authorizationOf(metadata: Metadata): string | undefined {
  const value = metadata.get("authorization")[0];
  return value === undefined ? undefined : String(value);
}

/**
 * Asks the access control on a call's metadata alone, before its message is read: a
 * client without the token is refused before it can send the message (up to the
 * adapter's maximum, 64 MiB by default) for the server to hold. The handler asks again
 * with the model once the message is read.
 */
export function accessInterceptor(access: AccessControl): ServerInterceptor {
  return (method, call) =>
    new ServerInterceptingCall(
      call,
      new ResponderBuilder()
        .withStart((next) =>
          next(
            new ServerListenerBuilder()
              .withOnReceiveMetadata((metadata, forward) => {
                const name = method.path.slice(method.path.lastIndexOf("/") + 1);
                const rule = (METHOD_ACCESS as Record<string, { kind: AccessKind; action?: string }>)[name];
                if (rule) {
                  try {
                    access.authorize({ ...rule, authorization: authorizationOf(metadata), remote: call.getPeer(), protocol: "grpc", beforeBody: true });
                  } catch (error) {
                    const { code, details } = toServiceError(error);
                    call.sendStatus({ code, details, metadata: new Metadata() });
                    return;
                  }
                }
                forward(metadata);
              })
              .build(),
          ),
        )
        .build(),
    );
}
