// @ts-check
/** What both generators share: option normalisation and writing the templates. */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { generateFiles, installPackagesTask, names, offsetFromRoot } from "@nx/devkit";

const FILES = join(dirname(fileURLToPath(import.meta.url)), "..", "files");
const KEBAB = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

/**
 * @typedef {object} PluginSchema
 * @property {string} name  package folder and npm name (@coil/<name>)
 * @property {string} [backendName]
 * @property {string} [adapterName]
 * @property {string} [directory]  parent folder, default "packages"
 * @property {boolean} [skipInstall]
 */

/**
 * @param {"backend" | "adapter"} kind
 * @param {PluginSchema} schema
 */
export function normalize(kind, schema) {
  const name = schema.name;
  if (typeof name !== "string" || !KEBAB.test(name)) {
    throw new Error(`${kind} generator: name must be kebab-case (e.g. ${kind}-rocm), got ${JSON.stringify(name)}`);
  }
  const given = kind === "backend" ? schema.backendName : schema.adapterName;
  const pluginName = given ?? (name.replace(new RegExp(`^${kind}-`), "").replace(new RegExp(`-${kind}$`), "") || name);
  if (!KEBAB.test(pluginName)) throw new Error(`${kind} generator: ${kind}Name must be kebab-case, got ${JSON.stringify(pluginName)}`);
  const directory = (schema.directory ?? "packages").replace(/\/+$/, "");
  const projectRoot = `${directory}/${name}`;
  const plugin = names(pluginName);
  return {
    name,
    projectRoot,
    packageName: `@coil/${name}`,
    pluginName,
    fileName: plugin.fileName,
    className: `${plugin.className}${kind === "backend" ? "Backend" : "Adapter"}`,
    constantName: `${plugin.constantName}_${kind === "backend" ? "BACKEND" : "ADAPTER"}`,
    pythonModule: `coil_backend_${pluginName.replace(/-/g, "_")}`,
    offset: offsetFromRoot(projectRoot),
    skipInstall: schema.skipInstall ?? false,
  };
}

/**
 * Writes one plugin package from files/<kind>.
 * @param {import("@nx/devkit").Tree} tree
 * @param {"backend" | "adapter"} kind
 * @param {PluginSchema} schema
 */
export function generatePlugin(tree, kind, schema) {
  const options = normalize(kind, schema);
  if (tree.exists(options.projectRoot) && tree.children(options.projectRoot).length > 0) {
    throw new Error(`${kind} generator: ${options.projectRoot} already exists and is not empty`);
  }
  generateFiles(tree, join(FILES, kind), options.projectRoot, { ...options, template: "" });
  // npm workspaces pick the package up (root package.json: "packages/*"); npm install links it.
  return options.skipInstall ? () => {} : () => installPackagesTask(tree, true);
}
