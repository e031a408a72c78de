import { defineCoilVitestConfig } from "../../vitest.shared.ts";

export default defineCoilVitestConfig({
  // The end-to-end test generates into test/.e2e-*; never collect what it writes there.
  test: { exclude: ["**/node_modules/**", "test/.e2e-*/**"] },
});
