"""Packing objects into archives and loading them, on top of torch.package.

Archives are torch.package archives (plus Coil's manifest, which the TypeScript side
writes), so torch.package does the hard parts it already does well: finding the
modules an object needs (AST scan of interned source, pickle opcode scan), the
intern / extern / mock / deny patterns, and importing an archive's modules under
names mangled per archive -- two archives with a module of the same name coexist.

What Coil adds when packing: the modules no pattern names are classified by where
they come from (the model's own folder: interned; an installed distribution, the
standard library, torch: extern), the distributions recorded so that loading can
check them, and the model's signature inferred from its example inputs.

What Coil changes when loading: every storage is a view of one shared, read-only
mapping of the archive file, made once in Node, so the weights are in memory once
however many interpreters load the model.
"""

import contextlib
import importlib.util
import inspect
import json
import os
import sys
import warnings


class UnresolvedModulesError(Exception):
    """Some modules the object needs cannot be packed as asked."""


class MissingDistributionError(ImportError):
    """The archive needs a distribution the loading Python does not have."""


class ExampleInputsError(Exception):
    """example_inputs() is missing, returns something else than tensors, or the model fails on them."""


# Modules every archive takes from the interpreter rather than from itself. The
# standard library and torch are extern already, except sys and io, which
# torch.package refuses to extern implicitly.
DEFAULT_EXTERN = ("sys", "io", "torch", "torch.**", "numpy", "numpy.**")

# Where Coil's manifest lives in an archive (packages/format-reader/src/constants.ts).
MANIFEST_RECORD = ".data/coil/manifest.json"

# Each round of packing resolves the modules the previous round's interned source
# imports; a model's own code is rarely more than a few imports deep.
MAX_ROUNDS = 12


# --- the model's file --------------------------------------------------------------


def _load_factory_module(path, root):
    """Imports the user's file under its own name (model.py -> "model") so the
    archive records the natural module name, with its folder (and the root) importable."""
    path = os.path.abspath(path)
    name = os.path.splitext(os.path.basename(path))[0]
    for folder in {os.path.dirname(path), root}:
        if folder not in sys.path:
            sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class _ImportState:
    """What sys.path and sys.modules held before packing, to put back afterwards: the
    interpreter goes on to serve others, who must import their own files afresh."""

    def __init__(self):
        self.path = list(sys.path)
        self.modules = set(sys.modules)

    def restore(self, root):
        """Drops the modules packing imported from the model's root or from folders
        added to sys.path meanwhile (extension modules stay: they cannot be unloaded)."""
        added = [p for p in sys.path if p not in self.path]
        for name in set(sys.modules) - self.modules:
            file = getattr(sys.modules[name], "__file__", None) or ""
            if file.endswith((".py", ".pyc")) and (_is_own(file, root) or any(_is_under(file, p) for p in added)):
                del sys.modules[name]
        sys.path[:] = self.path
        importlib.invalidate_caches()


