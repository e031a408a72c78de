// The KServe and Kubernetes manifests (deploy/kserve, deploy/kubernetes): every field is
// one their API types define (KServe's, Kubernetes' and the Prometheus Operator's, read
// from their Go sources: deploy/test/api-types.json), required fields are there, values
// have the right types; they agree with each other, with the image (deploy/image) and
// with Coil: the container KServe wants, the ports Coil is told to serve, the metrics
// annotations, the model formats, the probes; and their arguments start a real
// `coil serve` that answers the probes' and Prometheus' paths.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { installedContext } from "../harness/context.js";
import { curl } from "../harness/curl.js";
import { fieldProblems, quantityValue, readApiTypes, readManifests, type KubeObject, type Manifest } from "../harness/manifest-check.js";
import { ROOT } from "../harness/paths.js";
import { ensureRepository } from "../harness/repository.js";
import { CoilServer } from "../harness/server.js";

const api = readApiTypes();
const folder = (name: string) => join(ROOT, "deploy", name);
const readFolder = (name: string): Manifest[] =>
  readdirSync(folder(name))
    .filter((file) => file.endsWith(".yaml"))
    .sort()
    .flatMap((file) => readManifests(join(folder(name), file)));
const KSERVE = readFolder("kserve");
const KUBERNETES = readFolder("kubernetes");

/** The image's facts, from the script that builds it. */
interface ImageSettings {
  IMAGE: string;
  USER: { uid: number };
  MODELS_DIR: string;
  HTTP_PORT: number;
  GRPC_PORT: number;
}
let image: ImageSettings;
beforeAll(async () => {
  image = (await import(pathToFileURL(join(ROOT, "deploy/image/lib/settings.mjs")).href)) as ImageSettings;
});

/** Coil's health endpoints (the Open Inference Protocol's): what probes may ask. */
const HEALTH_PATHS = ["/v2/health/live", "/v2/health/ready"];
/** Where KServe's storage initializer and model agent put models (kserve pkg/constants: DefaultModelLocalMountPath). */
const KSERVE_MODEL_DIR = "/mnt/models";
/** Coil's model names (packages/runtime/src/model-repository.ts): a TrainedModel's name is its folder's. */
const COIL_MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

// Manifests are read field by field, whatever their shape (the field check above vouches for it).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const ofKind = (manifests: Manifest[], kind: string): Obj[] => manifests.map((m) => m.object).filter((o) => o.kind === kind);
const named = (objects: Obj[], name: string): Obj => {
  const found = objects.find((o) => o["metadata"].name === name);
  if (!found) throw new Error(`no ${name} among ${objects.map((o) => o["metadata"].name).join(", ")}`);
  return found;
};

/** A flag's value in `coil serve` arguments (`--flag value` or `--flag=value`). */
function flag(args: string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name) return args[i + 1];
    if (args[i]!.startsWith(`${name}=`)) return args[i]!.slice(name.length + 1);
  }
  return undefined;
}

/** The first positional argument: the repository (flags here all take a value). */
function repositoryArg(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (!args[i]!.startsWith("--")) return args[i];
    if (!args[i]!.includes("=")) i++;
  }
  return undefined;
}

/** The arguments without the repository and the ports: the test's server gets its own. */
function otherArgs(args: string[]): string[] {
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith("--")) continue; // the repository
    const takesNext = !arg.includes("=");
    if (!["--http-port", "--grpc-port", "--host"].includes(arg.split("=")[0]!)) rest.push(arg, ...(takesNext ? [args[i + 1]!] : []));
    if (takesNext) i++;
  }
  return rest;
}

/** Does the runtime support the predictor's model format? KServe's rule (pkg/apis/serving/v1beta1/predictor_model.go,
 * RuntimeSupportsModel): "mt:<name>" or "mt:<name>:<version>" among the runtime's formats (autoSelect ones only
 * when the runtime is not named). */
function runtimeSupports(runtime: Obj, model: Obj): boolean {
  const labels = new Set<string>();
  for (const format of runtime["spec"].supportedModelFormats ?? []) {
    if (model["runtime"] === undefined && format.autoSelect !== true) continue;
    labels.add(`mt:${format.name}`);
    if (format.version !== undefined) labels.add(`mt:${format.name}:${format.version}`);
  }
  const { name, version } = model["modelFormat"];
  return labels.has(version === undefined ? `mt:${name}` : `mt:${name}:${version}`);
}

