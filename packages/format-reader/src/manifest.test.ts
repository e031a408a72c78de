import { isCoilError } from "@coil/errors";
import { describe, expect, it } from "vitest";
import { parseManifest, serializeManifest, validateManifest, type Manifest } from "@coil/format-reader";

const sha = "ab".repeat(32);
const base: Manifest = {
  formatVersion: 1,
  entryPoint: { package: "model", resource: "model.pkl" },
  inputs: [{ name: "x", dtype: "float32", shape: [-1, 3, 224, 224] }],
  outputs: [{ name: "logits", dtype: "float32", shape: [-1, 1000] }],
  metadata: { z: "last", a: "first" },
  records: [
    { name: "model/model.pkl", size: 10, sha256: sha },
    { name: ".data/0.storage", size: 0, sha256: sha },
  ],
};

function problem(value: unknown): string {
  try {
    validateManifest(value);
  } catch (err) {
    if (isCoilError(err, "INVALID_ARGUMENT")) return err.message;
    throw err;
  }
  return "valid";
}

describe("manifest", () => {
  it("serializes canonically (fixed key order, sorted metadata) and parses back", () => {
    const shuffled = { records: base.records, metadata: base.metadata, outputs: base.outputs, inputs: base.inputs, entryPoint: base.entryPoint, formatVersion: 1, extra: 1 };
    const bytes = serializeManifest(shuffled as unknown as Manifest);
    expect(bytes.equals(serializeManifest(base))).toBe(true);
    const text = bytes.toString("utf8");
    expect(text.endsWith("}\n")).toBe(true);
    expect(text.indexOf('"formatVersion"')).toBeLessThan(text.indexOf('"entryPoint"'));
    expect(text.indexOf('"a"')).toBeLessThan(text.indexOf('"z"'));
    expect(text).not.toContain("extra");
    expect(parseManifest(bytes)).toEqual({ ...base, metadata: { a: "first", z: "last" } });
  });

  it("names the first problem of an invalid manifest", () => {
    expect(problem(base)).toBe("valid");
    expect(problem(null)).toMatch(/object/);
    expect(problem({ ...base, formatVersion: 2 })).toMatch(/formatVersion/);
    expect(problem({ ...base, entryPoint: { package: "a-b", resource: "x" } })).toMatch(/dotted/);
    expect(problem({ ...base, entryPoint: { package: "model", resource: "../x" } })).toMatch(/'\.\.'/);
    expect(problem({ ...base, entryPoint: { package: "model", resource: "other.pkl" } })).toMatch(/not among the records/);
    expect(problem({ ...base, inputs: [{ name: "x", dtype: "complex32", shape: [1] }] })).toMatch(/dtype/);
    expect(problem({ ...base, inputs: [{ name: "x", dtype: "float32", shape: [-2] }] })).toMatch(/-1/);
    expect(problem({ ...base, inputs: [{ name: "x", dtype: "float32", shape: [1.5] }] })).toMatch(/integers/);
    expect(problem({ ...base, inputs: [base.inputs![0], base.inputs![0]] })).toMatch(/twice/);
    expect(problem({ ...base, metadata: { a: 1 } })).toMatch(/metadata/);
    expect(problem({ ...base, records: [...base.records, base.records[0]] })).toMatch(/twice/);
    expect(problem({ ...base, records: [{ name: "/abs", size: 1, sha256: sha }] })).toMatch(/absolute/);
    expect(problem({ ...base, records: [{ name: "model/model.pkl", size: -1, sha256: sha }] })).toMatch(/size/);
    expect(problem({ ...base, records: [{ name: "model/model.pkl", size: 1, sha256: "AB".repeat(32) }] })).toMatch(/sha256/);
    expect(problem({ ...base, records: [...base.records, { name: ".data/coil/manifest.json", size: 1, sha256: sha }] })).toMatch(/itself/);
  });

  it("carries the distributions the externs come from, and stays readable without them", () => {
    const distributions = [{ name: "transformers", version: "4.46.3", modules: ["transformers"] }];
    const withDistributions = { ...base, distributions };
    const text = serializeManifest(withDistributions).toString("utf8");
    expect(text.indexOf('"metadata"')).toBeLessThan(text.indexOf('"distributions"'));
    expect(text.indexOf('"distributions"')).toBeLessThan(text.indexOf('"records"'));
    expect(parseManifest(Buffer.from(text))).toMatchObject({ distributions });
    // Archives from before distributions were recorded: the key is absent, not empty.
    expect("distributions" in parseManifest(serializeManifest(base))).toBe(false);
    const one = distributions[0]!;
    expect(problem({ ...base, distributions: {} })).toMatch(/distributions must be an array/);
    expect(problem({ ...base, distributions: [one, one] })).toMatch(/twice/);
    expect(problem({ ...base, distributions: [{ ...one, version: "" }] })).toMatch(/version must not be empty/);
    expect(problem({ ...base, distributions: [{ ...one, modules: ["not-a-module"] }] })).toMatch(/module names/);
    expect(problem({ ...base, distributions: [{ name: "x", version: "1" }] })).toMatch(/modules/);
  });

  it("keeps a __proto__ metadata key as plain data", () => {
    const parsed = parseManifest(Buffer.from(serializeManifest(base).toString().replace('"a":"first"', '"__proto__":"x","a":"first"')));
    expect(Object.getPrototypeOf(parsed.metadata)).toBe(Object.prototype);
    expect(Object.keys(parsed.metadata!)).toContain("__proto__");
  });

  it("parse errors are ARCHIVE_INVALID", () => {
    for (const bytes of [Buffer.from([0xff]), Buffer.from("{"), Buffer.from("{}")]) {
      let code: string | undefined;
      try {
        parseManifest(bytes);
      } catch (err) {
        code = isCoilError(err) ? err.code : "other";
      }
      expect(code).toBe("ARCHIVE_INVALID");
    }
  });
});
