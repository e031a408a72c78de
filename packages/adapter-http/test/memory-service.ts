import type {
  InferenceRequest,
  InferenceResponse,
  InferenceService,
  ModelIndexEntry,
  ModelState,
  ServedModel,
  ServerMetadata,
  TensorSignature,
} from "@coil/core";
import { BytesTensor, Tensor, type ReplicatedObject, type ServedTensor } from "@coil/core";
import { CoilError } from "@coil/errors";

/** A served model: a method of a replicated Python object. */
export interface MemoryModel extends ServedModel {
  method: string;
  state: ModelState;
}

/**
 * A small in-memory InferenceService for the adapter's tests: models are methods of
 * one object replicated on a real pool, so infer really runs Python and torch.
 */
export class MemoryService implements InferenceService {
  readonly models = new Map<string, MemoryModel>();
  ready = true;
  inferCalls = 0;

  constructor(private readonly object: ReplicatedObject) {}

  add(model: Omit<MemoryModel, "state" | "versions" | "platform"> & Partial<MemoryModel>): this {
    this.models.set(model.name, { versions: ["1"], platform: "pytorch_python", state: "READY", ...model });
    return this;
  }

  serverMetadata(): ServerMetadata {
    return { name: "coil", version: "0.0.0-test", extensions: ["binary_tensor_data", "model_repository"] };
  }

  isLive(): boolean {
    return true;
  }

  isReady(): boolean {
    return this.ready;
  }

  modelIndex(): ModelIndexEntry[] {
    return [...this.models.values()].map((m) => ({ name: m.name, version: m.versions.at(-1)!, state: m.state }));
  }

  #find(name: string, version?: string): MemoryModel {
    const model = this.models.get(name);
    if (!model) throw new CoilError("MODEL_NOT_FOUND", `unknown model ${name}`);
    if (version !== undefined && !model.versions.includes(version)) {
      throw new CoilError("MODEL_NOT_FOUND", `model ${name} has no version ${version}`);
    }
    return model;
  }

  model(name: string, version?: string): ServedModel {
    const { method: _method, state: _state, ...served } = this.#find(name, version);
    return served;
  }

  isModelReady(name: string, version?: string): boolean {
    return this.#find(name, version).state === "READY";
  }

  async infer(name: string, version: string | undefined, request: InferenceRequest): Promise<InferenceResponse> {
    const model = this.#find(name, version);
    if (model.state !== "READY") throw new CoilError("MODEL_NOT_READY", `model ${name} is not ready`);
    this.inferCalls++;
    const args = model.inputs.map((signature) => {
      const input = request.inputs.find((i) => i.name === signature.name);
      if (!input) throw new CoilError("INVALID_ARGUMENT", `model ${name} needs input ${signature.name}`);
      check(signature, input.tensor);
      return input.tensor;
    });
    for (const input of request.inputs) {
      if (!model.inputs.some((s) => s.name === input.name)) {
        throw new CoilError("INVALID_ARGUMENT", `model ${name} has no input ${input.name}`);
      }
    }
    const result = await this.object.callMethod<Record<string, unknown>>(model.method, args, {
      ...(request.timeoutMs !== undefined && { timeoutMs: request.timeoutMs }),
      ...(request.signal !== undefined && { signal: request.signal }),
    });
    const wanted = request.outputs ?? model.outputs.map((o) => o.name);
    const outputs = wanted.map((outputName) => {
      const value = result[outputName];
      const tensor = value instanceof Tensor ? value : BytesTensor.fromNested(value);
      if (!tensor) throw new CoilError("INVALID_ARGUMENT", `model ${name} has no output ${outputName}`);
      return { name: outputName, tensor };
    });
    return {
      ...(request.id !== undefined && { id: request.id }),
      modelName: name,
      modelVersion: model.versions.at(-1)!,
      outputs,
    };
  }

  async loadModel(name: string): Promise<void> {
    this.#find(name).state = "READY";
  }

  async unloadModel(name: string): Promise<void> {
    this.#find(name).state = "UNAVAILABLE";
  }

  metrics(): string {
    return `# HELP coil_infer_requests_total Infer requests.\n# TYPE coil_infer_requests_total counter\ncoil_infer_requests_total ${this.inferCalls}\n`;
  }
}

function check(signature: TensorSignature, tensor: ServedTensor): void {
  if (tensor.dtype !== signature.dtype) {
    throw new CoilError("UNSUPPORTED_DTYPE", `input ${signature.name} must be ${signature.dtype}, got ${tensor.dtype}`);
  }
  const ok =
    tensor.shape.length === signature.shape.length && signature.shape.every((d, i) => d === -1 || d === tensor.shape[i]);
  if (!ok) {
    throw new CoilError(
      "SHAPE_MISMATCH",
      `input ${signature.name} must have shape [${signature.shape.join(", ")}], got [${tensor.shape.join(", ")}]`,
    );
  }
}
