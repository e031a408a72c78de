import { CoilError } from "@coil/errors";

/** Chooses a device for one interpreter: its index in the pool, the pool's size and
 * the devices the backend may use. Must return one of `devices`. */
export type PlacementFunction = (index: number, poolSize: number, devices: readonly number[]) => number;

/**
 * How a pool's interpreters are spread over the devices.
 *
 * - `"round-robin"` (default): interpreter i on `devices[i % devices.length]`.
 * - `{ interpreters: { 0: 1, 3: 0 } }`: the listed interpreter indexes (positions in
 *   the pool, 0-based) on those devices; the others round-robin over `devices`.
 * - `{ weights: { 0: 3, 1: 1 } }`: interpreters in proportion to each device's weight
 *   (smooth weighted round-robin: 3 to device 0 for each 1 to device 1, interleaved).
 *   A device left out, or weighted 0, gets none.
 * - a function `(index, poolSize, devices) => device`.
 */
export type Placement =
  | "round-robin"
  | { interpreters: Readonly<Record<number, number>> }
  | { weights: Readonly<Record<number, number>> }
  | PlacementFunction;

function invalid(message: string): CoilError {
  return new CoilError("INVALID_ARGUMENT", `cuda backend: ${message}`);
}

function isDeviceIndex(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0;
}

/** Checks a device list: non-empty, distinct, non-negative integers. */
export function validateDevices(devices: readonly number[]): void {
  if (!Array.isArray(devices) || devices.length === 0) throw invalid("devices must be a non-empty array of device indexes");
  for (const device of devices) {
    if (!isDeviceIndex(device)) throw invalid(`devices must be non-negative integers, got ${String(device)}`);
  }
  if (new Set(devices).size !== devices.length) throw invalid(`devices must be distinct, got [${devices.join(", ")}]`);
}

/** Checks a placement's shape without knowing the devices yet (constructor time). */
export function validatePlacement(placement: Placement): void {
  if (placement === "round-robin" || typeof placement === "function") return;
  if (typeof placement !== "object" || placement === null) {
    throw invalid(`placement must be "round-robin", { interpreters }, { weights } or a function, got ${String(placement)}`);
  }
  if ("interpreters" in placement) {
    for (const [index, device] of Object.entries(placement.interpreters)) {
      if (!isDeviceIndex(Number(index)) || !/^\d+$/.test(index)) {
        throw invalid(`placement.interpreters keys must be interpreter indexes (0, 1, ...), got "${index}"`);
      }
      if (!isDeviceIndex(device)) throw invalid(`placement.interpreters[${index}] must be a device index, got ${String(device)}`);
    }
    return;
  }
  if ("weights" in placement) {
    const entries = Object.entries(placement.weights);
    for (const [device, weight] of entries) {
      if (!/^\d+$/.test(device)) throw invalid(`placement.weights keys must be device indexes, got "${device}"`);
      if (typeof weight !== "number" || !Number.isFinite(weight) || weight < 0) {
        throw invalid(`placement.weights[${device}] must be a finite number >= 0, got ${String(weight)}`);
      }
    }
    if (!entries.some(([, weight]) => weight > 0)) throw invalid("placement.weights must give at least one device a weight > 0");
    return;
  }
  throw invalid('placement object must have "interpreters" or "weights"');
}

/**
 * The device of every interpreter of a pool of `poolSize`, given the devices the
 * backend may use. Pure: the same inputs give the same plan. Throws
 * INVALID_ARGUMENT when the placement names a device outside `devices`.
 */
export function planPlacement(poolSize: number, devices: readonly number[], placement: Placement = "round-robin"): number[] {
  if (!Number.isInteger(poolSize) || poolSize < 1) throw invalid(`pool size must be a positive integer, got ${poolSize}`);
  validateDevices(devices);
  validatePlacement(placement);
  const allowed = new Set(devices);
  const check = (device: unknown, what: string): number => {
    if (!isDeviceIndex(device) || !allowed.has(device)) {
      throw invalid(`${what} placed an interpreter on device ${String(device)}, which is not among the usable devices [${devices.join(", ")}]`);
    }
    return device;
  };
  const roundRobin = (index: number) => devices[index % devices.length]!;

  if (placement === "round-robin") return Array.from({ length: poolSize }, (_, i) => roundRobin(i));
  if (typeof placement === "function") {
    return Array.from({ length: poolSize }, (_, i) => check(placement(i, poolSize, devices), "the placement function"));
  }
  if ("interpreters" in placement) {
    const explicit = placement.interpreters;
    return Array.from({ length: poolSize }, (_, i) =>
      Object.hasOwn(explicit, i) ? check(explicit[i], `placement.interpreters[${i}]`) : roundRobin(i),
    );
  }
  // Smooth weighted round-robin (as nginx balances upstreams): each step every device
  // gains its weight, the one with the most credit is chosen and pays the total back.
  const weighted = Object.entries(placement.weights)
    .map(([device, weight]) => ({ device: check(Number(device), "placement.weights"), weight, credit: 0 }))
    .filter((entry) => entry.weight > 0)
    .sort((a, b) => a.device - b.device);
  const total = weighted.reduce((sum, entry) => sum + entry.weight, 0);
  const plan: number[] = [];
  for (let i = 0; i < poolSize; i++) {
    let best = weighted[0]!;
    for (const entry of weighted) {
      entry.credit += entry.weight;
      if (entry.credit > best.credit) best = entry;
    }
    best.credit -= total;
    plan.push(best.device);
  }
  return plan;
}
