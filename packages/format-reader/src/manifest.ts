import { CoilError } from "@coil/errors";
import { COIL_RECORD_PREFIX, MANIFEST_RECORD, SIGNATURE_RECORD } from "./constants.js";
import { isModuleName, recordNameProblem, resourceRecordName } from "./names.js";

/** Element types a manifest's input/output signature may name (torch's names, and
 * "bytes": the Open Inference Protocol's BYTES, nested lists of bytes in Python). */
export const MANIFEST_DTYPES = [
  "bool",
  "uint8",
  "uint16",
  "uint32",
  "uint64",
  "int8",
  "int16",
  "int32",
  "int64",
  "float16",
  "bfloat16",
  "float32",
  "float64",
  "bytes",
] as const;

export type ManifestDType = (typeof MANIFEST_DTYPES)[number];

/** The manifest format this package reads and writes. */
export const MANIFEST_FORMAT_VERSION = 1;

/** One tensor of the model's input or output signature. */
export interface TensorSpec {
  name: string;
  dtype: ManifestDType;
  /** Dimensions; -1 marks a dynamic one (e.g. the batch). */
  shape: number[];
}

/** What the model is: the pickle to load, as `PackageImporter.load_pickle(package, resource)`. */
export interface EntryPoint {
  /** Dotted package name, e.g. "model". */
  package: string;
  /** Resource inside the package, e.g. "model.pkl". */
  resource: string;
}

/**
 * An installed distribution (pip's unit: a name and a version) that the archive's
 * extern modules come from. The loading Python must have it: loading refuses an
 * archive whose distribution is missing and warns when the version differs.
 */
export interface RequiredDistribution {
  /** The distribution's name, as its metadata spells it (e.g. "transformers", "Pillow"). */
  name: string;
  /** The version packed with. */
  version: string;
  /** The top-level modules the archive imports from it (e.g. ["PIL"] for Pillow). */
  modules: string[];
}

/** Size and SHA-256 of one record (the manifest and signature records excepted). */
export interface ManifestRecord {
  /** Name relative to the archive's root folder. */
  name: string;
  size: number;
  /** Lowercase hex. */
  sha256: string;
}

/** `.data/coil/manifest.json`. */
export interface Manifest {
  formatVersion: typeof MANIFEST_FORMAT_VERSION;
  entryPoint: EntryPoint;
  /** Absent when the packer did not declare a signature. */
  inputs?: TensorSpec[];
  outputs?: TensorSpec[];
  /** Free-form string annotations (sorted by key when written). */
  metadata?: Record<string, string>;
  /** Distributions the extern modules come from, sorted by name. Absent in archives
   * packed before Coil recorded them (and in those packed without any). */
  distributions?: RequiredDistribution[];
  /** Every record of the archive but the manifest and signature, in the order written. */
  records: ManifestRecord[];
}

const MAX_TENSORS = 4096;
const MAX_RANK = 64;
const MAX_METADATA_ENTRIES = 4096;
const MAX_DISTRIBUTIONS = 4096;
const MAX_SHORT_STRING = 4096;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Why a value is not a valid manifest: collects the first problem found. */
class Invalid extends Error {}

