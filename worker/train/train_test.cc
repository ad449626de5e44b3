// Training tests: resume is bit-identical, a tiny SD² learns a synthetic set (AUC >= 0.9), and
// (under mpirun -np 2, label mpi) two ranks with half batches equal one rank with the whole one.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>

#include "common/file_util.h"
#include "worker/comm/mpi_communicator.h"
#ifdef SD2_HAVE_WORKER_DATA
#include "worker/data/synth.h"
#endif
#include "worker/train/sd2_method.h"
#include "worker/train/trainer.h"

namespace sd2::worker::train {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/sd2_train_test_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const char* kFaces[] = {"a young woman with long brown hair smiling",
                        "an old man with a grey beard",
                        "a middle-aged person with glasses and a neutral expression",
                        "a child with short black hair laughing"};
const char* kEnvs[] = {"a bright office with white walls", "a dark street at night",
                       "an outdoor park with green trees", "a studio with soft lighting"};

// Deterministic synthetic faces: noise plus a type-specific artifact (fakes only).
void MakeSample(uint64_t id, int image_size, float* pixels, int* type) {
  std::mt19937_64 rng(id * 7919 + 13);
  std::normal_distribution<float> noise(0, 0.5f);
  *type = int(id % 5);
  const int hw = image_size * image_size;
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < hw; ++i) pixels[c * hw + i] = noise(rng);
  if (*type == 0) return;
  const int q = image_size / 4;
  const int y0 = (*type - 1) / 2 * 2 * q, x0 = (*type - 1) % 2 * 2 * q;
  for (int c = 0; c < 3; ++c)
    for (int y = y0; y < y0 + q; ++y)
      for (int x = x0; x < x0 + q; ++x)
        pixels[c * hw + y * image_size + x] += ((x + y) % 2 ? 1.5f : -1.5f);
}

// A Loader over `n` synthetic samples with ids [first, first + n): shuffled per epoch in train
// mode, sharded by rank, resumable at (start_epoch, start_batch).
class SyntheticLoader : public data::Loader {
 public:
  SyntheticLoader(uint64_t first, int64_t n, const data::LoaderOptions& o) : o_(o), first_(first) {
    per_rank_ = n / o.world;
    bpe_ = o.train ? per_rank_ / o.batch_size : (per_rank_ + o.batch_size - 1) / o.batch_size;
    epoch_ = o.train ? o.start_epoch : 0;
    index_ = o.train ? o.start_batch : 0;
  }
  StatusOr<bool> Next(data::Batch* b) override {
    if (index_ >= bpe_) ++epoch_, index_ = 0;
    if (epoch_ >= (o_.train ? o_.epochs : 1)) return false;
    std::vector<uint64_t> order(size_t(per_rank_ * o_.world));
    for (size_t i = 0; i < order.size(); ++i) order[i] = first_ + i;
    if (o_.train)
      std::shuffle(order.begin(), order.end(), std::mt19937_64(o_.seed * 31 + uint64_t(epoch_)));
    const int64_t start = index_ * o_.batch_size;
    const int64_t size = std::min<int64_t>(o_.batch_size, per_rank_ - start);
    const int s = o_.image_size;
    *b = data::Batch();
    b->size = size, b->height = b->width = s;
    b->pixels.resize(size_t(size * 3 * s * s));
    for (int64_t i = 0; i < size; ++i) {
      uint64_t id = order[size_t(o_.rank * per_rank_ + start + i)];
      int type;
      MakeSample(id, s, b->pixels.data() + i * 3 * s * s, &type);
      b->type_index.push_back(type);
      b->label.push_back(type != 0);
      b->sample_id.push_back("s" + std::to_string(id));
      b->video_id.push_back("v" + std::to_string(id));
      b->type.push_back(data::kTypeNames[type]);
      b->face.push_back(kFaces[id % 4]);
      b->env.push_back(kEnvs[(id / 4) % 4]);
      b->dataset.push_back("synthetic");
    }
    b->epoch = epoch_, b->index = index_++;
    return true;
  }
  int64_t batches_per_epoch() const override { return bpe_; }
  int64_t num_samples() const override { return o_.train ? bpe_ * o_.batch_size : per_rank_; }
  int64_t skipped() const override { return 0; }

 private:
  data::LoaderOptions o_;
  uint64_t first_;
  int64_t per_rank_ = 0, bpe_ = 0, epoch_ = 0, index_ = 0;
};

