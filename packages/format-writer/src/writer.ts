import { createHash, createPrivateKey, createPublicKey, KeyObject, sign } from "node:crypto";
import { open, rename, unlink, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { crc32 } from "node:zlib";
import { CoilError, isCoilError } from "@coil/errors";
import {
  COIL_RECORD_PREFIX,
  EXTERN_MODULES_RECORD,
  MANIFEST_FORMAT_VERSION,
  MANIFEST_RECORD,
  PYTHON_VERSION_RECORD,
  SIGNATURE_RECORD,
  TORCH_FILE_FORMAT_VERSION,
  TORCH_MAX_NAME_BYTES,
  VERSION_RECORD,
  encodeSignatureRecord,
  isModuleName,
  moduleRecordName,
  rawEd25519PublicKey,
  recordNameProblem,
  resourceRecordName,
  rootNameProblem,
  serializeManifest,
  storageRecordName,
  validateManifest,
  type EntryPoint,
  type Manifest,
  type TensorSpec,
} from "@coil/format-reader";
import { centralEntry, dataDescriptor, endRecords, localHeader } from "./zip-records.js";

/** A record's contents: bytes, or chunks (sync or async) whose total is known up front. */
export type RecordData = Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export interface AddRecordOptions {
  /**
   * Total bytes, required when `data` is an iterable: the local header and its
   * alignment padding are laid out before the data, as PyTorchFileWriter does.
   * The record fails (INVALID_ARGUMENT) if the chunks add up to anything else.
   */
  size?: number;
}

export interface WrittenRecord {
  /** Name relative to the root folder. */
  name: string;
  /** File offset of the data (a multiple of 64). */
  offset: number;
  size: number;
  crc32: number;
  /** Lowercase hex. */
  sha256: string;
}

export interface ArchiveWriterOptions {
  /** The top-level folder every record goes under (default "model"). */
  root?: string;
  /** fsync the file before it is renamed into place (default true). */
  sync?: boolean;
}

export interface FinishOptions {
  /** The pickle the archive's model is (`PackageImporter.load_pickle(package, resource)`); required with a manifest. */
  entryPoint?: EntryPoint;
  inputs?: TensorSpec[];
  outputs?: TensorSpec[];
  metadata?: Record<string, string>;
  /** Installed distributions the extern modules come from (name, version, top-level modules);
   * loading checks the loading Python has them. */
  distributions?: NonNullable<Manifest["distributions"]>;
  /** ed25519 private key (KeyObject or PEM) to sign the manifest with. */
  signingKey?: KeyObject | string | Buffer;
  /** Written to `.data/extern_modules` unless that record was added already (default: none). */
  externModules?: readonly string[];
  /** Written to `.data/python_version` unless that record was added already (default: not written). */
  pythonVersion?: string;
  /** Written to `.data/version` unless that record was added already (default 6, as torch 1.13). */
  fileFormatVersion?: number;
  /**
   * false: write no `.data/coil/` records, only what torch.package itself writes
   * (the bytes then match PyTorchFileWriter's for the same records in the same order).
   */
  manifest?: boolean;
}

export interface ArchiveSummary {
  path: string;
  root: string;
  /** File size in bytes. */
  size: number;
  /** Every record written, manifest and signature included, in order. */
  records: WrittenRecord[];
  manifest?: Manifest;
  /** "sha256:<hex>" of the signer's raw public key, when signed. */
  keyFingerprint?: string;
}

interface FinishPlan {
  options: FinishOptions;
  manifest: Manifest | undefined;
  key: KeyObject | undefined;
  externs: readonly string[];
  version: number;
}

interface Entry extends WrittenRecord {
  nameBytes: Buffer;
  headerOffset: number;
}

const COALESCE = 1024 * 1024;
let tempCounter = 0;

function assertValidName(name: string, root: string): Buffer {
  if (typeof name !== "string") throw new CoilError("INVALID_ARGUMENT", "a record name must be a string");
  const problem = recordNameProblem(name);
  if (problem !== undefined) {
    throw new CoilError("INVALID_ARGUMENT", `invalid record name "${name}": it ${problem}`, { details: { record: name } });
  }
  const full = Buffer.from(`${root}/${name}`, "utf8");
  if (full.length > TORCH_MAX_NAME_BYTES) {
    throw new CoilError(
      "INVALID_ARGUMENT",
      `record name "${name}" is ${full.length} bytes with its root folder; torch.package reads at most ${TORCH_MAX_NAME_BYTES}`,
      { details: { record: name } },
    );
  }
  return full;
}

function toPrivateKey(input: KeyObject | string | Buffer): KeyObject {
  let key: KeyObject;
  try {
    key = input instanceof KeyObject ? input : createPrivateKey(input);
  } catch (cause) {
    throw new CoilError("INVALID_ARGUMENT", "signingKey is not a private key (expected a KeyObject or PEM)", { cause });
  }
  if (key.type !== "private" || key.asymmetricKeyType !== "ed25519") {
    throw new CoilError("INVALID_ARGUMENT", "signingKey must be an ed25519 private key");
  }
  return key;
}

async function* chunksOf(data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const chunk of data) {
    if (!(chunk instanceof Uint8Array)) {
      throw new CoilError("INVALID_ARGUMENT", "record data chunks must be Uint8Arrays (or Buffers)");
    }
    yield chunk;
  }
}

