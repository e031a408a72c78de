import type { DashboardStatus, InterpreterStatus, ModelStatus } from "../src/status-types.js";
import { drawChart, drawLegend, type Series } from "./chart.js";
import { HISTORY_MS, History, histogramIncrease, histogramSum, increase, quantile } from "./history.js";

/** How often the page polls the feed. */
const POLL_MS = 1000;
/** The window the tables' rates and percentiles are taken over. */
const WINDOW_MS = 5000;
const TOKEN_KEY = "coil-dashboard-token";
const COLOURS = ["#3b7dd8", "#2f8f4e", "#b7791f", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d"];

const $ = <T extends Element = HTMLElement>(selector: string) => document.querySelector<T>(selector)!;

const history = new History();
/** Chart points, computed once per poll: throughput per model and in all, latency quantiles. */
const throughput = new Map<string, [number, number][]>();
const latency = { p50: [] as [number, number][], p99: [] as [number, number][] };

async function poll(): Promise<void> {
  const token = sessionStorage.getItem(TOKEN_KEY);
  try {
    const response = await fetch("status", { cache: "no-store", headers: token ? { authorization: `Bearer ${token}` } : {} });
    if (response.status === 401) {
      $("#token-form").hidden = false;
      problem(token ? "the token was refused" : "");
      return;
    }
    if (!response.ok) throw new Error(`${response.status} ${(await response.text()).slice(0, 200)}`);
    $("#token-form").hidden = true;
    problem("");
    const status = (await response.json()) as DashboardStatus;
    history.add(status);
    record(status);
    render(status);
  } catch (error) {
    problem(`the server did not answer: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function problem(text: string): void {
  const node = $("#problem");
  node.hidden = text === "";
  node.textContent = text;
}

const modelKey = (m: Pick<ModelStatus, "name" | "version">) => `${m.name} v${m.version}`;
const answered = (m: ModelStatus) => Object.values(m.requests).reduce((a, b) => a + b, 0);
const errors = (m: ModelStatus) => Object.entries(m.requests).reduce((sum, [outcome, n]) => sum + (outcome === "success" ? 0 : n), 0);
const interpreterKey = (i: InterpreterStatus) => `${i.worker ?? ""}/${i.interpreter}/${i.group}`;

/** Adds this poll's points to the charts' series: rates and quantiles over the last
 * WINDOW_MS (a moving window: the tables show the same figures). */
function record(status: DashboardStatus): void {
  const oldest = status.time - HISTORY_MS;
  const push = (points: [number, number][], value: number) => {
    points.push([status.time, value]);
    while (points.length > 0 && points[0]![0] < oldest) points.shift();
  };
  const previous = history.before(WINDOW_MS);
  if (previous && previous !== status) {
    const seconds = (status.time - previous.time) / 1000;
    let total = 0;
    for (const model of status.models) {
      const before = previous.models.find((m) => m.name === model.name && m.version === model.version);
      const rate = increase(before && answered(before), answered(model)) / seconds;
      total += rate;
      let points = throughput.get(modelKey(model));
      if (!points) throughput.set(modelKey(model), (points = []));
      push(points, rate);
    }
    let all = throughput.get("all");
    if (!all) throughput.set("all", (all = []));
    push(all, total);
  }
  const window = windowed(status, (m) => m.requestSeconds);
  const p50 = quantile(0.5, window);
  const p99 = quantile(0.99, window);
  if (p50 !== undefined) push(latency.p50, p50 * 1000);
  if (p99 !== undefined) push(latency.p99, p99 * 1000);
}

/** Every model's histogram increase over the last WINDOW_MS, added together. */
function windowed(status: DashboardStatus, pick: (m: ModelStatus) => ModelStatus["requestSeconds"]) {
  const before = history.before(WINDOW_MS);
  return histogramSum(
    status.models.map((m) => {
      const old = before?.models.find((o) => o.name === m.name && o.version === m.version);
      return before === status ? pick(m) : histogramIncrease(old && pick(old), pick(m));
    }),
  );
}

function render(status: DashboardStatus): void {
  $("#server").textContent = `${status.server.name} ${status.server.version}`;
  const ready = $("#ready");
  ready.textContent = status.server.ready ? "ready" : "not ready";
  ready.className = `badge ${status.server.ready ? "ready" : "not-ready"}`;
  $("#updated").textContent = `updated ${new Date(status.time).toLocaleTimeString()}`;

  const all = throughput.get("all") ?? [];
  $("#throughput-now").textContent = all.length > 0 ? formatRate(all.at(-1)![1]) : "–";
  $("#p50-now").textContent = latency.p50.length > 0 ? formatMs(latency.p50.at(-1)![1]) : "–";
  $("#p99-now").textContent = latency.p99.length > 0 ? formatMs(latency.p99.at(-1)![1]) : "–";
  // "all" only says something with several models.
  const lines = [...throughput].filter(([name]) => name !== "all" || throughput.size > 2);
  const throughputSeries: Series[] = lines.map(([name, points], i) => ({
    name,
    points,
    colour: name === "all" ? "#1d232b" : COLOURS[i % COLOURS.length]!,
  }));
  // The charts span what the page has seen, from one minute up to HISTORY_MS.
  const first = history.statuses[0]?.time ?? status.time;
  const span = Math.min(HISTORY_MS, Math.max(60_000, status.time - first));
  drawChart($<SVGSVGElement>("#throughput-chart"), throughputSeries, status.time, span, formatRate);
  drawLegend($("#throughput-legend"), throughputSeries);
  const latencySeries: Series[] = [
    { name: "p50", colour: COLOURS[0]!, points: latency.p50 },
    { name: "p99", colour: COLOURS[4]!, points: latency.p99 },
  ];
  drawChart($<SVGSVGElement>("#latency-chart"), latencySeries, status.time, span, formatMs);
  drawLegend($("#latency-legend"), latencySeries);

  renderModels(status);
  renderInterpreters(status);
  renderWorkers(status);
}

function renderModels(status: DashboardStatus): void {
  const before = history.before(WINDOW_MS);
  const seconds = before && before !== status ? (status.time - before.time) / 1000 : undefined;
  const rows = status.models.map((m) => {
    const old = before === status ? undefined : before?.models.find((o) => o.name === m.name && o.version === m.version);
    const requests = histogramIncrease(old?.requestSeconds, m.requestSeconds);
    const queue = histogramIncrease(old?.queueSeconds, m.queueSeconds);
    const rate = (value: number, was: number | undefined) => (seconds ? formatRate(increase(was, value) / seconds) : "–");
    const batches = increase(old?.batches, m.batches);
    const row = tableRow([
      m.name,
      m.version,
      m.reason ? `${m.state}: ${m.reason}` : m.state,
      m.accelerator ? `${m.accelerator.name}${m.accelerator.active ? "" : " (eager)"}` : "eager",
      rate(answered(m), old && answered(old)),
      rate(errors(m), old && errors(old)),
      formatSeconds(quantile(0.5, requests)),
      formatSeconds(quantile(0.99, requests)),
      String(m.pending),
      formatSeconds(quantile(0.99, queue)),
      String(m.refused),
      batches > 0 ? (increase(old?.rows, m.rows) / batches).toFixed(1) : "–",
      formatBytes(m.heapBytes),
      formatBytes(m.archiveBytes),
    ]);
    row.dataset.model = m.name;
    row.dataset.version = m.version;
    row.children[2]!.className = `state-${m.state}`;
    return row;
  });
  $("#models tbody").replaceChildren(...rows);
}

/** Each interpreter's busy fraction over the last WINDOW_MS (none before two polls). */
function busyFractions(status: DashboardStatus): Map<string, number> {
  const before = history.before(WINDOW_MS);
  const busy = new Map<string, number>();
  if (!before || before === status) return busy;
  const seconds = (status.time - before.time) / 1000;
  for (const i of status.interpreters) {
    const old = before.interpreters.find((o) => interpreterKey(o) === interpreterKey(i));
    busy.set(interpreterKey(i), Math.min(1, increase(old?.busySeconds, i.busySeconds) / seconds));
  }
  return busy;
}

function renderInterpreters(status: DashboardStatus): void {
  const fractions = busyFractions(status);
  const rows = status.interpreters.map((i) => {
    const busy = fractions.get(interpreterKey(i));
    const row = tableRow([i.worker ?? "–", i.interpreter, i.group, "", String(i.load), i.stuck ? "stuck" : "no", formatBytes(i.heapBytes)]);
    row.children[3]!.replaceChildren(bar(busy));
    if (i.stuck) row.children[5]!.className = "stuck";
    row.dataset.interpreter = i.interpreter;
    row.dataset.busy = busy === undefined ? "" : busy.toFixed(3);
    return row;
  });
  $("#interpreters tbody").replaceChildren(...rows);
}

function renderWorkers(status: DashboardStatus): void {
  const workers = status.workers;
  if (!workers) {
    $("#workers-summary").textContent = "one process (no --workers)";
    $("#workers").hidden = true;
    return;
  }
  $("#workers").hidden = false;
  const restarts = Object.entries(workers.restarts).map(([reason, n]) => `${reason} ${n}`).join(", ") || "none";
  $("#workers-summary").textContent = `${workers.alive} of ${workers.configured} alive · given up ${workers.givenUp} · restarts: ${restarts}`;
  const fractions = busyFractions(status);
  const rows = Object.entries(workers.residentBytes).map(([slot, bytes]) => {
    const mine = status.interpreters.filter((i) => i.worker === slot);
    const busy = mine.map((i) => fractions.get(interpreterKey(i))).filter((f): f is number => f !== undefined);
    const row = tableRow([slot, formatBytes(bytes), String(mine.length), "", String(mine.reduce((sum, i) => sum + i.load, 0))]);
    row.children[3]!.replaceChildren(bar(busy.length > 0 ? busy.reduce((a, b) => a + b, 0) / busy.length : undefined));
    row.dataset.worker = slot;
    return row;
  });
  $("#workers tbody").replaceChildren(...rows);
}

function tableRow(cells: readonly string[]): HTMLTableRowElement {
  const row = document.createElement("tr");
  for (const text of cells) {
    const cell = document.createElement("td");
    cell.textContent = text;
    row.append(cell);
  }
  return row;
}

function bar(fraction: number | undefined): Node {
  const wrapper = document.createElement("span");
  const outer = document.createElement("span");
  outer.className = "bar";
  const inner = document.createElement("span");
  inner.style.width = `${Math.round((fraction ?? 0) * 100)}%`;
  outer.append(inner);
  wrapper.append(outer, fraction === undefined ? "–" : `${Math.round(fraction * 100)}%`);
  return wrapper;
}

function formatRate(perSecond: number): string {
  return perSecond >= 100 ? perSecond.toFixed(0) : perSecond.toFixed(1);
}

function formatMs(ms: number): string {
  return ms >= 10 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(2)} ms`;
}

function formatSeconds(seconds: number | undefined): string {
  return seconds === undefined ? "–" : formatMs(seconds * 1000);
}

function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) return "–";
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  return bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

$<HTMLFormElement>("#token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $<HTMLInputElement>("#token").value.trim());
  void poll();
});

// One poll at a time: a slow answer delays the next instead of piling requests up.
async function loop(): Promise<void> {
  const started = Date.now();
  await poll();
  setTimeout(() => void loop(), Math.max(0, POLL_MS - (Date.now() - started)));
}
void loop();
