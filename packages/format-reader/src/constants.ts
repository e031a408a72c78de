/** Record names and numbers that define the archive format (shared with @coil/format-writer). */

/** Every record's data starts at a multiple of this file offset (as PyTorchFileWriter writes). */
export const ALIGNMENT = 64;

/** Records torch.package needs (names relative to the archive's root folder). */
export const VERSION_RECORD = ".data/version";
export const EXTERN_MODULES_RECORD = ".data/extern_modules";
export const PYTHON_VERSION_RECORD = ".data/python_version";
/** Records that PackageImporter cannot load without. */
export const REQUIRED_RECORDS: readonly string[] = [VERSION_RECORD, EXTERN_MODULES_RECORD];

/** Coil's own records, under a folder that torch.package's module tree ignores (`.data/`). */
export const COIL_RECORD_PREFIX = ".data/coil/";
export const MANIFEST_RECORD = ".data/coil/manifest.json";
export const SIGNATURE_RECORD = ".data/coil/signature";

/** The `.data/version` torch 1.13's PyTorchFileWriter writes ("6\n"). */
export const TORCH_FILE_FORMAT_VERSION = 6;

/**
 * Longest full record name (root folder included) PyTorchFileReader can return:
 * miniz copies names into a 512-byte buffer with a terminating NUL.
 */
export const TORCH_MAX_NAME_BYTES = 511;

/** Bounds the reader applies to untrusted archives; each can be changed per call. */
export interface ArchiveLimits {
  /** Most records (central directory entries). */
  maxRecords: number;
  /** Largest central directory, in bytes (it is read into memory whole). */
  maxCentralDirectorySize: number;
  /** Longest record name, in bytes (root folder included). */
  maxNameLength: number;
  /** Largest `.data/coil/manifest.json` and `.data/extern_modules`, in bytes. */
  maxManifestSize: number;
}

export const DEFAULT_LIMITS: Readonly<ArchiveLimits> = Object.freeze({
  maxRecords: 100_000,
  maxCentralDirectorySize: 64 * 1024 * 1024,
  maxNameLength: 1024,
  maxManifestSize: 16 * 1024 * 1024,
});

/** Largest `.data/coil/signature` record. */
export const MAX_SIGNATURE_RECORD_SIZE = 4096;
/** Largest `.data/version` / `.data/python_version` record. */
export const MAX_VERSION_RECORD_SIZE = 64;
/** Default bound of `Archive.readBytes` / `readText`. */
export const DEFAULT_MAX_READ_BYTES = 64 * 1024 * 1024;
