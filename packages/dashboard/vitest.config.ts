import { defineCoilVitestConfig } from "../../vitest.shared.ts";

export default defineCoilVitestConfig();
