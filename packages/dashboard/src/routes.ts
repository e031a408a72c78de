import type { InferenceService } from "@coil/core";
import type { FastifyPluginAsync, FastifyReply } from "fastify";

import type { PageFile } from "./page-files.js";
import { readDashboardStatus } from "./status.js";

/** Where the page is served on the HTTP port. */
export const DASHBOARD_PATH = "/dashboard";

/**
 * The dashboard's routes on the HTTP adapter's app: the page's files, and the status
 * feed the page polls. The files are the same for everyone and hold no data, so they
 * need no token (access "health": a browser cannot put a bearer token on a page it
 * navigates to); the feed is "metadata", the access of /metrics whose figures it
 * shows, so it needs the token exactly when /metrics does (--auth-inference), and the
 * page sends it.
 */
export function dashboardRoutes(page: ReadonlyMap<string, PageFile>, service: () => InferenceService): FastifyPluginAsync {
  return async (app) => {
    const open = { config: { access: "health" as const } };
    const send = (reply: FastifyReply, file: PageFile) => reply.type(file.type).header("cache-control", "no-cache").send(file.body);
    // The page's asset URLs are relative: it must be loaded as /dashboard/.
    app.get(DASHBOARD_PATH, open, async (_request, reply) => reply.redirect(`${DASHBOARD_PATH}/`));
    app.get(`${DASHBOARD_PATH}/status`, { config: { access: "metadata" } }, async (_request, reply) =>
      reply.header("cache-control", "no-store").send(readDashboardStatus(service())),
    );
    app.get(`${DASHBOARD_PATH}/*`, open, async (request, reply) => {
      const path = (request.params as { "*": string })["*"] || "index.html";
      const file = page.get(path);
      if (!file) return reply.code(404).type("application/json").send(JSON.stringify({ error: `no dashboard file ${path}` }));
      return send(reply, file);
    });
  };
}
