#!/usr/bin/python3
"""Independent reference of the SD² forward pass and losses, written from the paper's equations
(Sec. 4.1-4.4) and Hugging Face CLIP's published architecture, in PyTorch (Debian python3-torch).

Usage: sd2_reference.py IN.safetensors OUT.safetensors

IN holds the model weights under their names ("clip.vision_model....", "clam.q_proj.weight",
"adapter.fc1.weight", "bias", "clip.logit_scale", LoRA "...lora_A"/"...lora_B"), the batch
("x" [B,3,H,W], "label_ids" [5,T], "face_ids" [B,T], "env_ids" [B,T], "y" [B]) and metadata
(vision_heads, text_heads, eot_id, lora_scaling, alpha, clam). OUT gets f, u, vf, ve, L_C, L_S,
L_D, total and grad/<name> for every LoRA / CLAM / adapter / tau / b tensor.
"""
import json
import math
import struct
import sys

import numpy as np
import torch

DT = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


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


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name].detach().contiguous().numpy().astype(np.float32)
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - (len(h) + 8) % 8) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


class Weights:
    def __init__(self, t, scaling):
        self.t, self.scaling = t, scaling

    def __getitem__(self, k):
        return self.t[k]

    def has(self, k):
        return k in self.t

    def linear(self, prefix, x):
        """y = x W^T + b (+ LoRA: x A^T B^T * alpha/r)."""
        y = x @ self.t[prefix + ".weight"].T
        if prefix + ".bias" in self.t:
            y = y + self.t[prefix + ".bias"]
        if prefix + ".lora_A" in self.t:
            y = y + (x @ self.t[prefix + ".lora_A"].T) @ self.t[prefix + ".lora_B"].T * self.scaling
        return y


def layer_norm(w, prefix, x):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * w[prefix + ".weight"] + w[prefix + ".bias"]


def attention(w, prefix, x, heads, causal):
    b, t, d = x.shape
    hd = d // heads
    q = w.linear(prefix + ".q_proj", x).reshape(b, t, heads, hd).permute(0, 2, 1, 3)
    k = w.linear(prefix + ".k_proj", x).reshape(b, t, heads, hd).permute(0, 2, 1, 3)
    v = w.linear(prefix + ".v_proj", x).reshape(b, t, heads, hd).permute(0, 2, 1, 3)
    s = q @ k.transpose(-1, -2) / math.sqrt(hd)
    if causal:
        s = s.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    a = torch.softmax(s, -1) @ v
    return w.linear(prefix + ".out_proj", a.permute(0, 2, 1, 3).reshape(b, t, d))


def encoder(w, prefix, x, heads, causal):
    outs = []
    i = 0
    while w.has(f"{prefix}.layers.{i}.layer_norm1.weight"):
        p = f"{prefix}.layers.{i}"
        x = x + attention(w, p + ".self_attn", layer_norm(w, p + ".layer_norm1", x), heads, causal)
        h = w.linear(p + ".mlp.fc1", layer_norm(w, p + ".layer_norm2", x))
        h = h * torch.sigmoid(1.702 * h)  # quick GELU
        x = x + w.linear(p + ".mlp.fc2", h)
        outs.append(x)
        i += 1
    return outs


def image_tower(w, x, heads):
    pre = "clip.vision_model"
    conv = w[pre + ".embeddings.patch_embedding.weight"]
    patch = conv.shape[-1]
    b = x.shape[0]
    # Patchify by unfolding: [B, N, 3*p*p] @ W^T.
    cols = torch.nn.functional.unfold(x, kernel_size=patch, stride=patch).transpose(1, 2)
    tokens = cols @ conv.reshape(conv.shape[0], -1).T
    cls = w[pre + ".embeddings.class_embedding"].expand(b, 1, -1)
    h = torch.cat([cls, tokens], 1) + w[pre + ".embeddings.position_embedding.weight"]
    h = layer_norm(w, pre + ".pre_layrnorm", h)
    outs = encoder(w, pre + ".encoder", h, heads, False)
    f_final = w.linear("clip.visual_projection", layer_norm(w, pre + ".post_layernorm", outs[-1][:, 0]))
    return f_final, torch.stack([o[:, 0] for o in outs], 1)