describe("every manifest has only the fields its API type defines, the required ones, of the right types", () => {
  it("reads the field sets of the API types (deploy/test/api-types.json)", () => {
    expect(Object.keys(api.sources)).toEqual(["github.com/kserve/kserve", "k8s.io/api", "k8s.io/apimachinery", "github.com/prometheus-operator/prometheus-operator"]);
    expect(Object.keys(api.types).length).toBeGreaterThan(100);
  });

  it("finds the manifests", () => {
    expect(KSERVE.map((m) => m.object.kind).sort()).toEqual(["ClusterServingRuntime", "ClusterServingRuntime", "InferenceService", "InferenceService", "InferenceService", "TrainedModel", "TrainedModel"]);
    expect(KUBERNETES.map((m) => m.object.kind).sort()).toEqual(["Deployment", "HorizontalPodAutoscaler", "Service", "ServiceMonitor"]);
  });

  it.each([...KSERVE, ...KUBERNETES].map((m) => [`${m.where} (${m.object.kind} ${m.object.metadata?.name})`, m.object] as const))("%s", (_, object) => {
    expect(fieldProblems(api, object)).toEqual([]);
  });
});

describe("the field check fails where the API server would", () => {
  const runtime = () => structuredClone(named(ofKind(KSERVE, "ClusterServingRuntime"), "coil")) as KubeObject;
  const deployment = () => structuredClone(ofKind(KUBERNETES, "Deployment")[0]!) as KubeObject;

  it("a misspelled field, at any depth", () => {
    const misspelled = runtime() as Obj;
    misspelled["spec"].supportedModelFormat = misspelled["spec"].supportedModelFormats;
    delete misspelled["spec"].supportedModelFormats;
    misspelled["spec"].containers[0].securityContext.runAsNonroot = true;
    expect(fieldProblems(api, misspelled).sort()).toEqual([
      expect.stringMatching(/^spec\.containers\[0\]\.securityContext\.runAsNonroot: unknown field: v1\.SecurityContext has .*runAsNonRoot/),
      expect.stringMatching(/^spec\.supportedModelFormat: unknown field: v1alpha1\.ServingRuntimeSpec has supportedModelFormats, /),
    ]);
    const probe = deployment() as Obj;
    probe["spec"].template.spec.containers[0].readinessProbe.httpGet.paht = "/v2/health/ready";
    expect(fieldProblems(api, probe)).toEqual([expect.stringMatching(/readinessProbe\.httpGet\.paht: unknown field: v1\.HTTPGetAction has path, port, host, scheme, httpHeaders/)]);
  });

  it("a missing required field, a wrong type, a quantity that is not one, an unknown kind", () => {
    const broken = deployment() as Obj;
    delete broken["spec"].selector;
    broken["spec"].replicas = "2";
    broken["spec"].template.spec.containers[0].resources.limits.memory = "4 GB";
    delete broken["spec"].template.spec.containers[0].name;
    expect(fieldProblems(api, broken).sort()).toEqual([
      expect.stringMatching(/^spec\.replicas: an integer expected, got "2"/),
      expect.stringMatching(/^spec\.selector: required by v1\.DeploymentSpec \(k8s\.io\/api@[0-9a-f]{40}\/apps\/v1\/types\.go\)/),
      expect.stringMatching(/^spec\.template\.spec\.containers\[0\]\.name: required by v1\.Container/),
      expect.stringMatching(/^spec\.template\.spec\.containers\[0\]\.resources\.limits\.memory: a quantity/),
    ]);
    expect(fieldProblems(api, { ...deployment(), apiVersion: "apps/v1beta1" })).toEqual([expect.stringContaining("apps/v1beta1 Deployment: not a kind")]);
  });

  it("the predictor's model spec in an InferenceService does not require the container name it inlines (KServe's CRD drops it)", () => {
    const isvc = structuredClone(named(ofKind(KSERVE, "InferenceService"), "coil-mlp")) as Obj;
    expect(isvc["spec"].predictor.model.name).toBeUndefined();
    delete isvc["spec"].predictor.model.modelFormat;
    expect(fieldProblems(api, isvc)).toEqual([expect.stringMatching(/^spec\.predictor\.model\.modelFormat: required by v1beta1\.ModelSpec/)]);
  });
});