function fail(message: string): never {
  throw new Invalid(message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function shortString(value: unknown, what: string, allowEmpty = false): string {
  if (typeof value !== "string") fail(`${what} must be a string`);
  if (!allowEmpty && value.length === 0) fail(`${what} must not be empty`);
  if (value.length > MAX_SHORT_STRING) fail(`${what} is longer than ${MAX_SHORT_STRING} characters`);
  return value;
}

function tensorSpecs(value: unknown, what: string): TensorSpec[] {
  if (!Array.isArray(value)) fail(`${what} must be an array`);
  if (value.length > MAX_TENSORS) fail(`${what} has more than ${MAX_TENSORS} tensors`);
  const names = new Set<string>();
  return value.map((spec: unknown, i) => {
    const at = `${what}[${i}]`;
    if (!isObject(spec)) fail(`${at} must be an object`);
    const name = shortString(spec["name"], `${at}.name`);
    if (names.has(name)) fail(`${what} names "${name}" twice`);
    names.add(name);
    const dtype = spec["dtype"];
    if (typeof dtype !== "string" || !(MANIFEST_DTYPES as readonly string[]).includes(dtype)) {
      fail(`${at}.dtype must be one of ${MANIFEST_DTYPES.join(", ")}`);
    }
    const shape = spec["shape"];
    if (!Array.isArray(shape)) fail(`${at}.shape must be an array`);
    if (shape.length > MAX_RANK) fail(`${at}.shape has more than ${MAX_RANK} dimensions`);
    for (const dim of shape) {
      if (!Number.isSafeInteger(dim) || (dim as number) < -1) {
        fail(`${at}.shape must hold integers >= 0, or -1 for a dynamic dimension`);
      }
    }
    return { name, dtype: dtype as ManifestDType, shape: [...(shape as number[])] };
  });
}

function distributions(value: unknown): RequiredDistribution[] {
  if (!Array.isArray(value)) fail("distributions must be an array");
  if (value.length > MAX_DISTRIBUTIONS) fail(`distributions has more than ${MAX_DISTRIBUTIONS} entries`);
  const names = new Set<string>();
  return value.map((entry: unknown, i) => {
    const at = `distributions[${i}]`;
    if (!isObject(entry)) fail(`${at} must be an object`);
    const name = shortString(entry["name"], `${at}.name`);
    if (names.has(name)) fail(`distributions names "${name}" twice`);
    names.add(name);
    const version = shortString(entry["version"], `${at}.version`);
    const modules = entry["modules"];
    if (!Array.isArray(modules) || modules.length > MAX_DISTRIBUTIONS) fail(`${at}.modules must be an array of module names`);
    for (const m of modules) {
      if (typeof m !== "string" || !isModuleName(m)) fail(`${at}.modules must hold dotted Python module names`);
    }
    return { name, version, modules: [...(modules as string[])] };
  });
}

function manifestFrom(value: unknown): Manifest {
  if (!isObject(value)) fail("the manifest must be a JSON object");
  const version = value["formatVersion"];
  if (version !== MANIFEST_FORMAT_VERSION) {
    fail(`formatVersion must be ${MANIFEST_FORMAT_VERSION} (got ${JSON.stringify(version) ?? "nothing"})`);
  }

  const entry = value["entryPoint"];
  if (!isObject(entry)) fail("entryPoint must be an object");
  const pkg = shortString(entry["package"], "entryPoint.package");
  if (!isModuleName(pkg)) fail(`entryPoint.package "${pkg}" is not a dotted Python name`);
  const resource = shortString(entry["resource"], "entryPoint.resource");
  const entryRecord = resourceRecordName(pkg, resource);
  const entryProblem = recordNameProblem(entryRecord);
  if (entryProblem !== undefined) fail(`entryPoint names record "${entryRecord}", which ${entryProblem}`);

  // Built in the canonical key order (the one serializeManifest writes).
  const manifest: Manifest = { formatVersion: MANIFEST_FORMAT_VERSION, entryPoint: { package: pkg, resource } } as Manifest;
  if (value["inputs"] !== undefined) manifest.inputs = tensorSpecs(value["inputs"], "inputs");
  if (value["outputs"] !== undefined) manifest.outputs = tensorSpecs(value["outputs"], "outputs");

  const metadata = value["metadata"];
  if (metadata !== undefined) {
    if (!isObject(metadata)) fail("metadata must be an object of strings");
    const keys = Object.keys(metadata);
    if (keys.length > MAX_METADATA_ENTRIES) fail(`metadata has more than ${MAX_METADATA_ENTRIES} entries`);
    // fromEntries defines own properties, so a "__proto__" key stays plain data.
    manifest.metadata = Object.fromEntries(
      keys.sort().map((key) => [shortString(key, "a metadata key"), shortString(metadata[key], `metadata["${key}"]`, true)]),
    );
  }
  if (value["distributions"] !== undefined) manifest.distributions = distributions(value["distributions"]);

  const records = value["records"];
  if (!Array.isArray(records)) fail("records must be an array");
  manifest.records = [];
  const seen = new Set<string>();
  for (const [i, record] of records.entries()) {
    const at = `records[${i}]`;
    if (!isObject(record)) fail(`${at} must be an object`);
    const name = record["name"];
    if (typeof name !== "string") fail(`${at}.name must be a string`);
    const problem = recordNameProblem(name);
    if (problem !== undefined) fail(`${at}.name "${name}" ${problem}`);
    if (name === MANIFEST_RECORD || name === SIGNATURE_RECORD) fail(`${at} lists "${name}", which cannot hash itself`);
    if (seen.has(name)) fail(`records lists "${name}" twice`);
    seen.add(name);
    const size = record["size"];
    if (!Number.isSafeInteger(size) || (size as number) < 0) fail(`${at}.size must be a non-negative integer`);
    const sha256 = record["sha256"];
    if (typeof sha256 !== "string" || !SHA256_HEX.test(sha256)) fail(`${at}.sha256 must be 64 lowercase hex digits`);
    manifest.records.push({ name, size: size as number, sha256 });
  }
  if (!seen.has(entryRecord)) fail(`entryPoint record "${entryRecord}" is not among the records`);
  for (const name of seen) {
    if (name.startsWith(COIL_RECORD_PREFIX)) fail(`records lists "${name}", inside the reserved ${COIL_RECORD_PREFIX}`);
  }
  return manifest;
}

/**
 * Checks a manifest object and returns a normalised copy (unknown keys dropped,
 * metadata sorted by key). Throws INVALID_ARGUMENT naming the first problem.
 */
export function validateManifest(value: unknown): Manifest {
  try {
    return manifestFrom(value);
  } catch (err) {
    if (err instanceof Invalid) throw new CoilError("INVALID_ARGUMENT", `invalid manifest: ${err.message}`);
    throw err;
  }
}

/**
 * Parses `.data/coil/manifest.json` bytes as a reader must: strict UTF-8, JSON,
 * then the schema. Throws ARCHIVE_INVALID naming the problem.
 */
export function parseManifest(bytes: Uint8Array): Manifest {
  let text: string;
  let json: unknown;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new CoilError("ARCHIVE_INVALID", `${MANIFEST_RECORD} is not valid UTF-8`, {
      cause,
      details: { record: MANIFEST_RECORD },
    });
  }
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new CoilError("ARCHIVE_INVALID", `${MANIFEST_RECORD} is not valid JSON`, {
      cause,
      details: { record: MANIFEST_RECORD },
    });
  }
  try {
    return manifestFrom(json);
  } catch (err) {
    if (err instanceof Invalid) {
      throw new CoilError("ARCHIVE_INVALID", `${MANIFEST_RECORD} is invalid: ${err.message}`, {
        details: { record: MANIFEST_RECORD },
      });
    }
    throw err;
  }
}

/**
 * The canonical bytes of a manifest: compact JSON, keys in a fixed order,
 * metadata sorted by key, newline-terminated. The writer signs exactly these bytes.
 */
export function serializeManifest(manifest: Manifest): Buffer {
  // validateManifest rebuilds every object with its keys in the canonical order.
  return Buffer.from(`${JSON.stringify(validateManifest(manifest))}\n`, "utf8");
}
