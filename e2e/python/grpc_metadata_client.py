"""A gRPC client that knows nothing of the model: ModelMetadata gives each input's name,
datatype and shape; -1 becomes 2; values follow the rule of harness/metadata-request.ts;
ModelInfer sends them as raw_input_contents, and the raw outputs are decoded by their
datatypes. Writes the exchange (inputs sent, outputs answered, the metadata's output
names) for eager.py.

  grpc_metadata_client.py STUBS_DIR HOST:PORT MODEL EXCHANGE_JSON
"""
import json
import struct
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
import grpc_service_pb2 as pb  # noqa: E402
import grpc_service_pb2_grpc as pb_grpc  # noqa: E402

DYNAMIC_DIM = 2
# struct's little-endian format of each fixed-size datatype
FORMATS = {
    "BOOL": "?", "UINT8": "B", "INT8": "b", "UINT16": "H", "INT16": "h", "UINT32": "I", "INT32": "i",
    "UINT64": "Q", "INT64": "q", "FP32": "f", "FP64": "d",
}


def value(datatype, k, i):
    """Element i of input k, as harness/metadata-request.ts's value()."""
    if datatype in ("FP32", "FP64"):
        return ((i * 37 + k * 11) % 101) / 50 - 1
    if datatype == "BOOL":
        return (i + k) % 2 == 0
    if datatype == "BYTES":
        return f"item {k}.{i}"
    if datatype in FORMATS:
        return (i + k + 1) % 2
    raise SystemExit(f"no request values for datatype {datatype}")


def raw_bytes(datatype, data):
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(b)) + b for b in (item.encode("utf-8") for item in data))
    return struct.pack(f"<{len(data)}{FORMATS[datatype]}", *data)


def from_raw_bytes(datatype, raw):
    if datatype != "BYTES":
        size = struct.calcsize(FORMATS[datatype])
        return list(struct.unpack(f"<{len(raw) // size}{FORMATS[datatype]}", raw))
    items, at = [], 0
    while at < len(raw):
        (length,) = struct.unpack_from("<I", raw, at)
        items.append(raw[at + 4:at + 4 + length].decode("utf-8"))
        at += 4 + length
    return items


def main(address, model, exchange_file):
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=10)
        if not metadata.inputs:
            raise SystemExit(f"ModelMetadata of {model} lists no inputs")
        request = pb.ModelInferRequest(model_name=model, id=f"metadata-{model}")
        sent = []
        for k, tensor in enumerate(metadata.inputs):
            shape = [DYNAMIC_DIM if d == -1 else d for d in tensor.shape]
            count = 1
            for d in shape:
                count *= d
            data = [value(tensor.datatype, k, i) for i in range(count)]
            request.inputs.add(name=tensor.name, datatype=tensor.datatype, shape=shape)
            request.raw_input_contents.append(raw_bytes(tensor.datatype, data))
            sent.append({"name": tensor.name, "datatype": tensor.datatype, "shape": shape, "data": data})
        response = stub.ModelInfer(request, timeout=60)
        if len(response.raw_output_contents) != len(response.outputs):
            raise SystemExit(f"{len(response.outputs)} outputs but {len(response.raw_output_contents)} raw contents")
        answered = [
            {"name": o.name, "datatype": o.datatype, "shape": list(o.shape), "data": from_raw_bytes(o.datatype, raw)}
            for o, raw in zip(response.outputs, response.raw_output_contents)
        ]
    exchange = {"inputs": sent, "outputs": answered, "output_names": [o.name for o in metadata.outputs]}
    json.dump(exchange, open(exchange_file, "w"))
    print(json.dumps({"model": response.model_name, "id": response.id, "inputs": [(t["name"], t["datatype"], t["shape"]) for t in sent],
                      "outputs": [(t["name"], t["datatype"], t["shape"]) for t in answered]}))


if __name__ == "__main__":
    main(*sys.argv[2:5])
