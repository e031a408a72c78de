"""Checks of what the servers answered, against the eager PyTorch reference
(reference.py) with a tolerance of 1e-5. Each exits non-zero, saying why, on a mismatch.

  compare.py json RESPONSE EXPECTED             a JSON infer response
  compare.py binary RESPONSE HDRLEN EXPECTED    a binary-extension response
  compare.py resnet RESPONSE HDRLEN BATCH       resnet18's binary response: BATCH x 1000 float32 logits
  compare.py text RESPONSE MODELS_DIR           text_classifier's JSON response to ["hello", "wörld 🐍", ""]
"""
import json
import struct
import sys

TOL = 1e-5
TEXTS = ["hello", "wörld 🐍", ""]


def max_diff(got, want):
    if len(got) != len(want):
        raise SystemExit(f"length {len(got)} != {len(want)}")
    return max(abs(a - b) for a, b in zip(got, want))


def within_tolerance(what, diff):
    print(f"{what}: max |diff| vs eager = {diff:.3g}")
    if diff > TOL:
        raise SystemExit(f"{what}: max diff {diff} > {TOL}")


def json_response(resp, expected):
    out = json.load(open(resp))["outputs"][0]
    want = json.load(open(expected))
    assert out["shape"] == want["shape"], (out["shape"], want["shape"])
    assert out["datatype"] == "FP32", out["datatype"]
    within_tolerance(f"json infer, shape {out['shape']}", max_diff(out["data"], want["data"]))


def split_binary(resp, hdrlen):
    body = open(resp, "rb").read()
    n = int(hdrlen)
    out = json.loads(body[:n])["outputs"][0]
    size = out["parameters"]["binary_data_size"]
    assert len(body) == n + size, (len(body), n, size)
    return out, body[n:]


def binary_response(resp, hdrlen, expected):
    out, raw = split_binary(resp, hdrlen)
    want = json.load(open(expected))
    assert len(raw) == 4 * len(want["data"]), (len(raw), 4 * len(want["data"]))
    got = struct.unpack(f"<{len(raw) // 4}f", raw)
    within_tolerance(f"binary infer, header {hdrlen} B, binary_data_size {len(raw)} B", max_diff(got, want["data"]))


def resnet_response(resp, hdrlen, batch):
    out, raw = split_binary(resp, hdrlen)
    batch = int(batch)
    print(f"resnet18: {out['name']} {out['shape']} {len(raw)} B")
    assert out["shape"] == [batch, 1000] and len(raw) == batch * 4000, (out["shape"], len(raw))


def text_response(resp, models_dir):
    sys.path.insert(0, models_dir)
    import torch
    import text_classifier

    with torch.no_grad():
        want = text_classifier.build()([t.encode() for t in TEXTS]).flatten().tolist()
    out = json.load(open(resp))["outputs"][0]
    assert out["shape"] == [3, 4], out["shape"]
    within_tolerance(f"text_classifier {out['name']} {out['datatype']} {out['shape']}", max_diff(out["data"], want))


if __name__ == "__main__":
    checks = {"json": json_response, "binary": binary_response, "resnet": resnet_response, "text": text_response}
    checks[sys.argv[1]](*sys.argv[2:])
