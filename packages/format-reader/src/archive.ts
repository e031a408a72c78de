import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { crc32 } from "node:zlib";
import { CoilError, isCoilError } from "@coil/errors";
import {
  COIL_RECORD_PREFIX,
  DEFAULT_LIMITS,
  DEFAULT_MAX_READ_BYTES,
  EXTERN_MODULES_RECORD,
  MANIFEST_RECORD,
  MAX_SIGNATURE_RECORD_SIZE,
  MAX_VERSION_RECORD_SIZE,
  PYTHON_VERSION_RECORD,
  REQUIRED_RECORDS,
  SIGNATURE_RECORD,
  VERSION_RECORD,
  type ArchiveLimits,
} from "./constants.js";
import { parseManifest, type Manifest } from "./manifest.js";
import { moduleForRecord, recordNameProblem, rootNameProblem, storageKeyForRecord } from "./names.js";
import {
  ed25519PublicKeyFromRaw,
  keyFingerprint,
  parseSignatureRecord,
  rawEd25519PublicKey,
  toEd25519PublicKey,
  verifyEd25519,
  type KeyInput,
} from "./signature.js";
import { FileSource, invalid, readZipStructure, type ZipEntry } from "./zip.js";

export interface OpenArchiveOptions {
  /**
   * Read every record once at open and check its CRC-32, and its SHA-256 against
   * the manifest when there is one (default true). With false, only names and
   * sizes are checked against the manifest; `readBytes`/`readText`/`readChunks`
   * still check what they read.
   */
  verifyHashes?: boolean;
  /** Require `.data/coil/manifest.json` (default false: plain torch.package archives open). */
  requireManifest?: boolean;
  /**
   * Require a valid signature (ARCHIVE_UNSIGNED without one). With no `publicKey`
   * this proves only that the manifest is intact, not who signed it: compare
   * `signature.keyFingerprint` with the signer you expect.
   */
  requireSignature?: boolean;
  /** Trusted signer(s): the archive must be signed by one of them (implies requireSignature). */
  publicKey?: KeyInput | readonly KeyInput[];
  /** Bounds for untrusted input; unspecified ones keep DEFAULT_LIMITS. */
  limits?: Partial<ArchiveLimits>;
}

/** One record of the archive. */
export interface ArchiveRecord {
  /** Name relative to the root folder, e.g. ".data/0.storage". */
  name: string;
  /** File offset of the first data byte: a multiple of 64, ready to map in place. */
  offset: number;
  /** Bytes of data (stored, uncompressed). */
  size: number;
  /** CRC-32 from the central directory. */
  crc32: number;
  /** File offset of the record's local header. */
  headerOffset: number;
}

/** A Python source record and the module it defines. */
export interface ModuleRecord {
  /** Dotted module name, e.g. "mymodels.mlp". */
  module: string;
  /** True for a package's `__init__.py`. */
  isPackage: boolean;
  /** The source record, e.g. "mymodels/mlp.py". */
  record: string;
}

/** A tensor storage record `.data/<key>.storage`. */
export interface StorageRecord {
  key: string;
  record: string;
  offset: number;
  size: number;
}

export type SignatureStatus =
  | { signed: false }
  | {
      signed: true;
      /** The signature verified against its own public key (always true when opened). */
      verified: true;
      /** True when the signer is one of `options.publicKey`. */
      trusted: boolean;
      /** The signer's public key, PEM (SPKI). */
      publicKeyPem: string;
      /** "sha256:<hex>" of the signer's raw public key. */
      keyFingerprint: string;
    };

export interface ReadOptions {
  /** Refuse records larger than this (ARCHIVE_TOO_LARGE). Default 64 MiB. */
  maxBytes?: number;
}

const CHUNK = 1024 * 1024;

function limitsFrom(partial: Partial<ArchiveLimits> | undefined): ArchiveLimits {
  const limits = { ...DEFAULT_LIMITS, ...partial };
  for (const [key, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new CoilError("INVALID_ARGUMENT", `limits.${key} must be a positive integer`);
    }
  }
  return limits;
}

