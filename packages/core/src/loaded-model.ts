import { createHash } from "node:crypto";

import { CoilError, isCoilError } from "@coil/errors";
import { openArchive, type Archive, type KeyInput, type Manifest, type SignatureStatus } from "@coil/format-reader";
import { mapFile, Tensor } from "@coil/native";

import type { AccelerationStatus, Accelerator, AcceleratorChoice } from "./accelerator.js";
import type { Creation, ReplicatedCallOptions, ReplicatedObject } from "./replicated-object.js";

export interface LoadArchiveOptions {
  /** Instantiate in every interpreter now rather than on each one's first call. */
  eager?: boolean;
  /** Check every record's SHA-256 against the manifest (default true). */
  verifyHashes?: boolean;
  /** Refuse an archive without a valid signature. */
  requireSignature?: boolean;
  /** Trusted ed25519 public key(s); implies requireSignature. */
  publicKey?: KeyInput | readonly KeyInput[];
  /** The object to load, for archives without a Coil manifest (e.g. written by
   * torch.package's PackageExporter): the package and resource of its pickle. */
  entryPoint?: { package: string; resource: string };
  /** Run the model through an accelerator in each interpreter ("compile", "onnxruntime",
   * or an Accelerator): checked against eager on example inputs made from the archive's
   * input signature, else it stays eager with the reason in `acceleration`. */
  accelerator?: AcceleratorChoice;
}

/** Makes the replicated object a model's interpreters unpickle it into (the pool's replicate, for a recipe). */
export type ReplicateCreation = (creation: Creation) => ReplicatedObject;

/**
 * A model loaded from an archive, composed of the archive's description and the
 * replicated object each interpreter unpickles from it (as torch::deploy's
 * Package::loadPickle returns a ReplicatedObj). The instances' tensors are views of
 * a mapping of the file.
 *
 * Each interpreter gets its own private (copy-on-write) mapping. Their clean pages are
 * the same page-cache pages, so the weights are in memory once however many
 * interpreters use them; a model that writes to its weights in place gets its own
 * copy of the pages it writes, and the other interpreters never see the change.
 * (One mapping shared by all interpreters leaked such writes between them.)
 */
export class LoadedModel {
  readonly path: string;
  readonly manifest: Manifest | undefined;
  readonly signature: SignatureStatus;
  readonly entryPoint: { package: string; resource: string };
  readonly fileSize: number;
  /** The model's Python object, one instance per interpreter that uses it. */
  readonly object: ReplicatedObject;
  readonly #warnings = new Set<string>();

  private constructor(
    archive: Archive,
    entryPoint: { package: string; resource: string },
    replicate: ReplicateCreation,
    accelerator: Accelerator | undefined,
  ) {
    const offsets = Object.fromEntries(archive.storages.map((s) => [s.record, s.offset]));
    const { path, fileSize } = archive;
    // Made when an interpreter instantiates the model; Python's tensors keep it alive.
    const mapping = () => {
      const bytes = mapFile(path);
      if (bytes.length !== fileSize) throw new CoilError("ARCHIVE_INVALID", `${path} changed after it was validated`);
      return new Tensor("uint8", [bytes.length], bytes);
    };
    this.object = replicate({
      fn: "load_package",
      args: () => [path, mapping(), offsets, entryPoint.package, entryPoint.resource],
      onCreated: (result) => {
        for (const warning of (result as { warnings?: string[] } | null)?.warnings ?? []) this.#warnings.add(warning);
      },
      mapError: dependencyMissing,
      ...(accelerator && { acceleration: { accelerator, inputs: archive.manifest?.inputs ?? [], cacheKey: contentKey(archive, entryPoint) } }),
    });
    this.path = path;
    this.fileSize = fileSize;
    this.manifest = archive.manifest;
    this.signature = archive.signature;
    this.entryPoint = entryPoint;
  }

  /** Validates the archive (structure, hashes, signature) and describes how each
   * interpreter loads its entry object. Use InterpreterPool.loadArchive(). */
  static async open(path: string, options: LoadArchiveOptions, replicate: ReplicateCreation, accelerator?: Accelerator): Promise<LoadedModel> {
    const archive = await openArchive(path, {
      verifyHashes: options.verifyHashes ?? true,
      ...(options.requireSignature !== undefined && { requireSignature: options.requireSignature }),
      ...(options.publicKey !== undefined && { publicKey: options.publicKey }),
    });
    try {
      const entryPoint = options.entryPoint ?? archive.manifest?.entryPoint ?? soleEntryPoint(archive);
      return new LoadedModel(archive, entryPoint, replicate, accelerator);
    } finally {
      await archive.close();
    }
  }

  /** What loading found worth a warning, each once: a Python distribution the archive
   * was packed with, installed here in another version. */
  get warnings(): string[] {
    return [...this.#warnings];
  }

  /** Where its accelerator stands (undefined without one): active, or why it stays eager. */
  get acceleration(): AccelerationStatus | undefined {
    return this.object.acceleration;
  }

  /** Calls the model: model(*args). See ReplicatedObject.call. */
  call<T = unknown>(args: unknown[] = [], options?: ReplicatedCallOptions): Promise<T> {
    return this.object.call<T>(args, options);
  }

  /** Loads it in every interpreter now. */
  materialize(): Promise<void> {
    return this.object.materialize();
  }

  /** Drops every instance; each mapping goes once nothing uses it. */
  unload(): Promise<void> {
    return this.object.dispose();
  }
}

/** The archive's content as one key: its records' hashes (checked against the bytes
 * when hashes are verified), its signature and the entry point; without a manifest,
 * its size and records. */
function contentKey(archive: Archive, entryPoint: { package: string; resource: string }): string {
  const { manifest } = archive;
  const content = manifest
    ? { records: manifest.records, inputs: manifest.inputs, outputs: manifest.outputs }
    : { fileSize: archive.fileSize, records: archive.records.map((r) => [r.name, r.size, r.crc32]) };
  return createHash("sha256").update(JSON.stringify({ entryPoint, content })).digest("hex");
}

/** A distribution the archive needs and this Python lacks, as its own code. */
function dependencyMissing(error: unknown): unknown {
  if (!isCoilError(error, "PYTHON_ERROR") || error.pythonType !== "coil_package.MissingDistributionError") return error;
  return new CoilError("DEPENDENCY_MISSING", error.message, { cause: error, details: { pythonType: error.pythonType } });
}

function soleEntryPoint(archive: Archive): { package: string; resource: string } {
  if (archive.pickles.length !== 1) {
    throw new CoilError(
      "INVALID_ARGUMENT",
      `${archive.path} has no Coil manifest and ${archive.pickles.length} pickles (${archive.pickles.join(", ")}): ` +
        "say which to load with entryPoint: { package, resource }",
    );
  }
  const record = archive.pickles[0]!;
  const slash = record.lastIndexOf("/");
  return { package: record.slice(0, slash).replaceAll("/", "."), resource: record.slice(slash + 1) };
}
