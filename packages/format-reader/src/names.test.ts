import { describe, expect, it } from "vitest";
import {
  isModuleName,
  moduleForRecord,
  moduleRecordName,
  recordNameProblem,
  resourceRecordName,
  rootNameProblem,
  storageKeyForRecord,
  storageRecordName,
} from "@coil/format-reader";

describe("record names", () => {
  it("accepts relative POSIX paths", () => {
    for (const name of [".data/0.storage", "a/b/c.py", "model/model.pkl", "x", "caf\u00e9/\u00fc.txt", "a/.hidden"]) {
      expect(recordNameProblem(name), name).toBeUndefined();
    }
  });

  it("names the problem with everything else", () => {
    expect(recordNameProblem("")).toMatch(/empty/);
    expect(recordNameProblem("/etc/passwd")).toMatch(/absolute/);
    expect(recordNameProblem("C:/x")).toMatch(/drive/);
    expect(recordNameProblem("a\\b")).toMatch(/backslash/);
    expect(recordNameProblem("a/../b")).toMatch(/'\.\.'/);
    expect(recordNameProblem("..")).toMatch(/'\.\.'/);
    expect(recordNameProblem("./a")).toMatch(/'\.'/);
    expect(recordNameProblem("a//b")).toMatch(/empty path segment/);
    expect(recordNameProblem("a/")).toMatch(/directory/);
    expect(recordNameProblem("a\u0000b")).toMatch(/control/);
    expect(rootNameProblem("a/b")).toMatch(/single folder/);
    expect(rootNameProblem("model")).toBeUndefined();
  });

  it("maps modules, resources and storages to torch.package's record names and back", () => {
    expect(moduleRecordName("a.b")).toBe("a/b.py");
    expect(moduleRecordName("a.b", true)).toBe("a/b/__init__.py");
    expect(resourceRecordName("model", "model.pkl")).toBe("model/model.pkl");
    expect(resourceRecordName("a.b", "c/d.txt")).toBe("a/b/c/d.txt");
    expect(storageRecordName("0")).toBe(".data/0.storage");
    expect(moduleForRecord("a/b.py")).toEqual({ name: "a.b", isPackage: false });
    expect(moduleForRecord("a/b/__init__.py")).toEqual({ name: "a.b", isPackage: true });
    expect(moduleForRecord("__init__.py")).toBeUndefined();
    expect(moduleForRecord(".data/x.py")).toBeUndefined();
    expect(moduleForRecord("a-b/c.py")).toBeUndefined();
    expect(moduleForRecord("model/model.pkl")).toBeUndefined();
    expect(storageKeyForRecord(".data/12.storage")).toBe("12");
    expect(storageKeyForRecord(".data/coil/x.storage")).toBeUndefined();
    expect(storageKeyForRecord("a/.data/1.storage")).toBeUndefined();
    expect(isModuleName("torch.nn.modules")).toBe(true);
    expect(isModuleName("1abc")).toBe(false);
    expect(isModuleName("a..b")).toBe(false);
  });
});
