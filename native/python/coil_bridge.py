"""The Python half of Coil's interpreter engine; one copy runs in every interpreter.

The native engine calls the functions below by name (``Job.function``) with
values already converted from JavaScript. Tensors arrive as views of Node's
memory and leave through ``export``, which the engine copies once into memory Node
owns; both ways the engine does it in C++ over DLPack where this torch can
(``NATIVE_TENSORS``), else through ``make_tensor`` and ``_export_tensor``.
Nothing here is shared between interpreters: each has its own module objects, its
own objects table and its own torch.
"""

import ctypes
import gc
import importlib.util
import os
import sys
import traceback

# Must equal kBridgeVersion in native/src/engine/bootstrap.cc; bump both together
# whenever the functions one calls on the other, or the dtype codes, change.
BRIDGE_VERSION = 4

# Each interpreter lives in its own link-map namespace, where glibc crashes on
# RTLD_GLOBAL (docs/engine.md, fact 5) -- and `import torch` asks for it. Strip the flag
# before anything imports torch.
_cdll_init = ctypes.CDLL.__init__


def _cdll_init_local(self, name, mode=ctypes.DEFAULT_MODE, *args, **kwargs):
    _cdll_init(self, name, mode & ~ctypes.RTLD_GLOBAL, *args, **kwargs)


ctypes.CDLL.__init__ = _cdll_init_local
sys.setdlopenflags(sys.getdlopenflags() & ~os.RTLD_GLOBAL)

# onnxruntime (1.2x+) keeps telemetry in an SQLite database under ~/.cache. Each
# interpreter loads its own onnxruntime, and so its own SQLite, into one process;
# SQLite's file locks (fcntl) belong to the process, not to a copy of the library, so
# one copy truncated the shared-memory file another had mapped: SIGBUS, the whole
# server gone (docs/engine.md, "More that building it taught"). Off, in every interpreter.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

# Prints from models should show up promptly: this interpreter is never finalised.
for _stream in (sys.stdout, sys.stderr):
    try:
        _stream.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass


class CoilInterrupt(BaseException):
    """Raised into a running call that was cancelled or ran past its deadline.

    A BaseException, like KeyboardInterrupt, so ``except Exception`` in a model
    does not swallow it.
    """


_job_slot = ctypes.c_uint64(0)  # replaced by the engine's own slot (attach_job_slot)
_set_async_exc = None  # PyThreadState_SetAsyncExc of this interpreter's libpython (start_watchdog)


def attach_job_slot(address):
    """The engine keeps the id of the job running on the interpreter's thread in
    memory at `address`, written with the GIL held (a plain store: cheaper than
    setting an attribute twice a call)."""
    global _job_slot
    _job_slot = ctypes.c_uint64.from_address(address)


def current_job():
    """Id of the job running on the interpreter's thread (0: none). Read it with the
    GIL held, as every Python code does."""
    return _job_slot.value


def start_watchdog(wake_fd, library):
    """Starts the thread that interrupts cancelled calls.

    The engine must not call into this interpreter from Node's thread (the
    namespace's pthread keys collide with Node's), so to interrupt a running job it
    writes the job's id to a pipe. This thread -- one of the interpreter's own --
    reads it and, holding the GIL, raises CoilInterrupt into the interpreter's main
    thread if that job is still the one running. PyThreadState_SetAsyncExc comes
    from this interpreter's own libpython (ctypes.pythonapi would be the program's).
    """
    import threading

    global _set_async_exc
    set_async_exc = ctypes.PyDLL(library).PyThreadState_SetAsyncExc
    set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
    set_async_exc.restype = ctypes.c_int
    _set_async_exc = set_async_exc
    target = threading.get_ident()  # bootstrap runs on the interpreter's own thread
    os.set_blocking(wake_fd, True)

    def watch():
        while True:
            try:
                data = os.read(wake_fd, 8)
            except InterruptedError:
                continue
            if len(data) < 8:
                return
            job = int.from_bytes(data, sys.byteorder)
            if job and job == _job_slot.value:
                set_async_exc(target, CoilInterrupt)

    threading.Thread(target=watch, name="coil-watchdog", daemon=True).start()


# First item of the tuple `export` turns each tensor into; the engine checks identity.
TENSOR_MARKER = object()

# Index = dtype code shared with native/src/engine/value.h.
DTYPE_NAMES = (
    "float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool",
    "uint16", "uint32", "uint64",
)

_torch = None
_dtypes = None  # code -> torch.dtype, or None where this torch lacks it (uint16/32/64 before torch 2.3)
_codes = None  # torch.dtype -> code
_numpy_codes = None  # numpy dtype name -> code, for the dtypes numpy carries instead of torch

