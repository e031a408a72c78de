"""The eager PyTorch reference and the request bodies of the end-to-end suite, with
Debian's python3 and torch.

  reference.py OUT_DIR MODELS_DIR BATCH

writes into OUT_DIR:
  infer.json                 a JSON infer request for the mlp (its example input)
  infer.bin, infer.bin.hdrlen    the same input through Triton's binary extension
  input.f32                  the raw little-endian float32 input (gRPC raw contents)
  expected.json              the mlp's eager output for it: {"shape", "data"}
  resnet.bin, resnet.bin.hdrlen  a binary-extension request for resnet18: one zeros image
  resnet-batch.bin, resnet-batch.bin.hdrlen  the same with BATCH images (a request that
                             stays in flight long enough to be caught by a signal)
"""
import json
import sys


def binary_request(inputs, raws, output=None):
    """A binary-extension body: the JSON header, then each input's raw bytes."""
    header = {"inputs": [{**i, "parameters": {"binary_data_size": len(r)}} for i, r in zip(inputs, raws)]}
    if output is None:
        header["parameters"] = {"binary_data_output": True}
    else:
        header["outputs"] = [{"name": output, "parameters": {"binary_data_output": True}}]
    head = json.dumps(header).encode()
    return head, head + b"".join(raws)


def write(out, name, data):
    with open(f"{out}/{name}", "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def mlp(out, models_dir):
    sys.path.insert(0, models_dir)
    import torch
    import mlp

    model = mlp.build()
    (x,) = mlp.example_inputs()
    with torch.inference_mode():
        y = model(x)
    write(out, "expected.json", json.dumps({"shape": list(y.shape), "data": y.flatten().tolist()}))
    signature = {"name": "x", "datatype": "FP32", "shape": list(x.shape)}
    write(out, "infer.json", json.dumps({"inputs": [{**signature, "data": x.flatten().tolist()}]}))
    raw = x.numpy().astype("<f4").tobytes()
    head, body = binary_request([signature], [raw])
    write(out, "infer.bin", body)
    write(out, "infer.bin.hdrlen", str(len(head)))
    write(out, "input.f32", raw)
    print(f"mlp: x{list(x.shape)} -> y{list(y.shape)}, binary header {len(head)} B + {len(raw)} B")


def resnet(out, name, batch):
    raw = bytes(4 * batch * 3 * 224 * 224)
    head, body = binary_request([{"name": "image", "datatype": "FP32", "shape": [batch, 3, 224, 224]}], [raw], output="logits")
    write(out, f"{name}.bin", body)
    write(out, f"{name}.bin.hdrlen", str(len(head)))
    print(f"resnet18: {batch} zeros images, {len(body)} B")


if __name__ == "__main__":
    out_dir, models, batch = sys.argv[1:4]
    mlp(out_dir, models)
    resnet(out_dir, "resnet", 1)
    resnet(out_dir, "resnet-batch", int(batch))
