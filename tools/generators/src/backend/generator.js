// @ts-check
import { generatePlugin } from "../shared.js";

/**
 * `nx g @coil/generators:backend <name>`: a new backend plugin package.
 * @param {import("@nx/devkit").Tree} tree
 * @param {import("../shared.js").PluginSchema} schema
 */
export default async function backendGenerator(tree, schema) {
  return generatePlugin(tree, "backend", schema);
}