models::Tokenizer TestTokenizer() {
  std::vector<std::string> texts;
  auto labels = *PaperTypeLabels();
  for (const auto& l : labels) texts.insert(texts.end(), l.begin(), l.end());
  for (const char* f : kFaces) texts.push_back(f);
  for (const char* e : kEnvs) texts.push_back(e);
  return *models::LearnBpe(texts, 800);
}

std::unique_ptr<Sd2Trainable> MakeSd2(const std::string& config, const models::Tokenizer& tok,
                                      double dropout, Communicator* comm, uint64_t seed = 0,
                                      size_t labels_per_type = 1000) {
  models::ClipConfig cfg = *models::NamedClipConfig(config);
  cfg.vocab_size = tok.vocab_size();
  models::LoraOptions lora;
  lora.dropout = dropout;
  torch::manual_seed(seed);
  models::Sd2Model model(cfg, models::Sd2ModelOptions(), lora);
  model->FreezeBackbone();
  TypeLabels labels = *PaperTypeLabels();
  for (auto& l : labels) l.resize(std::min(l.size(), labels_per_type));
  return std::make_unique<Sd2Trainable>(model, tok, labels, LossOptions{}, comm, seed);
}

double Auc(const std::vector<ScoreRow>& rows) {
  std::vector<std::pair<double, int>> v;
  for (const auto& r : rows) v.push_back({r.score, r.label});
  std::sort(v.begin(), v.end());
  double rank_sum = 0;
  int64_t pos = 0, neg = 0;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j < v.size() && v[j].first == v[i].first) ++j;
    double avg_rank = (double(i) + double(j - 1)) / 2 + 1;
    for (size_t k = i; k < j; ++k)
      if (v[k].second)
        rank_sum += avg_rank, ++pos;
      else
        ++neg;
    i = j;
  }
  return (rank_sum - double(pos) * double(pos + 1) / 2) / (double(pos) * double(neg));
}

TEST(AucTest, SimpleSortAuc) {
  std::vector<ScoreRow> rows(4);
  rows[0].score = 0.1, rows[0].label = 0;
  rows[1].score = 0.4, rows[1].label = 1;
  rows[2].score = 0.35, rows[2].label = 0;
  rows[3].score = 0.8, rows[3].label = 1;
  EXPECT_DOUBLE_EQ(Auc(rows), 1.0);
  rows[2].score = 0.5;
  EXPECT_DOUBLE_EQ(Auc(rows), 0.75);
}

TEST(TrainerTest, ResumedRunIsBitIdenticalToUninterrupted) {
  torch::set_num_threads(1);
  auto tok = TestTokenizer();
  auto comm = MakeLocalCommunicator();
  TrainerOptions o;
  o.lr = 1e-3, o.total_steps = 6, o.checkpoint_every = 2, o.seed = 3, o.schedule = "cosine",
  o.warmup = 2;
  o.accumulation = 2;
  data::LoaderOptions lo;
  lo.batch_size = 4, lo.image_size = 32, lo.epochs = 100, lo.seed = 3;
  auto factory = [&](int64_t e, int64_t b) -> StatusOr<std::unique_ptr<data::Loader>> {
    data::LoaderOptions x = lo;
    x.start_epoch = e, x.start_batch = b;
    return std::unique_ptr<data::Loader>(new SyntheticLoader(0, 20, x));
  };
  auto final_params = [](Sd2Trainable& m) {
    std::map<std::string, torch::Tensor> out;
    for (auto& [k, v] : m.TrainableParameters()) out[k] = v.detach().clone();
    return out;
  };
  TempDir a, b;
  TrialContext ctx;
  ctx.comm = comm.get();
  auto ma = MakeSd2("tiny2", tok, 0.1, comm.get());
  o.work_dir = a.path();
  Trainer ta(o, ma.get(), &ctx);
  ASSERT_TRUE(ta.Train(factory).ok());
  EXPECT_EQ(ta.step(), 6);
  auto want = final_params(*ma);

  // Interrupted after 3 steps (preempted), then resumed by a fresh process-like setup.
  TrialContext c1;
  c1.comm = comm.get();
  int calls = 0;
  c1.preempted = [&] { return ++calls > 3; };
  std::vector<int64_t> ckpts;
  c1.report_checkpoint = [&](int64_t step, const std::string&) { ckpts.push_back(step); };
  o.work_dir = b.path();
  auto mb = MakeSd2("tiny2", tok, 0.1, comm.get());
  Trainer tb(o, mb.get(), &c1);
  Status s = tb.Train(factory);
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s;
  EXPECT_EQ(ckpts, (std::vector<int64_t>{2, 3}));
  auto mc = MakeSd2("tiny2", tok, 0.1, comm.get());
  {
    torch::NoGradGuard g;  // trainable weights must come from the checkpoint, not the init
    for (auto& [k, v] : mc->TrainableParameters()) v.add_(1.0);
  }
  TrialContext c2;
  c2.comm = comm.get();
  Trainer tc(o, mc.get(), &c2);
  ASSERT_TRUE(tc.Train(factory).ok());
  EXPECT_EQ(tc.step(), 6);
  auto got = final_params(*mc);
  ASSERT_EQ(got.size(), want.size());
  for (auto& [k, v] : want) EXPECT_TRUE(torch::equal(v, got[k])) << k;
}

