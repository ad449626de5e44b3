// Unit tests of worker/models and the SD² losses: tokenizer (golden ids), BPE learning,
// safetensors, CLIP / LoRA / CLAM, HF loading, and the losses against the Python reference.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "worker/comm/mpi_communicator.h"
#include "worker/models/clip.h"
#include "worker/models/safetensors.h"
#include "worker/models/sd2_model.h"
#include "worker/models/tokenizer.h"
#include "worker/train/losses.h"
#include "worker/train/losses_cli.h"

namespace sd2::worker::models {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/sd2_models_test_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const std::string kClipDir = std::string(SD2_SOURCE_DIR) + "/../shared/clip";

TEST(TokenizerTest, MatchesOpenAiGoldenIds) {
  if (!PathExists(kClipDir + "/golden_tokens.jsonl") ||
      !PathExists(kClipDir + "/bpe_simple_vocab_16e6.txt.gz"))
    GTEST_SKIP() << "no " << kClipDir;
  auto tok = Tokenizer::FromOpenAiGz(kClipDir + "/bpe_simple_vocab_16e6.txt.gz");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(tok->vocab_size(), 49408);
  EXPECT_EQ(tok->sot_id(), 49406);
  EXPECT_EQ(tok->eot_id(), 49407);
  std::ifstream in(kClipDir + "/golden_tokens.jsonl");
  std::string line;
  int n = 0, ok = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    std::string text = j["text"];
    auto ids = tok->Encode(text);
    auto want = j["bpe_ids"].get<std::vector<int>>();
    ++n;
    if (ids == want) ++ok;
    EXPECT_EQ(ids, want) << "text: " << text;
    auto ctx = tok->EncodeWithContext(text, 77);
    auto full = j["with_sot_eot"].get<std::vector<int>>();
    if (full.size() <= 77) {
      EXPECT_EQ(ctx, full) << text;
    } else {
      ASSERT_EQ(ctx.size(), 77u);
      EXPECT_EQ(std::vector<int>(ctx.begin(), ctx.end() - 1),
                std::vector<int>(full.begin(), full.begin() + 76));
      EXPECT_EQ(ctx.back(), 49407);
    }
    auto cut = tok->EncodeWithContext(text, 60);
    EXPECT_LE(cut.size(), 60u);
    EXPECT_EQ(cut.back(), 49407);
  }
  EXPECT_EQ(n, 152);
  EXPECT_EQ(ok, n);
}

TEST(TokenizerTest, CleanText) {
  EXPECT_EQ(CleanText("  A  Photo\tOf\n&amp;amp; ÉCOLE  "), "a photo of & école");
  EXPECT_EQ(CleanText("&#65;&#x42;"), "ab");
}

TEST(TokenizerTest, LearnSaveLoadIsDeterministic) {
  std::vector<std::string> texts = {"a photo of a real face.", "a photo of a face swapping.",
                                    "a young woman smiling, brown hair",
                                    "a dim office with a window"};
  for (int i = 0; i < 20; ++i)
    texts.push_back("the person has a neutral expression " + std::to_string(i));
  auto a = LearnBpe(texts, 600);
  auto b = LearnBpe(texts, 600);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->merges(), b->merges());
  EXPECT_LE(a->vocab_size(), 600);
  EXPECT_GT(a->merges().size(), 20u);
  EXPECT_EQ(a->eot_id(), a->vocab_size() - 1);
  TempDir dir;
  ASSERT_TRUE(a->Save(dir.path()).ok());
  auto c = Tokenizer::FromHfDir(dir.path());
  ASSERT_TRUE(c.ok()) << c.status();
  for (const auto& t : texts) EXPECT_EQ(a->Encode(t), c->Encode(t));
  // Learned merges shorten frequent words; unseen text still encodes (byte fallback).
  EXPECT_LT(a->Encode("a photo of a real face.").size(),
            std::string("a photo of a real face.").size());
  EXPECT_EQ(a->Encode("zzqx 😀").size() > 0, true);
  EXPECT_EQ(LearnBpe(texts, 100).status().code(), StatusCode::kInvalidArgument);
}

