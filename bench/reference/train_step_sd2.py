#!/usr/bin/python3
"""Training-step reference for the SD² worker: the same network, weights, batch and optimizer in
idiomatic PyTorch (nn.Module, torch.optim.AdamW), timed the way a user would time their own loop.

Two modes:
  train_step_sd2.py --weights IN.safetensors [--steps N] [--warmup W] [--threads T]
      IN is written by bench/train/train_step_bench (weights under the worker's parameter names,
      the batch "x" [B,3,H,W], "y" [B], "desc_ids" [2B,T] (face rows then environment rows),
      "label_ids/<step>" [5,T] for every step, and metadata with the config and hparams).
      Prints `loss0=<eval-mode loss of step 0> images_per_s=<...> seconds=<...>
      cpu_images_per_s=<...> cpu_seconds=<...> steps=<N> batch=<B>` (wall clock and process CPU
      time of the timed steps).
  train_step_sd2.py --config vit_l14 --device cuda --bf16 [--compile] [--sdpa] --batch B ...
      Random weights of a named config (GPU benchmark, bench/gpu/run.sh); `--find-batch` doubles
      the batch until the step runs out of memory and reports the largest that fits.

Runs on the project venv's torch 2.15 (CPU, CUDA, SDPA, torch.compile).
"""
import argparse
import json
import math
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DT = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}

CONFIGS = {  # mirrors worker/models/clip.cc NamedClipConfig
    "vit_l14": dict(image_size=224, patch_size=14, vision_width=1024, vision_layers=24,
                    vision_heads=16, vision_mlp=4096, text_width=768, text_layers=12,
                    text_heads=12, text_mlp=3072, context_length=77, vocab_size=49408,
                    projection_dim=768),
    "vit_b16": dict(image_size=224, patch_size=16, vision_width=768, vision_layers=12,
                    vision_heads=12, vision_mlp=3072, text_width=512, text_layers=12,
                    text_heads=8, text_mlp=2048, context_length=77, vocab_size=49408,
                    projection_dim=512),
    "tiny": dict(image_size=32, patch_size=8, vision_width=64, vision_layers=3, vision_heads=4,
                 vision_mlp=128, text_width=64, text_layers=2, text_heads=4, text_mlp=128,
                 context_length=77, vocab_size=1000, projection_dim=64),
}


def read_safetensors(path):
    with open(path, "rb") as fh:
        raw = fh.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[b:e], dtype=DT[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out, meta


class LoraLinear(nn.Module):
    def __init__(self, d_in, d_out, bias=True, r=0, alpha=1.0, dropout=0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_out, d_in).normal_(0, 0.02))
        self.bias = nn.Parameter(torch.zeros(d_out)) if bias else None
        self.r, self.scaling, self.dropout = r, alpha / max(r, 1), dropout
        if r > 0:
            self.lora_A = nn.Parameter(torch.empty(r, d_in).normal_(0, 0.02))
            self.lora_B = nn.Parameter(torch.zeros(d_out, r))

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)
        if self.r > 0:
            h = F.dropout(x, self.dropout, self.training) if self.dropout > 0 else x
            y = y + (h @ self.lora_A.t()) @ self.lora_B.t() * self.scaling
        return y


class Attention(nn.Module):
    def __init__(self, width, heads, lora, sdpa):
        super().__init__()
        self.heads, self.sdpa = heads, sdpa
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self, n, LoraLinear(width, width, True, **lora))

    def forward(self, x, causal):
        b, t, d = x.shape
        hd = d // self.heads
        split = lambda y: y.view(b, t, self.heads, hd).transpose(1, 2)
        if self.sdpa:
            o = F.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(x)),
                                               split(self.v_proj(x)), is_causal=causal)
        else:
            q = split(self.q_proj(x) * (1.0 / math.sqrt(hd)))
            s = q @ split(self.k_proj(x)).transpose(-1, -2)
            if causal:
                s = s + torch.full((t, t), float("-inf"), dtype=s.dtype, device=s.device).triu(1)
            o = torch.softmax(s, -1) @ split(self.v_proj(x))
        return self.out_proj(o.transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    def __init__(self, width, hidden):
        super().__init__()
        self.fc1, self.fc2 = LoraLinear(width, hidden), LoraLinear(hidden, width)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h * torch.sigmoid(1.702 * h))  # quick GELU


