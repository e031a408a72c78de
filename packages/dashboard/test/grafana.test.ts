import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { beforeAll, describe, expect, inject, it } from "vitest";

import { inferRanker, rankerRepository, startServe, stopServe } from "./coil-server.js";

const DASHBOARD_FILE = resolve(dirname(fileURLToPath(import.meta.url)), "../../../deploy/grafana/coil.json");
const PYTHON = inject("testPython");

/*
 * Grafana's dashboard JSON model (the "Classic" model that Grafana's import takes and
 * grafana.com's dashboards use), as grafana/grafana defines it in
 * kinds/dashboard/dashboard_kind.cue (kind "Dashboard", lineage schema 0.0): the
 * dashboard's fields, #Panel, #RowPanel, #GridPos, #FieldConfigSource, #VariableModel,
 * #VariableType, #VariableHide, #DashboardCursorSync, #AnnotationQuery, #DataSourceRef.
 * Below, each set or rule names the CUE definition it encodes. Grafana's import also
 * takes the exporter's __inputs/__requires/__elements, which this file does not use.
 */

/** The dashboard's fields (the kind's spec). */
const DASHBOARD_FIELDS = new Set([
  "id", "uid", "title", "description", "revision", "gnetId", "tags", "style", "timezone", "editable", "graphTooltip",
  "time", "timepicker", "fiscalYearStartMonth", "liveNow", "weekStart", "refresh", "schemaVersion", "version",
  "panels", "templating", "annotations", "links", "snapshot",
]);
/** #Panel's fields. */
const PANEL_FIELDS = new Set([
  "type", "id", "pluginVersion", "tags", "targets", "title", "description", "transparent", "datasource", "gridPos",
  "links", "repeat", "repeatDirection", "repeatPanelId", "maxDataPoints", "thresholds", "timeRegions",
  "transformations", "interval", "timeFrom", "timeShift", "libraryPanel", "options", "fieldConfig",
]);
/** #RowPanel's fields. */
const ROW_FIELDS = new Set(["type", "collapsed", "title", "datasource", "gridPos", "id", "panels", "repeat"]);
/** #FieldConfig's fields (fieldConfig.defaults). */
const FIELD_CONFIG_FIELDS = new Set([
  "displayName", "displayNameFromDS", "description", "path", "writeable", "filterable", "unit", "decimals", "min", "max",
  "mappings", "thresholds", "color", "links", "noValue", "custom",
]);
/** #VariableType. */
const VARIABLE_TYPES = new Set(["query", "adhoc", "constant", "datasource", "interval", "textbox", "custom", "system"]);
/** Panel plugins built into Grafana that this dashboard may use (#Panel.type is a plugin id). */
const CORE_PANEL_TYPES = new Set(["row", "timeseries", "stat", "table", "heatmap", "gauge", "bargauge", "text"]);

type Json = Record<string, unknown>;
const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, "utf8")) as Json;
const topPanels = dashboard.panels as Json[];
/** Every panel, those inside rows too. */
const allPanels = topPanels.flatMap((p) => [p, ...((p.panels as Json[] | undefined) ?? [])]);
const queryPanels = allPanels.filter((p) => p.type !== "row");
const variables = (dashboard.templating as { list: Json[] }).list;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const unknownKeys = (object: Json, known: Set<string>) => Object.keys(object).filter((k) => !known.has(k));
/** Every PromQL expression: the panels' targets and the query variables'. */
function expressions(): { where: string; expr: string }[] {
  const fromPanels = queryPanels.flatMap((p) => (p.targets as Json[]).map((t) => ({ where: `panel "${String(p.title)}" ${String(t.refId)}`, expr: t.expr as string })));
  const fromVariables = variables
    .filter((v) => v.type === "query")
    .map((v) => ({ where: `variable ${String(v.name)}`, expr: (isObject(v.query) ? v.query.query : v.query) as string }));
  return [...fromPanels, ...fromVariables];
}