def _is_under(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _is_own(path, root):
    """Source of the model's own: under its root, and not in an environment installed
    there (a project's .venv/lib/.../site-packages is not the project's code)."""
    parts = os.path.realpath(path).split(os.sep)
    return _is_under(path, root) and "site-packages" not in parts and "dist-packages" not in parts


# --- where a module comes from -----------------------------------------------------


class _Origins:
    """Classifies modules by where their source lies: under the model's root, in an
    installed distribution, in the standard library, or elsewhere."""

    def __init__(self, root, label):
        import importlib.metadata

        self.root = root
        self.label = label  # how the decisions name the root
        self._metadata = importlib.metadata
        self._top_to_distributions = importlib.metadata.packages_distributions()
        self._stdlib = set(getattr(sys, "stdlib_module_names", ()))

    @staticmethod
    def _locations(name):
        """Files and folders the module `name` comes from (None when it is not found)."""
        module = sys.modules.get(name)
        spec = getattr(module, "__spec__", None) if module is not None else None
        if spec is None:
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                spec = None
        if spec is None:
            return None
        places = list(spec.submodule_search_locations or [])
        if spec.origin and spec.has_location:
            places.insert(0, spec.origin)
        return places

    def distribution_of(self, name):
        """(distribution name, version) that provides module `name`, or None."""
        top = name.partition(".")[0]
        candidates = self._top_to_distributions.get(top, [])
        if len(candidates) > 1:
            # A namespace shared by several distributions: the one holding the module's file.
            places = [os.path.realpath(p) for p in self._locations(name) or []]
            candidates = [d for d in candidates if self._holds(d, places)] or candidates[:1]
        for candidate in candidates[:1]:
            try:
                distribution = self._metadata.distribution(candidate)
            except self._metadata.PackageNotFoundError:
                return None
            return distribution.metadata["Name"] or candidate, distribution.version
        return None

    def _holds(self, distribution_name, places):
        files = self._metadata.distribution(distribution_name).files or []
        held = {os.path.realpath(str(f.locate())) for f in files}
        return any(p in held or os.path.join(p, "__init__.py") in held for p in places)

    def classify(self, name):
        """(action, group, why) for a module no pattern matched."""
        top = name.partition(".")[0]
        places = self._locations(top)
        if places and any(_is_own(p, self.root) for p in places):
            return "intern", top, f"source in {self.label}"
        distribution = self.distribution_of(top)
        if distribution is not None:
            return "extern", top, f"installed: {distribution[0]} {distribution[1]} (checked when loading)"
        if top in self._stdlib or top in sys.builtin_module_names:
            return "extern", "standard library", "standard library"
        if places is None:
            return "extern", top, "not installed here (an optional import): the loading Python's if it has it"
        return "extern", top, (
            f"outside {self.label} and not an installed distribution ({places[0]}): the loading "
            "Python must provide it; --intern it or widen --root to pack its source"
        )


# --- packing -----------------------------------------------------------------------


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
    root=None,
    example=None,
    infer=True,
    package="coil_entry",
    resource="model.pkl",
):
    """Builds factory(*args, **kwargs) from `file` and writes it as a torch.package
    archive at `output`.

    Modules that no pattern names are classified (see _Origins) and packing is
    retried with patterns for them; the explicit patterns come first, so they win.
    Returns what was packed: the entry point, the decisions per module group, the
    distributions the archive's externs come from, and the signature inferred from
    the example inputs (None without them, or with `infer` false: the caller has one).
    A module's own example_inputs() that cannot describe the model (not tensors: text as
    lists of bytes) leaves the signature to the caller, with a note saying why; one named
    with `example` must work.

    The pickle goes into a package of its own (`coil_entry`): torch.package cannot
    load a pickle from a package whose name is also a module (model.py -> "model")."""
    file = os.path.abspath(file)
    root = os.path.abspath(root) if root else os.path.dirname(file)
    state = _ImportState()
    try:
        module = _load_factory_module(file, root)
        build = getattr(module, factory, None)
        if build is None or not callable(build):
            raise AttributeError(f"{file} has no callable {factory!r}")
        examples = _example_function(module, example)
        obj = build(*args, **kwargs)
        notes = _bake_parametrizations(obj)
        explicit = {"intern": list(intern), "extern": list(extern), "mock": list(mock), "deny": list(deny)}
        whose = "the model file's folder" if root == os.path.dirname(file) else "--root"
        label = f"{os.path.basename(root)}/ ({whose})"
        origins = _Origins(root, label)
        distributions, decisions = _export_resolving(output, obj, module.__name__, explicit, origins, package, resource)
        # After pickling: running the model must not change what was packed.
        signature, note = None, None
        if examples is not None and (infer or example is not None):
            try:
                signature = _infer_signature(obj, examples)
            except ExampleInputsError as error:
                if example is not None:
                    raise
                note = f"no signature inferred: {error}"
    finally:
        state.restore(root)
    return {
        "package": package,
        "resource": resource,
        "type": f"{type(obj).__module__}.{type(obj).__qualname__}",
        "decisions": decisions,
        "distributions": distributions,
        "signature": signature,
        "signatureNote": note,
        "notes": notes,
    }


