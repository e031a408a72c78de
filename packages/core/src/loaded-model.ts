import { CoilError } from "@coil/errors";
import { openArchive, type Archive, type KeyInput, type Manifest, type SignatureStatus } from "@coil/format-reader";
import { mapFile, Tensor } from "@coil/native";

import type { InterpreterPool } from "./pool.js";
import { ReplicatedObject } from "./replicated-object.js";

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
}

/**
 * A model loaded from an archive: a replicated object whose instances are unpickled
 * from the archive, their tensors views of one shared mapping of the file.
 */
export class LoadedModel extends ReplicatedObject {
  readonly path: string;
  readonly manifest: Manifest | undefined;
  readonly signature: SignatureStatus;
  readonly entryPoint: { package: string; resource: string };
  /** The mapping every instance's tensors point into; alive as long as this model. */
  readonly #mapping: Tensor<"uint8">;

  private constructor(
    pool: InterpreterPool,
    id: number,
    archive: Archive,
    entryPoint: { package: string; resource: string },
    mapping: Tensor<"uint8">,
    onDispose: (object: ReplicatedObject) => void,
  ) {
    const offsets = Object.fromEntries(archive.storages.map((s) => [s.record, s.offset]));
    super(pool, id, { fn: "load_package", args: [archive.path, mapping, offsets, entryPoint.package, entryPoint.resource] }, onDispose);
    this.path = archive.path;
    this.manifest = archive.manifest;
    this.signature = archive.signature;
    this.entryPoint = entryPoint;
    this.#mapping = mapping;
  }

  /** @internal Use InterpreterPool.loadArchive(). */
  static async open(
    pool: InterpreterPool,
    id: number,
    path: string,
    options: LoadArchiveOptions,
    onDispose: (object: ReplicatedObject) => void,
  ): Promise<LoadedModel> {
    const archive = await openArchive(path, {
      verifyHashes: options.verifyHashes ?? true,
      ...(options.requireSignature !== undefined && { requireSignature: options.requireSignature }),
      ...(options.publicKey !== undefined && { publicKey: options.publicKey }),
    });
    try {
      const entryPoint = options.entryPoint ?? archive.manifest?.entryPoint ?? soleEntryPoint(archive);
      const bytes = mapFile(archive.path);
      if (bytes.length !== archive.fileSize) {
        throw new CoilError("ARCHIVE_INVALID", `${path} changed while it was being loaded`);
      }
      return new LoadedModel(pool, id, archive, entryPoint, new Tensor("uint8", [bytes.length], bytes), onDispose);
    } finally {
      await archive.close();
    }
  }

  /** Bytes of the shared mapping (the whole archive file). */
  get mappedBytes(): number {
    return this.#mapping.size;
  }

  /** Drops every instance; the mapping goes once nothing uses it. */
  unload(): Promise<void> {
    return this.dispose();
  }
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
