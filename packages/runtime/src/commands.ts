/**
 * The `coil` command's subcommands.
 *
 *   coil pack <file.py:factory> -o model.coil [--intern/--extern/--mock/--deny GLOB]... [--root DIR]
 *             [--sign KEY.pem] [--arg JSON]... [--kwargs JSON] [--example NAME] [--input name:dtype:shape]...
 *             [--output-spec name:dtype:shape]... [--python PATH]
 *   coil inspect model.coil [--public-key KEY.pem] [--json]
 *   coil keygen -o name      writes name.pem (private) and name.pub.pem (public)
 */
import cluster from "node:cluster";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";

import type { ModelGroupSettings } from "@coil/core";
import { checkDashboardExposure } from "@coil/dashboard";
import { CoilError, isCoilError } from "@coil/errors";
import { handOff } from "@coil/native";
import { MANIFEST_DTYPES, type ManifestDType, type TensorSpec } from "@coil/format-reader";
import { generateSigningKeyPair } from "@coil/format-writer";
import { pino } from "pino";

import { checkSelection, parseAccelerateFlags } from "./accelerator-selection.js";
import { formatReport, inspectArchive } from "./inspect.js";
import type { PluginEntry } from "./plugins.js";
import { securityServeOptions } from "./security-settings.js";
import { serve } from "./serve.js";
import { Supervisor } from "./supervisor/primary.js";
import { runWorker } from "./supervisor/worker.js";
import { formatDecisions, packModel } from "./pack.js";
import { formatBytes, Progress } from "./progress.js";

/** Each command's usage; `coil <command> --help` prints one, `coil --help` all. */
const USAGES = {
  pack: `  coil pack <file.py:factory> -o <model.coil> [options]
      modules under the file's folder (or --root DIR) are packed; installed distributions,
      the standard library and torch are taken from the loading Python (checked when loading)
      --intern GLOB / --extern GLOB / --mock GLOB / --deny GLOB   (repeatable; torch.package
                                                                    patterns, before the automatic ones)
      --arg JSON (repeatable)   --kwargs JSON   positional / keyword arguments of the factory
      --example NAME   function returning example inputs (default: example_inputs, if defined):
                       the model runs on them and the signature is inferred
      --input name:dtype:d0,d1,...  --output-spec name:dtype:d0,...   signature (-1 = dynamic)
      --sign KEY.pem   sign with an ed25519 private key     --python PATH   --quiet`,
  inspect: `  coil inspect <model.coil> [--public-key KEY.pem] [--no-verify] [--json]`,
  keygen: `  coil keygen -o <name>     ed25519 key pair: <name>.pem and <name>.pub.pem`,
  serve: `  coil serve <repository> [options]     Open Inference Protocol over HTTP (8000) and gRPC (8001)
      --host ADDR  --http-port N  --grpc-port N (0: any free port; -1: off)
      --instances N   interpreters each model gets of its own (default: the process's budget,
                   15, split between the repository's models, at most one per core, at least one);
                   per model in coil.json: "models": {"MODEL": {"instances": N}}; models that trust
                   each other may share interpreters: {"MODEL": {"group": "NAME"}} on each
                   (--interpreters N: the older name of --instances)
      --python PATH  --backend cpu|cuda|MODULE
      --plugin MODULE   a plugin (package name or path) to load after the defaults (repeatable)
      --accelerate NAME | MODEL=NAME   run every model (or one) through an accelerator: compile
                   (torch.compile), onnxruntime, or @coil/accelerator-NAME; none: eager (repeatable)
      --max-queue-size N  --max-batch-size N  --max-queue-delay-us N   (dynamic batching when max-batch-size > 1)
      --public-key KEY.pem (require signed archives)   --log-level info|debug|warn|error
      --workers N   N supervised worker processes on the same ports, each with its own interpreters
                   (default: one process, no supervisor); a worker that dies is restarted (backoff;
                   5 deaths in 60 s: given up, not ready), the log names the signal or exit code
      --stuck-grace-s S (default 30; 0: off)  --max-worker-memory MB (default 0: no limit)
                   a worker in which a model's interpreters all run one call that long, or over
                   that memory, is replaced, then drained   --drain-timeout-s S (default 30), then killed
      --model-control none|explicit   none (default): load/unload requests are refused (403 /
                   PERMISSION_DENIED); explicit: clients may load and unload models (logged)
      --auth-token-file FILE   the bearer token (the file's text) that load/unload requests
                   must carry (Authorization: Bearer ..., gRPC authorization metadata)
      --auth-inference   inference and metadata need the token too (health never does)
      --tls-cert FILE --tls-key FILE   HTTPS and gRPC over TLS (PEM; both or neither)
      --follow-symlinks   serve symbolic links that lead out of the repository (default: skipped)
      --body-timeout-s S (default 30)  a request body must arrive within S seconds (else 408)
      --max-pending-body-bytes N (default: 1 GiB or a quarter of the RAM, if less)  bodies still
                   arriving hold at most N bytes together; past it new ones get 503 + Retry-After
      --max-response-bytes N (default 64 MiB)  larger JSON responses are refused: ask for binary
                   outputs (binary_data_output). See docs/security.md
      --dashboard   a live status page at /dashboard/ on the HTTP port (models, interpreters,
                   queues, throughput, latency, workers); off by default, and refused on an address
                   other than loopback unless metadata needs the token (--auth-inference)
      --spin-us N  --caller-spin-us N   how long an idle interpreter spins for its next call
                   (default 50, or through its usual wait up to 1000) and Node's thread
                   polls for results (default 1000), only on CPUs nothing else here
                   needs; 0 turns each off (a CPU quota)
      --config coil.json   the same settings as JSON (camelCase keys: repository, httpPort,
                           maxBatchSize, ..., "plugins": [{"module": "...", "options": {...}}],
                           "accelerate": "NAME" or {"MODEL": "NAME", "*": "NAME"});
                           flags override it, --plugin adds to its plugins`,
};
type Command = keyof typeof USAGES;

