#!/usr/bin/env node
// Reads the Go API types of KServe, Kubernetes and the Prometheus Operator and writes
// the field sets deploy/test/api-types.json holds: for every struct reachable from the
// kinds in deploy/, its JSON fields, their types and which are required. The manifest
// check (e2e/tests/manifests.test.ts) reads that file, not the Go sources: run this
// again (and commit the result) when moving to newer API versions.
//
//   node deploy/test/read-api-types.mjs \
//     --source github.com/kserve/kserve=<checkout>@<commit> \
//     --source k8s.io/api=<checkout>@<commit> \
//     --source k8s.io/apimachinery=<checkout>@<commit> \
//     --source github.com/prometheus-operator/prometheus-operator=<checkout>@<commit> \
//     > deploy/test/api-types.json
//
// Only what JSON sees is read: `json:"name,omitempty"` tags, inlined structs
// (`json:",inline"` or untagged embedding), pointers, slices and maps. A field is
// required when its tag has no omitempty and its comment neither says +optional nor
// carries a default; +required always makes it required.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

/** The kinds deploy/ uses: apiVersion/kind -> the Go package and type. */
const KINDS = {
  "serving.kserve.io/v1alpha1/ClusterServingRuntime": "github.com/kserve/kserve/pkg/apis/serving/v1alpha1.ClusterServingRuntime",
  "serving.kserve.io/v1alpha1/ServingRuntime": "github.com/kserve/kserve/pkg/apis/serving/v1alpha1.ServingRuntime",
  "serving.kserve.io/v1alpha1/TrainedModel": "github.com/kserve/kserve/pkg/apis/serving/v1alpha1.TrainedModel",
  "serving.kserve.io/v1beta1/InferenceService": "github.com/kserve/kserve/pkg/apis/serving/v1beta1.InferenceService",
  "apps/v1/Deployment": "k8s.io/api/apps/v1.Deployment",
  "v1/Service": "k8s.io/api/core/v1.Service",
  "autoscaling/v2/HorizontalPodAutoscaler": "k8s.io/api/autoscaling/v2.HorizontalPodAutoscaler",
  "monitoring.coreos.com/v1/ServiceMonitor": "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1.ServiceMonitor",
};

/** Go types JSON encodes as something other than their struct (their MarshalJSON). */
const SCALARS = {
  "k8s.io/apimachinery/pkg/api/resource.Quantity": "quantity",
  "k8s.io/apimachinery/pkg/util/intstr.IntOrString": "int-or-string",
  "k8s.io/apimachinery/pkg/apis/meta/v1.Time": "string",
  "k8s.io/apimachinery/pkg/apis/meta/v1.MicroTime": "string",
  "k8s.io/apimachinery/pkg/apis/meta/v1.Duration": "string",
  "k8s.io/apimachinery/pkg/runtime.RawExtension": "any",
  "k8s.io/apimachinery/pkg/apis/meta/v1.FieldsV1": "any",
};

const BUILTINS = {
  string: "string",
  bool: "boolean",
  int: "integer", int8: "integer", int16: "integer", int32: "integer", int64: "integer",
  uint: "integer", uint8: "integer", uint16: "integer", uint32: "integer", uint64: "integer",
  float32: "number", float64: "number",
  byte: "integer",
  "interface{}": "any",
  any: "any",
};

/**
 * Where KServe's published CRDs differ from its Go types, the CRDs win (they are what
 * the API server checks): KServe's Makefile deletes `required` under every
 * spec.<component>.<framework> of the InferenceService CRD (`del(...properties.spec
 * .properties.*.properties.*.required)`), so the Container fields the predictor's
 * model spec inlines (name) are optional there, and so are probes' ports.
 */
const NOT_REQUIRED_WHEN_INLINED_IN = {
  "github.com/kserve/kserve/pkg/apis/serving/v1beta1.PredictorExtensionSpec": ["k8s.io/api/core/v1.Container"],
};

const { values } = parseArgs({ options: { source: { type: "string", multiple: true, default: [] } } });
const SOURCES = values.source.map((spec) => {
  const match = /^([^=]+)=([^@]+)@(.+)$/.exec(spec);
  if (!match) throw new Error(`--source MODULE=DIR@COMMIT, not ${spec}`);
  return { module: match[1], dir: match[2], commit: match[3] };
});

