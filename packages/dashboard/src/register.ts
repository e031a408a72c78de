import { ACCESS_CONTROL, TOKENS, type AccessControl } from "@coil/core";
import { HTTP_ADAPTER_OPTIONS, HTTP_ROUTES } from "@coil/adapter-http";
import { CoilError, isCoilError } from "@coil/errors";
import type { FastifyPluginAsync } from "fastify";
import type { DependencyContainer } from "tsyringe";

import { checkDashboardExposure } from "./exposure.js";
import { readPageFiles } from "./page-files.js";
import { dashboardRoutes } from "./routes.js";

/**
 * The plugin: the dashboard's routes (the page at /dashboard/, its status feed at
 * /dashboard/status) added to the HTTP adapter's port through HTTP_ROUTES. When the
 * adapter starts, the exposure rule is checked against its host and the container's
 * access control (checkDashboardExposure): refused, the start-up stops.
 */
export function registerDashboard(container: DependencyContainer, options: Record<string, never> = {}): DependencyContainer {
  if (options !== null && typeof options === "object" && Object.keys(options).length > 0) {
    throw new CoilError("INVALID_ARGUMENT", `@coil/dashboard takes no options, got ${JSON.stringify(options)}`);
  }
  // Read now, so that an unbuilt page stops the start-up before any model loads.
  const page = readPageFiles();
  const routes: FastifyPluginAsync = async (app, options) => {
    const host = container.isRegistered(HTTP_ADAPTER_OPTIONS, true) ? (container.resolve(HTTP_ADAPTER_OPTIONS).host ?? "0.0.0.0") : "0.0.0.0";
    const access = container.isRegistered(ACCESS_CONTROL, true) ? container.resolve(ACCESS_CONTROL) : undefined;
    checkDashboardExposure({ host, metadataNeedsToken: access !== undefined && refusesAnonymousMetadata(access) });
    const service = container.resolve(TOKENS.InferenceService);
    await dashboardRoutes(page, () => service).call(app, app, options);
  };
  container.register(HTTP_ROUTES, { useValue: routes });
  return container;
}

/** Asks the policy itself whether a client without a token may read metadata: the
 * rule the adapter applies to the feed, whatever policy a plugin registered. */
function refusesAnonymousMetadata(access: AccessControl): boolean {
  try {
    access.authorize({ kind: "metadata", authorization: undefined, remote: "dashboard exposure check", protocol: "http" });
    return false;
  } catch (error) {
    return isCoilError(error, "UNAUTHENTICATED") || isCoilError(error, "PERMISSION_DENIED");
  }
}