/**
 * Streams an archive to disk: records in the order added, each STORED with its
 * data 64-byte aligned, hashed (SHA-256) and checksummed (CRC-32) on the way;
 * `finish` adds the torch.package records not given, the manifest, the optional
 * signature and the central directory. The file appears at `path` only when
 * `finish` succeeds (it is written beside it, then renamed). Same records in the
 * same order give the same bytes: no timestamps, no randomness.
 *
 * Calls may overlap: they run one after another in call order.
 */
export class ArchiveWriter {
  readonly path: string;
  readonly root: string;
  readonly #tempPath: string;
  readonly #sync: boolean;
  #handle: FileHandle;
  #cursor = 0;
  #entries: Entry[] = [];
  #names = new Set<string>();
  #queue: Promise<unknown> = Promise.resolve();
  #state: "open" | "finished" | "aborted" = "open";

  private constructor(path: string, root: string, tempPath: string, handle: FileHandle, sync: boolean) {
    this.path = path;
    this.root = root;
    this.#tempPath = tempPath;
    this.#handle = handle;
    this.#sync = sync;
  }

  /** Starts an archive that will appear at `path` when finished. */
  static async create(path: string, options: ArchiveWriterOptions = {}): Promise<ArchiveWriter> {
    const root = options.root ?? "model";
    const problem = typeof root === "string" ? rootNameProblem(root) : "is not a string";
    if (problem !== undefined) throw new CoilError("INVALID_ARGUMENT", `invalid root folder "${String(root)}": it ${problem}`);
    const tempPath = join(dirname(path), `.${basename(path)}.${process.pid}.${++tempCounter}.partial`);
    let handle: FileHandle;
    try {
      handle = await open(tempPath, "wx");
    } catch (cause) {
      throw new CoilError("INVALID_ARGUMENT", `cannot create ${tempPath}`, { cause, details: { path } });
    }
    return new ArchiveWriter(path, root, tempPath, handle, options.sync ?? true);
  }

  /** Records written so far (names relative to the root). */
  get records(): readonly WrittenRecord[] {
    return this.#entries.map(({ name, offset, size, crc32, sha256 }) => ({ name, offset, size, crc32, sha256 }));
  }

  /** True once a record of that name was added. */
  has(name: string): boolean {
    return this.#names.has(name);
  }

  /** Adds a record. `name` is relative to the root folder; `.data/coil/` is reserved. */
  addRecord(name: string, data: RecordData, options: AddRecordOptions = {}): Promise<WrittenRecord> {
    return this.#enqueue(() => this.#add(name, data, options, false));
  }

