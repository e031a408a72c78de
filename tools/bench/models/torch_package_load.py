"""The archive benchmark's contrast (tools/bench/archive.mjs): loading an archive the
stock torch.package way, which reads every storage into memory of its own -- a copy
of the weights per interpreter."""

from torch.package import PackageImporter


def load(path, package, resource):
    return PackageImporter(path).load_pickle(package, resource, map_location="cpu")