def text_tower(w, ids, heads, eot):
    pre = "clip.text_model"
    h = w[pre + ".embeddings.token_embedding.weight"][ids]
    h = h + w[pre + ".embeddings.position_embedding.weight"][: ids.shape[1]]
    h = layer_norm(w, pre + ".final_layer_norm", encoder(w, pre + ".encoder", h, heads, True)[-1])
    pos = torch.tensor([row.tolist().index(eot) for row in ids])
    return w.linear("clip.text_projection", h[torch.arange(ids.shape[0]), pos])


def clam(w, f_cls, heads):
    # Eq. 1: per-head Attn(f_cls W_Q, f_cls W_K, f_cls W_V), concat, W_O; then GAP over layers.
    b, l, d = f_cls.shape
    hd = d // heads
    outs = []
    for hh in range(heads):
        sl = slice(hh * hd, (hh + 1) * hd)
        q = f_cls @ w["clam.q_proj.weight"][sl].T + w["clam.q_proj.bias"][sl]
        k = f_cls @ w["clam.k_proj.weight"][sl].T + w["clam.k_proj.bias"][sl]
        v = f_cls @ w["clam.v_proj.weight"][sl].T + w["clam.v_proj.bias"][sl]
        outs.append(torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd), -1) @ v)
    f_sat = torch.cat(outs, -1) @ w["clam.out_proj.weight"].T + w["clam.out_proj.bias"]
    return f_sat.mean(1)


def cos(a, b):
    return (a / a.norm(dim=-1, keepdim=True)) @ (b / b.norm(dim=-1, keepdim=True)).T


def main():
    t, meta = read_safetensors(sys.argv[1])
    trainable = [k for k in t if "lora_" in k or k.startswith("clam.") or k.startswith("adapter.")
                 or k in ("bias", "clip.logit_scale")]
    for k in trainable:
        t[k].requires_grad_(True)
    w = Weights(t, float(meta["lora_scaling"]))
    vh, th, eot = int(meta["vision_heads"]), int(meta["text_heads"]), int(meta["eot_id"])
    alpha = float(meta["alpha"])
    f_final, f_cls = image_tower(w, t["x"], vh)
    if meta["clam"] == "1":
        z = torch.cat([clam(w, f_cls, vh), f_final], 1)  # Eq. 2: Concat([f'_sat, f_final])
    else:
        z = f_final
    z = z @ t["adapter.fc1.weight"].T + t["adapter.fc1.bias"]
    z = 0.5 * z * (1 + torch.erf(z / math.sqrt(2)))  # GELU
    f = z @ t["adapter.fc2.weight"].T + t["adapter.fc2.bias"]
    u = text_tower(w, t["label_ids"], th, eot)
    vf = text_tower(w, t["face_ids"], th, eot)
    ve = text_tower(w, t["env_ids"], th, eot)
    tau = torch.exp(t["clip.logit_scale"])
    y = t["y"].long()
    B = f.shape[0]
    # Eq. 3 (batch mean): cross-entropy of tau * cos(f_i, u_c) over the 5 types.
    logits = tau * cos(f, u)
    l_c = -sum(logits[i, y[i]] - torch.logsumexp(logits[i], 0) for i in range(B)) / B
    # Eq. 4: squared Frobenius norm of cos(u, u^T) - I.
    l_s = ((cos(u, u) - torch.eye(5)) ** 2).sum()
    # Eq. 5 (divided by |B|): SigLIP against the face and the environment descriptions.
    zz = 2 * torch.eye(B) - 1
    b = t["bias"]
    l_d = 0
    for v in (vf, ve):
        s = tau * cos(f, v) + b
        l_d = l_d - torch.log(torch.sigmoid(zz * s)).sum() / B
    total = alpha * l_c + l_s + l_d  # Eq. 6
    total.backward()
    out = {"f": f, "u": u, "vf": vf, "ve": ve, "L_C": l_c.reshape(1), "L_S": l_s.reshape(1),
           "L_D": l_d.reshape(1), "total": total.reshape(1)}
    for k in trainable:
        out["grad/" + k] = t[k].grad
    write_safetensors(sys.argv[2], out)


if __name__ == "__main__":
    main()
