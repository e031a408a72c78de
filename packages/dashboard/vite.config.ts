import { defineConfig } from "vite";

// The page: plain TypeScript and DOM, built into dist/page and served by the
// dashboard plugin at /dashboard/ (relative asset URLs, so any mount path works).
export default defineConfig({
  root: "page",
  base: "./",
  build: { outDir: "../dist/page", emptyOutDir: true, assetsDir: "assets" },
});