def _drop_parametrization_hooks(module):
    """The state_dict hooks torch's parametrizations leave behind (weight_norm's
    _weight_norm_compat_hook, a local function: unpicklable), useless once baked."""
    for hooks in (module._load_state_dict_pre_hooks, getattr(module, "_state_dict_hooks", {})):
        for key, hook in list(hooks.items()):
            function = getattr(hook, "hook", hook)  # torch 2.x wraps them in _WrappedHook
            if getattr(function, "__module__", "").startswith("torch.nn.utils.parametriz") and "<locals>" in getattr(
                function, "__qualname__", ""
            ):
                del hooks[key]


def _bake_parametrizations(obj):
    """torch.package pickles modules, and a module with parametrizations (weight_norm,
    spectral_norm, orthogonal: torch.nn.utils.parametrize) cannot be pickled -- torch
    allows only its state_dict. For inference a parametrized tensor is just its
    computed value, so each is replaced by that value (remove_parametrizations with
    leave_parametrized=True): the same outputs, a plain module. Changes `obj` in place
    (the packing process's own copy). Returns notes saying what was baked."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(obj, torch.nn.Module):
        return []
    parametrize = torch.nn.utils.parametrize
    baked = []
    with torch.no_grad():
        for path, module in list(obj.named_modules()):
            if not parametrize.is_parametrized(module):
                continue
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
                baked.append(f"{path}.{name}" if path else name)
            _drop_parametrization_hooks(module)
    if not baked:
        return []
    shown = ", ".join(baked[:3]) + (f" and {len(baked) - 3} more" if len(baked) > 3 else "")
    return [
        f"parametrized tensors baked into plain ones (torch.package cannot pickle parametrizations; "
        f"inference gives the same outputs): {shown}"
    ]


def _export_resolving(output, obj, module_name, explicit, origins, package, resource):
    from torch.package import PackagingError

    auto = {}  # top-level module -> (action, group, why), grown each round
    for _ in range(MAX_ROUNDS):
        try:
            exporter = _export_once(output, obj, module_name, explicit, auto, package, resource)
        except PackagingError as error:
            unresolved, other = _broken_modules(error)
            if other or not unresolved:
                raise UnresolvedModulesError(
                    f"{error}\nChange the --intern, --extern, --mock or --deny patterns (or --root) for these modules."
                ) from None
            for name in unresolved:
                action, group, why = origins.classify(name)
                # The whole top-level package: its other modules follow the same rule.
                top = name.partition(".")[0]
                auto[top] = (action, group, why)
            continue
        return _distributions(exporter, origins), _decisions(exporter, module_name, explicit, auto, origins)
    raise UnresolvedModulesError(f"could not resolve the modules {output} needs in {MAX_ROUNDS} rounds")


@contextlib.contextmanager
def _torch_package_quietly():
    """torch 2.x's torch.package warns about its own use of TypedStorage on every
    tensor; that says nothing to the user, so it is silenced while it runs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
        yield


def _export_once(output, obj, module_name, explicit, auto, package, resource):
    from torch.package import PackageExporter

    with _torch_package_quietly(), PackageExporter(output) as exporter:
        # First match wins: explicit patterns, then the factory's module, then the defaults.
        for pattern in explicit["deny"]:
            exporter.deny(pattern)
        for pattern in explicit["mock"]:
            exporter.mock(pattern)
        if explicit["extern"]:
            exporter.extern(explicit["extern"])
        exporter.intern([module_name] + explicit["intern"])
        exporter.extern(list(DEFAULT_EXTERN))
        for top, (action, _group, _why) in auto.items():
            getattr(exporter, action)([top, f"{top}.**"])
        exporter.save_pickle(package, resource, obj)
    return exporter


def _broken_modules(error):
    """(modules no pattern matched, modules with any other problem) from a PackagingError."""
    from torch.package.package_exporter import PackagingErrorReason

    unresolved, other = [], []
    for name, attrs in error.dependency_graph.nodes.items():
        reason = attrs.get("error")
        if reason is None:
            continue
        (unresolved if reason == PackagingErrorReason.NO_ACTION else other).append(name)
    return sorted(unresolved), sorted(other)