# What the engine needs to make and read tensors itself (native/src/engine/marshal.cc),
# ~3 us a tensor cheaper than make_tensor and _export_tensor: (torch.Tensor,
# torch._C._from_dlpack, torch._C._to_dlpack, the torch dtype of each code, whether
# inputs go through a device hook, whether outputs do). None until torch is loaded; the
# DLPack functions None where this torch lacks them. The engine reads it before each
# conversion and checks, once per torch, which dtypes DLPack carries both ways.
NATIVE_TENSORS = None


def _load_torch():
    global _torch, _dtypes, _codes, _numpy_codes
    if _torch is None:
        import torch

        _dtypes = tuple(getattr(torch, name, None) for name in DTYPE_NAMES)
        _codes = {dtype: code for code, dtype in enumerate(_dtypes) if dtype is not None}
        _numpy_codes = {name: code for code, name in enumerate(DTYPE_NAMES) if _dtypes[code] is None}
        _torch = torch
        _describe_native_tensors()
    return _torch


def _describe_native_tensors():
    global NATIVE_TENSORS
    if _torch is None:
        return
    native = getattr(_torch, "_C", None)
    NATIVE_TENSORS = (
        _torch.Tensor,
        getattr(native, "_from_dlpack", None),
        getattr(native, "_to_dlpack", None),
        _dtypes,
        _to_device is not None,
        _from_device is not None,
    )


# --- device hooks, set by the backend's Python side ------------------------------

_to_device = None  # tensor -> tensor on the backend's device
_from_device = None  # tensor -> contiguous CPU tensor
_call_context = None  # () -> context manager wrapped around every model call


def set_backend_hooks(to_device=None, from_device=None, call_context=None):
    """Lets a backend place inputs, fetch outputs and wrap model calls."""
    global _to_device, _from_device, _call_context
    _to_device, _from_device, _call_context = to_device, from_device, call_context
    if "torch" in sys.modules:  # a backend has imported it: the engine's tensors can start now
        _load_torch()
    _describe_native_tensors()


# --- values in and out --------------------------------------------------------------


def make_tensor(code, shape, address, nbytes):
    """A torch tensor over Node's memory at `address` (no copy), and the object that
    owns that memory on the Python side: a ctypes array everything that uses the
    memory references, which tells the engine when Python has let go of it. (Not a
    bare memoryview: numpy's views of one reference its buffer, not the memoryview.)"""
    torch = _load_torch()
    dtype = _dtypes[code]
    owner = (ctypes.c_char * nbytes).from_address(address)
    if dtype is None:
        # This torch has no such dtype: a numpy array over the same memory instead.
        import numpy

        array = numpy.frombuffer(owner, dtype=DTYPE_NAMES[code]) if nbytes else numpy.empty(0, DTYPE_NAMES[code])
        return (array.reshape(shape), owner)
    if nbytes == 0:
        tensor = torch.empty(shape, dtype=dtype)
    else:
        flat = torch.frombuffer(owner, dtype=dtype)
        # view(*shape) parses faster than reshape(shape); the buffer is contiguous.
        tensor = flat.view(*shape) if shape else flat.view(())
    if _to_device is not None:
        tensor = _to_device(tensor)
    return (tensor, owner)


def export(value):
    """Turns a call's result into what the engine converts: containers into lists,
    tuples and dicts with str keys; torch tensors stay as they are where the engine
    reads them (calling _export_tensor for those it cannot read itself), else become
    _export_tensor's marker tuples; numpy arrays become tensors, or marker tuples for
    the dtypes this torch lacks."""
    kind = type(value)
    if value is None or kind in (bool, int, float, str, bytes):
        return value
    if kind in (list, tuple):
        return kind(export(item) for item in value)
    if kind is dict:
        return {str(key): export(item) for key, item in value.items()}
    if _torch is not None and isinstance(value, _torch.Tensor):
        return _handed_over(value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)):  # namedtuples and other subclasses
        return tuple(export(item) for item in value)
    if isinstance(value, dict):
        return {str(key): export(item) for key, item in value.items()}
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(value, numpy.ndarray):
            _load_torch()
            code = _numpy_codes.get(value.dtype.name)
            if code is not None:  # a dtype this torch lacks: sent from numpy's memory
                array = numpy.ascontiguousarray(value)
                if not array.dtype.isnative:
                    array = array.astype(array.dtype.newbyteorder("="))
                return (TENSOR_MARKER, code, tuple(array.shape), array.ctypes.data, array.nbytes, array)
            return _handed_over(_torch.from_numpy(numpy.ascontiguousarray(value)))
        if isinstance(value, numpy.generic):
            return value.item()
    if "torch" in sys.modules and isinstance(value, sys.modules["torch"].Tensor):
        _load_torch()
        return _handed_over(value)
    for simple in (bool, int, float, str):  # enums, IntEnum, str subclasses
        if isinstance(value, simple):
            return simple(value)
    raise TypeError(
        f"cannot return a {kind.__module__}.{kind.__qualname__} to Node: return tensors, numbers, "
        "str, bytes, None, or lists, tuples and dicts of them"
    )


