/** @coil/adapter-http — the Open Inference Protocol (KServe v2 REST, as Triton serves it) over HTTP for Coil. */
import "reflect-metadata";

export {
  createHttpAdapter,
  DEFAULT_BODY_LIMIT,
  DEFAULT_MAX_ELEMENTS,
  HTTP_ADAPTER_OPTIONS,
  HttpAdapter,
  INFERENCE_SERVICE,
  modelMetadata,
  validateHttpAdapterOptions,
  type HttpAdapterOptions,
} from "./http-adapter.js";
export { registerHttpAdapter } from "./register.js";
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