describe("deploy/grafana/coil.json: Grafana's dashboard JSON model", () => {
  it("has the dashboard's fields, with the types the kind gives them", () => {
    expect(unknownKeys(dashboard, DASHBOARD_FIELDS)).toEqual([]);
    expect(dashboard.title).toEqual(expect.any(String));
    // uid: "string (8-40)", and Grafana keeps it to URL-safe characters.
    expect(dashboard.uid).toMatch(/^[A-Za-z0-9_-]{8,40}$/);
    expect(Number.isInteger(dashboard.schemaVersion) && (dashboard.schemaVersion as number) >= 0 && (dashboard.schemaVersion as number) < 65536).toBe(true);
    expect(typeof dashboard.editable).toBe("boolean");
    expect([0, 1, 2]).toContain(dashboard.graphTooltip); // #DashboardCursorSync
    expect(dashboard.time).toEqual({ from: expect.any(String), to: expect.any(String) });
    expect(typeof dashboard.refresh === "string" || dashboard.refresh === false).toBe(true);
    expect((dashboard.tags as unknown[]).every((t) => typeof t === "string")).toBe(true);
  });

  it("has variables and annotations as #VariableModel and #AnnotationQuery define them", () => {
    for (const v of variables) {
      expect(VARIABLE_TYPES.has(v.type as string), `variable type ${String(v.type)}`).toBe(true);
      expect(v.name).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/);
      expect([0, 1, 2]).toContain(v.hide); // #VariableHide
      if (v.datasource !== undefined) expect(unknownKeys(v.datasource as Json, new Set(["type", "uid"]))).toEqual([]); // #DataSourceRef
    }
    expect(new Set(variables.map((v) => v.name)).size).toBe(variables.length);
    for (const a of (dashboard.annotations as { list: Json[] }).list) {
      expect(a).toMatchObject({ name: expect.any(String), enable: expect.any(Boolean), iconColor: expect.any(String), datasource: expect.any(Object) });
    }
  });

  it("has panels as #Panel and #RowPanel define them, laid out on the 24-column grid without overlapping", () => {
    const ids = allPanels.map((p) => p.id);
    expect(ids.every((id) => Number.isInteger(id) && (id as number) > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const panel of allPanels) {
      const name = `panel ${String(panel.id)} "${String(panel.title)}"`;
      expect(CORE_PANEL_TYPES.has(panel.type as string), `${name}: type ${String(panel.type)}`).toBe(true);
      expect(unknownKeys(panel, panel.type === "row" ? ROW_FIELDS : PANEL_FIELDS), name).toEqual([]);
      // #GridPos: h > 0, 0 < w <= 24, 0 <= x < 24, y >= 0 (integers); the panel within the 24 columns.
      const { h, w, x, y, ...rest } = panel.gridPos as Record<string, number>;
      expect(rest, name).toEqual({});
      expect([h, w, x, y].every(Number.isInteger) && h! > 0 && w! > 0 && w! <= 24 && x! >= 0 && x! < 24 && y! >= 0 && x! + w! <= 24, name).toBe(true);
      for (let row = y!; row < y! + h!; row++) {
        for (let column = x!; column < x! + w!; column++) {
          expect(cells.has(`${row},${column}`), `${name} overlaps another panel at row ${row}, column ${column}`).toBe(false);
          cells.add(`${row},${column}`);
        }
      }
      if (panel.type === "row") {
        expect(typeof panel.collapsed).toBe("boolean");
        expect(Array.isArray(panel.panels)).toBe(true);
        continue;
      }
      // #Panel requires options, fieldConfig (#FieldConfigSource) and transformations.
      expect(isObject(panel.options), name).toBe(true);
      expect(Array.isArray(panel.transformations), name).toBe(true);
      const fieldConfig = panel.fieldConfig as Json;
      expect(isObject(fieldConfig.defaults) && Array.isArray(fieldConfig.overrides), name).toBe(true);
      expect(unknownKeys(fieldConfig.defaults as Json, FIELD_CONFIG_FIELDS), name).toEqual([]);
      // Prometheus queries through the dashboard's datasource variable.
      expect(panel.datasource, name).toEqual({ type: "prometheus", uid: "${datasource}" });
      const targets = panel.targets as Json[];
      expect(targets.length, name).toBeGreaterThan(0);
      expect(new Set(targets.map((t) => t.refId)).size, `${name}: refIds`).toBe(targets.length);
      for (const target of targets) {
        expect(target.expr, name).toEqual(expect.any(String));
        expect(target.datasource, name).toEqual(panel.datasource);
      }
    }
    expect(variables).toContainEqual(expect.objectContaining({ type: "datasource", name: "datasource", query: "prometheus" }));
  });
});