def _handed_over(tensor):
    """A tensor as the engine takes it: itself where the engine reads tensors
    (NATIVE_TENSORS), else _export_tensor's marker tuple -- made here, so a backend's
    from_device runs inside its call_context (call_object)."""
    return tensor if NATIVE_TENSORS is not None and _from_device is None else _export_tensor(tensor)


def _export_tensor(tensor):
    """A tensor as the engine copies it: (TENSOR_MARKER, dtype code, shape, data address,
    nbytes, the tensor that owns the data), on the CPU and contiguous."""
    if _from_device is not None:
        tensor = _from_device(tensor)
    if tensor.requires_grad:
        tensor = tensor.detach()
    if tensor.device.type != "cpu":
        tensor = tensor.cpu()
    if not tensor.is_contiguous():
        tensor = tensor.contiguous()
    code = _codes.get(tensor.dtype)
    if code is None:
        raise TypeError(f"tensor dtype {tensor.dtype} cannot cross to Node (supported: {', '.join(DTYPE_NAMES)})")
    return (TENSOR_MARKER, code, tuple(tensor.shape), tensor.data_ptr(), tensor.numel() * tensor.element_size(), tensor)


def describe_error(exc, tb):
    """(qualified type name, message, formatted traceback, was it Coil's interrupt?)"""
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ in ("builtins", "__main__") else f"{kind.__module__}.{kind.__qualname__}"
    text = "".join(traceback.format_exception(kind, exc, tb))
    return (name, str(exc), text, isinstance(exc, CoilInterrupt))


# --- operations the engine runs ------------------------------------------------------

_namespace = {"__name__": "__coil__"}  # globals for exec_source / eval_expr
_objects = {}  # object id -> replicated object instance
_added_paths = []  # sys.path entries added on behalf of loaded files
_loaded_modules = []  # names of modules loaded from files


def noop():
    """The cheapest round trip: measures the engine itself."""
    return None


def echo(value):
    """Returns its argument through the full conversion path (tests, diagnostics)."""
    return export(value)


def exec_source(source, filename="<coil>"):
    _before_model_code()
    exec(compile(source, filename, "exec"), _namespace)


def eval_expr(expression):
    _before_model_code()
    return export(eval(expression, _namespace))


def load_module(path, name=None):
    """Imports a Python file as a module of this interpreter; its folder joins sys.path
    so its sibling modules import too."""
    _before_model_code()
    return _load_module(path, name)


def _load_module(path, name=None):
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no Python file at {path}")
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
        _added_paths.append(folder)
    name = name or "coil_user_" + os.path.splitext(os.path.basename(path))[0]
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None) == path:
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _loaded_modules.append(name)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def create_object(object_id, path, factory, args, kwargs):
    """Instantiates a replicated object: factory(*args, **kwargs) from the file at path."""
    _before_model_code()
    module = _load_module(path, f"coil_object_{object_id}")
    build = getattr(module, factory, None)
    if build is None:
        raise AttributeError(f"{path} has no attribute {factory!r}")
    if not callable(build):
        raise TypeError(f"{path}:{factory} is not callable")
    _objects[object_id] = build(*args, **kwargs)
    return None


def call_object(object_id, method, args, kwargs):
    """obj.method(*args, **kwargs), or obj(*args, **kwargs) where method is None;
    kwargs None: none (Node sends no empty object each call)."""
    obj = _objects.get(object_id)
    if obj is None:
        raise KeyError(f"object {object_id} is not instantiated in this interpreter")
    target = obj if method is None else getattr(obj, method)
    if kwargs is None:
        kwargs = _NO_KWARGS
    if _call_context is None:
        return export(target(*args, **kwargs))
    with _call_context():
        return export(target(*args, **kwargs))


_NO_KWARGS = {}  # only ever unpacked (**), so no callee can change it


def drop_object(object_id):
    _objects.pop(object_id, None)
    sys.modules.pop(f"coil_object_{object_id}", None)
    gc.collect()


