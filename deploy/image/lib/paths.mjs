// Where the image scripts and their settings are.
import { join, resolve } from "node:path";

export const IMAGE_DIR = resolve(import.meta.dirname, "..");
export const REPO_ROOT = resolve(IMAGE_DIR, "../..");
/** podman / buildah with the containers settings of deploy/image/containers/. */
export const PODMAN = join(IMAGE_DIR, "podman");
export const BUILDAH = join(IMAGE_DIR, "buildah");
