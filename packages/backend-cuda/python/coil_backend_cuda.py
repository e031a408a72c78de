"""The CUDA backend's Python side: runs once in each interpreter of a pool.

`probe` says what CUDA torch sees (or raises CudaUnavailable saying why not);
`prepare` places this interpreter on one device and installs the bridge hooks:

- inputs (`to_device`): copied to the interpreter's device on its own CUDA stream,
  through a page-locked (pinned) staging buffer reused between calls when
  `pinned_staging` is on, so the host-to-device copy is asynchronous DMA;
- model calls (`call_context`): a replicated object's weights are moved to the
  device the first time it is called in this interpreter (once; the bridge has no
  instantiation hook, see the package README), then the call runs under
  `torch.inference_mode()` on the interpreter's stream; the stream is synchronised
  before the call returns; device out-of-memory becomes CudaOutOfMemory after the
  allocator's cache is emptied, so the interpreter serves the next call;
- outputs (`from_device`): copied back on the same stream, into pinned staging
  when it is on; the engine then copies them once into memory Node owns.

This module is loaded afresh for every pool (the bridge's reset forgets it), so its
globals are per interpreter and per pool.
"""

import sys
import weakref


class CudaUnavailable(RuntimeError):
    """torch in this interpreter cannot use CUDA (not built with it, no driver, no device)."""


class CudaOutOfMemory(RuntimeError):
    """A model call ran out of device memory. The interpreter stays usable."""


# Stable qualified names for the TypeScript side (error.pythonType), whatever name
# the bridge loads this file under.
CudaUnavailable.__module__ = "coil_backend_cuda"
CudaOutOfMemory.__module__ = "coil_backend_cuda"


def _driver_version():
    """The driver's CUDA version as "major.minor", or None when it cannot be read."""
    import torch

    getter = getattr(torch._C, "_cuda_getDriverVersion", None)
    version = None
    if getter is not None:
        try:
            version = int(getter())
        except Exception:
            version = None
    if not version:
        try:
            import ctypes

            libcuda = ctypes.CDLL("libcuda.so.1")
            value = ctypes.c_int(0)
            if libcuda.cuDriverGetVersion(ctypes.byref(value)) == 0:
                version = value.value
        except Exception:
            version = None
    if not version:
        return None
    return f"{version // 1000}.{(version % 1000) // 10}"


def probe(python=None):
    """What CUDA torch sees in this interpreter; raises CudaUnavailable if none."""
    import torch

    where = python or sys.executable or "this Python"
    built = torch.version.cuda
    if built is None:
        raise CudaUnavailable(
            f"no CUDA device visible to torch in {where} (torch {torch.__version__}, built without CUDA): "
            "install a CUDA build of torch (e.g. from https://pytorch.org) in that Python, or use the cpu backend"
        )
    if not torch.cuda.is_available():
        raise CudaUnavailable(
            f"no CUDA device visible to torch in {where} (torch {torch.__version__}, built with CUDA {built}): "
            "torch.cuda.is_available() is False -- no NVIDIA driver loaded, no GPU, or CUDA_VISIBLE_DEVICES hides them "
            f"(driver: {_driver_version() or 'not found'})"
        )
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        free = None
        try:
            free, _total = torch.cuda.mem_get_info(index)
        except Exception:
            pass
        devices.append(
            {
                "index": index,
                "name": props.name,
                "capability": [props.major, props.minor],
                "totalMemory": int(props.total_memory),
                "freeMemory": None if free is None else int(free),
                "multiProcessors": int(props.multi_processor_count),
            }
        )
    if not devices:
        raise CudaUnavailable(
            f"no CUDA device visible to torch in {where} (torch {torch.__version__}, built with CUDA {built}): "
            "torch.cuda.device_count() is 0"
        )
    cudnn = None
    try:
        cudnn = torch.backends.cudnn.version()
    except Exception:
        pass
    return {
        "torch": torch.__version__,
        "runtime": built,
        "driver": _driver_version(),
        "cudnn": cudnn,
        "devices": devices,
    }