describe("KServe: the runtimes, the InferenceServices and the TrainedModels agree with each other and with Coil", () => {
  const runtimes = ofKind(KSERVE, "ClusterServingRuntime");
  const services = ofKind(KSERVE, "InferenceService");
  const trained = ofKind(KSERVE, "TrainedModel");

  it.each(runtimes.map((r) => [r["metadata"].name, r] as const))("runtime %s: one kserve-container, serving /mnt/models on 8080 and 9000, v2 and grpc-v2", (_, runtime) => {
    const spec = runtime["spec"];
    expect(spec.containers.map((c: Obj) => c["name"])).toEqual(["kserve-container"]);
    const container = spec.containers[0];
    expect(container.image).toBe(`${image.IMAGE}:latest`);
    expect(repositoryArg(container.args)).toBe(KSERVE_MODEL_DIR);
    expect(image.MODELS_DIR).toBe(KSERVE_MODEL_DIR);
    // KServe sends REST to 8080 and gRPC to 9000 (the h2c port the InferenceServices name).
    expect(flag(container.args, "--http-port")).toBe("8080");
    expect(flag(container.args, "--grpc-port")).toBe("9000");
    expect(spec.protocolVersions).toEqual(["v2", "grpc-v2"]);
    expect(spec.supportedModelFormats.map((f: Obj) => f["name"])).toEqual(["coil", "torch-package"]);
    expect(container.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: image.USER.uid, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } });
    expect(Object.keys(container.resources.limits).sort()).toEqual(["cpu", "memory"]);
  });

  it.each(runtimes.map((r) => [r["metadata"].name, r] as const))("runtime %s: Prometheus is pointed at the port that serves /metrics", (_, runtime) => {
    const annotations = runtime["spec"].annotations;
    expect(annotations["prometheus.kserve.io/port"]).toBe(flag(runtime["spec"].containers[0].args, "--http-port"));
    expect(annotations["prometheus.kserve.io/path"]).toBe("/metrics");
  });

  it.each(services.map((s) => [s["metadata"].name, s] as const))("InferenceService %s: its runtime is here, supports its format and protocol", (_, service) => {
    const model = service["spec"].predictor.model;
    const runtime = named(runtimes, model.runtime);
    expect(runtimeSupports(runtime, model)).toBe(true);
    expect(runtime["spec"].protocolVersions).toContain(model.protocolVersion);
    const args = runtime["spec"].containers[0].args;
    if (model.protocolVersion === "grpc-v2") {
      expect(model.ports).toEqual([{ name: "h2c", containerPort: Number(flag(args, "--grpc-port")), protocol: "TCP" }]);
    }
    // With a storageUri KServe copies one model in; without, it is a multi-model host
    // (kserve IsMMSPredictor) whose agent loads models by name: that needs model control.
    if (model.storageUri === undefined) expect(flag(args, "--model-control")).toBe("explicit");
    else expect(flag(args, "--model-control")).toBeUndefined();
  });

  it("the automatic choice of a runtime for a coil model picks the single-model runtime", () => {
    const candidates = runtimes.filter((r) => runtimeSupports(r, { modelFormat: { name: "coil" } }));
    expect(candidates.map((r) => r["metadata"].name)).toEqual(["coil"]);
  });

  it.each(trained.map((t) => [t["metadata"].name, t] as const))("TrainedModel %s: a multi-model host here, a format its runtime serves, a name Coil accepts", (name, model) => {
    const host = named(services, model["spec"].inferenceService);
    expect(host["spec"].predictor.model.storageUri).toBeUndefined();
    const runtime = named(runtimes, host["spec"].predictor.model.runtime);
    expect(runtime["spec"].supportedModelFormats.map((f: Obj) => f["name"])).toContain(model["spec"].model.framework);
    expect(name).toMatch(COIL_MODEL_NAME);
  });

  it("the TrainedModels of a host fit its memory limit (KServe refuses those that do not: IsMemoryResourceAvailable)", () => {
    for (const host of services.filter((s) => s["spec"].predictor.model.storageUri === undefined)) {
      const asked = trained.filter((t) => t["spec"].inferenceService === host["metadata"].name).map((t) => quantityValue(t["spec"].model.memory));
      expect(asked.length).toBeGreaterThan(0);
      expect(asked.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(quantityValue(host["spec"].predictor.model.resources.limits.memory));
    }
  });
});