const USAGE = `usage:\n${Object.values(USAGES).join("\n")}`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== undefined && command in USAGES && (rest.includes("--help") || rest.includes("-h"))) {
    console.log(`usage:\n${USAGES[command as Command]}`);
    return 0;
  }
  switch (command) {
    case "pack":
      return pack(rest);
    case "inspect":
      return inspect(rest);
    case "keygen":
      return keygen(rest);
    case "serve":
      return serveCommand(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      console.error(`coil: unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

async function pack(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags({
    args: argv,
    allowPositionals: true,
    options: {
      output: { type: "string", short: "o" },
      intern: { type: "string", multiple: true, default: [] },
      extern: { type: "string", multiple: true, default: [] },
      mock: { type: "string", multiple: true, default: [] },
      deny: { type: "string", multiple: true, default: [] },
      root: { type: "string" },
      example: { type: "string" },
      arg: { type: "string", multiple: true, default: [] },
      kwargs: { type: "string" },
      input: { type: "string", multiple: true, default: [] },
      "output-spec": { type: "string", multiple: true, default: [] },
      sign: { type: "string" },
      python: { type: "string" },
      quiet: { type: "boolean", default: false },
    },
  });
  if (positionals.length !== 1 || !values.output) throw new CoilError("INVALID_ARGUMENT", `coil pack needs <file.py:factory> and -o <file>\n${USAGE}`);
  const result = await packModel({
    target: positionals[0]!,
    output: values.output,
    args: values.arg.map((a) => parseJson(a, "--arg")),
    kwargs: values.kwargs ? (parseJson(values.kwargs, "--kwargs") as Record<string, unknown>) : {},
    intern: values.intern,
    extern: values.extern,
    mock: values.mock,
    deny: values.deny,
    ...(values.root && { root: values.root }),
    ...(values.example && { example: values.example }),
    inputs: values.input.map(parseSpec),
    outputs: values["output-spec"].map(parseSpec),
    ...(values.sign && { signingKey: readFileSync(values.sign, "utf8") }),
    ...(values.python && { python: values.python }),
    progress: new Progress({ quiet: values.quiet }),
  });
  if (!values.quiet) {
    console.log(formatDecisions(result.decisions));
    for (const [label, specs] of [["inputs", result.inputs], ["outputs", result.outputs]] as const) {
      const source = result.signature[label];
      if (source !== "none") console.log(`${label} (${source}): ${specs.map((s) => `${s.name} ${s.dtype}[${s.shape.join(", ")}]`).join("; ")}`);
    }
  }
  for (const warning of result.warnings) console.error(`coil pack: warning: ${warning}`);
  console.log(
    `packed ${result.type} into ${result.output}: ${result.records} records, ${formatBytes(result.bytes)}${result.signed ? ", signed" : ""}`,
  );
  return 0;
}

async function inspect(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags({
    args: argv,
    allowPositionals: true,
    options: {
      "public-key": { type: "string" },
      json: { type: "boolean", default: false },
      "no-verify": { type: "boolean", default: false },
    },
  });
  if (positionals.length !== 1) throw new CoilError("INVALID_ARGUMENT", `coil inspect needs one archive\n${USAGE}`);
  const report = await inspectArchive(positionals[0]!, {
    verifyHashes: !values["no-verify"],
    ...(values["public-key"] && { publicKey: readFileSync(values["public-key"], "utf8") }),
  });
  console.log(values.json ? JSON.stringify(report, null, 2) : formatReport(report));
  return 0;
}

async function keygen(argv: string[]): Promise<number> {
  const { values } = parseFlags({ args: argv, options: { output: { type: "string", short: "o" } } });
  if (!values.output) throw new CoilError("INVALID_ARGUMENT", `coil keygen needs -o <name>\n${USAGE}`);
  const { privateKey, publicKey } = await generateSigningKeyPair();
  writeFileSync(`${values.output}.pem`, privateKey, { mode: 0o600, flag: "wx" });
  writeFileSync(`${values.output}.pub.pem`, publicKey, { flag: "wx" });
  console.log(`wrote ${values.output}.pem (private, keep it safe) and ${values.output}.pub.pem`);
  return 0;
}

/** `coil serve` settings: the --config file's keys, each also a --kebab-case flag. */
const SERVE_SETTINGS = {
  host: "string",
  httpPort: "integer",
  grpcPort: "integer",
  interpreters: "integer",
  instances: "integer",
  python: "string",
  backend: "string",
  maxQueueSize: "integer",
  maxBatchSize: "integer",
  maxQueueDelayUs: "integer",
  publicKey: "string",
  logLevel: "string",
  spinUs: "integer",
  callerSpinUs: "integer",
  workers: "integer",
  stuckGraceS: "integer",
  maxWorkerMemory: "integer",
  drainTimeoutS: "integer",
  modelControl: "string",
  authTokenFile: "string",
  authInference: "boolean",
  tlsCert: "string",
  tlsKey: "string",
  followSymlinks: "boolean",
  bodyTimeoutS: "integer",
  maxPendingBodyBytes: "integer",
  maxResponseBytes: "integer",
  dashboard: "boolean",
} as const;
type ServeSetting = keyof typeof SERVE_SETTINGS;

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

async function serveCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: "string" },
      plugin: { type: "string", multiple: true, default: [] },
      accelerate: { type: "string", multiple: true, default: [] },
      ...Object.fromEntries(
        Object.entries(SERVE_SETTINGS).map(([k, type]) => [kebab(k), { type: type === "boolean" ? ("boolean" as const) : ("string" as const) }]),
      ),
    },
  });
  // The config file first, then flags over it.
  const settings: Partial<Record<ServeSetting | "repository", string | number | boolean>> = {};
  const plugins: PluginEntry[] = [];
  let accelerate: Record<string, string> = {};
  let models: Record<string, ModelGroupSettings> | undefined;
  if (values.config) {
    const configFile = values.config as string;
    const file = parseJson(readFileSync(configFile, "utf8"), "--config") as Record<string, unknown>;
    for (const [key, value] of Object.entries(file ?? {})) {
      if (key === "plugins") {
        plugins.push(...configuredPlugins(value, configFile));
      } else if (key === "accelerate") {
        accelerate = checkSelection(value, `${configFile}: "accelerate"`);
      } else if (key === "models") {
        models = checkModels(value, `${configFile}: "models"`);
      } else if (key === "repository" || key in SERVE_SETTINGS) {
        settings[key as ServeSetting] = value as string | number | boolean;
      } else {
        throw new CoilError(
          "INVALID_ARGUMENT",
          `${configFile}: unknown setting "${key}"; known: repository, plugins, accelerate, models, ${Object.keys(SERVE_SETTINGS).join(", ")}`,
        );
      }
    }
  }
  plugins.push(...(values.plugin as string[]));
  accelerate = parseAccelerateFlags(values.accelerate as string[], accelerate);
  for (const key of Object.keys(SERVE_SETTINGS) as ServeSetting[]) {
    const flag = values[kebab(key) as keyof typeof values];
    if (flag !== undefined) settings[key] = flag as string;
  }
  const repository = positionals[0] ?? settings.repository;
  if (positionals.length > 1 || repository === undefined) {
    throw new CoilError("INVALID_ARGUMENT", `coil serve needs a model repository folder\n${USAGE}`);
  }
  const int = (key: ServeSetting, fallback?: number) => {
    const value = settings[key];
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n)) throw new CoilError("INVALID_ARGUMENT", `${kebab(key)} must be an integer, got "${value}"`);
    return n;
  };
  const text = (key: ServeSetting) => (settings[key] === undefined ? undefined : String(settings[key]));
  const flag = (key: ServeSetting) => {
    const value = settings[key];
    if (value === undefined || typeof value === "boolean") return value;
    throw new CoilError("INVALID_ARGUMENT", `${kebab(key)} is true or false, got ${JSON.stringify(value)}`);
  };
  const port = (key: ServeSetting, fallback: number) => {
    const n = int(key, fallback)!;
    return n < 0 ? null : n;
  };
  const maxBatchSize = int("maxBatchSize", 1)!;
  const logger = pino({ name: "coil", level: text("logLevel") ?? "info" });
  // Checked (and its files read) before anything starts, in a supervisor's primary too.
  const security = securityServeOptions({
    modelControl: text("modelControl"),
    authTokenFile: text("authTokenFile"),
    authInference: flag("authInference"),
    tlsCert: text("tlsCert"),
    tlsKey: text("tlsKey"),
    followSymlinks: flag("followSymlinks"),
    bodyTimeoutS: int("bodyTimeoutS"),
    maxPendingBodyBytes: int("maxPendingBodyBytes"),
    maxResponseBytes: int("maxResponseBytes"),
  });
  // Before anything starts (a supervisor's workers would each refuse, over and over).
  const dashboard = flag("dashboard") ?? false;
  if (dashboard) {
    checkDashboardExposure({ host: text("host") ?? "0.0.0.0", metadataNeedsToken: security.access?.authInference === true });
    if (port("httpPort", 8000) === null) throw new CoilError("INVALID_ARGUMENT", "the dashboard is served on the HTTP port, which is off (--http-port -1)");
  }
  const workers = int("workers");
  if (workers !== undefined && workers < 1) throw new CoilError("INVALID_ARGUMENT", `--workers must be at least 1, got ${workers}`);
  for (const key of ["stuckGraceS", "maxWorkerMemory", "drainTimeoutS"] as const) {
    if ((int(key) ?? 0) < 0) throw new CoilError("INVALID_ARGUMENT", `--${kebab(key)} must be 0 or more, got ${settings[key]}`);
  }
  if (workers !== undefined && cluster.isPrimary) {
    // The supervisor: no interpreters here; the workers run this same command line.
    return new Supervisor({
      workers,
      logger,
      host: text("host") ?? "0.0.0.0",
      httpPort: port("httpPort", 8000),
      grpcPort: port("grpcPort", 8001),
      stuckGraceSeconds: int("stuckGraceS", 30)!,
      maxWorkerMemoryMb: int("maxWorkerMemory", 0)!,
      drainTimeoutSeconds: int("drainTimeoutS", 30)!,
    }).run();
  }
  // How long interpreters spin for their next call and Node's thread polls for results
  // (only on CPUs nobody else here needs; 0: never -- e.g. under a CPU quota).
  if (settings.spinUs !== undefined || settings.callerSpinUs !== undefined) {
    const tuned = handOff({
      ...(settings.spinUs !== undefined && { spinUs: int("spinUs")! }),
      ...(settings.callerSpinUs !== undefined && { callerSpinUs: int("callerSpinUs")! }),
    });
    logger.info({ handOff: tuned }, "hand-off settings");
  }
  const serveOptions = {
    repository: String(repository),
    logger,
    httpPort: port("httpPort", 8000),
    grpcPort: port("grpcPort", 8001),
    ...(text("host") !== undefined && { host: text("host")! }),
    ...(settings.interpreters !== undefined && { interpreters: int("interpreters")! }),
    ...(settings.instances !== undefined && { instances: int("instances")! }),
    ...(models && { models }),
    ...(text("python") !== undefined && { python: text("python")! }),
    ...(text("backend") !== undefined && { backend: text("backend")! }),
    plugins,
    ...(Object.keys(accelerate).length > 0 && { accelerate }),
    queue: {
      ...(settings.maxQueueSize !== undefined && { maxQueueSize: int("maxQueueSize")! }),
      ...(maxBatchSize > 1 && { batching: { maxBatchSize, maxQueueDelayMicros: int("maxQueueDelayUs", 100)! } }),
    },
    ...(text("publicKey") !== undefined && { archive: { publicKey: readFileSync(text("publicKey")!, "utf8") } }),
    ...(dashboard && { dashboard }),
    ...security,
  };
  // A worker of a supervisor: a whole server, its instances per model its own.
  if (workers !== undefined) return runWorker(serveOptions);
  const server = await serve(serveOptions);
  // SIGTERM / SIGINT: stop accepting, finish what is in flight, exit 0.
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, "signal received");
      resolve();
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  await server.shutdown();
  return 0;
}

/** coil.json's "plugins": module names or paths, or { module, options }; a relative
 * path is relative to the file, as in other tools' configuration files. */
function configuredPlugins(value: unknown, configFile: string): PluginEntry[] {
  const fromFile = (module: string) => (module.startsWith(".") && !isAbsolute(module) ? resolve(dirname(configFile), module) : module);
  const invalid = () =>
    new CoilError("INVALID_ARGUMENT", `${configFile}: "plugins" must be a list of module names or paths, or {"module": "...", "options": {...}}`);
  if (!Array.isArray(value)) throw invalid();
  return value.map((entry: unknown) => {
    if (typeof entry === "string" && entry !== "") return fromFile(entry);
    const { module, options, ...rest } = (entry ?? {}) as { module?: unknown; options?: unknown };
    if (typeof module !== "string" || module === "" || Object.keys(rest).length > 0) throw invalid();
    return { module: fromFile(module), options };
  });
}

function parseJson(text: string, flag: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new CoilError("INVALID_ARGUMENT", `${flag}: not valid JSON: ${text}`);
  }
}

/** "name:dtype:d0,d1" with -1 for a dynamic dimension. */
export function parseSpec(text: string): TensorSpec {
  const [name, dtype, dims] = text.split(":");
  const shape = (dims ?? "").split(",").filter((d) => d !== "").map(Number);
  if (!name || !MANIFEST_DTYPES.includes(dtype as ManifestDType) || shape.some((d) => !Number.isInteger(d) || d < -1)) {
    throw new CoilError(
      "INVALID_ARGUMENT",
      `expected name:dtype:d0,d1,... (dtype one of ${MANIFEST_DTYPES.join(", ")}; -1 for a dynamic dimension), got "${text}"`,
    );
  }
  return { name, dtype: dtype as ManifestDType, shape };
}

/**
 * parseArgs, with a negative number after a flag that takes a value read as that
 * value (`--grpc-port -1`, as the usage writes it), and its errors (an unknown flag,
 * a missing value) reported as INVALID_ARGUMENT with the usage.
 */
function parseFlags<T extends ParseArgsConfig & { args: string[] }>(config: T): ReturnType<typeof parseArgs<T>> {
  const args: string[] = [];
  for (let i = 0; i < config.args.length; i++) {
    const arg = config.args[i]!;
    const next = config.args[i + 1];
    const takesValue = arg.startsWith("--") && config.options?.[arg.slice(2)]?.type === "string";
    if (takesValue && next !== undefined && /^-\d/.test(next)) {
      args.push(`${arg}=${next}`);
      i++;
    } else {
      args.push(arg);
    }
  }
  try {
    return parseArgs({ ...config, args });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code?.startsWith("ERR_PARSE_ARGS_")) {
      throw new CoilError("INVALID_ARGUMENT", `${(error as Error).message.split("\n")[0]}\n${USAGE}`);
    }
    throw error;
  }
}

/** coil.json's "models": per model name, { "instances": N } and/or { "group": "NAME" }. */
function checkModels(value: unknown, where: string): Record<string, ModelGroupSettings> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CoilError("INVALID_ARGUMENT", `${where} must be an object: {"MODEL": {"instances": N, "group": "NAME"}}`);
  }
  for (const [model, settings] of Object.entries(value)) {
    const known = typeof settings === "object" && settings !== null && Object.keys(settings).every((k) => k === "instances" || k === "group");
    if (!known) throw new CoilError("INVALID_ARGUMENT", `${where}.${model} takes "instances" (an integer) and "group" (a name), got ${JSON.stringify(settings)}`);
  }
  return value as Record<string, ModelGroupSettings>;
}