TEST(TokenizerTest, BadFilesGiveErrors) {
  TempDir dir;
  EXPECT_EQ(Tokenizer::FromHfDir(dir.path() + "/none").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(WriteFileAtomic(dir.path() + "/vocab.json", "{\"a\": \"x\"}").ok());
  ASSERT_TRUE(WriteFileAtomic(dir.path() + "/merges.txt", "#version: 0.2\na b\n").ok());
  auto s = Tokenizer::FromHfDir(dir.path()).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("not an integer"), std::string::npos) << s;
  ASSERT_TRUE(WriteFileAtomic(dir.path() + "/vocab.json", "{\"a\": 0}").ok());
  s = Tokenizer::FromHfDir(dir.path()).status();
  EXPECT_NE(s.message().find("<|startoftext|>"), std::string::npos) << s;
  ASSERT_TRUE(WriteFileAtomic(dir.path() + "/x.gz", "not gzip at all").ok());
  EXPECT_FALSE(Tokenizer::FromOpenAiGz(dir.path() + "/x.gz").ok());
}

TEST(SafetensorsTest, RoundTripAndValidation) {
  SafetensorsFile f;
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<int64_t> b = {7, -8};
  f.Add("a", Dtype::kF32, {2, 3}, a.data());
  f.Add("b", Dtype::kI64, {2}, b.data());
  f.metadata["k"] = "v";
  std::string bytes = SerializeSafetensors(f);
  auto g = ParseSafetensors(bytes, "mem");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->tensors["a"].ToFloat(), a);
  EXPECT_EQ(g->tensors["b"].ToInt64(), b);
  EXPECT_EQ(g->metadata["k"], "v");
  // F16 and BF16 decode.
  SafetensorsFile h;
  uint16_t half[2] = {0x3C00, 0xC000};  // 1, -2
  uint16_t bf[2] = {0x3F80, 0x4040};    // 1, 3
  h.Add("h", Dtype::kF16, {2}, half);
  h.Add("bf", Dtype::kBF16, {2}, bf);
  auto hh = ParseSafetensors(SerializeSafetensors(h), "mem");
  ASSERT_TRUE(hh.ok());
  EXPECT_EQ(hh->tensors["h"].ToFloat(), (std::vector<float>{1, -2}));
  EXPECT_EQ(hh->tensors["bf"].ToFloat(), (std::vector<float>{1, 3}));

  auto expect_error = [](const std::string& data, const std::string& needle) {
    auto r = ParseSafetensors(data, "bad.safetensors");
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status();
  };
  expect_error("abc", "too short");
  std::string huge = bytes;
  huge[0] = '\xff', huge[1] = '\xff';
  expect_error(huge, "exceeds the file");
  auto with_header = [](const std::string& h, size_t data_bytes) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char((h.size() >> (8 * i)) & 0xFF);
    return out + h + std::string(data_bytes, '\0');
  };
  expect_error(with_header("{not json", 0), "not JSON");
  expect_error(with_header(R"({"x":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}})", 1),
               "unsupported dtype");
  expect_error(with_header(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 8),
               "expected 8");
  expect_error(with_header(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4),
               "outside the data");
  expect_error(
      with_header(
          R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
          8),
      "overlap");
  expect_error(with_header(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
               "bad dimension");
  expect_error(with_header(R"({"x":{"dtype":"F32","shape":[2]}})", 8), "needs dtype");
}

ClipConfig Tiny() {
  ClipConfig c = *NamedClipConfig("tiny2");
  c.vocab_size = 600;
  return c;
}

TEST(ClipTest, ShapesPoolingAndCausality) {
  torch::manual_seed(0);
  ClipModel m(Tiny());
  torch::Tensor x = torch::randn({2, 3, 32, 32});
  auto v = m->vision_model->Forward(x);
  EXPECT_EQ(v.pooled.sizes(), (std::vector<int64_t>{2, 64}));
  EXPECT_EQ(v.layer_cls.size(), 1u);
  EXPECT_EQ(m->EncodeImage(x).sizes(), (std::vector<int64_t>{2, 64}));
  // Tokens after the first EOT do not change the text embedding (causal mask + EOT pooling).
  torch::Tensor ids =
      torch::tensor({{598, 5, 6, 599, 0, 0}, {598, 5, 6, 599, 9, 9}}, torch::kInt64);
  torch::Tensor t = m->EncodeText(ids, 599);
  EXPECT_TRUE(torch::allclose(t[0], t[1], 1e-6, 1e-6));
  torch::Tensor ids2 = torch::tensor({{598, 5, 7, 599, 0, 0}}, torch::kInt64);
  EXPECT_FALSE(torch::allclose(t[0], m->EncodeText(ids2, 599)[0]));
  EXPECT_NEAR(m->logit_scale.item<double>(), std::log(1 / 0.07), 1e-4);
  EXPECT_FALSE(NamedClipConfig("vit_h99").ok());
  auto l14 = NamedClipConfig("vit_l14");
  EXPECT_EQ(l14->vision_layers, 24);
  EXPECT_EQ(l14->vision_width, 1024);
  EXPECT_EQ(l14->projection_dim, 768);
}