def _decisions(exporter, module_name, explicit, auto, origins):
    """What happened to each group of modules, and why: [{group, action, why, modules}]."""
    from torch.package.glob_group import GlobGroup

    patterns = [(action, p, GlobGroup(p)) for action in ("deny", "mock", "extern", "intern") for p in explicit[action]]
    rows = {}
    for action in ("intern", "extern", "mock"):
        for name in getattr(exporter, f"{action}ed_modules")():
            top = name.partition(".")[0]
            matched = next((f"--{a} {p}" for a, p, glob in patterns if glob.matches(name)), None)
            if name == module_name:
                group, why = name, "the factory's module"
            elif matched is not None:
                group, why = matched.split(" ", 1)[1], f"{matched} (explicit)"
            elif top in auto:
                _action, group, why = auto[top]
            elif top == "torch":
                group, why = "torch", _installed_why(origins, "torch", "torch")
            elif top == "numpy":
                group, why = "numpy", _installed_why(origins, "numpy", "numpy")
            elif top in ("sys", "io") or origins.classify(name)[1] == "standard library":
                group, why = "standard library", "standard library"
            else:
                group, why = top, "default"
            rows.setdefault((group, action, why), []).append(name)
    return [
        {"group": group, "action": action, "why": why, "modules": sorted(modules)}
        for (group, action, why), modules in rows.items()
    ]


def _installed_why(origins, module, label):
    distribution = origins.distribution_of(module)
    if distribution is None:
        return f"always extern ({label}: from the loading Python)"
    return f"always extern ({distribution[0]} {distribution[1]}, checked when loading)"


def _distributions(exporter, origins):
    """The installed distributions the archive's extern modules come from:
    [{name, version, modules}] sorted by name, `modules` the top-level names."""
    found = {}
    for name in exporter.externed_modules():
        top = name.partition(".")[0]
        distribution = origins.distribution_of(top)
        if distribution is not None:
            found.setdefault(distribution, set()).add(top)
    return [
        {"name": name, "version": version, "modules": sorted(tops)} for (name, version), tops in sorted(found.items())
    ]


# --- the signature, from example inputs --------------------------------------------------


def _example_function(module, name):
    """The module's example_inputs (or the function `name`), or None."""
    if name is None:
        found = getattr(module, "example_inputs", None)
        return found if callable(found) else None
    found = getattr(module, name, None)
    if found is None or not callable(found):
        raise ExampleInputsError(f"{module.__file__} has no function {name!r} (--example)")
    return found


def _infer_signature(obj, examples):
    """Runs the model on its example inputs, then on one more row, and describes its
    inputs and outputs: {inputs, outputs, dynamicBatch}, dim 0 -1 where the batch varies."""
    import torch

    try:
        inputs = examples()
    except Exception as error:
        raise ExampleInputsError(f"{examples.__name__}() raised {type(error).__name__}: {error}") from error
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    if not isinstance(inputs, (tuple, list)) or not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise ExampleInputsError(f"{examples.__name__}() must return a tensor or a tuple of tensors, got {_kind(inputs)}")
    inputs = tuple(inputs)
    with torch.no_grad():
        try:
            first = _named_outputs(obj(*inputs))
        except Exception as error:
            raise ExampleInputsError(f"the model failed on {examples.__name__}(): {type(error).__name__}: {error}") from error
        batch = inputs[0].shape[0] if inputs[0].dim() > 0 else None
        varied = [t.dim() > 0 and t.shape[0] == batch for t in inputs]
        second = None
        if batch is not None:
            grown = tuple(torch.cat([t, t[:1]]) if v else t for t, v in zip(inputs, varied))
            try:
                second = _named_outputs(obj(*grown))
            except Exception:
                second = None  # the model takes only this batch size
    dynamic = second is not None and [n for n, _ in second] == [n for n, _ in first]
    names = _parameter_names(obj, len(inputs))
    input_specs = [_spec(name, t, dynamic and v) for name, t, v in zip(names, inputs, varied)]
    output_specs = []
    for (name, t), (_, u) in zip(first, second if dynamic else first):
        grows = dynamic and t.dim() > 0 and u.dim() == t.dim() and t.shape[0] == batch and u.shape[0] == batch + 1
        output_specs.append(_spec(name, t, grows))
    return {"inputs": input_specs, "outputs": output_specs, "dynamicBatch": dynamic}


