// A benchmark's flags, declared once: their defaults and help feed --help, and an
// unknown or malformed flag stops the run with a clear message (exit status 2).
import { readFileSync } from "node:fs";
import { basename, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { REPO_ROOT } from "./paths.mjs";

const script = basename(process.argv[1] ?? "bench");

/** Prints "<script>: message" and exits with status 2, as for a bad flag. */
export function fail(message) {
  console.error(`${script}: ${message}`);
  process.exit(2);
}

/** How each type reads its text (`spec.min`: the least value allowed). */
const TYPES = {
  string: { placeholder: "<text>", parse: (text) => text },
  path: { placeholder: "<path>", parse: (text) => text },
  number: {
    placeholder: "<n>",
    parse(text, spec, name) {
      const value = Number(text);
      const min = spec.min ?? 0;
      if (text.trim() === "" || !Number.isFinite(value) || value < min || (spec.positive && value <= 0)) {
        fail(`--${name} must be a number ${spec.positive ? "> 0" : `>= ${min}`}, got ${JSON.stringify(text)}`);
      }
      return value;
    },
  },
  integer: { placeholder: "<n>", parse: (text, spec, name) => integer(text, spec, name) },
  list: {
    placeholder: "<a,b>",
    parse: (text) =>
      text
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
  },
  integers: { placeholder: "<a,b>", parse: (text, spec, name) => text.split(",").map((s) => integer(s.trim(), spec, name)) },
  boolean: { placeholder: "", parse: (value) => value },
};

function integer(text, spec, name) {
  const value = Number(text);
  const min = spec.min ?? 1;
  if (text === "" || !Number.isInteger(value) || value < min)
    fail(`--${name} must be ${spec.type === "integers" ? "integers" : "an integer"} >= ${min}, got ${JSON.stringify(text)}`);
  if (spec.max !== undefined && value > spec.max)
    fail(`--${name}: at most ${spec.max}${spec.maxWhy ? ` (${spec.maxWhy})` : ""}, got ${value}`);
  return value;
}

const camelCase = (name) => name.replace(/-([a-z])/g, (_, c) => c.toUpperCase());

/**
 * Parses process.argv against `flags`: { name: { type, default, help } }, where type is
 * string, path, number (>= min, default 0; `positive` for > 0), integer (>= min, default 1),
 * list (comma-separated), integers (comma-separated) or boolean (--name / --no-name);
 * `default` is a value or a function of the values parsed before it (flags are
 * resolved in declaration order), shown in --help as `defaultHelp` if given;
 * `hidden` keeps a flag out of --help. --help prints the script's header comment
 * (from `scriptUrl`, its import.meta.url) and the flags. Returns the values under
 * camelCase names.
 */
export function parseFlags(scriptUrl, flags, argv = process.argv.slice(2)) {
  const options = { help: { type: "boolean", short: "h" } };
  for (const [name, spec] of Object.entries(flags)) {
    if (!TYPES[spec.type]) throw new Error(`flag --${name}: unknown type ${spec.type}`);
    options[name] = { type: spec.type === "boolean" ? "boolean" : "string" };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowNegative: true, strict: true }).values;
  } catch (error) {
    const unknown = /Unknown option '([^']+)'/.exec(error.message);
    fail(`${unknown ? `unknown flag ${unknown[1]}` : error.message.split(". ")[0]} (--help lists the flags)`);
  }
  if (parsed.help) {
    console.log(usage(scriptUrl, flags));
    process.exit(0);
  }
  const values = {};
  for (const [name, spec] of Object.entries(flags)) {
    const key = camelCase(name);
    if (parsed[name] !== undefined) values[key] = TYPES[spec.type].parse(parsed[name], spec, name);
    else values[key] = typeof spec.default === "function" ? spec.default(values) : spec.default;
  }
  return values;
}

/** The script's header comment, then one line per flag. */
function usage(scriptUrl, flags) {
  const lines = readFileSync(fileURLToPath(scriptUrl), "utf8").split("\n");
  const header = [];
  for (const line of lines.slice(lines[0]?.startsWith("#!") ? 1 : 0)) {
    if (!line.startsWith("//")) break;
    header.push(line.replace(/^\/\/ ?/, ""));
  }
  const shown = Object.entries(flags).filter(([, spec]) => !spec.hidden);
  const names = shown.map(([name, spec]) => (spec.type === "boolean" ? `--[no-]${name}` : `--${name} ${TYPES[spec.type].placeholder}`));
  const width = Math.max(...names.map((n) => n.length), 10);
  const flagLines = shown.map(([, spec], i) => {
    const shownDefault =
      spec.defaultHelp ?? (typeof spec.default === "function" || spec.default === undefined ? undefined : String(spec.default));
    return `  ${names[i].padEnd(width)}  ${spec.help ?? ""}${shownDefault === undefined ? "" : ` (default: ${shownDefault})`}`;
  });
  return [
    ...header,
    "",
    `Usage: node ${relative(REPO_ROOT, fileURLToPath(scriptUrl))} [flags]`,
    ...flagLines,
    `  ${"--help".padEnd(width)}  this text`,
  ].join("\n");
}
