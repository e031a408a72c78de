"""Helpers of e2e/run.sh, run with /usr/bin/python3 (Debian's torch).

  helpers.py ref MODELS_DIR OUT_DIR      eager PyTorch reference for the mlp: request bodies + expected output
  helpers.py cmp-json RESPONSE EXPECTED  compare a JSON infer response with the reference (1e-5)
  helpers.py cmp-bin RESPONSE HDRLEN EXPECTED  compare a binary-extension response
"""
import json
import struct
import sys

TOL = 1e-5


def ref(models_dir, out):
    sys.path.insert(0, models_dir)
    import torch
    import mlp

    model = mlp.build()
    (x,) = mlp.example_inputs()
    with torch.inference_mode():
        y = model(x)
    data = x.flatten().tolist()
    with open(f"{out}/expected.json", "w") as f:
        json.dump({"shape": list(y.shape), "data": y.flatten().tolist()}, f)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": data}]}
    with open(f"{out}/infer.json", "w") as f:
        json.dump(body, f)
    # binary extension: JSON header, then the raw little-endian float32 input
    raw = x.numpy().astype("<f4").tobytes()
    header = json.dumps({
        "inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape), "parameters": {"binary_data_size": len(raw)}}],
        "parameters": {"binary_data_output": True},
    }).encode()
    with open(f"{out}/infer.bin", "wb") as f:
        f.write(header + raw)
    with open(f"{out}/infer.bin.hdrlen", "w") as f:
        f.write(str(len(header)))
    with open(f"{out}/input.f32", "wb") as f:
        f.write(raw)
    print(f"reference: x{list(x.shape)} -> y{list(y.shape)}, binary header {len(header)} B + {len(raw)} B")


def max_diff(got, want):
    if len(got) != len(want):
        raise SystemExit(f"length {len(got)} != {len(want)}")
    return max(abs(a - b) for a, b in zip(got, want))


def cmp_json(resp, expected):
    r = json.load(open(resp))
    e = json.load(open(expected))
    out = r["outputs"][0]
    assert out["shape"] == e["shape"], (out["shape"], e["shape"])
    assert out["datatype"] == "FP32", out["datatype"]
    d = max_diff(out["data"], e["data"])
    print(f"json infer: shape {out['shape']}, max |diff| vs eager = {d:.3g}")
    if d > TOL:
        raise SystemExit(f"max diff {d} > {TOL}")


def cmp_bin(resp, hdrlen, expected):
    body = open(resp, "rb").read()
    n = int(hdrlen)
    header = json.loads(body[:n])
    e = json.load(open(expected))
    out = header["outputs"][0]
    size = out["parameters"]["binary_data_size"]
    want = 4 * len(e["data"])
    assert size == want, (size, want)
    assert len(body) == n + size, (len(body), n, size)
    got = struct.unpack(f"<{size // 4}f", body[n:])
    d = max_diff(got, e["data"])
    print(f"binary infer: header {n} B, binary_data_size {size} B, body {len(body)} B, max |diff| = {d:.3g}")
    if d > TOL:
        raise SystemExit(f"max diff {d} > {TOL}")


if __name__ == "__main__":
    {"ref": ref, "cmp-json": cmp_json, "cmp-bin": cmp_bin}[sys.argv[1]](*sys.argv[2:])