// One optimizer step of a tiny2 SD² on 8 synthetic samples with checkpoints in `work_dir`;
// returns the trainer's step and newest checkpoint after Train().
struct OneStep {
  Status status;
  int64_t step = 0;
  std::string checkpoint;
};
OneStep TrainOneStep(const std::string& work_dir) {
  auto tok = TestTokenizer();
  auto comm = MakeLocalCommunicator();
  TrainerOptions o;
  o.lr = 1e-3, o.total_steps = 1, o.work_dir = work_dir;
  data::LoaderOptions lo;
  lo.batch_size = 4, lo.image_size = 32, lo.epochs = 10;
  TrialContext ctx;
  ctx.comm = comm.get();
  auto m = MakeSd2("tiny2", tok, 0, comm.get());
  Trainer t(o, m.get(), &ctx);
  OneStep r;
  r.status = t.Train([&](int64_t e, int64_t b) -> StatusOr<std::unique_ptr<data::Loader>> {
    data::LoaderOptions x = lo;
    x.start_epoch = e, x.start_batch = b;
    return std::unique_ptr<data::Loader>(new SyntheticLoader(0, 8, x));
  });
  r.step = t.step();
  r.checkpoint = t.NewestCheckpoint();
  return r;
}

TEST(TrainerTest, CorruptNewestCheckpointFallsBack) {
  TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.path() + "/checkpoint-0000000009.safetensors", "garbage").ok());
  OneStep r = TrainOneStep(dir.path());
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.step, 1);
  TrainerOptions bad;
  bad.schedule = "step";
  EXPECT_EQ(ValidateTrainerOptions(bad).code(), StatusCode::kInvalidArgument);
}

// The trainer makes its work dir (sd2 trials run without one made beforehand).
TEST(TrainerTest, CheckpointsIntoAWorkDirNotMadeYet) {
  TempDir dir;
  OneStep r = TrainOneStep(dir.path() + "/not/made/yet");
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.checkpoint, dir.path() + "/not/made/yet/checkpoint-0000000001.safetensors");
}

TEST(TrainerTest, TinySd2ReachesHighAucOnSyntheticSet) {
  torch::set_num_threads(1);  // OpenMP's spinning pool loses 10x when ctest -j2 shares the cores
  auto tok = TestTokenizer();
  auto comm = MakeLocalCommunicator();
  TrainerOptions o;
  o.lr = 5e-3, o.epochs = 1000, o.total_steps = 60, o.seed = 1, o.weight_decay = 0;
  data::LoaderOptions lo;
  lo.batch_size = 16, lo.image_size = 32, lo.epochs = 1000, lo.seed = 1;
  TrialContext ctx;
  ctx.comm = comm.get();
  std::vector<ScoreRow> rows;
  ctx.report_scores = [&](const std::string& set, const std::vector<ScoreRow>& r) {
    EXPECT_EQ(set, "held-out");
    rows.insert(rows.end(), r.begin(), r.end());
  };
  double last_loss = 0;
  ctx.report_metric = [&](int64_t, const std::string& name, double v) {
    if (name == "train/loss") last_loss = v;
  };
  // The simple label of each type only: a randomly initialised text tower cannot learn to
  // cluster the paper's 134 labels in a minute (pretrained CLIP starts with them close).
  auto m = MakeSd2("tiny", tok, 0.1, comm.get(), /*seed=*/0, /*labels_per_type=*/1);
  Trainer t(o, m.get(), &ctx);
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(t.Train([&](int64_t e, int64_t b) -> StatusOr<std::unique_ptr<data::Loader>> {
                 data::LoaderOptions x = lo;
                 x.start_epoch = e, x.start_batch = b;
                 return std::unique_ptr<data::Loader>(new SyntheticLoader(0, 400, x));
               }).ok());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  data::LoaderOptions eo = lo;
  eo.train = false;
  SyntheticLoader eval(100000, 200, eo);
  ASSERT_TRUE(t.Evaluate("held-out", &eval).ok());
  ASSERT_EQ(rows.size(), 200u);
  double auc = Auc(rows);
  std::printf("tiny SD2: %lld steps in %.1f s, last loss %.3f, held-out AUC %.4f\n",
              static_cast<long long>(t.step()), secs, last_loss, auc);
  EXPECT_GE(auc, 0.9);
}

