import type { HistogramSnapshot } from "@coil/core";

/** One sample: its labels and value. */
export type Sample = [labels: Record<string, string>, value: number];

/** Writes metrics in the Prometheus text exposition format (version 0.0.4). */
export class Exposition {
  readonly #lines: string[] = [];

  counter(name: string, help: string, samples: Sample[]): void {
    this.#family(name, "counter", help);
    for (const [labels, value] of samples) this.#sample(name, labels, value);
  }

  gauge(name: string, help: string, samples: Sample[]): void {
    this.#family(name, "gauge", help);
    for (const [labels, value] of samples) this.#sample(name, labels, value);
  }

  histogram(name: string, help: string, samples: [Record<string, string>, HistogramSnapshot][]): void {
    this.#family(name, "histogram", help);
    for (const [labels, h] of samples) {
      h.bounds.forEach((bound, i) => this.#sample(`${name}_bucket`, { ...labels, le: String(bound) }, h.cumulative[i]!));
      this.#sample(`${name}_bucket`, { ...labels, le: "+Inf" }, h.count);
      this.#sample(`${name}_sum`, labels, h.sum);
      this.#sample(`${name}_count`, labels, h.count);
    }
  }

  text(): string {
    return `${this.#lines.join("\n")}\n`;
  }

  #family(name: string, type: string, help: string): void {
    this.#lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  }

  #sample(name: string, labels: Record<string, string>, value: number): void {
    const text = Object.entries(labels)
      .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`))}"`)
      .join(",");
    this.#lines.push(`${name}{${text}} ${value}`);
  }
}
