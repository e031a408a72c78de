/** One line of a chart: its name, colour and points (ms since the epoch, value). */
export interface Series {
  name: string;
  colour: string;
  points: [time: number, value: number][];
}

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 180;
const LEFT = 58;
const TOP = 10;
const BOTTOM = 16;

/**
 * Draws line charts into an SVG (viewBox 600x180) over the last `spanMs`: a few
 * horizontal grid lines labelled with `format`, one polyline per series. Plain SVG, so
 * the page needs no chart library and nothing from a CDN.
 */
export function drawChart(svg: SVGSVGElement, series: readonly Series[], now: number, spanMs: number, format: (v: number) => string): void {
  const max = niceCeiling(Math.max(0, ...series.flatMap((s) => s.points.map(([, v]) => v))));
  const x = (t: number) => LEFT + ((t - (now - spanMs)) / spanMs) * (WIDTH - LEFT);
  const y = (v: number) => TOP + (HEIGHT - BOTTOM - TOP) * (1 - v / max);
  svg.replaceChildren();
  for (let i = 0; i <= 4; i++) {
    const value = (max * i) / 4;
    svg.append(element("line", { class: "grid", x1: LEFT, x2: WIDTH, y1: y(value), y2: y(value) }));
    const label = element("text", { class: "axis-label", x: LEFT - 4, y: y(value) + 4, "text-anchor": "end" });
    label.textContent = format(value);
    svg.append(label);
  }
  const minutes = element("text", { class: "axis-label", x: LEFT, y: HEIGHT - 2 });
  minutes.textContent = `last ${spanMs >= 120_000 ? `${Math.round(spanMs / 60_000)} min` : `${Math.round(spanMs / 1000)} s`}`;
  svg.append(minutes);
  for (const s of series) {
    const points = s.points.filter(([t]) => t >= now - spanMs).map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    if (points.length > 0) svg.append(element("polyline", { points: points.join(" "), stroke: s.colour, "data-series": s.name }));
  }
}

/** The legend under a chart. */
export function drawLegend(container: HTMLElement, series: readonly Series[]): void {
  container.replaceChildren(
    ...series.map((s) => {
      const item = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.style.background = s.colour;
      item.append(swatch, s.name);
      return item;
    }),
  );
}

function element(name: string, attributes: Record<string, string | number>): SVGElement {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

/** 1, 2 or 5 times a power of ten, at least `value` (and above zero). */
function niceCeiling(value: number): number {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return ([1, 2, 5, 10].find((m) => m * power >= value) ?? 10) * power;
}
