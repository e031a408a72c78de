/**
 * A one-line progress indicator on stderr for long work (packing, hashing). Draws
 * only on a terminal; elsewhere (CI, pipes) it prints each step once.
 */
export class Progress {
  #label = "";
  #total = 0;
  #done = 0;
  #lastDraw = 0;
  readonly #tty = Boolean(process.stderr.isTTY);
  readonly #quiet: boolean;

  constructor(options: { quiet?: boolean } = {}) {
    this.#quiet = options.quiet ?? false;
  }

  /** A new step; `total` in bytes (or items) when known. */
  step(label: string, total = 0): void {
    this.#finishLine();
    this.#label = label;
    this.#total = total;
    this.#done = 0;
    if (this.#quiet) return;
    if (this.#tty) this.#draw(true);
    else process.stderr.write(`${label}...\n`);
  }

  advance(amount: number): void {
    this.#done += amount;
    if (this.#tty && !this.#quiet) this.#draw(false);
  }

  done(message?: string): void {
    this.#finishLine();
    if (message && !this.#quiet) process.stderr.write(`${message}\n`);
    this.#label = "";
  }

  #draw(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.#lastDraw < 80) return;
    this.#lastDraw = now;
    let line = this.#label;
    if (this.#total > 0) {
      const ratio = Math.min(1, this.#done / this.#total);
      const width = 30;
      const filled = Math.round(ratio * width);
      line += ` [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${(ratio * 100).toFixed(0).padStart(3)}% ${formatBytes(this.#done)}/${formatBytes(this.#total)}`;
    }
    process.stderr.write(`\r\x1b[2K${line}`);
  }

  #finishLine(): void {
    if (this.#tty && !this.#quiet && this.#label) {
      this.#draw(true);
      process.stderr.write("\n");
    }
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