// The fused kernel (at::scaled_dot_product_attention, causal in the text tower) computes what
// the explicit softmax(QK^T / sqrt(d) + mask) V path computes, forward and backward.
TEST(ClipTest, FusedAttentionMatchesExplicitPath) {
  torch::manual_seed(3);
  ClipConfig c = Tiny();
  ClipModel m(c);
  torch::Tensor x = torch::randn({3, 3, 32, 32});
  torch::Tensor ids = torch::randint(0, 598, {3, 9}, torch::kInt64);
  ids.index_put_({torch::indexing::Slice(), 6}, 599);
  auto run = [&](bool fused) {
    UseFusedAttention(fused);
    m->zero_grad();
    torch::Tensor img = m->EncodeImage(x), txt = m->EncodeText(ids, 599);
    (img.pow(2).sum() + txt.sin().sum()).backward();
    std::vector<torch::Tensor> grads;
    for (auto& p : m->parameters())
      if (p.grad().defined()) grads.push_back(p.grad().clone());
    return std::make_tuple(img.detach(), txt.detach(), grads);
  };
  auto [img_f, txt_f, g_f] = run(true);
  auto [img_e, txt_e, g_e] = run(false);
  UseFusedAttention(true);
  EXPECT_TRUE(FusedAttentionEnabled());
  EXPECT_LE((img_f - img_e).abs().max().item<double>(), 1e-5);
  EXPECT_LE((txt_f - txt_e).abs().max().item<double>(), 1e-5);
  ASSERT_EQ(g_f.size(), g_e.size());
  for (size_t i = 0; i < g_f.size(); ++i)
    EXPECT_LE((g_f[i] - g_e[i]).abs().max().item<double>(), 1e-4) << "gradient " << i;
  // The text tower is causal under both kernels: a later token does not reach an earlier
  // position's output.
  torch::Tensor ids2 = ids.clone();
  ids2.index_put_({torch::indexing::Slice(), 8}, 7);
  EXPECT_TRUE(torch::allclose(m->EncodeText(ids, 599), m->EncodeText(ids2, 599), 1e-6, 1e-6));
}

TEST(LoraTest, InjectionMergeAndTargets) {
  torch::manual_seed(1);
  ClipModel m(Tiny());
  LoraOptions o;
  o.r = 4;
  o.dropout = 0;
  m->EnableLora(o);
  int lora = 0;
  for (auto& p : m->named_parameters())
    if (p.key().find("lora_A") != std::string::npos) {
      ++lora;
      EXPECT_TRUE(p.key().find("self_attn") != std::string::npos) << p.key();
    }
  EXPECT_EQ(lora, 8);  // q, k, v, out in one vision and one text layer
  {
    torch::NoGradGuard g;
    for (auto& p : m->named_parameters())
      if (p.key().find("lora_B") != std::string::npos) p.value().normal_(0, 0.1);
  }
  m->eval();
  torch::Tensor x = torch::randn({2, 3, 32, 32});
  torch::Tensor before = m->EncodeImage(x);
  auto base_q = m->vision_model->encoder->blocks[0]->self_attn->q_proj->weight.clone();
  m->MergeLora();
  torch::Tensor after = m->EncodeImage(x);
  EXPECT_TRUE(torch::allclose(before, after, 1e-5, 1e-5));
  EXPECT_FALSE(
      torch::allclose(base_q, m->vision_model->encoder->blocks[0]->self_attn->q_proj->weight));
}

