import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { COIL_ERROR_CODES, CoilError, isCoilError, isCoilErrorCode } from "@coil/errors";

describe("CoilError", () => {
  it("carries its code and message and is an Error", () => {
    const err = new CoilError("INVALID_ARGUMENT", "batch size must be positive");
    expect(err).toBeInstanceOf(CoilError);
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe("INVALID_ARGUMENT");
    expect(err.message).toBe("batch size must be positive");
    expect(err.name).toBe("CoilError");
    expect(String(err)).toBe("CoilError: batch size must be positive");
    expect(err.stack).toContain("coil-error.test.ts");
  });

  it("has no cause, details or Python fields unless given", () => {
    const err = new CoilError("CLOSED", "pool is closed");
    expect("cause" in err).toBe(false);
    expect(Object.keys(err)).toEqual(["code"]);
    expect(err.details).toBeUndefined();
    expect(err.pythonType).toBeUndefined();
  });

  it("keeps the standard cause, including falsy ones", () => {
    const root = new Error("ENOENT: libpython3.11.so");
    const err = new CoilError("NATIVE_LOAD_FAILED", "cannot load addon", { cause: root });
    expect(err.cause).toBe(root);
    expect(new CoilError("INTERNAL", "x", { cause: 0 }).cause).toBe(0);
    // Node prints the cause chain, so users see the root error.
    expect(inspect(err)).toContain("ENOENT: libpython3.11.so");
  });

  it("carries the Python exception type and traceback", () => {
    const tb = 'Traceback (most recent call last):\n  File "model.py", line 3\nValueError: bad';
    const err = new CoilError("PYTHON_ERROR", "ValueError: bad", {
      pythonType: "builtins.ValueError",
      pythonTraceback: tb,
      details: { interpreter: 3 },
    });
    expect(err.pythonType).toBe("builtins.ValueError");
    expect(err.pythonTraceback).toBe(tb);
    expect(err.details).toEqual({ interpreter: 3 });
  });

  it("serialises to a stable JSON shape", () => {
    const inner = new CoilError("SHAPE_MISMATCH", "expected [1,3]", { details: { got: [2, 3] } });
    const err = new CoilError("PYTHON_ERROR", "RuntimeError: boom", {
      cause: inner,
      details: { model: "mlp" },
      pythonType: "builtins.RuntimeError",
      pythonTraceback: "Traceback ...",
    });
    expect(JSON.parse(JSON.stringify(err))).toEqual({
      name: "CoilError",
      code: "PYTHON_ERROR",
      message: "RuntimeError: boom",
      details: { model: "mlp" },
      pythonType: "builtins.RuntimeError",
      pythonTraceback: "Traceback ...",
      cause: {
        name: "CoilError",
        code: "SHAPE_MISMATCH",
        message: "expected [1,3]",
        details: { got: [2, 3] },
      },
    });
    expect(JSON.parse(JSON.stringify(new CoilError("CANCELLED", "stop")))).toEqual({
      name: "CoilError",
      code: "CANCELLED",
      message: "stop",
    });
    const plain = new CoilError("INTERNAL", "x", { cause: new TypeError("y") });
    expect(plain.toJSON().cause).toEqual({ name: "TypeError", message: "y" });
  });
});

describe("isCoilError", () => {
  it("recognises CoilErrors and optionally their code", () => {
    const err = new CoilError("DEADLINE_EXCEEDED", "took too long");
    expect(isCoilError(err)).toBe(true);
    expect(isCoilError(err, "DEADLINE_EXCEEDED")).toBe(true);
    expect(isCoilError(err, "CANCELLED")).toBe(false);
  });

  it("rejects everything else", () => {
    for (const value of [new Error("x"), { code: "INTERNAL", message: "x" }, "INTERNAL", null, undefined, 0]) {
      expect(isCoilError(value)).toBe(false);
    }
  });

  it("recognises a CoilError from another copy of the package", () => {
    // Stands in for a second @coil/errors version elsewhere in node_modules.
    const foreign = Object.create({ [Symbol.for("@coil/errors.CoilError")]: true }) as object;
    Object.assign(foreign, { code: "INTERNAL", message: "x" });
    expect(isCoilError(foreign, "INTERNAL")).toBe(true);
  });
});

describe("codes", () => {
  it("lists each stable code once", () => {
    expect(new Set(COIL_ERROR_CODES).size).toBe(COIL_ERROR_CODES.length);
    expect(COIL_ERROR_CODES).toContain("GLIBC_TUNABLE_MISSING");
    expect(isCoilErrorCode("PYTHON_ERROR")).toBe(true);
    expect(isCoilErrorCode("NOPE")).toBe(false);
  });
});
