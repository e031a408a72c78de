import type { Tree } from "@nx/devkit";
import { createTreeWithEmptyWorkspace } from "@nx/devkit/testing";
import { beforeEach, describe, expect, it } from "vitest";

import adapterGenerator from "./adapter/generator.js";
import backendGenerator from "./backend/generator.js";

let tree: Tree;
beforeEach(() => {
  tree = createTreeWithEmptyWorkspace();
});

function read(path: string): string {
  const content = tree.read(path, "utf-8");
  if (content === null) throw new Error(`${path} was not generated`);
  return content;
}

function generatedFiles(root: string): string[] {
  const walk = (dir: string): string[] =>
    tree.children(dir).flatMap((child) => (tree.isFile(`${dir}/${child}`) ? [`${dir}/${child}`] : walk(`${dir}/${child}`)));
  return walk(root)
    .map((path) => path.slice(root.length + 1))
    .sort();
}

describe("backend generator", () => {
  it("creates a backend package following the repository's conventions", async () => {
    await backendGenerator(tree, { name: "demo-backend", skipInstall: true });
    const root = "packages/demo-backend";
    expect(generatedFiles(root)).toEqual([
      "README.md",
      "package.json",
      "python/coil_backend_demo.py",
      "src/demo-backend.test.ts",
      "src/demo-backend.ts",
      "src/index.ts",
      "src/register.ts",
      "test/fixtures/double.py",
      "tsconfig.build.json",
      "tsconfig.json",
      "vitest.config.ts",
    ]);
    const pkg = JSON.parse(read(`${root}/package.json`));
    expect(pkg).toMatchObject({
      name: "@coil/demo-backend",
      type: "module",
      exports: { ".": { "@coil/source": "./src/index.ts", types: "./dist/index.d.ts", default: "./dist/index.js" } },
      files: ["dist", "src", "python"],
      scripts: { build: "tsc -p tsconfig.build.json", lint: "tsc --noEmit -p ." },
      // the runtime's copies: a second tsyringe would not know the plugin's @injectable classes
      peerDependencies: { "@coil/core": "0.0.0", "@coil/errors": "0.0.0", "@coil/native": "0.0.0", tsyringe: expect.any(String) },
    });
    expect(pkg.dependencies).toEqual({ "reflect-metadata": expect.any(String) });
    expect(pkg.scripts.test).toContain("--outputFile=test-results.json");
    expect(JSON.parse(read(`${root}/tsconfig.build.json`).replace(/^\s*\/\/.*$/gm, ""))).toMatchObject({
      extends: "../../tsconfig.base.json",
      compilerOptions: { rootDir: "src", outDir: "dist", customConditions: [] },
    });
    expect(read(`${root}/vitest.config.ts`)).toContain('from "../../vitest.shared.ts"');

    const backend = read(`${root}/src/demo-backend.ts`);
    expect(backend).toContain("export class DemoBackend implements Backend");
    expect(backend).toContain('readonly name = "demo";');
    expect(backend).toContain("@inject(DEMO_BACKEND_OPTIONS)");
    expect(backend).toContain('"python", "coil_backend_demo.py"');
    expect(read(`${root}/src/register.ts`)).toContain("export function registerDemoBackend(container: DependencyContainer");
    expect(read(`${root}/src/register.ts`)).toContain("container.register(TOKENS.Backend, { useClass: DemoBackend });");
    // a plugin: the default export `coil serve --plugin` loads, besides the named register function
    expect(read(`${root}/src/index.ts`)).toContain("const plugin: CoilPlugin<DemoBackendOptions | undefined> = (container, options) => {");
    expect(read(`${root}/src/index.ts`)).toContain("export default plugin;");
    expect(read(`${root}/src/index.ts`)).toContain("export { registerDemoBackend }");
    expect(read(`${root}/src/demo-backend.test.ts`)).toContain("createPoolFromContainer(container)");
    expect(read(`${root}/python/coil_backend_demo.py`)).toContain("coil_bridge.set_backend_hooks(");
    for (const file of generatedFiles(root)) expect(read(`${root}/${file}`), file).not.toMatch(/<%|%>/);
  });

  it("takes a backend name and a folder, and computes paths back to the root", async () => {
    await backendGenerator(tree, { name: "accel", backendName: "my-accel", directory: "plugins/vendor", skipInstall: true });
    const root = "plugins/vendor/accel";
    expect(read(`${root}/src/my-accel-backend.ts`)).toContain("export class MyAccelBackend implements Backend");
    expect(read(`${root}/src/my-accel-backend.ts`)).toContain('readonly name = "my-accel";');
    expect(tree.exists(`${root}/python/coil_backend_my_accel.py`)).toBe(true);
    expect(read(`${root}/tsconfig.json`)).toContain('"extends": "../../../tsconfig.base.json"');
    expect(read(`${root}/vitest.config.ts`)).toContain('from "../../../vitest.shared.ts"');
  });

  it("strips a backend- prefix for the backend's name", async () => {
    await backendGenerator(tree, { name: "backend-rocm", skipInstall: true });
    expect(read("packages/backend-rocm/src/rocm-backend.ts")).toContain("export class RocmBackend implements Backend");
  });

  it("refuses a name that is not kebab-case, and an existing package", async () => {
    await expect(backendGenerator(tree, { name: "Demo_Backend" })).rejects.toThrow(/kebab-case/);
    tree.write("packages/taken/package.json", "{}");
    await expect(backendGenerator(tree, { name: "taken" })).rejects.toThrow(/already exists/);
  });

  it("returns a task that installs (links) the new package, unless told not to", async () => {
    expect(typeof (await backendGenerator(tree, { name: "linked" }))).toBe("function");
  });
});