TEST(Sd2ModelTest, OnlyLoraClamAdapterTauBiasTrain) {
  torch::manual_seed(2);
  Sd2Model m(Tiny(), Sd2ModelOptions(), LoraOptions{});
  m->FreezeBackbone();
  int n = 0;
  for (auto& p : m->named_parameters()) {
    if (!p.value().requires_grad()) continue;
    ++n;
    const std::string& k = p.key();
    EXPECT_TRUE(k.find("lora_") != std::string::npos || k.rfind("clam.", 0) == 0 ||
                k.rfind("adapter.", 0) == 0 || k == "bias" || k == "clip.logit_scale")
        << k;
  }
  EXPECT_GT(n, 10);
  EXPECT_NEAR(m->bias.item<double>(), -1 / 0.07, 1e-3);
  EXPECT_EQ(m->EncodeImage(torch::randn({3, 3, 32, 32})).sizes(), (std::vector<int64_t>{3, 64}));
  Sd2ModelOptions nc;
  nc.clam = false;
  Sd2Model no_clam(Tiny(), nc, LoraOptions{});
  EXPECT_FALSE(no_clam->clam);
  EXPECT_EQ(no_clam->adapter->fc1->weight.size(1), 64);
}

TEST(HfLoadTest, LoadsFolderAndListsMismatches) {
  TempDir dir;
  torch::manual_seed(3);
  ClipModel src(Tiny());
  std::map<std::string, torch::Tensor> t;
  for (auto& p : src->named_parameters()) t[p.key()] = p.value();
  t["text_model.embeddings.position_ids"] = torch::arange(77, torch::kInt64).view({1, 77});
  nlohmann::json cfg = {{"projection_dim", 64},
                        {"text_config",
                         {{"hidden_size", 64},
                          {"intermediate_size", 128},
                          {"num_attention_heads", 4},
                          {"num_hidden_layers", 1},
                          {"vocab_size", 600}}},
                        {"vision_config",
                         {{"hidden_size", 64},
                          {"intermediate_size", 128},
                          {"num_attention_heads", 4},
                          {"num_hidden_layers", 1},
                          {"image_size", 32},
                          {"patch_size", 8}}}};
  ASSERT_TRUE(WriteFileAtomic(dir.path() + "/config.json", cfg.dump()).ok());
  ASSERT_TRUE(WriteTensors(dir.path() + "/model.safetensors", t).ok());
  auto loaded = LoadHfClip(dir.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  torch::Tensor x = torch::randn({2, 3, 32, 32});
  EXPECT_TRUE(torch::allclose(src->EncodeImage(x), (*loaded)->EncodeImage(x)));
  t.erase("text_projection.weight");
  t["vision_model.extra.weight"] = torch::zeros({1});
  t["visual_projection.weight"] = torch::zeros({3, 3});
  ASSERT_TRUE(WriteTensors(dir.path() + "/model.safetensors", t).ok());
  auto bad = LoadHfClip(dir.path());
  ASSERT_FALSE(bad.ok());
  const std::string msg = bad.status().message();
  EXPECT_NE(msg.find("Missing: text_projection.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Unexpected: vision_model.extra.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Mis-shaped: visual_projection.weight"), std::string::npos) << msg;
}

// Runs worker/models/testdata/hf_clip_reference.py (transformers, pinned in
// scripts/requirements.txt) with `args`; its stdout.
std::string RunHfReference(const std::string& args) {
  const std::string cmd = std::string(SD2_PYTHON) + " " + SD2_SOURCE_DIR +
                          "/worker/models/testdata/hf_clip_reference.py " + args;
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << cmd << "\n" << out;
  return out;
}

// An independent reference: transformers' CLIPModel from a small random CLIPConfig, saved with
// save_pretrained, loads through LoadHfClip and gives the same image and text embeddings and
// logits.
TEST(HfReferenceTest, TransformersClipModelLoadsAndAgrees) {
  TempDir dir;
  RunHfReference("model " + dir.path());
  auto model = LoadHfClip(dir.path());
  ASSERT_TRUE(model.ok()) << model.status();
  auto ref = ReadTensors(dir.path() + "/reference.safetensors");
  ASSERT_TRUE(ref.ok()) << ref.status();
  auto& r = *ref;
  torch::NoGradGuard g;
  (*model)->eval();
  const int64_t eot = 98;
  for (bool fused : {true, false}) {
    UseFusedAttention(fused);
    torch::Tensor img = (*model)->EncodeImage(r["pixel_values"]);
    torch::Tensor txt = (*model)->EncodeText(r["input_ids"].to(torch::kInt64), eot);
    torch::Tensor img_n = img / img.norm(2, -1, true), txt_n = txt / txt.norm(2, -1, true);
    torch::Tensor logits = (*model)->logit_scale.exp() * torch::matmul(img_n, txt_n.t());
    EXPECT_LE((img_n - r["image_embeds"]).abs().max().item<double>(), 1e-5) << fused;
    EXPECT_LE((txt_n - r["text_embeds"]).abs().max().item<double>(), 1e-5) << fused;
    EXPECT_LE((logits - r["logits_per_image"]).abs().max().item<double>(), 1e-4) << fused;
  }
  UseFusedAttention(true);
}

// Our parameter count for openai/clip-vit-large-patch14's configuration (config.json written by
// transformers, no weights) equals transformers' count.
TEST(HfReferenceTest, ParameterCountOfVitL14EqualsTransformers) {
  TempDir dir;
  std::string out = RunHfReference("count-l14 " + dir.path());
  ASSERT_FALSE(out.empty());
  const int64_t want = std::stoll(out);
  auto text = ReadFile(dir.path() + "/config.json");
  ASSERT_TRUE(text.ok()) << text.status();
  auto cfg = ClipConfigFromHfJson(*text);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  ClipModel m(*cfg);
  int64_t ours = 0;
  for (const auto& p : m->parameters()) ours += p.numel();
  EXPECT_EQ(ours, want);
  EXPECT_EQ(want, 427616513);  // the published size of CLIP ViT-L/14
}

// Our tokenizer equals transformers' CLIPTokenizer (built from Hugging Face's vocab.json and
// merges.txt for the same merges) on the 152 golden texts and on 2,000 generated strings:
// unicode (NFD accents, ligatures, CJK, emoji, "İ"), whitespace runs, punctuation, special-token
// strings glued to punctuation, over-long inputs. One difference is by design: OpenAI's
// reference tokenizer, which CLIP was trained with (and the golden ids), unescapes HTML entities
// ("&amp;" -> "&") and transformers' does not, so texts are compared after unescaping.
TEST(HfReferenceTest, TokenizerEqualsTransformersClipTokenizer) {
  if (!PathExists(kClipDir + "/bpe_simple_vocab_16e6.txt.gz")) GTEST_SKIP() << "no " << kClipDir;
  TempDir dir;
  RunHfReference("tokenizer " + kClipDir + "/bpe_simple_vocab_16e6.txt.gz " + dir.path() +
                 " 2000 7 " + kClipDir + "/golden_tokens.jsonl");
  auto ours = Tokenizer::FromOpenAiGz(kClipDir + "/bpe_simple_vocab_16e6.txt.gz");
  ASSERT_TRUE(ours.ok()) << ours.status();
  auto hf_files = Tokenizer::FromHfFiles(dir.path() + "/vocab.json", dir.path() + "/merges.txt");
  ASSERT_TRUE(hf_files.ok()) << hf_files.status();
  std::ifstream in(dir.path() + "/texts.jsonl");
  std::string line;
  int n = 0, same = 0, escaped = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    const std::string text = j["text"];
    const auto hf = j["ids"].get<std::vector<int>>();
    const auto hf_unescaped = j["ids_unescaped"].get<std::vector<int>>();
    auto ids = ours->Encode(text);
    ++n;
    if (hf != hf_unescaped) {  // only texts with HTML entities may differ
      ++escaped;
      EXPECT_NE(text.find('&'), std::string::npos) << text;
    }
    if (ids == hf_unescaped) ++same;
    EXPECT_EQ(ids, hf_unescaped) << "text: " << text;
    EXPECT_EQ(hf_files->Encode(text), ids) << "text: " << text;
    EXPECT_EQ(ours->EncodeWithContext(text, 77), j["ctx77"].get<std::vector<int>>())
        << "text: " << text;
  }
  EXPECT_EQ(n, 2152);
  EXPECT_EQ(same, n);
  EXPECT_GE(escaped, 1);  // the golden set's HTML text, and generated "&amp;" / "&lt;b&gt;"
}

