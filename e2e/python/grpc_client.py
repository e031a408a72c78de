"""gRPC e2e client: ServerLive, then ModelInfer on the mlp with raw contents, compared
with the eager reference; an unknown model must fail with NOT_FOUND.
Usage: grpc_client.py STUBS_DIR HOST:PORT INPUT_F32 EXPECTED_JSON"""
import json
import struct
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
import grpc_service_pb2 as pb  # noqa: E402
import grpc_service_pb2_grpc as pb_grpc  # noqa: E402

raw = open(sys.argv[3], "rb").read()
expected = json.load(open(sys.argv[4]))
with grpc.insecure_channel(sys.argv[2]) as channel:
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    live = stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
    assert live, "ServerLive: not live"
    request = pb.ModelInferRequest(model_name="mlp", id="e2e-1")
    request.inputs.add(name="x", datatype="FP32", shape=[len(raw) // 4 // 64, 64])
    request.raw_input_contents.append(raw)
    response = stub.ModelInfer(request, timeout=30)
    out = response.outputs[0]
    data = struct.unpack("<%df" % (len(response.raw_output_contents[0]) // 4), response.raw_output_contents[0])
    assert list(out.shape) == expected["shape"], (list(out.shape), expected["shape"])
    diff = max(abs(a - b) for a, b in zip(data, expected["data"]))
    assert len(data) == len(expected["data"])
    try:
        stub.ModelInfer(pb.ModelInferRequest(model_name="nope"), timeout=10)
        missing = "OK"
    except grpc.RpcError as error:
        missing = error.code().name
    print(json.dumps({"live": live, "id": response.id, "model": response.model_name, "shape": list(out.shape), "max_diff": diff, "missing": missing}))
    if diff > 1e-5 or response.id != "e2e-1" or missing != "NOT_FOUND":
        raise SystemExit("grpc check failed")
