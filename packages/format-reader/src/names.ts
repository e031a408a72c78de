/**
 * Record-name rules shared by the reader and the writer. A name is a relative
 * POSIX path of one or more segments: no leading "/", no drive letter, no
 * backslash, no empty, "." or ".." segment, no control characters.
 */

/** Why `name` is not a valid path inside an archive, or undefined when it is. */
export function recordNameProblem(name: string): string | undefined {
  if (name.length === 0) return "is empty";
  if (name.startsWith("/")) return "is absolute";
  if (/^[A-Za-z]:/.test(name)) return "starts with a drive letter";
  if (name.includes("\\")) return "contains a backslash";
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return "contains a control character";
  if (name.endsWith("/")) return "ends with '/' (a directory entry)";
  for (const segment of name.split("/")) {
    if (segment === "") return "contains an empty path segment ('//')";
    if (segment === "." || segment === "..") return `contains a '${segment}' segment`;
  }
  return undefined;
}

/** Why `root` is not a valid top-level folder name, or undefined when it is. */
export function rootNameProblem(root: string): string | undefined {
  if (root.includes("/")) return "contains '/' (the root is a single folder)";
  return recordNameProblem(root);
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** True for a dotted Python module name ("a.b_c.d"). */
export function isModuleName(name: string): boolean {
  return name.split(".").every((part) => IDENTIFIER.test(part));
}

/**
 * The record torch.package stores a module's source under:
 * "a.b" → "a/b.py", or "a/b/__init__.py" for a package.
 */
export function moduleRecordName(moduleName: string, isPackage = false): string {
  return moduleName.replace(/\./g, "/") + (isPackage ? "/__init__.py" : ".py");
}

/** The record a pickle (or other resource) of `package` is stored under: "a.b" + "x.pkl" → "a/b/x.pkl". */
export function resourceRecordName(packageName: string, resource: string): string {
  return `${packageName.replace(/\./g, "/")}/${resource}`;
}

/** The record of storage `key`: ".data/<key>.storage". */
export function storageRecordName(key: string): string {
  return `.data/${key}.storage`;
}

/**
 * The module a source record defines, or undefined when the record is not an
 * importable Python source ("a/b.py" → "a.b", "a/b/__init__.py" → package "a.b").
 */
export function moduleForRecord(name: string): { name: string; isPackage: boolean } | undefined {
  if (!name.endsWith(".py") || name.startsWith(".data/")) return undefined;
  const path = name.slice(0, -3);
  const isPackage = path === "__init__" || path.endsWith("/__init__");
  const modulePath = isPackage ? path.slice(0, Math.max(0, path.length - "/__init__".length)) : path;
  if (modulePath === "" || modulePath === "__init__") return undefined;
  const moduleName = modulePath.replace(/\//g, ".");
  return isModuleName(moduleName) ? { name: moduleName, isPackage } : undefined;
}

const STORAGE = /^\.data\/([^/]+)\.storage$/;

/** The storage key of a ".data/<key>.storage" record, or undefined. */
export function storageKeyForRecord(name: string): string | undefined {
  return STORAGE.exec(name)?.[1];
}