/**
 * Opens and validates an archive: the zip structure, the torch.package layout,
 * the manifest, hashes and signature. Every failure is a CoilError:
 * ARCHIVE_INVALID, ARCHIVE_TOO_LARGE, ARCHIVE_HASH_MISMATCH,
 * ARCHIVE_SIGNATURE_INVALID, ARCHIVE_UNSIGNED, or INVALID_ARGUMENT for bad
 * options or a path that cannot be opened. Close the result when done.
 */
export function openArchive(path: string, options: OpenArchiveOptions = {}): Promise<Archive> {
  return Archive.open(path, options);
}

/** An open, validated archive. Offsets are file offsets of `path`. */
export class Archive {
  /** The top-level folder every record lives under. */
  readonly root: string;
  /** Records in central-directory order. */
  readonly records: readonly ArchiveRecord[];
  readonly modules: readonly ModuleRecord[];
  readonly storages: readonly StorageRecord[];
  /** Pickle records (".pkl" outside `.data/`). */
  readonly pickles: readonly string[];
  /** Total file size in bytes. */
  readonly fileSize: number;
  /** True when the archive carries zip64 end records (PyTorchFileWriter always writes them). */
  readonly zip64: boolean;

  #externs: string[] = [];
  #version = 0;
  #pythonVersion: string | undefined;
  #manifest: Manifest | undefined;
  #manifestBytes: Buffer | undefined;
  #signature: SignatureStatus = { signed: false };
  #byName = new Map<string, ArchiveRecord>();
  #hashes = new Map<string, string>();
  #source: FileSource;
  #closed = false;

  /** See openArchive. */
  static async open(path: string, options: OpenArchiveOptions = {}): Promise<Archive> {
    const limits = limitsFrom(options.limits);
    const trusted = (
      options.publicKey === undefined ? [] : Array.isArray(options.publicKey) ? options.publicKey : [options.publicKey]
    ).map((k: KeyInput) => rawEd25519PublicKey(toEd25519PublicKey(k)));

    let handle: FileHandle;
    try {
      // O_NONBLOCK: opening a FIFO for reading would wait for a writer, forever (a regular
      // file reads the same with it); the check below then refuses anything not a file.
      handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (cause) {
      throw new CoilError("INVALID_ARGUMENT", `cannot open archive ${path}`, { cause, details: { path } });
    }
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw new CoilError("INVALID_ARGUMENT", `${path} is not a regular file`, { details: { path } });
      const source = new FileSource(handle, path, stat.size);
      const archive = new Archive(source, await readZipStructure(source, limits));
      await archive.#validate(limits, options, trusted);
      return archive;
    } catch (err) {
      await handle.close().catch(() => undefined);
      if (isCoilError(err)) {
        // Name the file in every error's details.
        if (err.details === undefined) Object.assign(err, { details: { path } });
        else if (!("path" in err.details)) (err.details as Record<string, unknown>)["path"] = path;
        throw err;
      }
      throw new CoilError("INTERNAL", `unexpected failure while reading ${path}`, { cause: err, details: { path } });
    }
  }

