// What the image is made of and how it runs: one place for the names the build, the
// e2e test and the benchmark share.

/** The Debian release the root file system is made from. */
export const SUITE = "bookworm";

/**
 * Debian's packages in the base layer (their dependencies come with them; no
 * recommends). Debian's nodejs (18.19) is older than Coil's engines (>= 20.19): the
 * coil layer carries the build machine's `node` instead. python3-venv lets a derived
 * image make a venv with pip (examples/venv); tini is PID 1 (reaps, forwards signals).
 */
export const DEBIAN_PACKAGES = [
  "python3",
  "libpython3.11",
  "python3-numpy",
  "python3-torch",
  "python3-torchvision",
  "python3-venv",
  "tini",
];

/** The image's names: the coil image (tagged with its inputs' hash, and `latest`),
 * and the Debian base it is built on (tagged with its own inputs' hash). */
export const IMAGE = "localhost/coil";
export const BASE_IMAGE = "localhost/coil-base";
/** Label holding an image's inputs hash; label listing the coil layer's inputs (name ->
 * hash, to say what changed); label telling the two kinds apart. */
export const INPUTS_LABEL = "io.coil.image.inputs";
export const MANIFEST_LABEL = "io.coil.image.manifest";
export const KIND_LABEL = "io.coil.image.kind";

/** The unprivileged user the server runs as. */
export const USER = { name: "coil", uid: 1000, home: "/home/coil" };

/** Where things are inside the image. */
export const APP_DIR = "/opt/coil";
export const CONFIG_FILE = "/etc/coil/coil.json";
export const MODELS_DIR = "/mnt/models";
export const HTTP_PORT = 8080;
export const GRPC_PORT = 9000;
export const READY_PATH = "/v2/health/ready";
