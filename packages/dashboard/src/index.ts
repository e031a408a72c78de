/** @coil/dashboard — Coil's live status page and its status feed, served on the HTTP port. */
import "reflect-metadata";

export { checkDashboardExposure, isLoopbackHost, type DashboardExposure } from "./exposure.js";
export { parseExposition, type ParsedSample } from "./exposition-parser.js";
export { PAGE_DIR, readPageFiles, type PageFile } from "./page-files.js";
export { DASHBOARD_PATH, dashboardRoutes } from "./routes.js";
export { readDashboardStatus } from "./status.js";
export type { DashboardStatus, HistogramTotals, InterpreterStatus, ModelStatus, WorkersStatus } from "./status-types.js";
/** The plugin (default export): `coil serve --dashboard` adds it after the HTTP adapter. */
export { registerDashboard, registerDashboard as default } from "./register.js";