// SaveHfClip writes what LoadHfClip reads back (LoRA merged); ExportClipFromCheckpoint takes a
// trainer checkpoint's towers and rejects what it cannot use.
TEST(HfSaveTest, SaveLoadRoundTripAndCheckpointExport) {
  TempDir dir;
  torch::manual_seed(7);
  ClipConfig c = Tiny();
  ClipModel src(c);
  LoraOptions lo;
  lo.dropout = 0;
  src->EnableLora(lo);
  {
    torch::NoGradGuard g;
    for (auto& p : src->named_parameters())
      if (p.key().find("lora_B") != std::string::npos) p.value().normal_(0, 0.3);
  }
  src->eval();
  torch::Tensor x = torch::randn({2, 3, c.image_size, c.image_size});
  torch::Tensor ids = torch::randint(1, 100, {2, 9}, torch::kInt64);
  ids.index_put_({torch::indexing::Slice(), 8}, 99);
  torch::Tensor img0 = src->EncodeImage(x).detach(), txt0 = src->EncodeText(ids, 99).detach();
  ASSERT_TRUE(SaveHfClip(src, dir.path() + "/hf").ok());
  auto cfg_text = ReadFile(dir.path() + "/hf/config.json");
  ASSERT_TRUE(cfg_text.ok());
  auto c2 = ClipConfigFromHfJson(*cfg_text);
  ASSERT_TRUE(c2.ok()) << c2.status();
  EXPECT_EQ(c2->vision_layers, c.vision_layers);
  EXPECT_EQ(c2->patch_size, c.patch_size);
  EXPECT_EQ(c2->vocab_size, c.vocab_size);
  auto tensors = ReadTensors(dir.path() + "/hf/model.safetensors");
  ASSERT_TRUE(tensors.ok());
  for (const auto& [name, t] : *tensors) EXPECT_EQ(name.find("lora_"), std::string::npos) << name;
  auto loaded = LoadHfClip(dir.path() + "/hf");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  (*loaded)->eval();
  EXPECT_LE(((*loaded)->EncodeImage(x) - img0).abs().max().item<double>(), 1e-5);
  EXPECT_LE(((*loaded)->EncodeText(ids, 99) - txt0).abs().max().item<double>(), 1e-5);

  // A trainer checkpoint of an image-tower method: param/vision_model.* + a head + optimizer.
  ClipModel trained(c);
  std::map<std::string, torch::Tensor> ckpt;
  for (const auto& p : trained->vision_model->named_parameters())
    ckpt["param/vision_model." + p.key()] = p.value().detach() + 0.5;
  ckpt["param/head.weight"] = torch::zeros({2, c.vision_width});
  ckpt["adam_m/vision_model.post_layernorm.weight"] = torch::zeros({c.vision_width});
  ASSERT_TRUE(WriteTensors(dir.path() + "/ckpt.safetensors", ckpt).ok());
  int imported = 0;
  ASSERT_TRUE(
      ExportClipFromCheckpoint(dir.path() + "/ckpt.safetensors", c, dir.path() + "/ex", &imported)
          .ok());
  EXPECT_EQ(imported, static_cast<int>(trained->vision_model->named_parameters().size()));
  auto ex = LoadHfClip(dir.path() + "/ex");
  ASSERT_TRUE(ex.ok()) << ex.status();
  for (const auto& p : (*ex)->vision_model->named_parameters()) {
    torch::Tensor want = ckpt["param/vision_model." + p.key()];
    EXPECT_TRUE(torch::equal(p.value(), want)) << p.key();
  }
  // Mis-shaped, LoRA-only and unrelated checkpoints are refused.
  ckpt["param/vision_model.post_layernorm.weight"] = torch::zeros({3});
  ASSERT_TRUE(WriteTensors(dir.path() + "/bad.safetensors", ckpt).ok());
  Status s = ExportClipFromCheckpoint(dir.path() + "/bad.safetensors", c, dir.path() + "/x");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("post_layernorm.weight"), std::string::npos) << s;
  ASSERT_TRUE(WriteTensors(dir.path() + "/lora.safetensors",
                           {{"param/vision_model.encoder.layers.0.self_attn.q_proj.lora_A",
                             torch::zeros({8, c.vision_width})}})
                  .ok());
  s = ExportClipFromCheckpoint(dir.path() + "/lora.safetensors", c, dir.path() + "/x");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("LoRA"), std::string::npos) << s;
  ASSERT_TRUE(
      WriteTensors(dir.path() + "/other.safetensors", {{"param/fc.weight", torch::zeros({2})}})
          .ok());
  s = ExportClipFromCheckpoint(dir.path() + "/other.safetensors", c, dir.path() + "/x");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_FALSE(PathExists(dir.path() + "/x/model.safetensors"));
}