class Layer(nn.Module):
    def __init__(self, width, heads, mlp, lora, sdpa):
        super().__init__()
        self.self_attn = Attention(width, heads, lora, sdpa)
        self.layer_norm1, self.layer_norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.mlp = Mlp(width, mlp)

    def forward(self, x, causal):
        x = x + self.self_attn(self.layer_norm1(x), causal)
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, width, n, heads, mlp, lora, sdpa):
        super().__init__()
        self.layers = nn.ModuleList([Layer(width, heads, mlp, lora, sdpa) for _ in range(n)])

    def forward(self, x, causal):
        outs = []
        for layer in self.layers:
            x = layer(x, causal)
            outs.append(x)
        return outs


class VisionEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        w = c["vision_width"]
        self.patch_embedding = nn.Conv2d(3, w, c["patch_size"], c["patch_size"], bias=False)
        self.class_embedding = nn.Parameter(torch.randn(w) * 0.02)
        n = (c["image_size"] // c["patch_size"]) ** 2 + 1
        self.position_embedding = nn.Embedding(n, w)

    def forward(self, x):
        p = self.patch_embedding(x).flatten(2).transpose(1, 2)
        cls = self.class_embedding.view(1, 1, -1).expand(p.shape[0], 1, p.shape[2])
        return torch.cat([cls, p], 1) + self.position_embedding.weight.unsqueeze(0)


class VisionModel(nn.Module):
    def __init__(self, c, lora, sdpa):
        super().__init__()
        w = c["vision_width"]
        self.embeddings = VisionEmbeddings(c)
        self.pre_layrnorm, self.post_layernorm = nn.LayerNorm(w), nn.LayerNorm(w)
        self.encoder = Encoder(w, c["vision_layers"], c["vision_heads"], c["vision_mlp"], lora,
                               sdpa)

    def forward(self, x):
        hs = self.encoder(self.pre_layrnorm(self.embeddings(x)), False)
        cls = [h[:, 0] for h in hs]
        return self.post_layernorm(cls[-1]), cls


class TextEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.token_embedding = nn.Embedding(c["vocab_size"], c["text_width"])
        self.position_embedding = nn.Embedding(c["context_length"], c["text_width"])

    def forward(self, ids):
        return self.token_embedding(ids) + self.position_embedding.weight[: ids.shape[1]]


class TextModel(nn.Module):
    def __init__(self, c, lora, sdpa):
        super().__init__()
        w = c["text_width"]
        self.embeddings = TextEmbeddings(c)
        self.encoder = Encoder(w, c["text_layers"], c["text_heads"], c["text_mlp"], lora, sdpa)
        self.final_layer_norm = nn.LayerNorm(w)

    def forward(self, ids, eot):
        h = self.final_layer_norm(self.encoder(self.embeddings(ids), True)[-1])
        return h[torch.arange(ids.shape[0], device=ids.device), (ids == eot).int().argmax(1)]


class Clip(nn.Module):
    def __init__(self, c, lora, sdpa):
        super().__init__()
        self.vision_model = VisionModel(c, lora, sdpa)
        self.text_model = TextModel(c, lora, sdpa)
        self.visual_projection = LoraLinear(c["vision_width"], c["projection_dim"], False)
        self.text_projection = LoraLinear(c["text_width"], c["projection_dim"], False)
        self.logit_scale = nn.Parameter(torch.tensor(2.6592))


class Clam(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, l, d = x.shape
        hd = d // self.heads
        split = lambda y: y.view(b, l, self.heads, hd).transpose(1, 2)
        a = torch.softmax(split(self.q_proj(x)) @ split(self.k_proj(x)).transpose(-1, -2)
                          / math.sqrt(hd), -1)
        return self.out_proj((a @ split(self.v_proj(x))).transpose(1, 2).reshape(b, l, d))


class Sd2(nn.Module):
    def __init__(self, c, lora, sdpa, clam=True):
        super().__init__()
        self.clip = Clip(c, lora, sdpa)
        p = c["projection_dim"]
        self.clam = Clam(c["vision_width"], c["vision_heads"]) if clam else None
        self.adapter = nn.Sequential()
        self.adapter.fc1 = nn.Linear(p + (c["vision_width"] if clam else 0), p)
        self.adapter.fc2 = nn.Linear(p, p)
        self.bias = nn.Parameter(torch.tensor(-math.exp(2.6592)))

    def encode_image(self, x):
        pooled, cls = self.clip.vision_model(x)
        f_final = self.clip.visual_projection(pooled)
        if self.clam is not None:
            f_final = torch.cat([self.clam(torch.stack(cls, 1)).mean(1), f_final], 1)
        return self.adapter.fc2(F.gelu(self.adapter.fc1(f_final)))

    def freeze_backbone(self):
        for n, p in self.named_parameters():
            p.requires_grad_("lora_" in n or n.startswith("clam.") or n.startswith("adapter.")
                             or n in ("clip.logit_scale", "bias"))


def make_optimizer(model, lr, wd, betas, eps):
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    rest = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                              {"params": rest, "weight_decay": 0.0}], lr=lr, betas=betas, eps=eps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights")
    ap.add_argument("--torch-weights", help="dict written by bench/gpu/sd2_step_gpu --check "
                    "(named --config, default hparams); prints loss0 only")
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (torch >= 2)")
    ap.add_argument("--sdpa", action="store_true", help="F.scaled_dot_product_attention")
    ap.add_argument("--find-batch", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.sdpa and not hasattr(F, "scaled_dot_product_attention"):
        sys.exit(f"--sdpa needs torch >= 2.0 (have {torch.__version__})")
    dev = torch.device(a.device)
    if a.weights:
        t, meta = read_safetensors(a.weights)
        cfg = json.loads(meta["config"])
        hp = json.loads(meta["hparams"])
    elif a.torch_weights:
        if a.config not in CONFIGS:
            sys.exit(f"unknown config '{a.config}' (known: {', '.join(CONFIGS)})")
        cfg = dict(CONFIGS[a.config])
        # Written by sd2_step_gpu --check in the same run (torch::pickle_save of a c10::Dict, whose
        # type tags the weights-only unpickler refuses): a trusted local file.
        t = dict(torch.load(a.torch_weights, weights_only=False))
        a.steps, a.warmup = 1, 0
        hp = dict(lr=5e-7, weight_decay=0.01, beta1=0.9, beta2=0.999, eps=1e-8, alpha=2.0,
                  lora_r=8, lora_alpha=32.0, lora_dropout=0.1, eot_id=cfg["vocab_size"] - 1)
    else:
        if a.config not in CONFIGS:
            sys.exit(f"unknown config '{a.config}' (known: {', '.join(CONFIGS)})")
        cfg, t = dict(CONFIGS[a.config]), None
        hp = dict(lr=5e-7, weight_decay=0.01, beta1=0.9, beta2=0.999, eps=1e-8, alpha=2.0,
                  lora_r=8, lora_alpha=32.0, lora_dropout=0.1, eot_id=cfg["vocab_size"] - 1)
    lora = dict(r=int(hp["lora_r"]), alpha=float(hp["lora_alpha"]),
                dropout=float(hp["lora_dropout"]))
    model = Sd2(cfg, lora, a.sdpa)
    eot, alpha = int(hp["eot_id"]), float(hp["alpha"])
    if t is not None:
        state = {k: v for k, v in t.items() if k in dict(model.named_parameters())}
        missing = set(dict(model.named_parameters())) - set(state)
        if missing:
            sys.exit(f"{a.weights}: missing weights: {sorted(missing)[:10]}")
        model.load_state_dict(state, strict=True)
        x, y, desc = t["x"], t["y"].long(), t["desc_ids"].long()
        labels = [t[f"label_ids/{s}"].long() for s in range(a.warmup + a.steps)]
    model.freeze_backbone()
    model.to(dev)

    def synthetic(batch):
        g = torch.Generator().manual_seed(1)
        xs = torch.randn(batch, 3, cfg["image_size"], cfg["image_size"], generator=g)
        ys = torch.arange(batch) % 5
        ids = torch.randint(1, eot, (2 * batch, 60), generator=g)
        ids[:, -1] = eot
        lab = torch.randint(1, eot, (5, 20), generator=g)
        lab[:, -1] = eot
        return xs.to(dev), ys.to(dev), ids.to(dev), [lab.to(dev)] * (a.warmup + a.steps)

    if t is None:
        x, y, desc, labels = synthetic(a.batch)
    x, y, desc = x.to(dev), y.to(dev), desc.to(dev)
    labels = [l.to(dev) for l in labels]
    opt = make_optimizer(model, hp["lr"], hp["weight_decay"], (hp["beta1"], hp["beta2"]), hp["eps"])
    def loss_fn(x, y, lab, desc):
        """alpha L_C + L_S + L_D (worker/train/losses.h defaults: CE mean, L_S sum, shared tau)."""
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16):
            b = x.shape[0]
            f = F.normalize(model.encode_image(x).float(), dim=-1, eps=1e-12)
            u = F.normalize(model.clip.text_projection(model.clip.text_model(lab, eot)).float(),
                            dim=-1, eps=1e-12)
            v = model.clip.text_projection(model.clip.text_model(desc, eot)).float()
            tau = model.clip.logit_scale.exp()
            l_c = F.cross_entropy(tau * f @ u.t(), y)
            l_s = ((u @ u.t() - torch.eye(u.shape[0], device=u.device)) ** 2).sum()
            z = 2 * torch.eye(b, device=x.device) - 1
            l_d = 0
            for part in (v[:b], v[b:]):
                logits = tau * f @ F.normalize(part, dim=-1, eps=1e-12).t() + model.bias
                l_d = l_d - F.logsigmoid(z * logits).sum() / b
            return alpha * l_c + l_s + l_d

    step_loss = torch.compile(loss_fn) if a.compile else loss_fn

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    if a.find_batch:
        best, b = 0, a.batch
        while b <= 4096:
            try:
                x, y, desc, labels = synthetic(b)
                for _ in range(2):
                    opt.zero_grad(set_to_none=True)
                    loss_fn(x, y, labels[0], desc).backward()
                    opt.step()
                sync()
                best = b
                b *= 2
            except torch.cuda.OutOfMemoryError:
                break
            finally:
                opt.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
        print(f"max_batch={best}")
        return

    model.eval()
    with torch.no_grad():
        loss0 = loss_fn(x, y, labels[0], desc).item()
    model.train()
    if a.torch_weights:
        print(f"loss0={loss0:.8f}")
        return
    t0 = None
    for s in range(a.warmup + a.steps):
        if s == a.warmup:
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss = step_loss(x, y, labels[s], desc)
        if not math.isfinite(loss.item()):
            sys.exit(f"loss is not finite at step {s}")
        loss.backward()
        opt.step()
    sync()
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    images = a.steps * x.shape[0]
    print(f"loss0={loss0:.8f} images_per_s={images / secs:.3f} seconds={secs:.4f} "
          f"cpu_images_per_s={images / cpu:.3f} cpu_seconds={cpu:.4f} "
          f"steps={a.steps} batch={x.shape[0]}")


if __name__ == "__main__":
    main()
