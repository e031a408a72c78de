/** @coil/adapter-http — the Open Inference Protocol (KServe v2 REST, as Triton serves it) over HTTP for Coil. */
import "reflect-metadata";

export {
  DEFAULT_BODY_LIMIT,
  DEFAULT_MAX_ELEMENTS,
  HTTP_ADAPTER_OPTIONS,
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
  HttpError,
  jsonData,
  type DecodedInferRequest,
  type DecodeLimits,
  type EncodedResponse,
} from "./codec.js";
