import { isLoopbackHost } from "@coil/dashboard";
import { CoilError } from "@coil/errors";
import { pino, type Logger } from "pino";

import { createRuntime, type Runtime, type RuntimeConfig } from "./create-runtime.js";
import type { PluginEntry } from "./plugins.js";

export interface ServeOptions extends Omit<RuntimeConfig, "plugins" | "logger"> {
  host?: string;
  /** 0 picks a free port; null turns the protocol off. Defaults 8000 and 8001, as Triton. */
  httpPort?: number | null;
  grpcPort?: number | null;
  /** The backend plugin: a name ("cpu", the default, or "cuda": the package
   * @coil/backend-<name>) or a module name or path. */
  backend?: string;
  /** More plugins, after the defaults (so they may override them). */
  plugins?: readonly PluginEntry[];
  logger?: Logger;
  /** HTTPS and gRPC over TLS with this certificate chain and key (PEM). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** The live status page at /dashboard on the HTTP port (@coil/dashboard); off by default. */
  dashboard?: boolean;
  /** HTTP request limits (see @coil/adapter-http's options). */
  bodyTimeoutMs?: number;
  maxPendingBodyBytes?: number;
  maxResponseBytes?: number;
}

export interface Server {
  runtime: Runtime;
  httpPort: number | undefined;
  grpcPort: number | undefined;
  /** Stops accepting, finishes requests in flight, unloads the models. */
  shutdown(): Promise<void>;
}

/**
 * `coil serve`: the default plugins — a backend, the Open Inference Protocol over HTTP
 * and gRPC, configured from the options — then the user's plugins.
 */
export function servePlugins(options: Pick<ServeOptions, "host" | "httpPort" | "grpcPort" | "backend" | "plugins" | HttpLimit | "tls" | "dashboard">): PluginEntry[] {
  const { host = "0.0.0.0", httpPort = 8000, grpcPort = 8001, backend = "cpu", plugins = [], tls, dashboard = false } = options;
  if (dashboard && httpPort === null) throw new CoilError("INVALID_ARGUMENT", "the dashboard is served on the HTTP port, which is off (--http-port -1)");
  const limits = Object.fromEntries(HTTP_LIMITS.filter((key) => options[key] !== undefined).map((key) => [key, options[key]]));
  return [
    /^[a-z0-9-]+$/.test(backend) ? `@coil/backend-${backend}` : backend,
    ...(httpPort !== null ? [{ module: "@coil/adapter-http", options: { host, port: httpPort, ...limits, ...(tls && { tls }) } }] : []),
    ...(grpcPort !== null ? [{ module: "@coil/adapter-grpc", options: { host, port: grpcPort, ...(tls && { tls }) } }] : []),
    // Its routes go on the HTTP adapter's port; it checks its exposure when that starts.
    ...(dashboard ? ["@coil/dashboard"] : []),
    ...plugins,
  ];
}

const HTTP_LIMITS = ["bodyTimeoutMs", "maxPendingBodyBytes", "maxResponseBytes"] as const;
type HttpLimit = (typeof HTTP_LIMITS)[number];

export async function serve(options: ServeOptions): Promise<Server> {
  const log = options.logger ?? pino({ name: "coil" });
  const { host, httpPort, grpcPort, backend, plugins, logger: _logger, tls, bodyTimeoutMs, maxPendingBodyBytes, maxResponseBytes, dashboard, ...config } = options;
  const started = performance.now();
  const adapters = { host, httpPort, grpcPort, backend, plugins, tls, bodyTimeoutMs, maxPendingBodyBytes, maxResponseBytes, dashboard };
  const runtime = await createRuntime({ ...config, logger: log, plugins: servePlugins(adapters) });
  if (config.access?.token !== undefined && !tls && !isLoopbackHost(host ?? "0.0.0.0")) {
    log.warn({ host: host ?? "0.0.0.0" }, "a bearer token is set but TLS is not: the token crosses the network in clear text (--tls-cert/--tls-key)");
  }
  for (const entry of runtime.service.modelIndex()) {
    const accelerator = entry.state === "READY" ? runtime.service.model(entry.name, entry.version).parameters : undefined;
    if (entry.state === "READY") log.info({ model: entry.name, version: entry.version, ...accelerator }, "model ready");
    else log.warn({ model: entry.name, version: entry.version, reason: entry.reason }, "model unavailable");
  }
  const portOf = (name: string) => {
    const url = runtime.adapters.find((a) => a.name === name)?.url;
    return url === undefined ? undefined : Number(new URL(url).port);
  };
  const groups = runtime.groups.list();
  const info = groups.find((g) => g.pool)?.pool?.backendInfo[0];
  log.info(
    {
      http: portOf("http"),
      grpc: portOf("grpc"),
      adapters: runtime.adapters.map((a) => ({ name: a.name, ...(a.url !== undefined && { url: a.url }) })),
      interpreters: runtime.interpreters.length,
      // Interpreters per model group (a model's own, or a shared group's).
      groups: Object.fromEntries(groups.map((g) => [g.name, { interpreters: g.size, models: [...new Set(g.models)] }])),
      backend: info?.backend,
      python: info?.python,
      torch: info?.torch,
      // The security posture, so that an operator sees it at a glance (docs/security.md).
      modelControl: config.access?.modelControl ?? "none",
      token: config.access?.token !== undefined,
      authInference: config.access?.authInference ?? false,
      tls: tls !== undefined,
      ...(dashboard && { dashboard: `${runtime.adapters.find((a) => a.name === "http")?.url}/dashboard/` }),
      startupMs: Math.round(performance.now() - started),
      nodeFlags: process.execArgv,
    },
    "serving",
  );
  return {
    runtime,
    httpPort: portOf("http"),
    grpcPort: portOf("grpc"),
    shutdown: async () => {
      log.info("shutting down: finishing requests in flight");
      await runtime.close();
      log.info("stopped");
    },
  };
}
