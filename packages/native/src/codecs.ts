/**
 * @coil/native/codecs — the addon's wire-format codecs, for the protocol adapters
 * that parse request bodies (native/src/codecs/): kept off the package root, which
 * is the interpreter engine's API.
 */
export { scanJsonNumberArray } from "./json-numbers.js";