  /** Adds a module's source at torch.package's path: "a.b" → "a/b.py" (or "a/b/__init__.py" for a package). */
  addSource(moduleName: string, source: string | Uint8Array, options: { isPackage?: boolean } = {}): Promise<WrittenRecord> {
    if (typeof moduleName !== "string" || !isModuleName(moduleName)) {
      return Promise.reject(new CoilError("INVALID_ARGUMENT", `"${String(moduleName)}" is not a dotted Python module name`));
    }
    const bytes = typeof source === "string" ? Buffer.from(source, "utf8") : source;
    return this.addRecord(moduleRecordName(moduleName, options.isPackage ?? false), bytes);
  }

  /** Adds a resource (e.g. a pickle) of a package: "a.b" + "x.pkl" → "a/b/x.pkl". */
  addResource(packageName: string, resource: string, data: RecordData, options: AddRecordOptions = {}): Promise<WrittenRecord> {
    if (typeof packageName !== "string" || !isModuleName(packageName)) {
      return Promise.reject(new CoilError("INVALID_ARGUMENT", `"${String(packageName)}" is not a dotted Python package name`));
    }
    return this.addRecord(resourceRecordName(packageName, resource), data, options);
  }

  /** Adds tensor storage `key` at `.data/<key>.storage`. */
  addStorage(key: string, data: RecordData, options: AddRecordOptions = {}): Promise<WrittenRecord> {
    if (typeof key !== "string" || key.length === 0 || key.includes("/")) {
      return Promise.reject(new CoilError("INVALID_ARGUMENT", `invalid storage key "${String(key)}"`));
    }
    return this.addRecord(storageRecordName(key), data, options);
  }

