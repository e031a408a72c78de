import type { InferenceRequest, InferenceResponse, InferenceService, ModelIndexEntry, ServedModel, ServerMetadata } from "@coil/core";

import { mergeExpositions } from "./metrics-aggregation.js";
import type { PrimaryMessage } from "./messages.js";
import type { ModelControlRelay } from "./model-control.js";

type ClusterView = Extract<PrimaryMessage, { coil: "cluster" }>;

/**
 * A worker's InferenceService as its adapters see it: the worker's own service, except
 * that readiness is also the cluster's (false while a slot is given up as crash-looping
 * or the primary drains) and /metrics covers every worker. InferenceService.metrics() is
 * synchronous, so the other workers' expositions are the ones the primary last sent
 * (about a second old, the status interval); this worker's own are read live. Loads
 * and unloads asked through the API are run in every worker (ModelControlRelay).
 */
export class ClusterInferenceService implements InferenceService {
  readonly #local: InferenceService;
  readonly #slot: number;
  readonly #relay: ModelControlRelay;
  #view: ClusterView | undefined;

  constructor(local: InferenceService, slot: number, relay: ModelControlRelay) {
    this.#local = local;
    this.#slot = slot;
    this.#relay = relay;
  }

  /** This worker's own service (what the primary's broadcasts run on). */
  get local(): InferenceService {
    return this.#local;
  }

  /** The primary's latest round. */
  update(view: ClusterView): void {
    this.#view = view;
  }

  /** This worker's own exposition, without the worker label. */
  localMetrics(): string {
    return this.#local.metrics();
  }

  metrics(): string {
    const others = (this.#view?.workers ?? []).filter((w) => w.slot !== this.#slot);
    const workers = [...others, { slot: this.#slot, metrics: this.#local.metrics() }].sort((a, b) => a.slot - b.slot);
    return mergeExpositions(this.#view?.primaryMetrics ?? "", workers);
  }

  isReady(): boolean {
    return this.#local.isReady() && (this.#view?.ready ?? true);
  }

  serverMetadata(): ServerMetadata {
    return this.#local.serverMetadata();
  }

  isLive(): boolean {
    return this.#local.isLive();
  }

  modelIndex(): ModelIndexEntry[] {
    return this.#local.modelIndex();
  }

  model(name: string, version?: string): ServedModel {
    return this.#local.model(name, version);
  }

  isModelReady(name: string, version?: string): boolean {
    return this.#local.isModelReady(name, version);
  }

  infer(name: string, version: string | undefined, request: InferenceRequest): Promise<InferenceResponse> {
    return this.#local.infer(name, version, request);
  }

  loadModel(name: string): Promise<void> {
    return this.#relay.request("load", name);
  }

  unloadModel(name: string): Promise<void> {
    return this.#relay.request("unload", name);
  }
}