  private constructor(source: FileSource, zip: { entries: ZipEntry[]; zip64: boolean }) {
    this.#source = source;
    this.fileSize = source.size;
    this.zip64 = zip.zip64;

    const first = zip.entries[0]!.name;
    const slash = first.indexOf("/");
    if (slash <= 0) {
      throw invalid(`record "${first}" is not inside a top-level folder (torch.package puts every record in one)`, {
        record: first,
      });
    }
    this.root = first.slice(0, slash);
    const rootProblem = rootNameProblem(this.root);
    if (rootProblem !== undefined) throw invalid(`the root folder "${this.root}" ${rootProblem}`, { record: first });

    const prefix = `${this.root}/`;
    const records: ArchiveRecord[] = [];
    for (const entry of zip.entries) {
      if (!entry.name.startsWith(prefix)) {
        throw invalid(`record "${entry.name}" is outside the root folder "${this.root}/"`, { record: entry.name });
      }
      const name = entry.name.slice(prefix.length);
      const problem = recordNameProblem(name);
      if (problem !== undefined) throw invalid(`record name "${entry.name}" ${problem}`, { record: entry.name });
      if (this.#byName.has(name)) throw invalid(`record "${entry.name}" appears twice`, { record: entry.name });
      const record: ArchiveRecord = {
        name,
        offset: entry.dataOffset,
        size: entry.size,
        crc32: entry.crc32,
        headerOffset: entry.headerOffset,
      };
      records.push(record);
      this.#byName.set(name, record);
    }
    this.records = records;

    const modules: ModuleRecord[] = [];
    const storages: StorageRecord[] = [];
    const pickles: string[] = [];
    for (const r of records) {
      const mod = moduleForRecord(r.name);
      if (mod !== undefined) modules.push({ module: mod.name, isPackage: mod.isPackage, record: r.name });
      const key = storageKeyForRecord(r.name);
      if (key !== undefined) storages.push({ key, record: r.name, offset: r.offset, size: r.size });
      if (r.name.endsWith(".pkl") && !r.name.startsWith(".data/")) pickles.push(r.name);
    }
    this.modules = modules;
    this.storages = storages;
    this.pickles = pickles;
  }

  /** The layout, manifest, signature and hash checks of openArchive. */
  async #validate(limits: ArchiveLimits, options: OpenArchiveOptions, trusted: Buffer[]): Promise<void> {
    const missing = REQUIRED_RECORDS.filter((name) => !this.#byName.has(name));
    if (missing.length > 0) {
      throw invalid(`not a torch.package archive: missing ${missing.join(", ")}`, { missing });
    }

    const versionText = await this.#readSmallText(VERSION_RECORD, MAX_VERSION_RECORD_SIZE);
    if (!/^[0-9]{1,9}\n?$/.test(versionText) || Number.parseInt(versionText, 10) < 1) {
      throw invalid(`${VERSION_RECORD} must hold a positive integer`, { record: VERSION_RECORD });
    }
    this.#version = Number.parseInt(versionText, 10);

    const externText = await this.#readSmallText(EXTERN_MODULES_RECORD, limits.maxManifestSize);
    this.#externs = externText.split("\n").filter((line) => line !== "");
    for (const name of this.#externs) {
      // eslint-disable-next-line no-control-regex
      if (/[\s\u0000-\u001f]/.test(name)) throw invalid(`${EXTERN_MODULES_RECORD} lists an invalid module name`, { record: EXTERN_MODULES_RECORD });
    }
    if (this.#byName.has(PYTHON_VERSION_RECORD)) {
      this.#pythonVersion = (await this.#readSmallText(PYTHON_VERSION_RECORD, MAX_VERSION_RECORD_SIZE)).trim();
    }

    if (this.#byName.has(MANIFEST_RECORD)) {
      this.#manifestBytes = await this.#readSmall(MANIFEST_RECORD, limits.maxManifestSize);
      this.#manifest = parseManifest(this.#manifestBytes);
    }
    const mustBeSigned = options.requireSignature === true || trusted.length > 0;
    if (this.#manifest === undefined && (options.requireManifest === true || mustBeSigned)) {
      throw new CoilError(mustBeSigned ? "ARCHIVE_UNSIGNED" : "ARCHIVE_INVALID", `the archive has no ${MANIFEST_RECORD}`, {
        details: { record: MANIFEST_RECORD },
      });
    }

    if (this.#byName.has(SIGNATURE_RECORD)) {
      if (this.#manifestBytes === undefined) {
        throw invalid(`${SIGNATURE_RECORD} without a ${MANIFEST_RECORD} to sign`, { record: SIGNATURE_RECORD });
      }
      const sig = parseSignatureRecord(await this.#readSmall(SIGNATURE_RECORD, MAX_SIGNATURE_RECORD_SIZE));
      const fingerprint = keyFingerprint(sig.publicKey);
      if (!verifyEd25519(this.#manifestBytes, sig.publicKey, sig.signature)) {
        throw new CoilError("ARCHIVE_SIGNATURE_INVALID", "the manifest's signature does not verify: the manifest or signature was altered", {
          details: { record: SIGNATURE_RECORD, keyFingerprint: fingerprint },
        });
      }
      const isTrusted = trusted.some((key) => key.equals(sig.publicKey));
      if (trusted.length > 0 && !isTrusted) {
        throw new CoilError("ARCHIVE_SIGNATURE_INVALID", `the archive is signed by an untrusted key (${fingerprint})`, {
          details: { record: SIGNATURE_RECORD, keyFingerprint: fingerprint },
        });
      }
      this.#signature = {
        signed: true,
        verified: true,
        trusted: isTrusted,
        publicKeyPem: ed25519PublicKeyFromRaw(sig.publicKey).export({ format: "pem", type: "spki" }).toString(),
        keyFingerprint: fingerprint,
      };
    } else if (mustBeSigned) {
      throw new CoilError("ARCHIVE_UNSIGNED", `the archive is not signed (no ${SIGNATURE_RECORD})`, {
        details: { record: SIGNATURE_RECORD },
      });
    }

    if (this.#manifest !== undefined) {
      const listed = new Map(this.#manifest.records.map((r) => [r.name, r]));
      for (const record of this.records) {
        if (record.name === MANIFEST_RECORD || record.name === SIGNATURE_RECORD) continue;
        const entry = listed.get(record.name);
        if (entry === undefined) {
          throw invalid(`record "${record.name}" is not listed in the manifest`, { record: record.name });
        }
        if (entry.size !== record.size) {
          throw new CoilError("ARCHIVE_HASH_MISMATCH", `record "${record.name}" is ${record.size} bytes; the manifest says ${entry.size}`, {
            details: { record: record.name, expectedSize: entry.size, actualSize: record.size },
          });
        }
        this.#hashes.set(record.name, entry.sha256);
        listed.delete(record.name);
      }
      if (listed.size > 0) {
        const names = [...listed.keys()];
        throw invalid(`the manifest lists records the archive lacks: ${names.slice(0, 5).join(", ")}`, { missing: names });
      }
    } else {
      for (const record of this.records) {
        if (record.name.startsWith(COIL_RECORD_PREFIX)) {
          throw invalid(`record "${record.name}" is inside the reserved ${COIL_RECORD_PREFIX}`, { record: record.name });
        }
      }
    }

    if (options.verifyHashes !== false) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, this.records.reduce((max, r) => Math.max(max, r.size), 1)));
      for (const record of this.records) {
        if (record.name === MANIFEST_RECORD || record.name === SIGNATURE_RECORD) continue;
        await this.#verifyStreaming(record, buf);
      }
    }
  }

