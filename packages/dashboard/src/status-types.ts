/**
 * The status feed (GET /dashboard/status): what the page polls every second. Counters
 * are totals since each process started (summed over workers); the page turns two
 * polls into rates. Shared by the server side and the page (vite bundles this file).
 */
export interface DashboardStatus {
  /** The server's clock when the status was read, ms since the epoch. */
  time: number;
  server: { name: string; version: string; ready: boolean };
  models: ModelStatus[];
  interpreters: InterpreterStatus[];
  /** With `--workers N`: the primary's view; null for a single process. */
  workers: WorkersStatus | null;
}

/** A histogram's totals: finite bucket bounds with cumulative counts (+Inf is `count`). */
export interface HistogramTotals {
  count: number;
  sum: number;
  buckets: [le: number, cumulative: number][];
}

export interface ModelStatus {
  name: string;
  version: string;
  state: "READY" | "LOADING" | "UNAVAILABLE";
  reason?: string;
  accelerator?: { name: string; active: boolean };
  /** Requests answered, by outcome ("success" or an error code). */
  requests: Record<string, number>;
  requestSeconds: HistogramTotals;
  queueSeconds: HistogramTotals;
  /** Requests waiting or running now. */
  pending: number;
  /** Requests refused with a full queue. */
  refused: number;
  batches: number;
  rows: number;
  heapBytes?: number;
  archiveBytes?: number;
}

export interface InterpreterStatus {
  /** The worker slot, with `--workers`. */
  worker?: string;
  interpreter: string;
  group: string;
  busySeconds: number;
  /** Calls queued on it or running. */
  load: number;
  stuck: boolean;
  heapBytes?: number;
}

export interface WorkersStatus {
  alive: number;
  configured: number;
  givenUp: number;
  restarts: Record<string, number>;
  /** Resident bytes per worker slot. */
  residentBytes: Record<string, number>;
}
