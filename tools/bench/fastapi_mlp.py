"""The baseline for tools/bench/http.mjs: the same small MLP (examples/models/mlp.py, same seed)
behind FastAPI + uvicorn, on the same Open Inference Protocol JSON endpoint Coil serves.

    cd tools/bench && python3 -m uvicorn fastapi_mlp:app --workers 2 --port 8100

Each worker is one process with one torch thread, under inference mode. The handler
reads the body with request.json() and answers with a JSONResponse (no pydantic
validation, no jsonable_encoder): the quickest idiomatic FastAPI path, so the baseline
is not handicapped.

Debian's uvicorn 0.17 with --workers binds its socket itself (socket.socket(family), proto
0), and asyncio then skips TCP_NODELAY on the connections it accepts: every keep-alive
request stalls ~40 ms (Nagle + delayed ACK, as the response goes out in two writes) and
the baseline measures a timer, not FastAPI (~22 req/s per connection). So this module
turns TCP_NODELAY on for each connection, as asyncio does when uvicorn binds with one
worker. FASTAPI_MLP_NODELAY=0 leaves uvicorn as it is, to see the difference.
"""

import os
import sys

import socket

import torch

torch.set_num_threads(1)


def _nodelay_on_connect(protocol_class):
    original = protocol_class.connection_made

    def connection_made(self, transport):
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return original(self, transport)

    protocol_class.connection_made = connection_made


if os.environ.get("FASTAPI_MLP_NODELAY", "1") != "0":
    from uvicorn.protocols.http.h11_impl import H11Protocol

    _nodelay_on_connect(H11Protocol)
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        pass
    else:
        _nodelay_on_connect(HttpToolsProtocol)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "models"))
import mlp  # noqa: E402

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

MODEL_NAME = "mlp"
model = mlp.build()
app = FastAPI()


@app.get("/v2/health/ready")
async def ready():
    return {"ready": True}


def _run(body):
    outputs = []
    with torch.inference_mode():
        inputs = body["inputs"]
        if len(inputs) != 1:
            raise ValueError("expected one input")
        spec = inputs[0]
        if spec.get("datatype") != "FP32":
            raise ValueError("expected FP32")
        x = torch.tensor(spec["data"], dtype=torch.float32).reshape(spec["shape"])
        y = model(x)
        outputs.append({"name": "output", "shape": list(y.shape), "datatype": "FP32", "data": y.reshape(-1).tolist()})
    return outputs


@app.post("/v2/models/mlp/infer")
async def infer(request: Request):
    body = await request.json()
    try:
        outputs = _run(body)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        return JSONResponse({"error": str(error)}, status_code=400)
    return JSONResponse({"model_name": MODEL_NAME, "outputs": outputs})