// ------------------------------------------------------------------------------------------
struct LossFixture {
  Sd2Model model{nullptr};
  torch::Tensor x, label_ids, face_ids, env_ids, y;
  int64_t eot = 599;
  LossFixture(bool clam) {
    torch::manual_seed(4);
    LoraOptions lo;
    lo.r = 4;
    lo.dropout = 0;
    Sd2ModelOptions mo;
    mo.clam = clam;
    model = Sd2Model(Tiny(), mo, lo);
    model->FreezeBackbone();
    torch::NoGradGuard g;
    for (auto& p : model->named_parameters())
      if (p.key().find("lora_B") != std::string::npos) p.value().normal_(0, 0.2);
    model->clip->logit_scale.fill_(1.5);  // tau ~ 4.5: gradients of every term stay visible
    model->bias.fill_(-2.0);
    const int64_t b = 4;
    x = torch::randn({b, 3, 32, 32});
    auto ids = [&](int64_t n, int64_t t) {
      torch::Tensor r = torch::randint(1, 500, {n, t}, torch::kInt64);
      r.select(1, 0).fill_(598);
      for (int64_t i = 0; i < n; ++i) r[i][2 + (i % (t - 3))] = eot;
      return r;
    };
    label_ids = ids(5, 9);
    face_ids = ids(b, 7);
    env_ids = ids(b, 8);
    y = torch::tensor({0, 1, 3, 4}, torch::kInt64);
  }
  train::Sd2Losses Compute(const train::LossOptions& o) {
    torch::Tensor f = model->EncodeImage(x);
    torch::Tensor u = model->EncodeText(label_ids, eot);
    torch::Tensor vf = model->EncodeText(face_ids, eot), ve = model->EncodeText(env_ids, eot);
    return train::ComputeSd2Losses(f, u, vf, ve, y, model->clip->logit_scale,
                                   model->clip->logit_scale, model->bias, 0, o);
  }
};

