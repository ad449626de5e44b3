#!/usr/bin/python3
"""Training-step reference for the baseline detectors: the same network, weights, batch and
optimizer as the C++ worker, in idiomatic PyTorch (nn.Module, torch.optim.Adam with its
weight_decay), timed the way a user would time their own loop.

  train_step_baselines.py --weights IN.safetensors [--steps N] [--warmup W] [--threads T]

IN is written by bench/train/train_step_bench (METHOD xception | recce | spsl | clip | clip_lora
| clip_svd | univfd): every parameter and buffer under the worker's names, the batch
("input/x" [B,3,H,W], "input/y" [B] labels), and metadata with the method, the network's config,
the optimizer's hparams and the names of the trainable tensors (checked against ours).
Prints `loss0=<eval-mode loss before training> images_per_s=<...> seconds=<...>
cpu_images_per_s=<...> cpu_seconds=<...> steps=<N> batch=<B> loss_end=<eval-mode loss after
training>` (wall clock and process CPU time of the timed steps); both losses include the L2 term
l2/2 ||w||^2 over the trainable tensors, which Adam's weight_decay adds to the gradient.
`--trace FILE` writes a chrome trace of the training loop's operators (diagnostics).

Networks: Xception, RECCE (with the official code's training noise and its per-vertex graph
reasoning loop) and SPSL from baselines_reference.py; the CLIP image tower (HF layout, LoRA) from
train_step_sd2.py with a linear head; CLIP-SVD as Effort's residual linear layers
(W = W_main + U_r diag(S_r) V_r, recomputed in every forward).
Works with Debian's torch 1.13 (/usr/bin/python3).
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import baselines_reference as br  # noqa: E402
import train_step_sd2 as sr  # noqa: E402


class SvdResidualLinear(nn.Module):
    """Effort's SVDResidualLinear: a frozen principal weight plus a trainable rank-r residual."""

    def __init__(self, lin, rank):
        super().__init__()
        out_f, in_f = lin.weight.shape
        self.weight = nn.Parameter(lin.weight.detach().clone(), requires_grad=False)
        self.bias = nn.Parameter(lin.bias.detach().clone(), requires_grad=False)
        self.U_residual = nn.Parameter(torch.zeros(out_f, rank))
        self.S_residual = nn.Parameter(torch.zeros(rank))
        self.V_residual = nn.Parameter(torch.zeros(rank, in_f))

    def forward(self, x):
        w = self.weight + (self.U_residual * self.S_residual) @ self.V_residual
        return F.linear(x, w, self.bias)


class ClipDetector(nn.Module):
    """CLIP image tower with a linear head on the pooled (post-LN CLS) output."""

    def __init__(self, cfg, lora):
        super().__init__()
        self.vision_model = sr.VisionModel(cfg, lora, False)
        self.head = nn.Linear(cfg["vision_width"], 2)

    def forward(self, x):
        pooled, _ = self.vision_model(x)
        return self.head(pooled)