#ifdef SD2_HAVE_WORKER_DATA
// The demo's path: a synthetic MMI-DD through the real loader, the `sd2` method with the
// demo's settings (tiny model, lr 1e-3, batch 32, 32 px, one thread, a learned vocabulary) and
// the eval sets of sweeps/paper/table2_3_intra_cross_3m.toml.
TEST(Sd2MethodTest, LearnsSyntheticMmiDdThroughTheLoader) {
  TempDir dir;
  data::SynthOptions so;
  so.out_dir = dir.path() + "/data";
  so.images = 2400;
  so.image_size = 48;
  so.seed = 1;
  so.threads = 1;
  auto synth = data::Synthesize(so);
  ASSERT_TRUE(synth.ok()) << synth.status();

  auto eval_set = [](const std::string& name, const std::string& dataset,
                     const std::string& subset) {
    nlohmann::json e = {{"name", name}, {"split", "test"}, {"datasets", {dataset}}};
    e["subsets"] = subset.empty() ? nlohmann::json::array() : nlohmann::json::array({subset});
    return e;
  };
  nlohmann::json evals = nlohmann::json::array();
  for (const char* s : {"FF", "CDF", "FS", "FR", "EFS", "FE"})
    evals.push_back(eval_set(std::string("DF40-") + s, "DF40", s));
  const std::vector<std::string> in_domain_sets = {"DFF",        "DFFD",       "DFDCP",     "KoDF",
                                                   "FF++ (c40)", "TIMIT (HQ)", "TIMIT (LQ)"};
  for (const auto& d : in_domain_sets) evals.push_back(eval_set(d, d, ""));
  for (const char* d : {"UADFV", "WildDeepFake", "DFDC"}) evals.push_back(eval_set(d, d, ""));
  for (const char* s : {"FS", "FR", "EFS", "FE"})
    evals.push_back(eval_set(std::string("DF40-Test-") + s, "DF40-Test", s));
  nlohmann::json cfg = {
      {"method", "sd2"},
      {"model", "tiny"},
      {"scale", 1200},  // the demo's 3M at --quick: above the set's training rows (clamped)
      {"seed", 0},
      {"ablation", {{"clam", true}, {"ld_face", true}, {"ld_env", true}}},
      {"hparams",
       {{"steps", 30},
        {"batch_size", 32},
        {"image_size", 32},
        {"lr", 1e-3},
        {"threads", 1},
        {"checkpoint_every", 20}}},
      {"data",
       {{"manifest", so.out_dir + "/manifest.jsonl"},
        {"root", so.out_dir},
        {"train",
         {{"split", "train"},
          {"datasets",
           {"DF40", "DFF", "DFFD", "DFDCP", "KoDF", "FF++ (c40)", "TIMIT (LQ)", "TIMIT (HQ)",
            "CelebA", "CelebA-HQ", "CelebV-HQ", "FFHQ"}}}}}},
      {"eval", evals}};

  auto comm = MakeLocalCommunicator();
  TrialContext ctx;
  ctx.config = cfg;
  ctx.work_dir = dir.path() + "/work";
  ASSERT_TRUE(MakeDirs(ctx.work_dir).ok());
  ctx.comm = comm.get();
  std::map<std::string, std::vector<ScoreRow>> scores;
  ctx.report_scores = [&](const std::string& set, const std::vector<ScoreRow>& r) {
    scores[set].insert(scores[set].end(), r.begin(), r.end());
  };
  nlohmann::json variant = nlohmann::json::object();
  ctx.report_variant = [&](const nlohmann::json& v) { variant.update(v); };
  std::vector<int64_t> checkpoints;
  ctx.report_checkpoint = [&](int64_t step, const std::string&) { checkpoints.push_back(step); };
  Sd2Method method;
  auto start = std::chrono::steady_clock::now();
  Status s = method.Run(ctx);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(PathExists(ctx.work_dir + "/tokenizer/merges.txt"));
  EXPECT_EQ(variant.value("backbone", ""), "full");
  EXPECT_EQ(variant.value("label_sampling", ""), "all");
  const int64_t used = variant.value("scale_clamped_to", int64_t(0));  // the train rows
  EXPECT_GT(used, 500);
  EXPECT_LT(used, 1200);
  ASSERT_FALSE(checkpoints.empty());
  EXPECT_EQ(checkpoints.back(), 30);

  // Scores for every eval set; AUC where a set has both classes.
  std::vector<ScoreRow> in_domain, cross_domain;
  for (const auto& e : evals) {
    const std::string name = e["name"];
    ASSERT_TRUE(scores.count(name)) << name;
    const auto& rows = scores[name];
    EXPECT_FALSE(rows.empty()) << name;
    int pos = 0;
    for (const auto& r : rows) pos += r.label;
    const bool cross = name.rfind("DF40-Test", 0) == 0 || name == "UADFV" ||
                       name == "WildDeepFake" || name == "DFDC";
    (cross ? cross_domain : in_domain)
        .insert((cross ? cross_domain : in_domain).end(), rows.begin(), rows.end());
    if (pos > 0 && pos < int(rows.size()))
      std::printf("  %-14s n=%3zu AUC %.3f\n", name.c_str(), rows.size(), Auc(rows));
  }
  const double auc_in = Auc(in_domain), auc_cross = Auc(cross_domain);
  std::printf("sd2 through the loader: %.1f s, in-domain AUC %.3f, cross-domain AUC %.3f\n", secs,
              auc_in, auc_cross);
  EXPECT_TRUE(std::isfinite(auc_in) && std::isfinite(auc_cross));
  // From random weights a tiny SD² does not learn the synthetic traces in 30-150 steps at 32 px
  // (in-domain AUC ~0.5-0.6; docs/method.md "Tiny configs"). The AUC >= 0.9 check of SD² on
  // this set runs from a pretrained tiny encoder in
  // BaselinesTrainTest.AdaptedMethodsLearnFromAPretrainedTinyEncoder; SD2_TRAIN_QUALITY=1 asks
  // it of the random-init path here too.
  if (std::getenv("SD2_TRAIN_QUALITY")) {
    EXPECT_GE(auc_in, 0.9);
    EXPECT_GT(auc_cross, 0.5);
  }
}
#endif  // SD2_HAVE_WORKER_DATA

