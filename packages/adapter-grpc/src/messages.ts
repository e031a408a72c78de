/**
 * The wire messages as @grpc/proto-loader presents them with the options in proto.ts
 * (field names as in the .proto, int64s as strings, bytes as Buffers, defaults filled).
 * Hand-written: only what the adapter reads and writes.
 */

/** A 64-bit integer as protobufjs may hand one over. */
export interface Long {
  toString(): string;
}

export type Int64 = string | number | Long;

export interface InferParameter {
  bool_param?: boolean;
  int64_param?: Int64;
  string_param?: string;
  double_param?: number;
  uint64_param?: Int64;
  parameter_choice?: string;
}

export interface InferTensorContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: Int64[];
  uint_contents?: number[];
  uint64_contents?: Int64[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Buffer[];
}

export interface InputTensorMessage {
  name: string;
  datatype: string;
  shape: Int64[];
  parameters?: Record<string, InferParameter>;
  contents?: InferTensorContents | null;
}

export interface ModelInferRequest {
  model_name: string;
  model_version: string;
  id: string;
  parameters?: Record<string, InferParameter>;
  inputs: InputTensorMessage[];
  outputs: { name: string; parameters?: Record<string, InferParameter> }[];
  raw_input_contents: Buffer[];
}

export interface InferOutputTensor {
  name: string;
  datatype: string;
  shape: Int64[];
  parameters?: Record<string, InferParameter>;
  contents?: InferTensorContents;
}

export interface ModelInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  outputs: InferOutputTensor[];
  raw_output_contents: Buffer[];
}

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: Int64[];
}

export interface ModelMetadataResponse {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export interface NameVersion {
  name: string;
  version: string;
}

export interface RepositoryIndexRequest {
  repository_name: string;
  ready: boolean;
}

export interface RepositoryIndexResponse {
  models: { name: string; version: string; state: string; reason: string }[];
}

/** RepositoryModelLoadRequest and RepositoryModelUnloadRequest (parameters are not read). */
export interface RepositoryModelRequest {
  repository_name: string;
  model_name: string;
}
