import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

import { rankerRepository, runLoad, startServe, stopServe, type ServeProcess } from "./coil-server.js";

const PYTHON = inject("testPython");
/** Debian's Chromium (tools/bootstrap.sh installs it). */
const CHROMIUM = "/usr/bin/chromium";
/** COIL_UPDATE_SCREENSHOT=1 writes the screenshot the README shows; otherwise it goes to a temporary folder. */
const README_SCREENSHOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../../docs/images/dashboard.png");
/** How long the load runs before the screenshot, so the charts have a shape (COIL_SCREENSHOT_LOAD_S). */
const LOAD_SECONDS = Number(process.env.COIL_SCREENSHOT_LOAD_S ?? 12);

let server: ServeProcess;
let base: string;
let context: BrowserContext;
let profile: string;
let repo: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: tools/bootstrap.sh installs Debian's chromium`);
  repo = await rankerRepository(PYTHON);
  server = startServe(["serve", repo, "--python", PYTHON, "--dashboard", "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "-1", "--instances", "2"]);
  base = `http://127.0.0.1:${(await server.serving).http as number}`;
  profile = mkdtempSync(join(tmpdir(), "coil-dashboard-chromium-"));
  // Without the background-networking flags Chromium's own connections (updates, sync,
  // QUIC probes) are refused by a closed network and slow its start.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}, 180_000);

afterAll(async () => {
  await context?.close();
  if (server) await stopServe(server);
  if (profile) rmSync(profile, { recursive: true, force: true });
});

const number = async (page: Page, selector: string) => Number(await page.textContent(selector));
const chartPoints = (page: Page, series: string) =>
  page.$eval(`#throughput-chart polyline[data-series="${series}"]`, (line) => line.getAttribute("points")!.split(" ").length).catch(() => 0);

describe("the dashboard in headless Chromium", () => {
  it("shows live numbers while a load runs, and takes the README's screenshot", async () => {
    const page = await context.newPage();
    const consoleErrors: string[] = [];
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    await page.goto(`${base}/dashboard`);
    expect(page.url()).toBe(`${base}/dashboard/`);
    // The model, its version and state, and its two interpreters, before any load.
    await page.waitForSelector('#models tr[data-model="ranker"][data-version="3"]');
    expect(await page.textContent('#models tr[data-model="ranker"] td:nth-child(3)')).toBe("READY");
    expect(await page.$$("#interpreters tbody tr")).toHaveLength(2);
    expect(await page.textContent("#ready")).toBe("ready");
    expect(await page.textContent("#workers-summary")).toBe("one process (no --workers)");

    const load = runLoad(base, 4);
    try {
      // Throughput above zero, the interpreters busy, while the load runs.
      await page.waitForFunction(() => Number(document.querySelector("#throughput-now")?.textContent) > 0, undefined, { timeout: 30_000 });
      await page.waitForFunction(
        () => [...document.querySelectorAll<HTMLElement>("#interpreters tbody tr")].some((row) => Number(row.dataset.busy) > 0),
        undefined,
        { timeout: 30_000 },
      );
      expect(await page.textContent("#p99-now")).toMatch(/ ms$/);
      expect(Number((await page.textContent('#models tr[data-model="ranker"] td:nth-child(5)'))!)).toBeGreaterThan(0);
      // Live: the chart gains points as the page polls.
      const points = await chartPoints(page, "ranker v3");
      await page.waitForFunction(
        (before) => (document.querySelector('#throughput-chart polyline[data-series="ranker v3"]')?.getAttribute("points")?.split(" ").length ?? 0) > before,
        points,
        { timeout: 10_000 },
      );
      const updated = await page.textContent("#updated");
      await page.waitForFunction((before) => document.querySelector("#updated")?.textContent !== before, updated, { timeout: 10_000 });
      expect(await number(page, "#throughput-now")).toBeGreaterThan(0);

      await new Promise((r) => setTimeout(r, LOAD_SECONDS * 1000));
      const file = process.env.COIL_UPDATE_SCREENSHOT === "1" ? README_SCREENSHOT : join(profile, "dashboard.png");
      mkdirSync(dirname(file), { recursive: true });
      await page.screenshot({ path: file, fullPage: true });
      expect(statSync(file).size).toBeGreaterThan(10_000);
    } finally {
      expect(await load.stop()).toBeGreaterThan(0);
    }
    expect(consoleErrors).toEqual([]);
  }, 180_000);

  it("shows each worker and its interpreters with --workers", async () => {
    const cluster = startServe(["serve", repo, "--python", PYTHON, "--dashboard", "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "-1", "--instances", "1", "--workers", "2"]);
    try {
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${(await cluster.serving).http as number}/dashboard/`);
      await page.waitForFunction(() => document.querySelector("#workers-summary")?.textContent?.startsWith("2 of 2 alive"), undefined, { timeout: 30_000 });
      await page.waitForFunction(() => document.querySelectorAll("#workers tbody tr").length === 2, undefined, { timeout: 30_000 });
      expect(await page.$$eval("#workers tbody tr", (rows) => rows.map((r) => (r as HTMLElement).dataset.worker))).toEqual(["0", "1"]);
      expect(await page.$$eval("#interpreters tbody tr td:first-child", (cells) => cells.map((c) => c.textContent))).toEqual(["0", "1"]);
      expect(await page.textContent('#models tr[data-model="ranker"] td:nth-child(3)')).toBe("READY");
    } finally {
      await stopServe(cluster);
    }
  }, 180_000);

  it("asks for the bearer token where the feed needs it, and shows nothing without it", async () => {
    const tokenFile = join(profile, "token");
    writeFileSync(tokenFile, "page-secret\n");
    const guarded = startServe([
      "serve", repo, "--python", PYTHON, "--dashboard", "--host", "0.0.0.0", "--http-port", "0", "--grpc-port", "-1", "--instances", "1",
      "--auth-token-file", tokenFile, "--auth-inference",
    ]);
    try {
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${(await guarded.serving).http as number}/dashboard/`);
      await page.waitForSelector("#token-form", { state: "visible" });
      expect(await page.$$("#models tbody tr")).toHaveLength(0);
      await page.fill("#token", "not-it");
      await page.click("#token-form button");
      await page.waitForFunction(() => document.querySelector("#problem")?.textContent === "the token was refused");
      expect(await page.$$("#models tbody tr")).toHaveLength(0);
      await page.fill("#token", "page-secret");
      await page.click("#token-form button");
      await page.waitForSelector('#models tr[data-model="ranker"][data-version="3"]');
      expect(await page.isVisible("#token-form")).toBe(false);
    } finally {
      await stopServe(guarded);
    }
  }, 180_000);
});
