/**
 * @coil/format-writer — write Coil archives (torch.package zips).
 */
export {
  ArchiveWriter,
  type AddRecordOptions,
  type ArchiveSummary,
  type ArchiveWriterOptions,
  type FinishOptions,
  type RecordData,
  type WrittenRecord,
} from "./writer.js";
export { generateSigningKeyPair, type SigningKeyPair } from "./keys.js";