  /** torch's file format version (`.data/version`). */
  get version(): number {
    return this.#version;
  }

  /** The Python version the archive was packed with (`.data/python_version`), if recorded. */
  get pythonVersion(): string | undefined {
    return this.#pythonVersion;
  }

  /** Modules the archive expects the environment to provide (`.data/extern_modules`). */
  get externs(): readonly string[] {
    return this.#externs;
  }

  /** The parsed `.data/coil/manifest.json`, when present. */
  get manifest(): Manifest | undefined {
    return this.#manifest;
  }

  /** The exact manifest bytes (what the signature covers), when present. */
  get manifestBytes(): Buffer | undefined {
    return this.#manifestBytes === undefined ? undefined : Buffer.from(this.#manifestBytes);
  }

  get signature(): SignatureStatus {
    return this.#signature;
  }

  /** The file the offsets refer to. */
  get path(): string {
    return this.#source.path;
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** The record named `name` (relative to the root), or undefined. */
  record(name: string): ArchiveRecord | undefined {
    return this.#byName.get(name);
  }

  /**
   * A record's bytes, checked against its CRC-32 and, when the manifest lists it,
   * its SHA-256 (ARCHIVE_HASH_MISMATCH). Bounded by `maxBytes` (ARCHIVE_TOO_LARGE).
   */
  async readBytes(name: string, options: ReadOptions = {}): Promise<Buffer> {
    const record = this.#require(name);
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_READ_BYTES;
    if (record.size > maxBytes) {
      throw new CoilError("ARCHIVE_TOO_LARGE", `record "${name}" is ${record.size} bytes (readBytes limit ${maxBytes})`, {
        details: { record: name, size: record.size, limit: maxBytes, path: this.path },
      });
    }
    const bytes = await this.#source.read(record.offset, record.size, `record "${name}"`);
    this.#check(record, crc32(bytes), this.#hashes.has(name) ? createHash("sha256").update(bytes).digest("hex") : undefined);
    return bytes;
  }

  /** A record's bytes as strict UTF-8 text (ARCHIVE_INVALID if not UTF-8); see readBytes. */
  async readText(name: string, options: ReadOptions = {}): Promise<string> {
    const bytes = await this.readBytes(name, options);
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      throw invalid(`record "${name}" is not valid UTF-8 text`, { record: name, path: this.path });
    }
  }

