#!/usr/bin/env python3
"""Converts a PyTorch checkpoint (.pth) of DeepfakeBench's CNN backbones into the safetensors file
that sd2's `hparams.pretrained` reads for xception, recce and spsl.

  .venv/bin/python tools/convert_pth.py xception-b5690688.pth xception_imagenet.safetensors

What it does, in order (each step printed):
  * loads the file with torch.load(weights_only=True) (no code from the file runs);
  * unwraps {"state_dict": ...} / {"model": ...} containers and strips "module." prefixes
    (DataParallel) so names start at the bare Xception ("conv1.weight", "block1.rep.0...");
  * Cadene's ImageNet Xception (xception-b5690688.pth, the file DeepfakeBench loads) stores the
    separable convolutions' pointwise weights as 2-D [out, in]; DeepfakeBench unsqueezes them to
    [out, in, 1, 1] when loading, and so does this converter;
  * keeps the 1000-way ImageNet head ("fc.*" / "last_linear.*") only with --keep-head: sd2 never
    reuses it (its detectors have a 2-way head);
  * writes float32 tensors, contiguous, with metadata naming the source file and its SHA-256.
The worker checks every name and shape when it loads the result, and lists each missing,
unexpected or mis-shaped tensor (worker/models LoadNamedTensors).
Exit codes: 0 written, 2 bad arguments or an unreadable / unrecognised checkpoint.
"""
import argparse
import hashlib
import sys


def fail(msg):
    print(f"convert_pth: {msg}", file=sys.stderr)
    sys.exit(2)


def unwrap(obj):
    for key in ("state_dict", "model", "model_state_dict", "net"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            print(f"convert_pth: using the checkpoint's '{key}' entry")
            obj = obj[key]
    return obj


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: tools/convert_pth.py xception-b5690688.pth "
                                        "xception_imagenet.safetensors")
    ap.add_argument("src", help="the .pth file")
    ap.add_argument("dst", help="the .safetensors file to write")
    ap.add_argument("--keep-head", action="store_true", help="keep fc.* / last_linear.*")
    a = ap.parse_args()
    try:
        import torch
        from safetensors.torch import save_file
    except ImportError as e:
        fail(f"{e}: run it with the project's venv (.venv/bin/python; scripts/setup.sh)")
    try:
        with open(a.src, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        obj = torch.load(a.src, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read is the user's file
        fail(f"{a.src}: cannot load: {e}")
    state = unwrap(obj)
    if not isinstance(state, dict) or not state:
        fail(f"{a.src}: no tensors found (expected a state dict)")
    out, unsqueezed, dropped = {}, 0, []
    for name, t in state.items():
        if not torch.is_tensor(t):
            continue
        if name.startswith("module."):
            name = name[len("module."):]
        if not a.keep_head and (name.startswith("fc.") or name.startswith("last_linear.")):
            dropped.append(name)
            continue
        if "pointwise" in name and name.endswith(".weight") and t.dim() == 2:
            t = t.unsqueeze(-1).unsqueeze(-1)
            unsqueezed += 1
        out[name] = t.detach().to(torch.float32).contiguous() if t.is_floating_point() \
            else t.detach().contiguous()
    if not out:
        fail(f"{a.src}: no tensors left to write")
    if "conv1.weight" not in out:
        print("convert_pth: warning: no conv1.weight; is this an Xception checkpoint?",
              file=sys.stderr)
    print(f"convert_pth: {len(out)} tensors; {unsqueezed} pointwise weights reshaped to 4-D; "
          f"dropped the ImageNet head ({', '.join(dropped) or 'none'})")
    save_file(out, a.dst, metadata={"source": a.src, "source_sha256": digest,
                                    "converter": "sd2 tools/convert_pth.py"})
    print(f"convert_pth: wrote {a.dst}")


if __name__ == "__main__":
    main()
