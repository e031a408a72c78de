// The images in local storage that a build made: found by their inputs hash (a build
// whose inputs did not change reuses them), and older builds of one kind removed (vfs
// storage keeps a full copy per layer).
import { BUILDAH, PODMAN } from "./paths.mjs";
import { exec } from "./progress.mjs";
import { INPUTS_LABEL, KIND_LABEL } from "./settings.mjs";

/** Whether `reference` (name:tag) is in local storage. */
export async function imageExists(reference) {
  return exec(PODMAN, ["image", "exists", reference]).then(
    () => true,
    () => false,
  );
}

/** The image's size in bytes and its id. */
export async function imageFacts(reference) {
  const [facts] = JSON.parse(await exec(PODMAN, ["image", "inspect", reference]));
  return { id: facts.Id, size: facts.Size, created: facts.Created };
}

/** The image's labels, or undefined when there is no such image. */
export async function imageLabels(reference) {
  if (!(await imageExists(reference))) return undefined;
  const [facts] = JSON.parse(await exec(PODMAN, ["image", "inspect", reference]));
  return facts.Labels ?? {};
}

/** Removes the images of `kind` whose inputs are not `keep` (ones a container still
 * uses stay: podman refuses, and that is fine). Returns how many went. */
export async function removeOlderBuilds(kind, keep) {
  const listed = await exec(PODMAN, ["images", "--filter", `label=${KIND_LABEL}=${kind}`, "--format", "json"]);
  let removed = 0;
  for (const image of JSON.parse(listed || "[]")) {
    if (image.Labels?.[INPUTS_LABEL] === keep) continue;
    removed += await exec(PODMAN, ["rmi", image.Id]).then(
      () => 1,
      () => 0,
    );
  }
  return removed;
}

/** `buildah from <image>`; the working container's name. */
export async function workingContainer(from) {
  return (await exec(BUILDAH, ["from", "--pull=never", from])).trim();
}