bool HavePythonTorch() {
  return std::system(
             (std::string(SD2_PYTHON) + " -c 'import torch, numpy' >/dev/null 2>&1").c_str()) == 0;
}

TEST(LossTest, MatchesIndependentPythonReference) {
  ASSERT_TRUE(HavePythonTorch()) << "the reference needs torch in SD2_PYTHON (" SD2_PYTHON
                                    "): run scripts/setup.sh";
  for (bool clam : {true, false}) {
    LossFixture fx(clam);
    train::LossOptions o;
    train::Sd2Losses l = fx.Compute(o);
    l.total.backward();
    TempDir dir;
    std::map<std::string, torch::Tensor> t;
    for (auto& p : fx.model->named_parameters()) t[p.key()] = p.value();
    t["x"] = fx.x, t["label_ids"] = fx.label_ids, t["face_ids"] = fx.face_ids,
    t["env_ids"] = fx.env_ids, t["y"] = fx.y;
    std::map<std::string, std::string> meta = {
        {"vision_heads", "4"}, {"text_heads", "4"},
        {"eot_id", "599"},     {"lora_scaling", std::to_string(32.0 / 4)},
        {"alpha", "2"},        {"clam", clam ? "1" : "0"}};
    ASSERT_TRUE(WriteTensors(dir.path() + "/in.safetensors", t, meta).ok());
    std::string cmd = std::string(SD2_PYTHON) + " " + std::string(SD2_SOURCE_DIR) +
                      "/bench/reference/sd2_reference.py " + dir.path() + "/in.safetensors " +
                      dir.path() + "/out.safetensors";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    auto ref = ReadTensors(dir.path() + "/out.safetensors");
    ASSERT_TRUE(ref.ok()) << ref.status();
    auto& r = *ref;
    torch::NoGradGuard g;
    EXPECT_TRUE(torch::allclose(fx.model->EncodeImage(fx.x), r["f"], 1e-5, 1e-5));
    EXPECT_TRUE(torch::allclose(fx.model->EncodeText(fx.face_ids, 599), r["vf"], 1e-5, 1e-5));
    EXPECT_NEAR(l.l_c.item<double>(), r["L_C"].item<double>(), 1e-5);
    EXPECT_NEAR(l.l_s.item<double>(), r["L_S"].item<double>(), 1e-5);
    EXPECT_NEAR(l.l_d.item<double>(), r["L_D"].item<double>(),
                1e-5 * std::max(1.0, std::abs(l.l_d.item<double>())));
    EXPECT_NEAR(l.total.item<double>(), r["total"].item<double>(),
                1e-5 * std::max(1.0, std::abs(l.total.item<double>())));
    int compared = 0;
    for (auto& p : fx.model->named_parameters()) {
      if (!p.value().requires_grad()) continue;
      auto it = r.find("grad/" + p.key());
      ASSERT_NE(it, r.end()) << p.key();
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      double diff = (p.value().grad() - it->second).abs().max().item<double>();
      EXPECT_LT(diff, 1e-4) << p.key();
      ++compared;
    }
    EXPECT_GT(compared, 10);
  }
}

