// Checks Kubernetes objects against the fields their API types define, as the API
// server would before accepting them: unknown fields (a misspelled one included),
// missing required ones, values of the wrong type. The field sets are those of
// deploy/test/api-types.json, read from KServe's, Kubernetes' and the Prometheus
// Operator's Go sources by deploy/test/read-api-types.mjs.
import { readFileSync } from "node:fs";
import { basename, join } from "node:path";

import { parseAllDocuments } from "yaml";

import { ROOT } from "./paths.js";

export interface FieldType {
  type: string;
  required?: boolean;
}

export interface ApiTypes {
  sources: Record<string, string>;
  /** "apiVersion/kind" -> the Go type's key in `types`. */
  kinds: Record<string, string>;
  types: Record<string, { source: string; fields: Record<string, FieldType> }>;
}

export type KubeObject = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> } };

export interface Manifest {
  /** deploy/<folder>/<file>#<document index>, for messages. */
  where: string;
  object: KubeObject;
}

export const API_TYPES_FILE = join(ROOT, "deploy/test/api-types.json");

export function readApiTypes(): ApiTypes {
  return JSON.parse(readFileSync(API_TYPES_FILE, "utf8")) as ApiTypes;
}

/** Every YAML document of a file; throws on YAML errors (duplicate keys included). */
export function readManifests(file: string): Manifest[] {
  const documents = parseAllDocuments(readFileSync(file, "utf8"), { uniqueKeys: true });
  return documents.map((document, index) => {
    if (document.errors.length > 0) throw new Error(`${file}#${index}: ${document.errors.map((e) => e.message).join("; ")}`);
    return { where: `${basename(file)}#${index}`, object: document.toJS() as KubeObject };
  });
}

/** What the API server would refuse in `object`, one line per problem ("spec.foo: ..."). */
export function fieldProblems(api: ApiTypes, object: unknown): string[] {
  if (!isMapping(object)) return ["the document is not a mapping"];
  const { apiVersion, kind } = object;
  if (typeof apiVersion !== "string" || typeof kind !== "string") return ["apiVersion and kind must be strings"];
  const root = api.kinds[`${apiVersion}/${kind}`];
  if (!root) return [`${apiVersion} ${kind}: not a kind these manifests may use (${Object.keys(api.kinds).join(", ")})`];
  const problems: string[] = [];
  if (!isMapping(object["metadata"]) || typeof object["metadata"]["name"] !== "string") problems.push("metadata.name: required");
  checkValue(api, object, root, "", problems);
  return problems;
}

function checkValue(api: ApiTypes, value: unknown, type: string, path: string, problems: string[]): void {
  const at = path || "(the object)";
  const expect = (ok: boolean, what: string) => {
    if (!ok) problems.push(`${at}: ${what} expected, got ${JSON.stringify(value)}`);
  };
  if (type === "any") return;
  if (type.startsWith("[]")) {
    if (!Array.isArray(value)) return expect(false, "a list");
    value.forEach((item, i) => checkValue(api, item, type.slice(2), `${path}[${i}]`, problems));
    return;
  }
  if (type.startsWith("map[]")) {
    if (!isMapping(value)) return expect(false, "a mapping");
    for (const [key, item] of Object.entries(value)) checkValue(api, item, type.slice(5), `${path}.${key}`, problems);
    return;
  }
  switch (type) {
    case "string":
      return expect(typeof value === "string", "a string");
    case "integer":
      return expect(Number.isInteger(value), "an integer");
    case "number":
      return expect(typeof value === "number", "a number");
    case "boolean":
      return expect(typeof value === "boolean", "a boolean");
    case "int-or-string":
      return expect(Number.isInteger(value) || typeof value === "string", "an integer or a string");
    case "quantity":
      return expect(typeof value === "number" || (typeof value === "string" && QUANTITY.test(value)), "a quantity (1, 500m, 4Gi, ...)");
  }
  const struct = api.types[type];
  if (!struct) return void problems.push(`${at}: no type ${type} in ${API_TYPES_FILE}`);
  if (!isMapping(value)) return expect(false, `a mapping (${shortName(type)})`);
  for (const [name, field] of Object.entries(struct.fields)) {
    if (field.required && !(name in value)) problems.push(`${join2(path, name)}: required by ${shortName(type)} (${struct.source})`);
  }
  for (const [name, item] of Object.entries(value)) {
    const field = struct.fields[name];
    if (!field) {
      problems.push(`${join2(path, name)}: unknown field: ${shortName(type)} has ${Object.keys(struct.fields).join(", ")}`);
      continue;
    }
    checkValue(api, item, field.type, join2(path, name), problems);
  }
}

/** Kubernetes' resource.Quantity: a decimal number with an SI or binary suffix, or an exponent. */
const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;
const SUFFIX: Record<string, number> = {
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
  n: 1e-9, u: 1e-6, m: 1e-3, "": 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
};

/** A quantity's value (4Gi -> 4294967296, 500m -> 0.5). */
export function quantityValue(quantity: string | number): number {
  if (typeof quantity === "number") return quantity;
  const match = QUANTITY.exec(quantity);
  if (!match) throw new Error(`not a quantity: ${quantity}`);
  const suffix = match[3] ?? "";
  const number = Number(quantity.slice(0, quantity.length - suffix.length));
  return /^[eE]/.test(suffix) ? number * 10 ** Number(suffix.slice(1)) : number * SUFFIX[suffix]!;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function join2(path: string, name: string): string {
  return path ? `${path}.${name}` : name;
}

function shortName(type: string): string {
  return type.slice(type.lastIndexOf("/") + 1);
}
