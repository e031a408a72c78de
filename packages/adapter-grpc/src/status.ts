import { status } from "@grpc/grpc-js";
import { isCoilError } from "@coil/errors";

/** The gRPC status an Open Inference Protocol server answers a CoilError code with
 * (the gRPC counterpart of @coil/core's httpStatusFor). */
export function grpcStatusFor(code: string): status {
  switch (code) {
    case "INVALID_ARGUMENT":
    case "SHAPE_MISMATCH":
    case "UNSUPPORTED_DTYPE":
      return status.INVALID_ARGUMENT;
    case "MODEL_NOT_FOUND":
      return status.NOT_FOUND;
    case "QUEUE_FULL":
    case "RESPONSE_TOO_LARGE":
      return status.RESOURCE_EXHAUSTED;
    case "UNAUTHENTICATED":
      return status.UNAUTHENTICATED;
    case "PERMISSION_DENIED":
      return status.PERMISSION_DENIED;
    case "MODEL_NOT_READY":
    case "CLOSED":
      return status.UNAVAILABLE;
    case "DEADLINE_EXCEEDED":
      return status.DEADLINE_EXCEEDED;
    case "CANCELLED":
      return status.CANCELLED;
    default:
      return status.INTERNAL;
  }
}

/** What a handler sends back for a thrown error: its gRPC status and message. */
export function toServiceError(error: unknown): Error & { code: status; details: string } {
  const code = isCoilError(error) ? grpcStatusFor(error.code) : status.INTERNAL;
  const message = error instanceof Error ? error.message : String(error);
  return Object.assign(new Error(message), { code, details: message });
}