def _package():
    """coil_package.py, beside this file, imported once per interpreter on demand."""
    module = sys.modules.get("coil_package")
    if module is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "coil_package.py")
        spec = importlib.util.spec_from_file_location("coil_package", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["coil_package"] = module
    return module


def export_package(output, file, factory, args, kwargs, patterns):
    """Packs factory(*args, **kwargs) from `file` into a torch.package archive."""
    _before_model_code(archive=True)
    return export(_package().export(output, file, factory, args, kwargs, **patterns))


def load_package(object_id, path, mapping, offsets, package, resource):
    """Instantiates an archive's entry object as a replicated object of this interpreter;
    returns what Node should warn about (a distribution of another version)."""
    _before_model_code(archive=True)
    _objects[object_id], warnings = _package().load(path, mapping, offsets, package, resource)
    return {"warnings": warnings}


def run_hook(path, function, kwargs):
    """Runs a plugin's Python function (a backend preparing this interpreter)."""
    module = _load_module(path, "coil_plugin_" + os.path.splitext(os.path.basename(path))[0])
    return export(getattr(module, function)(**kwargs))


# --- accelerators ------------------------------------------------------------------

# Example inputs made from a model's signature, at which a dynamic (-1) dimension takes
# these sizes: 2 and 3, not 1, which exporters and torch.compile treat as a constant
# (they specialise size-1 dimensions). The accelerator prepares on the first set; both
# are checked against eager, so a form that froze a shape or a branch shows.
EXAMPLE_DYNAMIC_SIZES = (2, 3)

_EXAMPLE_DTYPES = {
    "bool": "bool", "uint8": "uint8", "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
    "float16": "float16", "bfloat16": "bfloat16", "float32": "float32", "float64": "float64",
}


class AcceleratorUnavailable(Exception):
    """Raised by an accelerator's hook when this interpreter cannot run it (a torch too
    old, a module missing): the model stays eager, with the message as the reason."""


class AccelerationRequest:
    """What an accelerator's hook is given beside the model."""

    def __init__(self, examples, names, dynamic, options):
        self.examples = examples  # tuples of input tensors, one per EXAMPLE_DYNAMIC_SIZES
        self.names = names  # the inputs' names, in call order
        self.dynamic = dynamic  # per input, the indices of its dynamic dimensions
        self.options = options  # the accelerator's own options (JSON values)
        self.call_context = _call_context  # what every call runs under (the backend's inference mode)

    def run(self, function, inputs):
        """function(*inputs) as a served call runs it."""
        if _call_context is None:
            return function(*inputs)
        with _call_context():
            return function(*inputs)


# Input shapes an accelerated form failed on, remembered per model (they go straight
# to eager); past this many, the accelerated form is given up for every call.
_FALLBACK_SHAPES_LIMIT = 64


class AcceleratedModel:
    """The accelerated callable in the objects table: calls go to it; anything else
    (methods, attributes) to the eager model, which it keeps.

    A call the accelerated form fails on (a shape its graph or session cannot take,
    an input it refuses) is answered by eager: only eager's own error reaches the
    caller. The inputs' shapes are then remembered, once eager answered them, and go
    to eager directly; `fallbacks` says how many calls did."""

    def __init__(self, accelerated, eager):
        self.accelerated = accelerated
        self.eager = eager
        self.eager_shapes = set()
        self.fallback_calls = 0
        self.fallback_error = None

    def __call__(self, *args, **kwargs):
        # The shapes are looked at only once some failed: nothing added to a call otherwise.
        if self.accelerated is not None and (not self.eager_shapes or _shapes_of(args) not in self.eager_shapes):
            try:
                return self.accelerated(*args, **kwargs)
            except Exception as error:  # CoilInterrupt (a timeout, a cancel) is a BaseException: not caught
                failed = f"{type(error).__name__}: {error}"[:500]
            result = self.eager(*args, **kwargs)  # the model's own error, if eager fails too
            self.fallback_error = failed
            if len(self.eager_shapes) < _FALLBACK_SHAPES_LIMIT:
                self.eager_shapes.add(_shapes_of(args))
            else:
                self.accelerated = None
        else:
            result = self.eager(*args, **kwargs)
        self.fallback_calls += 1
        return result

    def fallbacks(self):
        return {"calls": self.fallback_calls, "shapes": len(self.eager_shapes), "error": self.fallback_error}

    def __getattr__(self, name):
        return getattr(self.eager, name)


def _shapes_of(args):
    """What an accelerated form's success depends on: each input's shape and dtype."""
    return tuple((tuple(a.shape), a.dtype) if hasattr(a, "shape") and hasattr(a, "dtype") else type(a) for a in args)


def acceleration_fallbacks(object_id):
    """How many calls of an accelerated object were answered by eager, on how many
    input shapes, and the last error of the accelerated form; None when it is not
    accelerated here."""
    obj = _objects.get(object_id)
    return obj.fallbacks() if isinstance(obj, AcceleratedModel) else None


def _example_inputs(signature, size, seed):
    """One example per input: floats seeded random, integers zeros (valid indices for any
    embedding) but ones for a name ending in "mask" (an attention mask that keeps every
    position: all zeros masks everything, where exporters and eager disagree), bools
    true; -1 dimensions of `size`."""
    torch = _load_torch()
    generator = torch.Generator().manual_seed(seed)
    inputs = []
    for spec in signature:
        dtype_name = _EXAMPLE_DTYPES.get(spec["dtype"])
        if dtype_name is None:
            raise AcceleratorUnavailable(f"input {spec['name']!r} is {spec['dtype']}: accelerators take tensor inputs only")
        dtype = getattr(torch, dtype_name)
        shape = [size if d == -1 else d for d in spec["shape"]]
        if dtype.is_floating_point:
            tensor = torch.randn(shape, generator=generator, dtype=torch.float32).to(dtype)
        elif dtype == torch.bool or spec["name"].lower().endswith("mask"):
            tensor = torch.ones(shape, dtype=dtype)
        else:
            tensor = torch.zeros(shape, dtype=dtype)
        inputs.append(tensor)
    return tuple(inputs)


def _as_served(value):
    """`value` shaped as Node receives it (see export): mappings (a ModelOutput
    included) as dicts, sequences as lists or tuples, so an accelerated form may
    return a plain dict where eager returns a ModelOutput."""
    if isinstance(value, dict):
        return {str(key): _as_served(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return (list if type(value) is list else tuple)(_as_served(item) for item in value)
    return value


def _mismatch(expected, got, rtol, atol):
    """Why `got` is not `expected` (None if it is): the same structure as served, and
    each tensor leaf close within rtol/atol (other leaves equal)."""
    torch = _load_torch()
    from torch.utils import _pytree as pytree

    want, want_spec = pytree.tree_flatten(_as_served(expected))
    have, have_spec = pytree.tree_flatten(_as_served(got))
    if want_spec != have_spec:
        return f"it returns another structure than eager ({have_spec} instead of {want_spec})"
    for index, (a, b) in enumerate(zip(want, have)):
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            if a.shape != b.shape or a.dtype != b.dtype:
                return f"output {index} is {b.dtype}{list(b.shape)} where eager's is {a.dtype}{list(a.shape)}"
            if not torch.allclose(b, a, rtol=rtol, atol=atol, equal_nan=True):
                error = (b.double() - a.double()).abs().max().item() if a.numel() else 0.0
                return f"output {index} differs from eager's by up to {error:.3g} (rtol {rtol}, atol {atol})"
        elif type(a) is not type(b) or a != b:
            return f"output {index} is {b!r} where eager's is {a!r}"
    return None


def accelerate_object(object_id, hook_path, hook_function, signature, tolerance, options):
    """Replaces an object with the callable an accelerator's hook makes of it,
    hook(model, AccelerationRequest) -> callable, if that equals the eager model on
    example inputs made from `signature`; otherwise the object stays eager. Returns
    {accelerated, reason, details} (details: the callable's `coil_details`, what the
    accelerator wants known); never raises for the model's sake (the reason says why)."""
    eager = _objects.get(object_id)
    if eager is None:
        raise KeyError(f"object {object_id} is not instantiated in this interpreter")
    if isinstance(eager, AcceleratedModel):
        return {"accelerated": True, "reason": None, "details": export(getattr(eager.accelerated, "coil_details", None))}
    if not signature:
        return {"accelerated": False, "reason": "the model has no input signature to make example inputs from (pack it with one)"}
    try:
        examples = [_example_inputs(signature, size, seed) for seed, size in enumerate(EXAMPLE_DYNAMIC_SIZES)]
        dynamic = [[dim for dim, d in enumerate(spec["shape"]) if d == -1] for spec in signature]
        request = AccelerationRequest(examples, [spec["name"] for spec in signature], dynamic, options)
        module = _load_module(hook_path, "coil_plugin_" + os.path.splitext(os.path.basename(hook_path))[0])
        accelerated = getattr(module, hook_function)(eager, request)
        for inputs in examples:
            reason = _mismatch(request.run(eager, inputs), request.run(accelerated, inputs), tolerance["rtol"], tolerance["atol"])
            if reason is not None:
                shapes = ", ".join(str(list(t.shape)) for t in inputs)
                return {"accelerated": False, "reason": f"not equal to eager on example inputs {shapes}: {reason}"}
    except Exception as error:  # any failure leaves the model eager, with the reason
        kind = type(error)
        name = kind.__qualname__ if kind.__module__ in ("builtins", "__main__") or kind is AcceleratorUnavailable else f"{kind.__module__}.{kind.__qualname__}"
        lines = [line.strip() for line in str(error).split("\n") if line.strip()]
        return {"accelerated": False, "reason": f"{name}: {' '.join(lines[:3])[:500]}"}
    _objects[object_id] = AcceleratedModel(accelerated, eager)
    return {"accelerated": True, "reason": None, "details": export(getattr(accelerated, "coil_details", None))}


# --- what a lease may change, put back when the interpreter is returned ----------
#
# An interpreter serves one group of models at a time (a pool); when the pool closes,
# reset() makes it fit for the next one. Python state a model can reach is put back to
# a baseline taken just before the lease's first model code ran (after the backend
# prepared the interpreter): the attributes of every module then imported (torch.* too),
# of the classes they hold and the code of their functions, the contents of the plain
# dicts, lists and sets they hold (global hook registries), torch's global settings,
# sys.path, the environment and the working directory. Threads the lease started are
# stopped where Python code runs in them and reported where it does not. What a reset
# cannot undo is listed in docs/engine.md ("What a reset undoes").

_MISSING = object()

# The interpreter's own machinery: never rewound.
_KEEP_MODULES = frozenset(
    {
        __name__, "coil_package", "sys", "threading", "_thread", "importlib", "importlib._bootstrap",
        "importlib._bootstrap_external", "_frozen_importlib", "_frozen_importlib_external", "_imp",
    }
)
# Modules whose containers are caches or bookkeeping of live objects: their bindings are
# rewound, their containers' contents are not.
_KEEP_CONTENTS = frozenset({"logging", "linecache", "weakref", "_weakrefset", "abc", "_abc", "typing", "warnings", "functools"})

# Compilers and exporters keep caches, registries and flags in their modules, set as
# they work and tied to state in C++: rewinding them broke the next export (torch.export
# failed in a reset interpreter once the TorchScript-based ONNX exporter had run). Models
# patch public APIs, so private modules (a name part starting with "_") and these
# packages are not rewound.
_COMPILER_PACKAGES = ("torch.jit", "torch.onnx", "torch.export", "torch.fx", "torch.compiler", "onnxscript", "onnx_ir", "onnxruntime")


def _rewound(name):
    """Whether a reset rewinds the module called `name`."""
    if any(part.startswith("_") for part in name.split(".")):
        return False
    return not any(name == package or name.startswith(package + ".") for package in _COMPILER_PACKAGES)


_baseline = None
_trusted_threads = None  # the threads there were when the last baseline was taken


def _is_container(value):
    kind = type(value)
    return kind in (dict, list, set) or (kind.__name__ == "OrderedDict" and kind.__module__ == "collections")


def _is_function(value):
    return type(value).__name__ == "function" and hasattr(value, "__code__")


class _Baseline:
    """What a lease found: enough to put back what its models rebind or replace."""

    def __init__(self):
        self.modules = {}  # name -> (module, copy of its namespace)
        self.contents = {}  # id -> (container, copy): plain dicts, lists and sets modules hold
        self.classes = {}  # id -> (class, copy of its namespace)
        self.functions = {}  # id -> (function, __code__, __defaults__, __kwdefaults__)
        for name, module in list(sys.modules.items()):
            if name in _KEEP_MODULES or name.startswith(("coil_object_", "coil_user_", "coil_plugin_")) or not _rewound(name):
                continue
            try:
                self._module(name, module)
            except Exception:
                pass  # a module that will not show its namespace (a lazy one failing to load)
        self.path = list(sys.path)
        self.meta_path = list(sys.meta_path)
        self.path_hooks = list(sys.path_hooks)
        self.streams = (sys.stdout, sys.stderr, sys.stdin, sys.displayhook, sys.excepthook)
        self.recursion_limit = sys.getrecursionlimit()
        self.environ = dict(os.environ)
        try:
            self.cwd = os.getcwd()
        except OSError:
            self.cwd = None
        self.threads = set(sys._current_frames())
        self.torch = _torch_settings()

    def _module(self, name, module):
        namespace = getattr(module, "__dict__", None)
        if type(namespace) is not dict:
            return
        self.modules[name] = (module, dict(namespace))
        keep_contents = name in _KEEP_CONTENTS
        for value in namespace.values():
            if _is_container(value):
                if not keep_contents and id(value) not in self.contents:
                    self.contents[id(value)] = (value, value.copy())
            elif issubclass(type(value), type):  # not isinstance: it reads __class__, which some objects warn on
                if id(value) not in self.classes:
                    members = dict(value.__dict__)
                    self.classes[id(value)] = (value, members)
                    for member in members.values():
                        self._function(member)
            else:
                self._function(value)

    def _function(self, value):
        if _is_function(value) and id(value) not in self.functions:
            self.functions[id(value)] = (value, value.__code__, value.__defaults__, value.__kwdefaults__)

    def restore(self):
        """Puts it all back; returns how many things differed."""
        changed = 0
        for name, (module, saved) in self.modules.items():
            namespace = module.__dict__
            for key in [k for k in namespace if k not in saved]:
                # What model code added goes; what libraries added since (a submodule
                # bound on its package, a lazily made attribute) stays.
                if _from_model(namespace[key]):
                    del namespace[key]
                    changed += 1
            for key, value in saved.items():
                current = namespace.get(key, _MISSING)
                # Integers stay: module-level counters (torch.package's mangle index) must
                # only grow, or names of objects still alive are handed out again.
                if current is not value and not (type(current) is int and type(value) is int):
                    namespace[key] = value
                    changed += 1
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                changed += 1
        for container, saved in self.contents.values():
            changed += _restore_contents(container, saved)
        for cls, saved in self.classes.values():
            changed += _restore_class(cls, saved)
        for function, code, defaults, kwdefaults in self.functions.values():
            if function.__code__ is not code or function.__defaults__ is not defaults or function.__kwdefaults__ is not kwdefaults:
                function.__code__, function.__defaults__, function.__kwdefaults__ = code, defaults, kwdefaults
                changed += 1
        sys.path[:] = self.path
        sys.meta_path[:] = self.meta_path
        sys.path_hooks[:] = self.path_hooks
        sys.stdout, sys.stderr, sys.stdin, sys.displayhook, sys.excepthook = self.streams
        sys.setrecursionlimit(self.recursion_limit)
        sys.settrace(None)
        sys.setprofile(None)
        threading = sys.modules.get("threading")
        if threading is not None:
            threading.settrace(None)
            threading.setprofile(None)
        if dict(os.environ) != self.environ:
            os.environ.clear()
            os.environ.update(self.environ)
            changed += 1
        try:
            if self.cwd is not None and os.getcwd() != self.cwd:
                os.chdir(self.cwd)
                changed += 1
        except OSError:
            pass
        _restore_torch_settings(self.torch)
        return changed


def _from_model(value):
    """Whether `value` was made by a lease's model code: defined in an archive's module
    (torch.package names them <torch_package_N>...), in a model file's module, or in a
    module no longer imported. Library code a model imported is not."""
    module = getattr(value, "__module__", None)
    if not isinstance(module, str):
        function = getattr(value, "__func__", None)  # a bound method
        module = getattr(function, "__module__", None) if function is not None else type(value).__module__
    if not isinstance(module, str):
        return False
    return module.startswith(("<torch_package_", "coil_object_", "coil_user_")) or module not in sys.modules


def _restore_contents(container, saved):
    """Puts back what a dict, list or set held at the baseline, and drops what model
    code added; what libraries imported since added (their registrations) stays."""
    if isinstance(container, list):
        if len(container) == len(saved) and all(a is b for a, b in zip(container, saved)):
            return 0
        saved_ids = {id(item) for item in saved}
        added = [item for item in container if id(item) not in saved_ids and not _from_model(item)]
        container[:] = list(saved) + added
        return 1
    if isinstance(container, set):
        extra = [item for item in container if item not in saved and _from_model(item)]
        missing = [item for item in saved if item not in container]
        container.difference_update(extra)
        container.update(missing)
        return int(bool(extra or missing))
    changed = 0
    for key in [k for k in container if k not in saved]:
        if _from_model(key) or _from_model(container[key]):
            del container[key]
            changed += 1
    for key, value in saved.items():
        if container.get(key, _MISSING) is not value:
            container[key] = value
            changed += 1
    return changed


def _restore_class(cls, saved):
    changed = 0
    try:
        current = cls.__dict__
        # What model code added goes; what libraries added since stays (a lazy install:
        # sympy's registry keeps singletons as class attributes, torch's added one).
        for key in [k for k in current if k not in saved and _from_model(current[k])]:
            delattr(cls, key)
            changed += 1
        for key, value in saved.items():
            if current.get(key, _MISSING) is not value:
                setattr(cls, key, value)
                changed += 1
    except (TypeError, AttributeError):
        pass  # a builtin type: Python code cannot change it either
    return changed


def _torch_settings():
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "get_default_dtype"):
        return None
    settings = {
        "default_dtype": torch.get_default_dtype(),
        "grad": torch.is_grad_enabled(),
        "threads": torch.get_num_threads(),
        "rng": torch.get_rng_state(),
        "anomaly": torch.is_anomaly_enabled(),
    }
    if hasattr(torch, "are_deterministic_algorithms_enabled"):
        settings["deterministic"] = torch.are_deterministic_algorithms_enabled()
    return settings


def _restore_torch_settings(settings):
    torch = sys.modules.get("torch")
    if settings is None or torch is None:
        return
    restores = [
        lambda: torch.set_default_dtype(settings["default_dtype"]),
        lambda: torch.set_grad_enabled(settings["grad"]),
        lambda: torch.set_num_threads(settings["threads"]),
        lambda: torch.set_rng_state(settings["rng"]),
        lambda: torch.set_anomaly_enabled(settings["anomaly"]),
    ]
    if "deterministic" in settings:
        restores.append(lambda: torch.use_deterministic_algorithms(settings["deterministic"]))
    for restore in restores:
        try:
            restore()
        except Exception:
            pass


def _before_model_code(archive=False):
    """Called before a lease's model code runs: the first call takes the baseline. An
    archive needs torch: imported first, so that torch is in the baseline even where no
    backend imported it (packing), and what the model does to it is undone."""
    global _baseline
    if _baseline is None:
        if archive:
            try:
                _load_torch()
            except ImportError:
                pass
        _baseline = _Baseline()


# How long reset() waits for the threads a lease started to end once told to.
THREAD_STOP_SECONDS = 0.5


def _stop_threads(trusted):
    """Raises SystemExit in every thread not in `trusted` (nor this one), again every
    50 ms for THREAD_STOP_SECONDS; returns (how many ended, names of those running).
    A thread waiting in C code (a sleep, a lock, I/O) sees it only when it returns to
    Python; one that catches SystemExit goes on."""
    import threading
    import time

    me = threading.get_ident()
    foreign = [ident for ident in sys._current_frames() if ident not in trusted and ident != me]
    if not foreign:
        return 0, []
    names = {thread.ident: thread.name for thread in threading.enumerate() if thread.ident in foreign}
    deadline = time.monotonic() + THREAD_STOP_SECONDS
    running = foreign
    while running:
        if _set_async_exc is not None:
            for ident in running:
                _set_async_exc(ident, SystemExit)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
        alive = sys._current_frames()
        running = [ident for ident in running if ident in alive]
    # Those still running get their SystemExit when they return to Python code.
    return len(foreign) - len(running), [names.get(ident, f"thread {ident}") for ident in running]


def reset():
    """Forgets what the previous owner loaded, so the interpreter can serve a new pool:
    its objects, its modules, the threads it started, and what it changed in modules
    imported before its first model code ran (see _Baseline). Extension modules
    (torch) stay: CPython cannot unload them. Returns {"restored": how many things were
    put back, "threads_stopped": n, "threads_running": [names]}: an interpreter with
    threads still running must not be lent to another model."""
    global _baseline, _trusted_threads
    baseline, _baseline = _baseline, None
    if baseline is not None:
        _trusted_threads = baseline.threads
    # With no model code since the last reset, the threads trusted then (one reset finding a
    # lease's thread still running is followed by another, before the interpreter is lent).
    trusted = _trusted_threads if _trusted_threads is not None else set(sys._current_frames())
    stopped, running = _stop_threads(trusted)
    _objects.clear()
    _namespace.clear()
    _namespace["__name__"] = "__coil__"
    set_backend_hooks()
    restored = baseline.restore() if baseline is not None else 0
    for name in _loaded_modules:
        sys.modules.pop(name, None)
    _loaded_modules.clear()
    for folder in _added_paths:
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None) or ""
            if file.startswith(folder + os.sep) and not file.endswith((".so", ".pyd")):
                del sys.modules[name]
        if folder in sys.path:
            sys.path.remove(folder)
    _added_paths.clear()
    gc.collect()
    return {"restored": restored, "threads_stopped": stopped, "threads_running": running}


_mallinfo2 = None


def _heap_bytes():
    """Bytes in use in this interpreter's malloc. Its namespace has a libc of its own,
    so mallinfo2 there counts this interpreter's allocations only: torch's CPU tensors,
    buffers, Python objects over 512 bytes; not pymalloc's small-object arenas (Python
    maps those itself), nor mapped files (archives). None where libc lacks mallinfo2."""
    global _mallinfo2
    if _mallinfo2 is None:
        fields = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")

        class MallInfo2(ctypes.Structure):
            _fields_ = [(field, ctypes.c_size_t) for field in fields]

        try:
            function = ctypes.CDLL("libc.so.6").mallinfo2
            function.restype = MallInfo2
            function.argtypes = ()
            _mallinfo2 = function
        except (OSError, AttributeError):
            _mallinfo2 = False
    if _mallinfo2 is False:
        return None
    info = _mallinfo2()
    return info.uordblks + info.hblkhd


def info():
    return {
        "python": sys.version.split()[0],
        "implementation": sys.implementation.name,
        "executable": sys.executable,
        "prefix": sys.prefix,
        "pid": os.getpid(),
        "objects": len(_objects),
        "heap_bytes": _heap_bytes(),
    }
