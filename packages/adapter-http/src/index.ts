/** @coil/adapter-http — the Open Inference Protocol (KServe v2 REST, as Triton serves it) over HTTP for Coil. */
import "reflect-metadata";

export { ACCESS_CONTROL, OPEN_ACCESS, type AccessControl, type AccessKind, type AccessRequest } from "@coil/core";
export { PendingBodies, readBody, type BodyLayout, type BodyLimits } from "./request-body.js";
export {
  DEFAULT_BODY_LIMIT,
  DEFAULT_BODY_TIMEOUT_MS,
  DEFAULT_MAX_ELEMENTS,
  DEFAULT_MAX_PENDING_BODY_BYTES,
  DEFAULT_MAX_RESPONSE_BYTES,
  HTTP_ADAPTER_OPTIONS,
  HTTP_ROUTES,
  HttpAdapter,
  modelMetadata,
  validateHttpAdapterOptions,
  type HttpAdapterOptions,
} from "./http-adapter.js";
/** The plugin (default export): registers it into a runtime\'s container. */
export { registerHttpAdapter, registerHttpAdapter as default } from "./register.js";
export {
  decodeInferRequest,
  encodeInferResponse,
  HEADER_LENGTH_HEADER,
  JSON_SLICE_ELEMENTS,
  HttpError,
  jsonData,
  type DecodedInferRequest,
  type DecodeLimits,
  type EncodedResponse,
  type EncodeLimits,
} from "./codec.js";