def _kind(value):
    """What a value is, for messages: "Tensor", "a tuple of Tensor, int"."""
    if not isinstance(value, (tuple, list)):
        return type(value).__name__
    return f"a {type(value).__name__} of {', '.join(type(v).__name__ for v in value)}"


def _named_outputs(result):
    """[(name, tensor)] as Coil names a result: a dict's keys, else output__0, output__1, ..."""
    import torch

    if isinstance(result, torch.Tensor):
        items = [("output__0", result)]
    elif isinstance(result, dict):
        items = [(str(k), v) for k, v in result.items()]
    elif isinstance(result, (tuple, list)):
        items = [(f"output__{i}", v) for i, v in enumerate(result)]
    else:
        raise ExampleInputsError(f"the model returned {_kind(result)}: a signature describes tensors")
    bad = [name for name, value in items if not isinstance(value, torch.Tensor)]
    if bad:
        raise ExampleInputsError(
            f"outputs {', '.join(bad)} are not tensors: a signature describes tensors (return tensors, "
            "or a dict or tuple of them; give --output-spec to describe them yourself)"
        )
    return items


def _parameter_names(obj, count):
    """Names for `count` positional inputs: forward's parameters (or the callable's)."""
    target = getattr(obj, "forward", obj)
    names = []
    try:
        for parameter in inspect.signature(target).parameters.values():
            if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
                names.append(parameter.name)
    except (TypeError, ValueError):
        pass
    return [names[i] if i < len(names) else f"input__{i}" for i in range(count)]


def _spec(name, tensor, dynamic_batch):
    dtype = str(tensor.dtype).replace("torch.", "")
    shape = list(tensor.shape)
    if dynamic_batch:
        shape[0] = -1
    return {"name": name, "dtype": dtype, "shape": shape}


# --- loading -------------------------------------------------------------------------


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


def check_distributions(path, reader):
    """Checks the distributions the manifest records against this Python: a missing
    one raises MissingDistributionError; another version is returned as a warning's
    message, for Node to report once (not once per interpreter on stderr). Archives
    without a manifest, or from before distributions were recorded, pass."""
    import importlib.metadata

    differences, missing = [], []
    if not reader.has_record(MANIFEST_RECORD):
        return differences
    manifest = json.loads(bytes(reader.get_record(MANIFEST_RECORD)).decode("utf-8"))
    python = sys.executable or "the loading Python"
    for entry in manifest.get("distributions") or []:
        name, version = entry["name"], entry["version"]
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(entry)
            continue
        if installed != version:
            differences.append(f"{path} was packed with {name} {version}; this Python ({python}) has {name} {installed}")
    if missing:
        needs = "; ".join(
            f"the distribution {e['name']} (packed with {e['name']} {e['version']}, for the modules "
            f"{', '.join(e.get('modules') or [e['name']])})"
            for e in missing
        )
        pins = " ".join(f'"{e["name"]}=={e["version"]}"' for e in missing)
        raise MissingDistributionError(
            f"{path} needs {needs}, which this Python ({python}) does not have: install it into that Python, "
            f"e.g. `{python} -m pip install {pins}`"
        )
    return differences


def load(path, mapping, offsets, package, resource):
    """Unpickles the archive's entry object, its modules imported from the archive
    under names private to this archive, its tensors over `mapping`. Returns it with
    the warnings of check_distributions."""
    from torch.package import PackageImporter

    importer = PackageImporter(path)
    differences = check_distributions(path, importer.zip_reader)
    importer.zip_reader = _MappedReader(importer.zip_reader, mapping, offsets)
    with _torch_package_quietly():
        return importer.load_pickle(package, resource, map_location="cpu"), differences
