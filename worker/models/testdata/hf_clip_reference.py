"""Independent reference for sd2's CLIP code: Hugging Face transformers (pinned in
scripts/requirements.txt), run by worker/models/models_test.cc.

  hf_clip_reference.py model OUT_DIR
      A CLIPModel from a small random CLIPConfig, saved with save_pretrained into OUT_DIR, and
      OUT_DIR/reference.safetensors with fixed inputs (pixel_values, input_ids) and
      transformers' outputs for them (image_embeds, text_embeds, logits_per_image).
  hf_clip_reference.py count-l14 OUT_DIR
      Writes OUT_DIR/config.json, the configuration of openai/clip-vit-large-patch14 (no
      weights), and prints transformers' parameter count for it (model built on the meta device).
  hf_clip_reference.py tokenizer MERGES_GZ OUT_DIR N SEED
      Writes OUT_DIR/vocab.json + merges.txt (Hugging Face's files for the tokenizer that
      MERGES_GZ describes) and OUT_DIR/texts.jsonl: the texts of GOLDEN (if given as a 6th
      argument) and N strings generated from SEED (unicode, whitespace runs, punctuation,
      over-long inputs), each with CLIPTokenizer's ids without special tokens ("ids"), the same
      for the HTML-unescaped text ("ids_unescaped": OpenAI's tokenizer unescapes entities,
      transformers' does not), and with special tokens, truncated to 77 ("ctx77", unescaped).
"""
import gzip
import html
import json
import random
import sys

import os

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer  # noqa: E402


def small_config():
    return CLIPConfig(
        text_config=dict(vocab_size=99, hidden_size=32, intermediate_size=48,
                         num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=16,
                         hidden_act="quick_gelu", eos_token_id=98, bos_token_id=97,
                         pad_token_id=0, layer_norm_eps=1e-5),
        vision_config=dict(hidden_size=40, intermediate_size=56, num_hidden_layers=2,
                           num_attention_heads=5, image_size=24, patch_size=8,
                           hidden_act="quick_gelu", layer_norm_eps=1e-5),
        projection_dim=24)


def cmd_model(out):
    torch.manual_seed(0)
    model = CLIPModel(small_config()).eval()
    # Random weights everywhere, not only the initializer's (biases and norms start as 0 / 1).
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        model.logit_scale.fill_(2.0)
    model.save_pretrained(out, safe_serialization=True)
    g = torch.Generator().manual_seed(1)
    pixels = torch.randn(3, 3, 24, 24, generator=g)
    ids = torch.randint(1, 97, (3, 10), generator=g)
    ids[:, 0] = 97
    ids[0, 9] = 98
    ids[1, 5] = 98  # tokens after the first EOT: padding that causal attention never sees
    ids[2, 7] = 98
    ids[2, 8] = 98
    with torch.no_grad():
        out_ = model(input_ids=ids, pixel_values=pixels)
    save_file({"pixel_values": pixels.contiguous(), "input_ids": ids.to(torch.int64).contiguous(),
               "image_embeds": out_.image_embeds.contiguous(),
               "text_embeds": out_.text_embeds.contiguous(),
               "logits_per_image": out_.logits_per_image.contiguous()},
              f"{out}/reference.safetensors")


def l14_config():
    return CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                         num_hidden_layers=12, num_attention_heads=12,
                         max_position_embeddings=77, hidden_act="quick_gelu",
                         projection_dim=768),
        vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                           num_attention_heads=16, image_size=224, patch_size=14,
                           hidden_act="quick_gelu", projection_dim=768),
        projection_dim=768)


def cmd_count_l14(out):
    cfg = l14_config()
    cfg.to_json_file(f"{out}/config.json")
    with torch.device("meta"):
        model = CLIPModel(cfg)
    print(sum(p.numel() for p in model.parameters()))


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def random_text(rng):
    pieces = ["a", "photo", "of", "the", "Face", "REAL", "fake", "deep-fake", "it's", "we'll",
              "don't", "3d", "2024", "x1.5", "ok!", "?!", "...", "(c)", "#tag", "@user", "e-mail",
              "naïve", "café", "Ångström", "straße", "İstanbul", "ǅemal", "東京", "写真", "😀",
              "👩‍🔬", "ﬁ", "①", "Ⅻ", "½", "α", "β", "Ω", "ÿ", "\u00a0", "\u200b", "\u3000",
              "a\u0301", "&amp;", "&lt;b&gt;", "<|endoftext|>", "<|startoftext|>", "\t", "\n",
              "   ", "--", "__init__", "C++", "foo_bar", "$100", "50%", "'quoted'", "\"dq\"",
              "l'été", "ŁÓDŹ", "Ǆ", "ﬀ", "ﬂ", "Ⓐ", "™", "…", "—", "–", "«»", "„“", "¿", "¡"]
    n = rng.choice([1, 2, 3, 5, 8, 13, 30, 90])
    sep = ["", " ", "  ", "\t", " \n ", "   "]
    return "".join(rng.choice(pieces) + rng.choice(sep) for _ in range(n))


def cmd_tokenizer(merges_gz, out, n, seed, golden=None):
    with gzip.open(merges_gz, "rt", encoding="utf-8") as f:
        merges = f.read().split("\n")[1:49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with open(f"{out}/vocab.json", "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(f"{out}/merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    tok = CLIPTokenizer.from_pretrained(out)  # reads vocab.json + merges.txt
    rng = random.Random(seed)
    texts = []
    if golden:
        with open(golden, encoding="utf-8") as f:
            texts = [json.loads(line)["text"] for line in f if line.strip()]
    texts += [random_text(rng) for _ in range(n)]
    with open(f"{out}/texts.jsonl", "w", encoding="utf-8") as f:
        for text in texts:
            ids = tok(text, add_special_tokens=False)["input_ids"]
            # OpenAI's tokenizer (and ftfy) unescape HTML entities first; transformers' does not.
            unescaped = html.unescape(html.unescape(text))
            ids_unescaped = tok(unescaped, add_special_tokens=False)["input_ids"]
            ctx = tok(unescaped, truncation=True, max_length=77)["input_ids"]
            f.write(json.dumps({"text": text, "ids": ids, "ids_unescaped": ids_unescaped,
                                "ctx77": ctx}, ensure_ascii=False) + "\n")


def main():
    cmd = sys.argv[1]
    if cmd == "model":
        cmd_model(sys.argv[2])
    elif cmd == "count-l14":
        cmd_count_l14(sys.argv[2])
    elif cmd == "tokenizer":
        cmd_tokenizer(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
                      sys.argv[6] if len(sys.argv) > 6 else None)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
