#!/usr/bin/python3
"""Independent PyTorch references for the sd2 baselines (Xception, RECCE, SPSL, Effort's SVD split).

Written after DeepfakeBench's training/networks/xception.py, RECCE's official
model/network/Recce.py (the per-vertex GraphReasoning loop, kept as published) and
DeepfakeBench's spsl_detector.py. Run with Debian's python3-torch (/usr/bin/python3).

  baselines_reference.py IN.pt OUT.pt

IN.pt (written by torch::pickle_save from worker/baselines tests) is a dict:
  kind: "xception" | "recce" | "spsl" | "phase" | "svd" | "recce_loss"
  config: JSON string (width, middle_blocks, in_channels, ...)
  input: tensor; labels: tensor (recce_loss); state.<name>: the C++ module's state dict
OUT.pt is a dict of tensors (logits, recons, corr0.., phase, ...) written with torch.save.
"""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def scaled(c, width):
    return max(1, int(round(c * width)))


class SeparableConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, padding=0):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size, stride, padding, 1,
                               groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, 1, 0, 1, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.conv1(x))


class Block(nn.Module):
    def __init__(self, in_filters, out_filters, reps, strides=1, start_with_relu=True,
                 grow_first=True):
        super().__init__()
        if out_filters != in_filters or strides != 1:
            self.skip = nn.Conv2d(in_filters, out_filters, 1, stride=strides, bias=False)
            self.skipbn = nn.BatchNorm2d(out_filters)
        else:
            self.skip = None
        rep = []
        filters = in_filters
        if grow_first:
            rep.append(nn.ReLU())
            rep.append(SeparableConv2d(in_filters, out_filters, 3, stride=1, padding=1))
            rep.append(nn.BatchNorm2d(out_filters))
            filters = out_filters
        for _ in range(reps - 1):
            rep.append(nn.ReLU())
            rep.append(SeparableConv2d(filters, filters, 3, stride=1, padding=1))
            rep.append(nn.BatchNorm2d(filters))
        if not grow_first:
            rep.append(nn.ReLU())
            rep.append(SeparableConv2d(in_filters, out_filters, 3, stride=1, padding=1))
            rep.append(nn.BatchNorm2d(out_filters))
        if not start_with_relu:
            rep = rep[1:]
        if strides != 1:
            rep.append(nn.MaxPool2d(3, strides, 1))
        self.rep = nn.Sequential(*rep)

    def forward(self, inp):
        x = self.rep(inp)
        skip = self.skipbn(self.skip(inp)) if self.skip is not None else inp
        return x + skip


