/**
 * Typed errors shared by every Coil package. Callers branch on `code`, which is
 * stable across releases; messages are for humans and may change.
 */

export const COIL_ERROR_CODES = [
  "INVALID_ARGUMENT",
  "PYTHON_ERROR",
  "PYTHON_NOT_FOUND",
  "NO_SHARED_LIBPYTHON",
  "PYTHON_INIT_FAILED",
  "INTERPRETER_LIMIT",
  "GLIBC_TUNABLE_MISSING",
  "DEADLINE_EXCEEDED",
  "CANCELLED",
  "CLOSED",
  "NATIVE_LOAD_FAILED",
  "BACKEND_UNAVAILABLE",
  "SHAPE_MISMATCH",
  "UNSUPPORTED_DTYPE",
  "INTERNAL",
  "ARCHIVE_INVALID",
  "ARCHIVE_TOO_LARGE",
  "ARCHIVE_HASH_MISMATCH",
  "ARCHIVE_SIGNATURE_INVALID",
  "ARCHIVE_UNSIGNED",
  "QUEUE_FULL",
  "MODEL_NOT_FOUND",
  "MODEL_NOT_READY",
  "PLUGIN_FAILED",
  "DEPENDENCY_MISSING",
  "UNAUTHENTICATED",
  "PERMISSION_DENIED",
  "RESPONSE_TOO_LARGE",
] as const;

export type CoilErrorCode = (typeof COIL_ERROR_CODES)[number];

export interface CoilErrorOptions {
  /** The error that led to this one (standard `Error.cause`). */
  cause?: unknown;
  /** Structured, JSON-friendly context (paths, limits, shapes...). */
  details?: Record<string, unknown>;
  /** For PYTHON_ERROR: the exception's qualified type, e.g. "builtins.ValueError". */
  pythonType?: string;
  /** For PYTHON_ERROR: the formatted Python traceback. */
  pythonTraceback?: string;
}

/** What `JSON.stringify(coilError)` produces. */
export interface CoilErrorJSON {
  name: string;
  code: CoilErrorCode;
  message: string;
  details?: Record<string, unknown>;
  pythonType?: string;
  pythonTraceback?: string;
  cause?: unknown;
}

// A registry-wide symbol rather than instanceof alone: two copies of this package
// (different versions in one node_modules tree) must still recognise each other.
const BRAND = Symbol.for("@coil/errors.CoilError");

const CODES: ReadonlySet<string> = new Set(COIL_ERROR_CODES);

export function isCoilErrorCode(value: unknown): value is CoilErrorCode {
  return typeof value === "string" && CODES.has(value);
}

export class CoilError extends Error {
  readonly code: CoilErrorCode;
  // `declare`: with ES2022 class fields, plain optional fields would become own
  // properties holding undefined; these exist only when set.
  declare readonly details?: Record<string, unknown>;
  declare readonly pythonType?: string;
  declare readonly pythonTraceback?: string;

  constructor(code: CoilErrorCode, message: string, options: CoilErrorOptions = {}) {
    // Pass cause only when given, so `"cause" in err` stays false otherwise.
    super(message, "cause" in options ? { cause: options.cause } : undefined);
    this.code = code;
    if (options.details !== undefined) this.details = options.details;
    if (options.pythonType !== undefined) this.pythonType = options.pythonType;
    if (options.pythonTraceback !== undefined) this.pythonTraceback = options.pythonTraceback;
  }

  toJSON(): CoilErrorJSON {
    const json: CoilErrorJSON = { name: this.name, code: this.code, message: this.message };
    if (this.details !== undefined) json.details = this.details;
    if (this.pythonType !== undefined) json.pythonType = this.pythonType;
    if (this.pythonTraceback !== undefined) json.pythonTraceback = this.pythonTraceback;
    if ("cause" in this) json.cause = causeToJSON(this.cause);
    return json;
  }
}

// On the prototype, not the instance: keeps instances' own keys to their data.
Object.defineProperty(CoilError.prototype, "name", { value: "CoilError", writable: true, configurable: true });
Object.defineProperty(CoilError.prototype, BRAND, { value: true });

function causeToJSON(cause: unknown): unknown {
  if (isCoilError(cause)) return cause.toJSON();
  if (cause instanceof Error) return { name: cause.name, message: cause.message };
  return cause;
}

/** True for any CoilError (from any copy of this package), optionally of one code. */
export function isCoilError(value: unknown, code?: CoilErrorCode): value is CoilError {
  if (typeof value !== "object" || value === null) return false;
  if (!(value instanceof CoilError) && (value as Record<symbol, unknown>)[BRAND] !== true) return false;
  return code === undefined || (value as CoilError).code === code;
}