def build(method, cfg, variant):
    """The network and a map from our parameter names to the worker's (for renamed tensors)."""
    rename = {}
    if method in ("xception", "recce", "spsl"):
        w, m = cfg["width"], cfg["middle_blocks"]
        if method == "xception":
            model = br.Xception(3, 2, w, m)
        elif method == "spsl":
            model = br.Spsl(w, m)
        else:
            model = br.Recce(w, m, noise_std=1e-6)
        return model, rename
    lora = dict(r=0, alpha=1.0, dropout=0.0)
    if method == "clip_lora":
        lora = dict(r=int(variant["lora_r"]), alpha=float(variant["lora_alpha"]),
                    dropout=float(variant["lora_dropout"]))
    model = ClipDetector(cfg, lora)
    if method == "clip_lora":
        for n, p in model.named_parameters():
            p.requires_grad_("lora_" in n or n.startswith("head."))
    elif method == "univfd":
        for n, p in model.vision_model.named_parameters():
            p.requires_grad_(False)
    elif method == "clip_svd":
        for p in model.vision_model.parameters():
            p.requires_grad_(False)
        rank = int(variant["svd_rank"])
        for i, layer in enumerate(model.vision_model.encoder.layers):
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                setattr(layer.self_attn, proj, SvdResidualLinear(getattr(layer.self_attn, proj),
                                                                 rank))
                ours = "vision_model.encoder.layers.%d.self_attn.%s" % (i, proj)
                # The worker keeps the factors in one module `svd`, named after the projection
                # (relative to the tower, dots as underscores).
                key = "svd." + ours[len("vision_model."):].replace(".", "_")
                for f in ("U", "S", "V"):
                    rename["%s.%s_residual" % (ours, f)] = "%s_%s_residual" % (key, f)
    elif method != "clip":
        sys.exit("unknown method " + method)
    return model, rename


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the forward and loss (inductor; compiled in the warm-up)")
    ap.add_argument("--trace", help="write a chrome trace of the training loop's operators "
                    "(diagnostics; spoils the timing)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    t, meta = sr.read_safetensors(a.weights)
    method = meta["method"]
    cfg, hp = json.loads(meta["config"]), json.loads(meta["hparams"])
    var = hp["variant"]
    if var.get("recce_recons") or var.get("recce_metric") or \
            var.get("svd_orthogonal_weight", 0) > 0 or var.get("svd_keep_sv_weight", 0) > 0:
        sys.exit("the reference trains on cross-entropy only; variant %s is not supported" % var)
    model, rename = build(method, cfg, hp["variant"])

    own = model.state_dict()
    state = {k: t[rename.get(k, k)] for k in own if rename.get(k, k) in t}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(t) - {rename.get(k, k) for k in own} - {"input/x", "input/y"})
    if missing or unexpected:
        sys.exit("%s: missing tensors for %s, unexpected %s" % (a.weights, missing[:10],
                                                                 unexpected[:10]))
    for k, v in state.items():
        if tuple(own[k].shape) != tuple(v.shape):
            sys.exit("shape mismatch for %s: %s (ours) vs %s" % (k, tuple(v.shape),
                                                                  tuple(own[k].shape)))
        state[k] = v.to(own[k].dtype)
    model.load_state_dict(state, strict=True)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    want = sorted(json.loads(meta["trainable"]))
    have = sorted(rename.get(n, n) for n, _ in params)
    if want != have:
        sys.exit("trainable tensors differ: only ours %s, only the reference %s" %
                 (sorted(set(want) - set(have))[:10], sorted(set(have) - set(want))[:10]))
    x, y = t["input/x"], t["input/y"].long()
    l2 = float(hp["l2"])
    trainable = [p for _, p in params]

    def forward_loss(x, y):
        out = model(x)
        logits = out[0] if method == "recce" else out
        return F.cross_entropy(logits, y)

    def eval_loss():
        """Eval mode, with the L2 term l2/2 ||w||^2 (the benchmark driver reports the same)."""
        model.eval()
        with torch.no_grad():
            loss = forward_loss(x, y)
            if l2 > 0:
                loss = loss + 0.5 * l2 * sum(p.pow(2).sum() for p in trainable)
            value = loss.item()
        model.train()
        return value

    if hp["optimizer"] == "adam":
        opt = torch.optim.Adam(trainable, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]),
                               eps=hp["eps"], weight_decay=l2)
    else:  # adamw: decay on tensors with dim >= 2 only (the worker's rule)
        wd = hp["weight_decay"]
        opt = torch.optim.AdamW([{"params": [p for p in trainable if p.dim() >= 2],
                                  "weight_decay": wd},
                                 {"params": [p for p in trainable if p.dim() < 2],
                                  "weight_decay": 0.0}],
                                lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"])

    loss0 = eval_loss()
    model.train()
    prof = torch.autograd.profiler.profile() if a.trace else None
    if prof is not None:
        prof.__enter__()
    t0 = None
    step_loss = torch.compile(forward_loss) if a.compile else forward_loss
    for s in range(a.warmup + a.steps):
        if s == a.warmup:
            t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss = step_loss(x, y)
        if not math.isfinite(loss.item()):
            sys.exit(f"loss is not finite at step {s}")
        loss.backward()
        opt.step()
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    if prof is not None:
        prof.__exit__(None, None, None)
        prof.export_chrome_trace(a.trace)
    loss_end = eval_loss()
    images = a.steps * x.shape[0]
    print(f"loss0={loss0:.8f} images_per_s={images / secs:.3f} seconds={secs:.4f} "
          f"cpu_images_per_s={images / cpu:.3f} cpu_seconds={cpu:.4f} "
          f"steps={a.steps} batch={x.shape[0]} loss_end={loss_end:.8f}")


if __name__ == "__main__":
    main()
