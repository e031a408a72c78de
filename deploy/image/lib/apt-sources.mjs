// The Debian mirror the image's packages come from: the one this machine's apt
// already uses (its sources.list and sources.list.d), never a name written here. Only
// the entries for the image's suite (bookworm, -updates, -security) are kept, so a
// third-party repository on the host (nodesource, a cloud SDK) does not leak into it.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const APT = "/etc/apt";

/** One apt source: deb822's fields (one-line entries converted). */
function oneLineEntries(text) {
  const entries = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    const match = /^(deb)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!match) continue;
    const [, type, options = "", uri, suite, components] = match;
    const signedBy = /signed-by=(\S+)/.exec(options)?.[1];
    entries.push({ Types: type, URIs: uri, Suites: suite, Components: components.trim(), ...(signedBy && { "Signed-By": signedBy }) });
  }
  return entries;
}

function deb822Entries(text) {
  return text
    .split(/\n\s*\n/)
    .map((stanza) => {
      const fields = {};
      for (const line of stanza.split("\n")) {
        const match = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
        if (match) fields[match[1]] = match[2].trim();
      }
      return fields;
    })
    .filter((fields) => fields.Types?.split(/\s+/).includes("deb") && fields.Enabled !== "no");
}

/** The host's apt entries, as deb822 field sets. */
function hostEntries() {
  const entries = [];
  if (existsSync(join(APT, "sources.list"))) entries.push(...oneLineEntries(readFileSync(join(APT, "sources.list"), "utf8")));
  const dir = join(APT, "sources.list.d");
  for (const name of existsSync(dir) ? readdirSync(dir).sort() : []) {
    const text = () => readFileSync(join(dir, name), "utf8");
    if (name.endsWith(".list")) entries.push(...oneLineEntries(text()));
    else if (name.endsWith(".sources")) entries.push(...deb822Entries(text()));
  }
  return entries;
}

/**
 * The deb822 sources text for `suite` (its -updates and -security too), from the
 * host's apt configuration. Throws, saying what it looked at, when there is none.
 */
export function sourcesFor(suite) {
  const wanted = new Set([suite, `${suite}-updates`, `${suite}-security`]);
  const stanzas = [];
  for (const entry of hostEntries()) {
    const suites = entry.Suites.split(/\s+/).filter((s) => wanted.has(s));
    if (suites.length === 0) continue;
    const fields = { Types: "deb", URIs: entry.URIs, Suites: suites.join(" "), Components: entry.Components || "main" };
    if (entry["Signed-By"]) fields["Signed-By"] = entry["Signed-By"];
    stanzas.push(Object.entries(fields).map(([key, value]) => `${key}: ${value}`).join("\n"));
  }
  if (stanzas.length === 0) {
    throw new Error(
      `no apt source for ${suite} in ${APT}/sources.list or ${APT}/sources.list.d: the image is made from the mirror this machine's apt uses. ` +
        `Add one (e.g. a deb822 file in ${APT}/sources.list.d with Suites: ${suite} ${suite}-updates)`,
    );
  }
  return `${stanzas.join("\n\n")}\n`;
}
