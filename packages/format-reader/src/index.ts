/**
 * @coil/format-reader — read and validate Coil archives (torch.package zips).
 */
export {
  Archive,
  openArchive,
  type ArchiveRecord,
  type ModuleRecord,
  type OpenArchiveOptions,
  type ReadOptions,
  type SignatureStatus,
  type StorageRecord,
} from "./archive.js";
export {
  ALIGNMENT,
  COIL_RECORD_PREFIX,
  DEFAULT_LIMITS,
  DEFAULT_MAX_READ_BYTES,
  EXTERN_MODULES_RECORD,
  MANIFEST_RECORD,
  PYTHON_VERSION_RECORD,
  REQUIRED_RECORDS,
  SIGNATURE_RECORD,
  TORCH_FILE_FORMAT_VERSION,
  TORCH_MAX_NAME_BYTES,
  VERSION_RECORD,
  type ArchiveLimits,
} from "./constants.js";
export {
  MANIFEST_DTYPES,
  MANIFEST_FORMAT_VERSION,
  parseManifest,
  serializeManifest,
  validateManifest,
  type EntryPoint,
  type Manifest,
  type ManifestDType,
  type ManifestRecord,
  type TensorSpec,
} from "./manifest.js";
export {
  isModuleName,
  moduleForRecord,
  moduleRecordName,
  recordNameProblem,
  resourceRecordName,
  rootNameProblem,
  storageKeyForRecord,
  storageRecordName,
} from "./names.js";
export {
  encodeSignatureRecord,
  keyFingerprint,
  parseSignatureRecord,
  rawEd25519PublicKey,
  toEd25519PublicKey,
  verifyEd25519,
  type KeyInput,
  type SignatureRecord,
} from "./signature.js";
