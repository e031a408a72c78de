// The suite's knobs: E2E_* environment variables (e2e/README.md).

function numberFrom(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}

export const KNOBS = {
  /** Interpreters of every `coil serve` the suite starts. */
  interpreters: numberFrom("E2E_INTERPRETERS", 2),
  /** Length of the wrk load phase (the soak's warm-up). */
  loadSeconds: numberFrom("E2E_LOAD_SECONDS", 10),
  /** Requests of the soak, and the most it may take. */
  soakRequests: numberFrom("E2E_SOAK_REQUESTS", 100_000),
  soakMaxSeconds: numberFrom("E2E_SOAK_MAX_SECONDS", 120),
  /** Growth allowed in the serving process's private memory between "after warm-up"
   * and "after soak": README.md says why 10 %. */
  memGrowthLimitPct: numberFrom("E2E_MEM_GROWTH_LIMIT_PCT", 10),
  /** Keep the scratch folder even when every test passed. */
  keep: Boolean(process.env["E2E_KEEP"]),
} as const;