/** Go package path -> { types: name -> declaration, file: name -> file } */
const packages = new Map();

function packageDir(path) {
  const source = SOURCES.find((s) => path === s.module || path.startsWith(`${s.module}/`));
  return source && { source, dir: join(source.dir, path.slice(source.module.length)) };
}

function loadPackage(path) {
  if (packages.has(path)) return packages.get(path);
  const found = packageDir(path);
  const pkg = { path, types: new Map(), loaded: false };
  packages.set(path, pkg);
  if (!found) return pkg;
  let files;
  try {
    files = readdirSync(found.dir).filter((f) => f.endsWith(".go") && !f.endsWith("_test.go") && !f.startsWith("zz_generated"));
  } catch {
    return pkg;
  }
  pkg.loaded = true;
  for (const file of files) parseFile(pkg, join(found.dir, file), `${path.slice(found.source.module.length + 1)}/${file}`);
  return pkg;
}

/** Imports (alias -> path) and type declarations of one Go file. */
function parseFile(pkg, file, relative) {
  const text = readFileSync(file, "utf8");
  const imports = new Map();
  const importBlock = /^import \(([\s\S]*?)^\)/m.exec(text)?.[1] ?? "";
  const single = [...text.matchAll(/^import\s+(\w+\s+)?"([^"]+)"/gm)].map((m) => `${m[1] ?? ""}"${m[2]}"`);
  for (const line of [...importBlock.split("\n"), ...single]) {
    const m = /^\s*(\w+\s+)?"([^"]+)"/.exec(line);
    if (!m) continue;
    const alias = m[1]?.trim() ?? m[2].split("/").pop();
    imports.set(alias, m[2]);
  }
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    // `type X struct {` / `type X Y`, and the same inside `type ( ... )` blocks.
    let m = /^type\s+(\w+)\s+struct\s*\{\s*$/.exec(lines[i]) ?? /^\t(\w+)\s+struct\s*\{\s*$/.exec(inTypeBlock(lines, i) ? lines[i] : "");
    if (m) {
      const body = [];
      let depth = 1;
      for (i++; i < lines.length && depth > 0; i++) {
        depth += (lines[i].match(/\{/g) ?? []).length - (lines[i].match(/\}/g) ?? []).length;
        if (depth > 0) body.push(lines[i]);
      }
      i--;
      pkg.types.set(m[1], { kind: "struct", body, imports, file: relative });
      continue;
    }
    m = /^type\s+(\w+)\s+([^\s{=][^{]*?)\s*(\/\/.*)?$/.exec(lines[i]) ?? (inTypeBlock(lines, i) ? /^\t(\w+)\s+([^\s{=][^{]*?)\s*(\/\/.*)?$/.exec(lines[i]) : null);
    if (m && !pkg.types.has(m[1])) pkg.types.set(m[1], { kind: "alias", target: m[2].trim(), imports, file: relative });
  }
}

function inTypeBlock(lines, i) {
  for (let j = i - 1; j >= 0; j--) {
    if (/^type \($/.test(lines[j])) return true;
    if (/^\S/.test(lines[j])) return false;
  }
  return false;
}

/** The schema's name for a Go type expression seen in a package: a scalar, "[]T", "map[]T" or a struct's "pkg.Name". */
function typeOf(expr, pkg, imports, seen) {
  expr = expr.trim();
  if (expr.startsWith("*")) return typeOf(expr.slice(1), pkg, imports, seen);
  if (expr.startsWith("[]")) return expr === "[]byte" ? "string" : `[]${typeOf(expr.slice(2), pkg, imports, seen)}`;
  const map = /^map\[([^\]]+)\](.+)$/.exec(expr);
  if (map) return `map[]${typeOf(map[2], pkg, imports, seen)}`;
  if (BUILTINS[expr]) return BUILTINS[expr];
  const qualified = /^(\w+)\.(\w+)$/.exec(expr);
  const path = qualified ? imports.get(qualified[1]) : pkg.path;
  const name = qualified ? qualified[2] : expr;
  if (!path) return "any";
  const full = `${path}.${name}`;
  if (SCALARS[full]) return SCALARS[full];
  const declaration = loadPackage(path).types.get(name);
  if (!declaration) {
    unresolved.add(full);
    return "any";
  }
  if (declaration.kind === "alias") return typeOf(declaration.target, loadPackage(path), declaration.imports, seen);
  visit(full, seen);
  return full;
}

const types = {};
const unresolved = new Set();

/** Reads one struct into `types` (and every struct its fields name). */
function visit(full, seen = new Set()) {
  if (types[full] || seen.has(full)) return;
  seen.add(full);
  const dot = full.lastIndexOf(".");
  const pkg = loadPackage(full.slice(0, dot));
  const declaration = pkg.types.get(full.slice(dot + 1));
  const entry = { source: `${sourceOf(pkg.path)}/${declaration.file}`, fields: {} };
  types[full] = entry;
  let comment = [];
  for (const raw of declaration.body) {
    const line = raw.trim();
    if (line.startsWith("//")) {
      comment.push(line);
      continue;
    }
    if (line === "") {
      comment = [];
      continue;
    }
    const m = /^(?:(\w+)\s+)?([^`]+?)\s*(?:`([^`]*)`)?\s*(?:\/\/.*)?$/.exec(line);
    if (!m) continue;
    let [, goName, goType, tag = ""] = m;
    // An embedded type followed by spaces reads as a name with a blank type.
    if (goName && goType.trim() === "") [goName, goType] = [undefined, goName];
    if (!goName && !/^\*?\w+(\.\w+)?$/.test(goType.trim())) continue;
    const json = /json:"([^"]*)"/.exec(tag)?.[1];
    if (json === "-") {
      comment = [];
      continue;
    }
    const [jsonName, ...options] = (json ?? "").split(",");
    const embedded = !goName;
    if (embedded ? !jsonName : options.includes("inline")) {
      // Inlined: its fields are this struct's.
      const inner = typeOf(goType, pkg, declaration.imports, seen);
      if (types[inner]) {
        const relaxed = NOT_REQUIRED_WHEN_INLINED_IN[full]?.includes(inner);
        for (const [name, { required, ...field }] of Object.entries(types[inner].fields)) entry.fields[name] = required && !relaxed ? { ...field, required } : field;
      }
      comment = [];
      continue;
    }
    const name = jsonName || goName || goType.split(".").pop();
    const markers = comment.join("\n");
    const isStatus = name === "status";
    const type = isStatus ? "any" : typeOf(goType, pkg, declaration.imports, seen);
    const required =
      /\+required|\+kubebuilder:validation:Required/.test(markers) ||
      (!options.includes("omitempty") && !options.includes("omitzero") && !/\+optional|\+kubebuilder:default|\+default=|\+kubebuilder:validation:Optional/.test(markers) && !isStatus);
    entry.fields[name] = { type, ...(required && { required: true }) };
    comment = [];
  }
}

/** module@commit, for a package path. */
function sourceOf(path) {
  const source = SOURCES.find((s) => path === s.module || path.startsWith(`${s.module}/`));
  return `${source.module}@${source.commit}`;
}

for (const root of Object.values(KINDS)) visit(root);
// Inlined structs were visited as types of their own: keep only those a field names.
const named = new Set(Object.values(KINDS));
for (const entry of Object.values(types)) for (const field of Object.values(entry.fields)) named.add(field.type.replace(/^(\[\]|map\[\])+/, ""));
for (const key of Object.keys(types)) if (!named.has(key)) delete types[key];

process.stdout.write(
  `${JSON.stringify(
    {
      $comment:
        "Generated by deploy/test/read-api-types.mjs from the Go API types of the sources below (each type names its file): the fields JSON sees, their types and which are required. Read by e2e/tests/manifests.test.ts. Types: string, integer, number, boolean, quantity (Kubernetes' resource.Quantity: a string or a number), int-or-string, any (not checked: free-form, or from a package not read), []T, map[]T, or a struct named PACKAGE.Type.",
      sources: Object.fromEntries(SOURCES.map((s) => [s.module, s.commit])),
      kinds: KINDS,
      unresolved: [...unresolved].sort(),
      types: Object.fromEntries(Object.entries(types).sort(([a], [b]) => (a < b ? -1 : 1))),
    },
    null,
    1,
  )}\n`,
);