  /**
   * A record's bytes in chunks (fresh buffers, at most `chunkSize` each), for
   * records too large for readBytes. Its CRC-32 and SHA-256 are checked at the
   * end: the last step throws ARCHIVE_HASH_MISMATCH if they disagree.
   */
  async *readChunks(name: string, options: { chunkSize?: number } = {}): AsyncGenerator<Buffer, void, undefined> {
    const record = this.#require(name);
    const chunkSize = options.chunkSize ?? CHUNK;
    if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) {
      throw new CoilError("INVALID_ARGUMENT", "chunkSize must be a positive integer");
    }
    const hash = this.#hashes.has(name) ? createHash("sha256") : undefined;
    let crc = 0;
    for (let done = 0; done < record.size; ) {
      const n = Math.min(chunkSize, record.size - done);
      const chunk = await this.#source.read(record.offset + done, n, `record "${name}"`);
      crc = crc32(chunk, crc);
      hash?.update(chunk);
      done += n;
      yield chunk;
    }
    this.#check(record, crc, hash?.digest("hex"));
  }

  /** Closes the file. Offsets stay meaningful for whoever maps `path`. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#source.handle.close();
  }

  #require(name: string): ArchiveRecord {
    if (this.#closed) throw new CoilError("CLOSED", `archive ${this.path} is closed`);
    const record = this.#byName.get(name);
    if (record === undefined) {
      throw new CoilError("INVALID_ARGUMENT", `no record "${name}" in ${this.path}`, { details: { record: name, path: this.path } });
    }
    return record;
  }

  #check(record: ArchiveRecord, actualCrc: number, actualSha?: string): void {
    if (actualCrc !== record.crc32) {
      throw new CoilError("ARCHIVE_HASH_MISMATCH", `record "${record.name}" fails its CRC-32 check`, {
        details: { record: record.name, expected: record.crc32, actual: actualCrc, path: this.path },
      });
    }
    const expected = this.#hashes.get(record.name);
    if (actualSha !== undefined && expected !== undefined && actualSha !== expected) {
      throw new CoilError("ARCHIVE_HASH_MISMATCH", `record "${record.name}" does not match its SHA-256 in the manifest`, {
        details: { record: record.name, expected, actual: actualSha, path: this.path },
      });
    }
  }

  async #readSmall(name: string, limit: number): Promise<Buffer> {
    const record = this.#byName.get(name)!;
    if (record.size > limit) {
      throw new CoilError("ARCHIVE_TOO_LARGE", `record "${name}" is ${record.size} bytes (limit ${limit})`, {
        details: { record: name, size: record.size, limit },
      });
    }
    const bytes = await this.#source.read(record.offset, record.size, `record "${name}"`);
    this.#check(record, crc32(bytes));
    return bytes;
  }

  async #readSmallText(name: string, limit: number): Promise<string> {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(await this.#readSmall(name, limit));
    } catch (err) {
      if (isCoilError(err)) throw err;
      throw invalid(`record "${name}" is not valid UTF-8 text`, { record: name });
    }
  }

  async #verifyStreaming(record: ArchiveRecord, buf: Buffer): Promise<void> {
    const hash = this.#hashes.has(record.name) ? createHash("sha256") : undefined;
    let crc = 0;
    for (let done = 0; done < record.size; ) {
      const n = Math.min(buf.length, record.size - done);
      const view = buf.subarray(0, n);
      await this.#source.fill(view, record.offset + done, `record "${record.name}"`);
      crc = crc32(view, crc);
      hash?.update(view);
      done += n;
    }
    this.#check(record, crc, hash?.digest("hex"));
  }
}