  /**
   * Completes the archive: `.data/extern_modules`, `.data/python_version` and
   * `.data/version` where not added yet, then (unless `manifest: false`)
   * `.data/coil/manifest.json` with the SHA-256 of every record and, with a
   * `signingKey`, `.data/coil/signature`; then the central directory. On
   * failure the partial file is removed.
   */
  finish(options: FinishOptions = {}): Promise<ArchiveSummary> {
    return this.#enqueue(async () => {
      // Invalid options leave the writer open, to be finished again or aborted.
      const plan = this.#planFinish(options);
      try {
        return await this.#finish(plan);
      } catch (err) {
        await this.#discard();
        throw err;
      }
    });
  }

  /** Gives up: closes and removes the partial file. Safe to call at any time, more than once. */
  abort(): Promise<void> {
    return this.#enqueue(() => this.#discard(), true);
  }

  #enqueue<T>(task: () => Promise<T>, always = false): Promise<T> {
    const run = async (): Promise<T> => {
      if (!always && this.#state !== "open") {
        throw new CoilError("CLOSED", `archive writer for ${this.path} is ${this.#state}`);
      }
      return task();
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async #write(buf: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await this.#handle.write(buf, done, buf.length - done, position + done);
      done += bytesWritten;
    }
  }

  async #add(name: string, data: RecordData, options: AddRecordOptions, internal: boolean): Promise<WrittenRecord> {
    const nameBytes = assertValidName(name, this.root);
    if (!internal && (name.startsWith(COIL_RECORD_PREFIX) || `${name}/` === COIL_RECORD_PREFIX)) {
      throw new CoilError("INVALID_ARGUMENT", `record names under ${COIL_RECORD_PREFIX} are reserved for Coil`, {
        details: { record: name },
      });
    }
    if (this.#names.has(name)) {
      throw new CoilError("INVALID_ARGUMENT", `record "${name}" was already added`, { details: { record: name } });
    }
    const isBytes = data instanceof Uint8Array;
    if (!isBytes && (data === null || typeof data !== "object" || !(Symbol.asyncIterator in data || Symbol.iterator in data))) {
      throw new CoilError("INVALID_ARGUMENT", "record data must be a Uint8Array or an (async) iterable of Uint8Arrays");
    }
    const size = isBytes ? data.length : options.size;
    if (size === undefined) {
      throw new CoilError("INVALID_ARGUMENT", `record "${name}": options.size is required when data is an iterable`, {
        details: { record: name },
      });
    }
    if (!Number.isSafeInteger(size) || size < 0 || (isBytes && options.size !== undefined && options.size !== size)) {
      throw new CoilError("INVALID_ARGUMENT", `record "${name}": invalid size ${String(options.size)}`, { details: { record: name } });
    }

    const headerOffset = this.#cursor;
    const { header, zip64 } = localHeader(nameBytes, size, headerOffset);
    const offset = headerOffset + header.length;
    const hash = createHash("sha256");
    let crc = 0;
    try {
      await this.#write(header, headerOffset);
      if (isBytes) {
        crc = crc32(data);
        hash.update(data);
        await this.#write(data, offset);
      } else {
        let written = 0;
        const pending: Uint8Array[] = [];
        let pendingBytes = 0;
        const flush = async (): Promise<void> => {
          if (pendingBytes === 0) return;
          const buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
          await this.#write(buf, offset + written);
          written += pendingBytes;
          pending.length = 0;
          pendingBytes = 0;
        };
        for await (const chunk of chunksOf(data)) {
          if (written + pendingBytes + chunk.length > size) {
            throw new CoilError("INVALID_ARGUMENT", `record "${name}": its chunks exceed the declared size ${size}`, {
              details: { record: name, size },
            });
          }
          crc = crc32(chunk, crc);
          hash.update(chunk);
          if (chunk.length >= COALESCE) {
            await flush();
            await this.#write(chunk, offset + written);
            written += chunk.length;
          } else {
            // Copy: the producer may reuse its buffer once we ask for the next chunk.
            pending.push(Buffer.from(chunk));
            pendingBytes += chunk.length;
            if (pendingBytes >= COALESCE) await flush();
          }
        }
        await flush();
        if (written !== size) {
          throw new CoilError("INVALID_ARGUMENT", `record "${name}": its chunks add up to ${written} bytes, not the declared ${size}`, {
            details: { record: name, size, actual: written },
          });
        }
      }
      const descriptor = dataDescriptor(crc >>> 0, size, zip64);
      await this.#write(descriptor, offset + size);
      this.#cursor = offset + size + descriptor.length;
    } catch (err) {
      // Nothing of the failed record counts: the next one overwrites it; finish truncates.
      this.#cursor = headerOffset;
      if (isCoilError(err)) throw err;
      throw new CoilError("INTERNAL", `writing record "${name}" to ${this.#tempPath} failed`, {
        cause: err,
        details: { record: name, path: this.path },
      });
    }
    const entry: Entry = { name, nameBytes, headerOffset, offset, size, crc32: crc >>> 0, sha256: hash.digest("hex") };
    this.#entries.push(entry);
    this.#names.add(name);
    const { nameBytes: _n, headerOffset: _h, ...written } = entry;
    return written;
  }

  #planFinish(options: FinishOptions): FinishPlan {
    const withManifest = options.manifest !== false;
    if (!withManifest && options.signingKey !== undefined) {
      throw new CoilError("INVALID_ARGUMENT", "signingKey needs the manifest (it signs the manifest)");
    }
    const key = options.signingKey === undefined ? undefined : toPrivateKey(options.signingKey);
    let manifest: Manifest | undefined;
    if (withManifest) {
      if (options.entryPoint === undefined) {
        throw new CoilError("INVALID_ARGUMENT", "finish: entryPoint is required for the manifest (or pass manifest: false)");
      }
      // Check everything but the record list before writing more records.
      const draft: Manifest = {
        formatVersion: MANIFEST_FORMAT_VERSION,
        entryPoint: options.entryPoint,
        ...(options.inputs !== undefined ? { inputs: options.inputs } : {}),
        ...(options.outputs !== undefined ? { outputs: options.outputs } : {}),
        ...(options.metadata !== undefined ? { metadata: options.metadata } : {}),
        ...(options.distributions !== undefined ? { distributions: options.distributions } : {}),
        records: [],
      };
      const entryRecord = resourceRecordName(options.entryPoint.package, options.entryPoint.resource);
      validateManifest({ ...draft, records: [{ name: entryRecord, size: 0, sha256: "0".repeat(64) }] });
      if (!this.#names.has(entryRecord)) {
        throw new CoilError("INVALID_ARGUMENT", `finish: the entry point record "${entryRecord}" was not added`, {
          details: { record: entryRecord },
        });
      }
      manifest = draft;
    }
    const externs = options.externModules ?? [];
    for (const m of externs) {
      if (typeof m !== "string" || !isModuleName(m)) {
        throw new CoilError("INVALID_ARGUMENT", `externModules: "${String(m)}" is not a dotted Python module name`);
      }
    }
    const version = options.fileFormatVersion ?? TORCH_FILE_FORMAT_VERSION;
    if (!Number.isSafeInteger(version) || version < 1) throw new CoilError("INVALID_ARGUMENT", "fileFormatVersion must be a positive integer");
    if (options.pythonVersion !== undefined && !/^[0-9A-Za-z.+-]{1,32}$/.test(options.pythonVersion)) {
      throw new CoilError("INVALID_ARGUMENT", `pythonVersion "${options.pythonVersion}" is not a version string`);
    }

    return { options, manifest, key, externs, version };
  }

  async #finish({ options, manifest, key, externs, version }: FinishPlan): Promise<ArchiveSummary> {
    // What PackageExporter.close() and PyTorchFileWriter write last, in their order.
    if (!this.#names.has(EXTERN_MODULES_RECORD)) {
      await this.#add(EXTERN_MODULES_RECORD, Buffer.from(externs.map((m) => `${m}\n`).join("") || "\n", "utf8"), {}, true);
    }
    if (options.pythonVersion !== undefined && !this.#names.has(PYTHON_VERSION_RECORD)) {
      await this.#add(PYTHON_VERSION_RECORD, Buffer.from(options.pythonVersion, "utf8"), {}, true);
    }
    if (!this.#names.has(VERSION_RECORD)) {
      await this.#add(VERSION_RECORD, Buffer.from(`${version}\n`, "utf8"), {}, true);
    }

    let keyFingerprint: string | undefined;
    if (manifest !== undefined) {
      manifest.records = this.#entries.map(({ name, size, sha256 }) => ({ name, size, sha256 }));
      const bytes = serializeManifest(manifest);
      manifest = validateManifest(manifest);
      await this.#add(MANIFEST_RECORD, bytes, {}, true);
      if (key !== undefined) {
        const publicKey = rawEd25519PublicKey(createPublicKey(key));
        const signature = sign(null, bytes, key);
        await this.#add(SIGNATURE_RECORD, encodeSignatureRecord({ algorithm: "ed25519", publicKey, signature }), {}, true);
        keyFingerprint = `sha256:${createHash("sha256").update(publicKey).digest("hex")}`;
      }
    }

    const cdOffset = this.#cursor;
    const central = Buffer.concat(this.#entries.map((e) => centralEntry(e.nameBytes, e.crc32, e.size, e.headerOffset)));
    const end = endRecords(this.#entries.length, cdOffset, central.length);
    const tail = Buffer.concat([central, end]);
    try {
      await this.#write(tail, cdOffset);
      const size = cdOffset + tail.length;
      await this.#handle.truncate(size);
      if (this.#sync) await this.#handle.datasync();
      await this.#handle.close();
      await rename(this.#tempPath, this.path);
      this.#state = "finished";
      return {
        path: this.path,
        root: this.root,
        size,
        records: this.records as WrittenRecord[],
        ...(manifest !== undefined ? { manifest } : {}),
        ...(keyFingerprint !== undefined ? { keyFingerprint } : {}),
      };
    } catch (err) {
      if (isCoilError(err)) throw err;
      throw new CoilError("INTERNAL", `finishing ${this.path} failed`, { cause: err, details: { path: this.path } });
    }
  }

  async #discard(): Promise<void> {
    if (this.#state === "finished") return;
    const wasOpen = this.#state === "open";
    this.#state = "aborted";
    if (wasOpen) await this.#handle.close().catch(() => undefined);
    await unlink(this.#tempPath).catch(() => undefined);
  }
}