TEST(LossTest, VariantsAndAblations) {
  LossFixture fx(true);
  torch::NoGradGuard g;
  train::LossOptions o;
  auto base = fx.Compute(o);
  o.lc_reduction = "sum";
  o.ls_reduction = "mean";
  auto v = fx.Compute(o);
  EXPECT_NEAR(v.l_c.item<double>(), 4 * base.l_c.item<double>(), 1e-4);
  EXPECT_NEAR(v.l_s.item<double>(), base.l_s.item<double>() / 25, 1e-5);
  train::LossOptions face_only;
  face_only.ld_env = false;
  train::LossOptions env_only;
  env_only.ld_face = false;
  double sum = fx.Compute(face_only).l_d.item<double>() + fx.Compute(env_only).l_d.item<double>();
  EXPECT_NEAR(sum, base.l_d.item<double>(), 1e-4);
  train::LossOptions none;
  none.ld_face = none.ld_env = false;
  auto n = fx.Compute(none);
  EXPECT_EQ(n.l_d.item<double>(), 0.0);
  EXPECT_NEAR(n.total.item<double>(), 2 * base.l_c.item<double>() + base.l_s.item<double>(), 1e-4);
  train::LossOptions bad;
  bad.lc_reduction = "max";
  EXPECT_EQ(train::ValidateLossOptions(bad).code(), StatusCode::kInvalidArgument);
}

TEST(LossTest, LossesFileMatchesTrainingCode) {
  TempDir dir;
  torch::manual_seed(5);
  std::map<std::string, torch::Tensor> t = {{"f", torch::randn({3, 8})},
                                            {"u", torch::randn({5, 8})},
                                            {"vf", torch::randn({3, 8})},
                                            {"ve", torch::randn({3, 8})},
                                            {"y", torch::tensor({0, 2, 4}, torch::kInt64)},
                                            {"logit_scale", torch::full({}, 2.0)},
                                            {"bias", torch::full({1}, -3.0)},
                                            {"alpha", torch::full({}, 1.5)}};
  ASSERT_TRUE(WriteTensors(dir.path() + "/l.safetensors", t).ok());
  auto js = train::LossesJsonFromFile(dir.path() + "/l.safetensors");
  ASSERT_TRUE(js.ok()) << js.status();
  auto j = nlohmann::json::parse(*js);
  train::LossOptions o;
  o.alpha = 1.5;
  auto l = train::ComputeSd2Losses(t["f"], t["u"], t["vf"], t["ve"], t["y"], t["logit_scale"],
                                   t["logit_scale"], t["bias"].reshape({}), 0, o);
  EXPECT_NEAR(j["L_C"].get<double>(), l.l_c.item<double>(), 1e-9);
  EXPECT_NEAR(j["L_S"].get<double>(), l.l_s.item<double>(), 1e-9);
  EXPECT_NEAR(j["L_D"].get<double>(), l.l_d.item<double>(), 1e-9);
  EXPECT_NEAR(j["total"].get<double>(), l.total.item<double>(), 1e-6);
  // Hand check of L_S: identical rows give cos = 1 everywhere -> 20 off-diagonal ones.
  auto same =
      train::ComputeSd2Losses(t["f"], torch::ones({5, 8}), t["vf"], t["ve"], t["y"],
                              t["logit_scale"], t["logit_scale"], t["bias"].reshape({}), 0, o);
  EXPECT_NEAR(same.l_s.item<double>(), 20.0, 1e-5);
  t["y"] = torch::tensor({0, 2, 7}, torch::kInt64);
  ASSERT_TRUE(WriteTensors(dir.path() + "/bad.safetensors", t).ok());
  auto bad = train::LossesJsonFromFile(dir.path() + "/bad.safetensors");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  t.erase("u");
  ASSERT_TRUE(WriteTensors(dir.path() + "/bad.safetensors", t).ok());
  bad = train::LossesJsonFromFile(dir.path() + "/bad.safetensors");
  EXPECT_NE(bad.status().message().find("'u' is missing"), std::string::npos) << bad.status();
}

}  // namespace
}  // namespace sd2::worker::models
