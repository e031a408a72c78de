// @ts-check
import { generatePlugin } from "../shared.js";

/**
 * `nx g @coil/generators:adapter <name>`: a new protocol adapter package.
 * @param {import("@nx/devkit").Tree} tree
 * @param {import("../shared.js").PluginSchema} schema
 */
export default async function adapterGenerator(tree, schema) {
  return generatePlugin(tree, "adapter", schema);
}