// Under mpirun -np 2: rank r takes half of a global batch of 4; the averaged loss and gradients
// equal those of one process on the whole batch.
TEST(MpiTest, TwoRanksWithHalfBatchesEqualOneRank) {
  auto comm = MakeMpiCommunicator(MPI_COMM_WORLD);
  if (comm->size() != 2) GTEST_SKIP() << "needs mpirun -np 2";
  auto tok = TestTokenizer();
  data::LoaderOptions lo;
  lo.batch_size = 4, lo.image_size = 32, lo.train = false;
  data::Batch full;
  SyntheticLoader all(0, 4, lo);
  ASSERT_TRUE(*all.Next(&full));
  auto local_comm = MakeLocalCommunicator();
  auto one = MakeSd2("tiny2", tok, 0, local_comm.get());
  TorchBatch fb = ToTorch(full, torch::kCPU);
  auto out1 = one->Loss(fb, 7);
  ASSERT_TRUE(out1.ok()) << out1.status();
  out1->loss.backward();

  lo.world = 2, lo.rank = comm->rank(), lo.batch_size = 2;
  data::Batch half;
  SyntheticLoader part(0, 4, lo);
  ASSERT_TRUE(*part.Next(&half));
  auto two = MakeSd2("tiny2", tok, 0, comm.get());
  auto out2 = two->Loss(ToTorch(half, torch::kCPU), 7);
  ASSERT_TRUE(out2.ok()) << out2.status();
  out2->loss.backward();
  double loss = out2->loss.item<double>();
  ASSERT_TRUE(comm->AllReduceSum(&loss, 1).ok());
  EXPECT_NEAR(loss / 2, out1->loss.item<double>(), 1e-5);
  auto p1 = one->TrainableParameters(), p2 = two->TrainableParameters();
  ASSERT_EQ(p1.size(), p2.size());
  for (size_t i = 0; i < p1.size(); ++i) {
    torch::Tensor g = p2[i].second.grad().defined() ? p2[i].second.grad().clone()
                                                    : torch::zeros_like(p2[i].second);
    ASSERT_TRUE(comm->AllReduceSum(g.data_ptr<float>(), size_t(g.numel())).ok());
    g.div_(2);
    torch::Tensor want = p1[i].second.grad().defined() ? p1[i].second.grad() : torch::zeros_like(g);
    EXPECT_LT((g - want).abs().max().item<double>(), 1e-5) << p1[i].first;
  }
}

}  // namespace
}  // namespace sd2::worker::train

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rc = RUN_ALL_TESTS();
  MPI_Finalize();
  return rc;
}