class _Staging:
    """Page-locked host buffers, reused between jobs.

    A buffer taken during a job stays with that job: the engine copies a result out
    of it after the call returns, still within the job. A later job may reuse it
    once the host-to-device copy that read it (its CUDA event) has completed.
    """

    MiB = 1 << 20

    def __init__(self, torch):
        self._torch = torch
        self._buffers = []  # [uint8 pinned tensor, job id, event or None]

    def _reusable(self, entry, job):
        if entry[1] == job:
            return False
        event = entry[2]
        return event is None or event.query()

    def take(self, nbytes):
        import coil_bridge

        job = coil_bridge.current_job()
        best = None
        for entry in self._buffers:
            if entry[0].numel() >= nbytes and self._reusable(entry, job):
                if best is None or entry[0].numel() < best[0].numel():
                    best = entry
        if best is None:
            # Round up to 1 MiB so slightly varying sizes reuse the same buffers.
            size = max(self.MiB, (nbytes + self.MiB - 1) // self.MiB * self.MiB)
            best = [self._torch.empty(size, dtype=self._torch.uint8, pin_memory=True), job, None]
            self._buffers.append(best)
        best[1], best[2] = job, None
        return best

    def view(self, like):
        """(pinned CPU tensor with `like`'s dtype and shape, its buffer entry)."""
        nbytes = like.numel() * like.element_size()
        entry = self.take(nbytes)
        return entry[0][:nbytes].view(like.dtype).view(like.shape), entry

    def drop(self):
        self._buffers.clear()


class _State:
    def __init__(self, torch, device, stream, staging):
        self.torch = torch
        self.device = device
        self.stream = stream
        self.staging = staging
        self.moved = {}  # object id -> weakref (or a closure) to the object already on the device


_state = None


def _move_objects(state):
    """Moves every replicated object this interpreter holds to the device, once each."""
    import coil_bridge

    torch = state.torch
    for object_id, obj in list(coil_bridge._objects.items()):
        previous = state.moved.get(object_id)
        if previous is not None and previous() is obj:
            continue
        if isinstance(obj, torch.nn.Module):
            obj.to(state.device)
        elif callable(getattr(obj, "coil_to_device", None)):
            obj.coil_to_device(state.device)
        try:
            state.moved[object_id] = weakref.ref(obj)
        except TypeError:  # no weak references (e.g. __slots__): keep its identity only
            state.moved[object_id] = lambda obj=obj: obj
    for object_id in list(state.moved):
        if object_id not in coil_bridge._objects:
            del state.moved[object_id]


def _to_device(tensor):
    state = _state
    torch = state.torch
    with torch.cuda.stream(state.stream):
        try:
            if state.staging is not None and tensor.numel() > 0:
                pinned, entry = state.staging.view(tensor)
                pinned.copy_(tensor)  # host to pinned host: one memcpy
                moved = pinned.to(state.device, non_blocking=True)  # DMA, ordered on this stream
                entry[2] = torch.cuda.Event()
                entry[2].record(state.stream)  # the buffer is free again once this completes
                return moved
            return tensor.to(state.device)
        except BaseException as exc:
            if _is_oom(torch, exc):
                _raise_oom(state, exc, "copying an input to the device")
            raise


def _from_device(tensor):
    state = _state
    torch = state.torch
    if tensor.device.type != "cuda":
        return tensor
    with torch.cuda.stream(state.stream):
        if state.staging is not None and tensor.numel() > 0:
            tensor = tensor.detach().contiguous()
            pinned, _entry = state.staging.view(tensor)
            pinned.copy_(tensor, non_blocking=True)
            # The engine reads these bytes as soon as the call returns: wait for the copy.
            state.stream.synchronize()
            return pinned
        return tensor.detach().to("cpu")


class _CallContext:
    """Wraps every model call (coil_bridge.call_object): weights on the device once,
    this interpreter's stream, inference mode, results synchronised, OOM typed."""

    def __init__(self, state):
        self._state = state
        self._stream_ctx = None
        self._inference = None

    def __enter__(self):
        state = self._state
        torch = state.torch
        self._stream_ctx = torch.cuda.stream(state.stream)
        self._stream_ctx.__enter__()
        try:
            _move_objects(state)
            self._inference = torch.inference_mode()
            self._inference.__enter__()
        except BaseException:
            self._stream_ctx.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, kind, exc, tb):
        state = self._state
        oom = exc is not None and _is_oom(state.torch, exc)
        try:
            self._inference.__exit__(kind, exc, tb)
        finally:
            try:
                self._stream_ctx.__exit__(kind, exc, tb)
            finally:
                try:
                    # Results are complete before the call returns.
                    state.stream.synchronize()
                except Exception:
                    if not oom:
                        raise
        if oom:
            _raise_oom(state, exc, "the call")
        return False


def _raise_oom(state, exc, what):
    """Empties the caching allocator (the interpreter stays usable) and raises
    CudaOutOfMemory saying what ran out."""
    import gc
    import traceback

    torch = state.torch
    message = (str(exc).splitlines() or [repr(exc)])[0]
    # The failed call's frames hold its intermediate tensors: let them go.
    traceback.clear_frames(exc.__traceback__)
    del exc
    gc.collect()
    torch.cuda.empty_cache()
    room = ""
    try:
        free, total = torch.cuda.mem_get_info(state.device)
        room = f"; {free / 2**20:.0f} MiB free of {total / 2**20:.0f} MiB after emptying the cache"
    except Exception:
        pass
    raise CudaOutOfMemory(
        f"{state.device} ran out of memory during {what}{room}: use smaller batches, fewer interpreters "
        f"per device, or another device. torch said: {message}"
    ) from None


def _is_oom(torch, exc):
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc)


def prepare(device, pinned_staging=True, warmup=False, python=None):
    global _state
    found = probe(python)
    import torch

    import coil_bridge

    if device >= len(found["devices"]):
        raise CudaUnavailable(f"device {device} requested, but torch sees {len(found['devices'])} device(s)")
    target = torch.device("cuda", device)
    # The interpreter has one thread of its own: this sets its current device for good.
    torch.cuda.set_device(target)
    stream = torch.cuda.Stream(device=target)
    state = _State(torch, target, stream, _Staging(torch) if pinned_staging else None)
    warmed = False
    if warmup:
        with torch.cuda.stream(stream), torch.inference_mode():
            a = torch.randn(256, 256, device=target)
            (a @ a).sum().item()
        stream.synchronize()
        warmed = True
    _state = state
    coil_bridge.set_backend_hooks(
        to_device=_to_device,
        from_device=_from_device,
        call_context=lambda: _CallContext(state),
    )
    name = found["devices"][device]["name"]
    return {
        "backend": "cuda",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cores": 1,
        "threads": torch.get_num_threads(),
        "device": device,
        "deviceName": name,
        "pinnedStaging": bool(pinned_staging),
        "warmedUp": warmed,
        "probe": found,
    }