class Xception(nn.Module):
    def __init__(self, inc=3, num_classes=2, width=1.0, middle_blocks=8):
        super().__init__()
        c = lambda ch: scaled(ch, width)
        self.conv1 = nn.Conv2d(inc, c(32), 3, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(c(32))
        self.conv2 = nn.Conv2d(c(32), c(64), 3, bias=False)
        self.bn2 = nn.BatchNorm2d(c(64))
        self.block1 = Block(c(64), c(128), 2, 2, start_with_relu=False, grow_first=True)
        self.block2 = Block(c(128), c(256), 2, 2, start_with_relu=True, grow_first=True)
        self.block3 = Block(c(256), c(728), 2, 2, start_with_relu=True, grow_first=True)
        self.middle_names = []
        for i in range(middle_blocks):
            name = "block%d" % (4 + i)
            setattr(self, name, Block(c(728), c(728), 3, 1, start_with_relu=True, grow_first=True))
            self.middle_names.append(name)
        self.block12 = Block(c(728), c(1024), 2, 2, start_with_relu=True, grow_first=False)
        self.conv3 = SeparableConv2d(c(1024), c(1536), 3, 1, 1)
        self.bn3 = nn.BatchNorm2d(c(1536))
        self.conv4 = SeparableConv2d(c(1536), c(2048), 3, 1, 1)
        self.bn4 = nn.BatchNorm2d(c(2048))
        if num_classes > 0:
            self.last_linear = nn.Linear(c(2048), num_classes)

    def middle(self, i):
        return getattr(self, self.middle_names[i])

    def features(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.block3(self.block2(self.block1(x)))
        for name in self.middle_names:
            x = getattr(self, name)(x)
        x = self.block12(x)
        x = F.relu(self.bn3(self.conv3(x)))
        return self.bn4(self.conv4(x))

    def forward(self, x):
        x = F.relu(self.features(x))
        x = F.adaptive_avg_pool2d(x, (1, 1)).view(x.size(0), -1)
        return self.last_linear(x)


class GuidedAttention(nn.Module):
    def __init__(self, depth=728, drop_rate=0.2):
        super().__init__()
        self.gated = nn.Sequential(nn.Conv2d(3, 3, 3, 1, 1, bias=False), nn.ReLU(True),
                                   nn.Conv2d(3, 1, 1, bias=False), nn.Sigmoid())
        self.h = nn.Sequential(nn.Conv2d(depth, depth, 1, 1, bias=False), nn.BatchNorm2d(depth),
                               nn.ReLU(True))
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, x, pred_x, embedding):
        residual_full = torch.abs(x - pred_x)
        residual_x = F.interpolate(residual_full, size=embedding.shape[-2:], mode='bilinear',
                                   align_corners=True)
        res_map = self.gated(residual_x)
        return res_map * self.h(embedding) + self.dropout(embedding)


class GraphReasoning(nn.Module):
    """RECCE's official GraphReasoning, with its per-vertex loop."""

    def __init__(self, va_in, va_out, vb_in, vb_out, vc_in, vc_out, spatial_ratio, drop_rate):
        super().__init__()
        self.ratio = spatial_ratio
        self.va_embedding = nn.Sequential(nn.Conv2d(va_in, va_out, 1, bias=False), nn.ReLU(True),
                                          nn.Conv2d(va_out, va_out, 1, bias=False))
        self.va_gated_b = nn.Sequential(nn.Conv2d(va_in, va_out, 1, bias=False), nn.Sigmoid())
        self.va_gated_c = nn.Sequential(nn.Conv2d(va_in, va_out, 1, bias=False), nn.Sigmoid())
        self.vb_embedding = nn.Sequential(nn.Linear(vb_in, vb_out, bias=False), nn.ReLU(True),
                                          nn.Linear(vb_out, vb_out, bias=False))
        self.vc_embedding = nn.Sequential(nn.Linear(vc_in, vc_out, bias=False), nn.ReLU(True),
                                          nn.Linear(vc_out, vc_out, bias=False))
        self.unfold_b = nn.Unfold(kernel_size=spatial_ratio[0], stride=spatial_ratio[0])
        self.unfold_c = nn.Unfold(kernel_size=spatial_ratio[1], stride=spatial_ratio[1])
        self.reweight_ab = nn.Sequential(nn.Linear(va_out + vb_out, 1, bias=False), nn.ReLU(True),
                                         nn.Softmax(dim=1))
        self.reweight_ac = nn.Sequential(nn.Linear(va_out + vc_out, 1, bias=False), nn.ReLU(True),
                                         nn.Softmax(dim=1))
        self.reproject = nn.Sequential(
            nn.Conv2d(va_out + vb_out + vc_out, va_in, kernel_size=3, stride=1, padding=1,
                      bias=False), nn.ReLU(True),
            nn.Conv2d(va_in, va_in, kernel_size=1, bias=False), nn.Dropout(drop_rate))

    def forward(self, vert_a, vert_b, vert_c):
        emb_vert_a = self.va_embedding(vert_a)
        emb_vert_a = emb_vert_a.reshape([emb_vert_a.shape[0], emb_vert_a.shape[1], -1])
        gate_vert_b = 1 - self.va_gated_b(vert_a)
        gate_vert_b = gate_vert_b.reshape(*emb_vert_a.shape)
        gate_vert_c = 1 - self.va_gated_c(vert_a)
        gate_vert_c = gate_vert_c.reshape(*emb_vert_a.shape)
        vert_b = self.unfold_b(vert_b).reshape(
            [vert_b.shape[0], vert_b.shape[1], self.ratio[0] * self.ratio[0], -1])
        vert_b = vert_b.permute([0, 2, 3, 1])
        emb_vert_b = self.vb_embedding(vert_b)
        vert_c = self.unfold_c(vert_c).reshape(
            [vert_c.shape[0], vert_c.shape[1], self.ratio[1] * self.ratio[1], -1])
        vert_c = vert_c.permute([0, 2, 3, 1])
        emb_vert_c = self.vc_embedding(vert_c)
        agg_vb, agg_vc = [], []
        for j in range(emb_vert_a.shape[-1]):
            emb_v_a = torch.stack([emb_vert_a[:, :, j]] * (self.ratio[0] ** 2), dim=1)
            emb_v_b = emb_vert_b[:, :, j, :]
            w = self.reweight_ab(torch.cat([emb_v_a, emb_v_b], dim=-1))
            agg_vb.append(torch.bmm(emb_v_b.transpose(1, 2), w).squeeze(-1) * gate_vert_b[:, :, j])
            emb_v_a = torch.stack([emb_vert_a[:, :, j]] * (self.ratio[1] ** 2), dim=1)
            emb_v_c = emb_vert_c[:, :, j, :]
            w = self.reweight_ac(torch.cat([emb_v_a, emb_v_c], dim=-1))
            agg_vc.append(torch.bmm(emb_v_c.transpose(1, 2), w).squeeze(-1) * gate_vert_c[:, :, j])
        agg_vert_b = torch.stack(agg_vb, dim=-1)
        agg_vert_c = torch.stack(agg_vc, dim=-1)
        agg_vert_abc = torch.cat([torch.cat([agg_vert_b, agg_vert_c], dim=1), emb_vert_a], dim=1)
        agg_vert_abc = torch.sigmoid(agg_vert_abc)
        agg_vert_abc = agg_vert_abc.reshape(vert_a.shape[0], -1, vert_a.shape[2], vert_a.shape[3])
        return self.reproject(agg_vert_abc)


class Recce(nn.Module):
    def __init__(self, width=1.0, middle_blocks=8, num_classes=2, drop_rate=0.2, noise_std=0.0):
        super().__init__()
        self.noise_std = noise_std  # the official code's training noise (1e-6); 0: none
        c = lambda ch: scaled(ch, width)
        self.encoder = Xception(3, 0, width, middle_blocks)
        depth = c(728)
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(c(2048), num_classes)
        self.attention = GuidedAttention(depth=depth, drop_rate=drop_rate)
        self.reasoning = GraphReasoning(depth, c(256), c(256), c(256), c(128), c(256), [2, 4],
                                        drop_rate)
        self.decoder1 = nn.Sequential(nn.UpsamplingNearest2d(scale_factor=2),
                                      SeparableConv2d(depth, c(256), 3, 1, 1),
                                      nn.BatchNorm2d(c(256)), nn.ReLU(inplace=True))
        self.decoder2 = Block(c(256), c(256), 3, 1)
        self.decoder3 = nn.Sequential(nn.UpsamplingNearest2d(scale_factor=2),
                                      SeparableConv2d(c(256), c(128), 3, 1, 1),
                                      nn.BatchNorm2d(c(128)), nn.ReLU(inplace=True))
        self.decoder4 = Block(c(128), c(128), 3, 1)
        self.decoder5 = nn.Sequential(nn.UpsamplingNearest2d(scale_factor=2),
                                      SeparableConv2d(c(128), c(64), 3, 1, 1),
                                      nn.BatchNorm2d(c(64)), nn.ReLU(inplace=True))
        self.decoder6 = nn.Sequential(nn.Conv2d(c(64), 3, 1, 1, bias=False), nn.Tanh())
        self.middle_blocks = middle_blocks

    def add_white_noise(self, tensor):
        """The official code's: N(0, noise_std) on a random half of the images, clipped."""
        rand = torch.rand([tensor.shape[0], 1, 1, 1])
        rand = torch.where(rand > 0.5, 1., 0.).to(tensor.device)
        white_noise = torch.normal(0., self.noise_std, size=tensor.shape, device=tensor.device)
        return torch.clip(tensor + white_noise * rand, -1., 1.)

    def norm_n_corr(self, x):
        norm_embed = F.normalize(F.adaptive_avg_pool2d(x, (1, 1)), p=2, dim=1).flatten(1)
        return (torch.matmul(norm_embed, norm_embed.T) + 1.) / 2.

    def forward(self, x):
        enc = self.encoder
        corrs = []
        noise_x = self.add_white_noise(x) if self.training and self.noise_std > 0 else x
        out = F.relu(enc.bn1(enc.conv1(noise_x)))
        out = F.relu(enc.bn2(enc.conv2(out)))
        out = enc.block3(enc.block2(enc.block1(out)))
        embedding = enc.middle(0)(out)
        corrs.append(self.norm_n_corr(embedding))
        out = self.decoder1(self.dropout(embedding))
        out_d2 = self.decoder2(out)
        corrs.append(self.norm_n_corr(out_d2))
        out_d4 = self.decoder4(self.decoder3(out_d2))
        corrs.append(self.norm_n_corr(out_d4))
        pred = self.decoder6(self.decoder5(out_d4))
        recons_x = F.interpolate(pred, size=x.shape[-2:], mode='bilinear', align_corners=True)
        half = self.middle_blocks // 2
        for i in range(1, half):
            embedding = enc.middle(i)(embedding)
        fusion = self.reasoning(embedding, out_d2, out_d4) + embedding
        embedding = enc.middle(half)(fusion)
        embedding = self.attention(x, recons_x, embedding)
        for i in range(half + 1, self.middle_blocks):
            embedding = enc.middle(i)(embedding)
        embedding = enc.block12(embedding)
        embedding = F.relu(enc.bn3(enc.conv3(embedding)))
        embedding = F.relu(enc.bn4(enc.conv4(embedding)))
        embedding = F.adaptive_avg_pool2d(embedding, (1, 1)).flatten(1)
        return self.fc(self.dropout(embedding)), recons_x, corrs


def recce_losses(logits, recons, corrs, x, target):
    """Cross-entropy, RECCE's ReconstructionLoss (L1 on real images) and its MLLoss."""
    ce = F.cross_entropy(logits, target)
    real_index = torch.where(target == 0)[0]
    recons_loss = torch.abs(recons[real_index] - x[real_index]).mean()
    eps = 1e-6
    batch_size = target.shape[0]
    mat_1 = torch.hstack([target.unsqueeze(-1)] * batch_size)
    mat_2 = torch.vstack([target] * batch_size)
    diff_mat = torch.logical_xor(mat_1, mat_2).to(x.dtype)
    or_mat = torch.logical_or(mat_1, mat_2)
    eye = torch.eye(batch_size, device=target.device)
    or_mat = torch.logical_or(or_mat, eye).to(x.dtype)
    sim_mat = 1. - or_mat
    ml = torch.zeros((), dtype=x.dtype)
    for corr in corrs:
        diff = torch.sum(corr * diff_mat, dim=[0, 1]) / (torch.sum(diff_mat, dim=[0, 1]) + eps)
        sim = torch.sum(corr * sim_mat, dim=[0, 1]) / (torch.sum(sim_mat, dim=[0, 1]) + eps)
        partial = 1. - sim + diff
        ml = ml + torch.maximum(partial, torch.zeros_like(partial))
    return ce, recons_loss, ml


def phase_without_amplitude(img):
    """DeepfakeBench's SPSL phase-only reconstruction."""
    gray_img = torch.mean(img, dim=1, keepdim=True)
    X = torch.fft.fftn(gray_img, dim=(-1, -2))
    phase_spectrum = torch.angle(X)
    reconstructed_X = torch.exp(1j * phase_spectrum)
    return torch.real(torch.fft.ifftn(reconstructed_X, dim=(-1, -2)))


class Spsl(nn.Module):
    def __init__(self, width=1.0, middle_blocks=8):
        super().__init__()
        self.backbone = Xception(4, 2, width, middle_blocks)

    def forward(self, x):
        return self.backbone(torch.cat((x, phase_without_amplitude(x)), dim=1))


def load(model, state):
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise SystemExit("state dict mismatch: missing %s, unexpected %s" % (missing, extra))
    for k, v in state.items():
        if tuple(own[k].shape) != tuple(v.shape):
            raise SystemExit("shape mismatch for %s: %s vs %s" % (k, tuple(own[k].shape),
                                                                  tuple(v.shape)))
    model.load_state_dict(state)
    model.double().eval()


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    # Written by the calling test itself (torch::pickle_save of a c10::Dict, whose type tags the
    # weights-only unpickler of torch >= 2.6 refuses): a trusted local file.
    data = torch.load(sys.argv[1], weights_only=False)
    kind = data["kind"]
    cfg = json.loads(data["config"])
    x = data["input"]
    state = {k[len("state."):]: v for k, v in data.items() if k.startswith("state.")}
    width = cfg.get("width", 1.0)
    middle = cfg.get("middle_blocks", 8)
    out = {}
    with torch.no_grad():
        if kind == "xception":
            model = Xception(cfg.get("in_channels", 3), 2, width, middle)
            load(model, state)
            out["logits"] = model(x)
            out["num_params"] = torch.tensor(sum(p.numel() for p in model.parameters()))
        elif kind in ("recce", "recce_loss"):
            model = Recce(width, middle)
            load(model, state)
            logits, recons, corrs = model(x)
            out["logits"], out["recons"] = logits, recons
            for i, c in enumerate(corrs):
                out["corr%d" % i] = c
            if kind == "recce_loss":
                ce, rl, ml = recce_losses(logits, recons, corrs, x, data["labels"])
                out["loss_ce"], out["loss_recons"], out["loss_metric"] = ce, rl, ml
        elif kind == "spsl":
            model = Spsl(width, middle)
            load(model, state)
            out["logits"] = model(x)
        elif kind == "phase":
            out["phase"] = phase_without_amplitude(x)
        else:
            raise SystemExit("unknown kind " + kind)
    # Plain contiguous real tensors (torch.real gives a view into complex storage, which
    # LibTorch's unpickler does not read), and at least two entries (a one-entry dict pickles
    # with the SETITEM opcode, which LibTorch's unpickler does not know either).
    out["python_torch_version_major"] = torch.tensor(int(torch.__version__.split(".")[0]))
    torch.save({k: v.detach().clone().contiguous() for k, v in out.items()}, sys.argv[2])


if __name__ == "__main__":
    main()