describe("Kubernetes: the Deployment, Service, HorizontalPodAutoscaler and ServiceMonitor agree with each other and with Coil", () => {
  const deployment = ofKind(KUBERNETES, "Deployment")[0]!;
  const service = ofKind(KUBERNETES, "Service")[0]!;
  const autoscaler = ofKind(KUBERNETES, "HorizontalPodAutoscaler")[0]!;
  const monitor = ofKind(KUBERNETES, "ServiceMonitor")[0]!;
  const pod = deployment["spec"].template;
  const container = pod.spec.containers[0];
  const portNamed = (name: string) => container.ports.find((p: Obj) => p["name"] === name);

  it("the Deployment selects its pods, runs the image as its non-root user, read-only, with resources", () => {
    expect(pod.metadata.labels).toMatchObject(deployment["spec"].selector.matchLabels);
    expect(container.image).toBe(`${image.IMAGE}:latest`);
    expect(pod.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: image.USER.uid });
    expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } });
    expect(Object.keys(container.resources.requests).sort()).toEqual(["cpu", "memory"]);
    expect(container.resources.limits.memory).toBeDefined();
  });

  it("the ports Coil is told to serve are the container's http and grpc ports; the repository is the mounted volume", () => {
    expect(Number(flag(container.args, "--http-port"))).toBe(portNamed("http").containerPort);
    expect(Number(flag(container.args, "--grpc-port"))).toBe(portNamed("grpc").containerPort);
    expect([portNamed("http").containerPort, portNamed("grpc").containerPort]).toEqual([image.HTTP_PORT, image.GRPC_PORT]);
    const mount = container.volumeMounts.find((m: Obj) => m["mountPath"] === repositoryArg(container.args));
    expect(pod.spec.volumes.map((v: Obj) => v["name"])).toContain(mount.name);
  });

  it("every probe asks one of Coil's health paths on its HTTP port", () => {
    const probes = ["startupProbe", "readinessProbe", "livenessProbe"].map((p) => container[p]);
    expect(probes.every(Boolean)).toBe(true);
    for (const probe of probes) {
      expect(HEALTH_PATHS).toContain(probe.httpGet.path);
      expect(probe.httpGet.port).toBe("http");
    }
    expect(container.readinessProbe.httpGet.path).toBe("/v2/health/ready");
    expect(container.livenessProbe.httpGet.path).toBe("/v2/health/live");
  });

  it("the Service selects the pods, and its ports target the container's", () => {
    expect(pod.metadata.labels).toMatchObject(service["spec"].selector);
    for (const port of service["spec"].ports) expect(portNamed(port.targetPort)).toMatchObject({ containerPort: port.port });
  });

  it("the HorizontalPodAutoscaler scales the Deployment, on a CPU the pods request", () => {
    expect(autoscaler["spec"].scaleTargetRef).toEqual({ apiVersion: deployment["apiVersion"], kind: "Deployment", name: deployment["metadata"].name });
    expect(autoscaler["spec"].minReplicas).toBeLessThanOrEqual(autoscaler["spec"].maxReplicas);
    expect(autoscaler["spec"].metrics).toEqual([expect.objectContaining({ type: "Resource", resource: expect.objectContaining({ name: "cpu" }) })]);
    expect(container.resources.requests.cpu).toBeDefined();
  });

  it("the ServiceMonitor selects the Service and scrapes /metrics on the port serving it", () => {
    expect(service["metadata"].labels).toMatchObject(monitor["spec"].selector.matchLabels);
    const [endpoint] = monitor["spec"].endpoints;
    const servicePort = service["spec"].ports.find((p: Obj) => p["name"] === endpoint.port);
    expect(servicePort.targetPort).toBe("http");
    expect(endpoint.path).toBe("/metrics");
  });
});

describe("the manifests' arguments start a real coil serve that answers the probes' and Prometheus' paths", () => {
  const commands = [
    ...ofKind(KSERVE, "ClusterServingRuntime").map((r) => [`runtime ${r["metadata"].name}`, r["spec"].containers[0].args] as const),
    ...ofKind(KUBERNETES, "Deployment").map((d) => [`deployment ${d["metadata"].name}`, d["spec"].template.spec.containers[0].args] as const),
  ];
  const probePaths = ofKind(KUBERNETES, "Deployment").flatMap((d) =>
    ["startupProbe", "readinessProbe", "livenessProbe"].map((p) => d["spec"].template.spec.containers[0][p].httpGet.path as string),
  );
  const metricsPaths = ofKind(KSERVE, "ClusterServingRuntime").map((r) => r["spec"].annotations["prometheus.kserve.io/path"] as string);

  describe.each(commands)("%s", (name, args) => {
    let server: CoilServer;
    beforeAll(async () => {
      const context = installedContext();
      const repository = await ensureRepository(context, ["mlp"]);
      server = await CoilServer.start(context, { name: `manifest-${name.replace(/\W+/g, "-")}`, repository, args: otherArgs(args) });
    });
    afterAll(async () => {
      await server?.stop();
    });

    it.each([...new Set(probePaths)])("GET %s: 200", async (path) => {
      expect((await curl(`${server.base}${path}`)).status).toBe(200);
    });

    it.each([...new Set(metricsPaths)])("GET %s: Prometheus' text format", async (path) => {
      const response = await curl(`${server.base}${path}`);
      expect(response.status).toBe(200);
      expect(response.body.toString()).toMatch(/^# TYPE coil_/m);
    });
  });
});