describe("adapter generator", () => {
  it("creates an adapter package following the repository's conventions", async () => {
    await adapterGenerator(tree, { name: "adapter-mqtt", skipInstall: true });
    const root = "packages/adapter-mqtt";
    expect(generatedFiles(root)).toEqual([
      "README.md",
      "package.json",
      "src/index.ts",
      "src/mqtt-adapter.test.ts",
      "src/mqtt-adapter.ts",
      "src/register.ts",
      "tsconfig.build.json",
      "tsconfig.json",
      "vitest.config.ts",
    ]);
    const pkg = JSON.parse(read(`${root}/package.json`));
    expect(pkg).toMatchObject({
      name: "@coil/adapter-mqtt",
      exports: { ".": { "@coil/source": "./src/index.ts" } },
      files: ["dist", "src"],
      peerDependencies: { "@coil/core": "0.0.0", "@coil/errors": "0.0.0", tsyringe: expect.any(String) },
    });
    const adapter = read(`${root}/src/mqtt-adapter.ts`);
    expect(adapter).toContain("export class MqttAdapter implements Adapter");
    expect(adapter).toContain('readonly name = "mqtt";');
    expect(adapter).toMatch(/async start\(\)/);
    expect(adapter).toMatch(/async stop\(\)/);
    expect(read(`${root}/src/register.ts`)).toContain("container.register(TOKENS.Adapter, { useClass: MqttAdapter }");
    // it serves the runtime's models through the InferenceService the runtime injects
    expect(adapter).toContain("@inject(TOKENS.InferenceService) service: InferenceService");
    expect(adapter).toContain("this.#service.infer(");
    expect(read(`${root}/src/index.ts`)).toContain("const plugin: CoilPlugin<MqttAdapterOptions | undefined> = (container, options) => {");
    expect(read(`${root}/src/index.ts`)).toContain("export default plugin;");
    expect(read(`${root}/src/mqtt-adapter.test.ts`)).toContain("container.register(TOKENS.InferenceService, { useValue: service });");
    for (const file of generatedFiles(root)) expect(read(`${root}/${file}`), file).not.toMatch(/<%|%>/);
  });
});