describe("deploy/grafana/coil.json: every query names what coil serve exports", () => {
  /** Family name -> its type and the labels its samples carry, from a real server's /metrics. */
  const families = new Map<string, { type: string; labels: Set<string>; samples: number }>();

  beforeAll(async () => {
    const repo = await rankerRepository(PYTHON);
    // --workers 1: the primary's worker series too, and the worker label. --accelerate
    // compile: coil_model_accelerator has a sample (with its labels) only for a model
    // given an accelerator (on torch 1.13 it serves eager, active="false").
    const server = startServe([
      "serve", repo, "--python", PYTHON, "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "-1", "--instances", "1", "--workers", "1",
      "--accelerate", "compile",
    ]);
    try {
      const serving = await server.serving;
      const base = `http://127.0.0.1:${serving.http as number}`;
      // A worker killed and replaced: coil_worker_restarts_total gets a sample (reason="SIGKILL").
      const workerServing = () => server.logs.find((l) => l.msg === "serving" && l.worker !== undefined);
      for (let tries = 0; tries < 40 && !workerServing(); tries++) await new Promise((r) => setTimeout(r, 250));
      process.kill(workerServing()!.pid as number, "SIGKILL");
      let text = "";
      const metrics = async () => (text = await (await fetch(`${base}/metrics`).catch(() => undefined))?.text() ?? "");
      const replaced = () => /^coil_worker_restarts_total\{/m.test(text) && /^coil_workers_alive 1$/m.test(text);
      for (let tries = 0; tries < 240 && !replaced(); tries++) {
        await new Promise((r) => setTimeout(r, 250));
        await metrics();
      }
      expect(replaced()).toBe(true);
      for (let i = 0; i < 5; i++) expect((await inferRanker(base)).status).toBe(200);
      // The primary's series arrive with its status rounds.
      for (let tries = 0; tries < 40 && !/^coil_worker_resident_bytes\{/m.test(await metrics()); tries++) {
        await new Promise((r) => setTimeout(r, 250));
      }
      for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.set(name!, { type: type!, labels: new Set(), samples: 0 });
      for (const [, name, labels = ""] of text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? /gm)) {
        const family = families.get(name!) ?? families.get(name!.replace(/_(bucket|sum|count)$/, ""));
        if (!family) continue;
        family.samples++;
        for (const [, label] of labels.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) family.labels.add(label!);
      }
    } finally {
      await stopServe(server);
    }
  }, 180_000);

  /** The exported series a name in a query stands for (a histogram's _bucket, _sum, _count included). */
  const familyOf = (metric: string) => {
    const direct = families.get(metric);
    if (direct) return direct;
    const base = families.get(metric.replace(/_(bucket|sum|count)$/, ""));
    return base?.type === "histogram" ? base : undefined;
  };

  it("names only metrics and labels coil serve exports, and shows every metric it exports", () => {
    expect(families.size).toBeGreaterThan(10);
    const shown = new Set<string>();
    /** Metrics whose labels this server cannot show: no sample of them. */
    const unsampled = new Set<string>();
    for (const { where, expr } of expressions()) {
      const metrics = [...new Set(expr.match(/\bcoil_[a-zA-Z0-9_:]*/g) ?? [])];
      expect(metrics.length, `${where} names no Coil metric: ${expr}`).toBeGreaterThan(0);
      const labels = new Set<string>(["le"]);
      for (const metric of metrics) {
        const family = familyOf(metric);
        expect(family, `${where}: ${metric} is not in coil serve's /metrics`).toBeDefined();
        for (const label of family!.labels) labels.add(label);
        shown.add(metric.replace(/_(bucket|sum|count)$/, ""));
        if (family!.samples === 0) unsampled.add(metric);
      }
      // Labels grouped by (by/without) or matched ({label="..."}) are labels those metrics carry.
      const used = [
        ...[...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(",").map((l) => l.trim()).filter((l) => l !== "")),
        ...[...expr.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"/g)].map((m) => m[1]!),
      ];
      if (metrics.every((m) => unsampled.has(m))) continue;
      for (const label of used) expect(labels.has(label), `${where}: label ${label} is not on ${metrics.join(", ")}`).toBe(true);
    }
    // Counted only for a model whose accelerated form is active (torch 2.x), unlike every
    // other series here, which this server shows with its labels.
    expect([...unsampled].filter((m) => m !== "coil_model_accelerator_fallback_calls_total")).toEqual([]);
    const coil = [...families.keys()].filter((name) => name.startsWith("coil_"));
    expect(coil.filter((name) => !shown.has(name)), "metrics coil serve exports that no panel shows").toEqual([]);
  });
});
