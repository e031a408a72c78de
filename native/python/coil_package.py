"""Packing objects into archives and loading them, on top of torch.package.

Archives are torch.package archives (plus Coil's manifest, which the TypeScript side
writes), so torch.package does the hard parts it already does well: finding the
modules an object needs (AST scan of interned source, pickle opcode scan), the
intern / extern / mock / deny patterns, and importing an archive's modules under
names mangled per archive -- two archives with a module of the same name coexist.

What Coil changes is where tensor data comes from when loading: every storage is a
view of one shared, read-only mapping of the archive file, made once in Node, so the
weights are in memory once however many interpreters load the model.
"""

import importlib.util
import os
import sys

class UnresolvedModulesError(Exception):
    """Some modules the object needs are neither interned, externed nor mocked."""


# Modules every archive takes from the interpreter rather than from itself. The
# standard library is extern already, except sys and io, which torch.package
# refuses to extern implicitly.
DEFAULT_EXTERN = ("sys", "io", "torch", "torch.**", "numpy", "numpy.**")


def _load_factory_module(path):
    """Imports the user's file under its own name (model.py -> "model") so the
    archive records the natural module name, with its folder importable."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    name = os.path.splitext(os.path.basename(path))[0]
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def export(
    output,
    file,
    factory,
    args,
    kwargs,
    intern=(),
    extern=(),
    mock=(),
    deny=(),
    package="coil_entry",
    resource="model.pkl",
):
    """Builds factory(*args, **kwargs) from `file` and writes it as a torch.package
    archive at `output`. Unresolved modules are reported all at once (torch.package's
    PackagingError). Returns what was packed.

    The pickle goes into a package of its own (`coil_entry`): torch.package cannot
    load a pickle from a package whose name is also a module (model.py -> "model")."""
    from torch.package import PackageExporter, PackagingError

    module = _load_factory_module(file)
    build = getattr(module, factory, None)
    if build is None or not callable(build):
        raise AttributeError(f"{file} has no callable {factory!r}")
    obj = build(*args, **kwargs)
    try:
        with PackageExporter(output) as exporter:
            exporter.extern(list(DEFAULT_EXTERN) + list(extern))
            for pattern in mock:
                exporter.mock(pattern)
            for pattern in deny:
                exporter.deny(pattern)
            # The factory's module and anything else asked for travel as source.
            exporter.intern([module.__name__] + list(intern))
            exporter.save_pickle(package, resource, obj)
    except PackagingError as error:
        # torch.package lists every unresolved module at once; say what to do.
        raise UnresolvedModulesError(
            f"{error}\nAdd --intern, --extern or --mock patterns for these modules."
        ) from None
    finally:
        sys.modules.pop(module.__name__, None)
    return {"package": package, "resource": resource, "type": f"{type(obj).__module__}.{type(obj).__qualname__}"}


class _MappedReader:
    """torch.package's file reader, except that storages are views of the shared
    mapping of the archive (`mapping`: a uint8 tensor over it) at the offsets the
    TypeScript reader validated, instead of copies."""

    def __init__(self, reader, mapping, offsets):
        self._reader = reader
        self._buffer = mapping.numpy()  # the same memory, with the buffer protocol
        self._offsets = offsets

    def get_storage_from_record(self, name, numel, dtype):
        import torch

        offset = self._offsets.get(name)
        if offset is None:
            raise KeyError(f"archive has no storage record {name!r}")
        if numel == 0:
            return torch.empty(0, dtype=dtype)
        # A tensor whose storage begins at the record: pickled tensors index into it.
        return torch.frombuffer(self._buffer, dtype=dtype, count=numel, offset=offset)

    def __getattr__(self, name):  # get_record, has_record, get_all_records
        return getattr(self._reader, name)


def load(path, mapping, offsets, package, resource):
    """Unpickles the archive's entry object, its modules imported from the archive
    under names private to this archive, its tensors over `mapping`."""
    from torch.package import PackageImporter

    importer = PackageImporter(path)
    importer.zip_reader = _MappedReader(importer.zip_reader, mapping, offsets)
    return importer.load_pickle(package, resource, map_location="cpu")
