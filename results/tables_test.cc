// Store reader, table layouts and renderers, on a small store this test builds from
// storage/schema.sql and fills with deterministic scores. Layouts are pinned by golden files in
// results/testdata/golden (regenerate with SD2_UPDATE_GOLDEN=1 after checking the diff by eye);
// the numbers in them are also checked here against metrics computed directly from the scores.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "common/file_util.h"
#include "results/metrics.h"
#include "results/paper_data.h"
#include "results/render.h"
#include "results/store_reader.h"
#include "results/tables.h"

namespace sd2::results {
namespace {

namespace fs = std::filesystem;

const std::string kSource = SD2_SOURCE_DIR;

struct EvalData {
  std::vector<int> labels;
  std::vector<double> scores;
  std::vector<std::string> videos;
};

// Deterministic scores: `n` samples, fake fraction 0.5 (or all fake), fakes shifted by `sep`.
EvalData MakeScores(uint64_t seed, int n, double sep, bool all_fake = false) {
  std::mt19937_64 rng(seed);  // the engine's sequence is fixed by the standard
  auto uniform = [&] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };
  EvalData e;
  for (int i = 0; i < n; ++i) {
    const int label = all_fake ? 1 : (i / 4) % 2;  // 4 frames per video
    double s = 0.5 + (label ? sep : -sep) + (uniform() - 0.5) * 0.8;
    s = std::round(std::clamp(s, 0.0, 1.0) * 1000) / 1000;
    e.labels.push_back(label);
    e.scores.push_back(s);
    e.videos.push_back("v" + std::to_string(i / 4));
  }
  return e;
}

class TestStore {
 public:
  explicit TestStore(const std::string& path) : path_(path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    StatusOr<std::string> schema = ReadFile(kSource + "/storage/schema.sql");
    EXPECT_TRUE(schema.ok()) << schema.status();
    Exec("PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY;");
    Exec(*schema);
    Exec("PRAGMA user_version = 1");
  }
  ~TestStore() { sqlite3_close(db_); }

  void Exec(const std::string& sql) {
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
        << (err ? err : "") << "\n"
        << sql;
  }

  // Adds a trial and one attempt per entry of `states` (numbered 1..); the scores go to the
  // last attempt. Returns the trial id.
  int64_t AddTrial(const std::string& method, int64_t scale, int64_t seed,
                   const nlohmann::json& extra, const std::map<std::string, EvalData>& evals,
                   const std::vector<std::string>& states = {"succeeded"}) {
    nlohmann::json config = extra;
    config["method"] = method;
    config["scale"] = scale;
    config["seed"] = seed;
    const int64_t id = ++trials_;
    const std::string key = "key" + std::to_string(id);
    Exec(
        "INSERT INTO trials (id, trial_key, method, scale, seed, config_json, state, "
        "created_at, updated_at) VALUES (" +
        std::to_string(id) + ", '" + key + "', '" + method + "', " + std::to_string(scale) + ", " +
        std::to_string(seed) + ", '" + config.dump() + "', 'succeeded', 1, 1)");
    int64_t attempt = 0;
    for (size_t i = 0; i < states.size(); ++i) {
      attempt = ++attempts_;
      Exec("INSERT INTO attempts (id, trial_id, number, state, created_at, ended_at) VALUES (" +
           std::to_string(attempt) + ", " + std::to_string(id) + ", " + std::to_string(i + 1) +
           ", '" + states[i] + "', 1, " + std::to_string(100 + attempt) + ")");
    }
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db_,
                       "INSERT INTO scores (attempt_id, eval_set, sample_id, video_id, label, "
                       "score) VALUES (?, ?, ?, ?, ?, ?)",
                       -1, &st, nullptr);
    Exec("BEGIN");
    for (const auto& [name, e] : evals) {
      for (size_t i = 0; i < e.labels.size(); ++i) {
        const std::string sample = "s" + std::to_string(1000 + i);
        sqlite3_bind_int64(st, 1, attempt);
        sqlite3_bind_text(st, 2, name.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, sample.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, e.videos[i].c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 5, e.labels[i]);
        sqlite3_bind_double(st, 6, e.scores[i]);
        EXPECT_EQ(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
      }
    }
    Exec("COMMIT");
    sqlite3_finalize(st);
    return id;
  }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
  int64_t trials_ = 0;
  int64_t attempts_ = 0;
};

const std::vector<std::string> kCross = {"UADFV", "WildDeepFake", "DFDC", "DF40-Test-FS"};
const std::vector<std::string> kIntra = {"DF40-FF", "DFF", "synthetic-test"};
const std::vector<std::string> kMethods = {"xception",  "recce",    "spsl", "clip",
                                           "clip_lora", "clip_svd", "sd2"};

class TablesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sd2_results_tables_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    db_path_ = (dir_ / "sd2.db").string();
    Fill();
    StatusOr<PaperData> paper = LoadPaperData(kSource + "/data/paper/reported.toml");
    ASSERT_TRUE(paper.ok()) << paper.status();
    paper_ = *paper;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::map<std::string, EvalData> Evals(uint64_t seed, double sep,
                                        const std::vector<std::string>& names) {
    std::map<std::string, EvalData> out;
    for (size_t i = 0; i < names.size(); ++i) {
      out[names[i]] = MakeScores(seed * 100 + i, 40, sep * (1.0 + 0.1 * static_cast<double>(i)));
    }
    return out;
  }

  void Fill() {
    TestStore store(db_path_);
    std::vector<std::string> all = kCross;
    all.insert(all.end(), kIntra.begin(), kIntra.end());
    const nlohmann::json on = {{"ablation", {{"clam", true}, {"ld_face", true}, {"ld_env", true}}}};
    for (size_t m = 0; m < kMethods.size(); ++m) {
      const nlohmann::json extra = kMethods[m] == "sd2" ? on : nlohmann::json::object();
      for (int64_t scale : {100000, 1000000}) {
        auto evals = Evals(m * 10 + (scale == 100000 ? 1 : 2), 0.05 + 0.02 * m, all);
        evals["TIMIT (HQ)"] = MakeScores(m + 77, 20, 0.1, /*all_fake=*/true);
        store.AddTrial(kMethods[m], scale, 0, extra, evals);
      }
    }
    // A second sd2 seed at 1M (averaged with seed 0), and the ablation rows at 1M.
    sd2_seed1_ = Evals(901, 0.2, all);
    store.AddTrial("sd2", 1000000, 1, on, sd2_seed1_);
    store.AddTrial("sd2", 1000000, 0,
                   {{"ablation", {{"clam", false}, {"ld_face", false}, {"ld_env", false}}}},
                   Evals(902, 0.03, kCross));
    store.AddTrial("sd2", 1000000, 0,
                   {{"ablation", {{"clam", true}, {"ld_face", false}, {"ld_env", false}}}},
                   Evals(903, 0.06, kCross));
    // Linear probes and UnivFD on two GenImage columns. The sd2 probe failed once first.
    const std::vector<std::string> gen = {"Midjourney", "SD v1.4"};
    store.AddTrial("probe", 1000000, 0, {{"probe", {{"of", "key14"}, {"encoder_method", "sd2"}}}},
                   Evals(911, 0.2, gen), {"failed", "succeeded"});
    store.AddTrial("probe", 1000000, 0,
                   {{"probe", {{"of", "key12"}, {"encoder_method", "clip_svd"}}}},
                   Evals(912, 0.1, gen));
    store.AddTrial("univfd", 1000000, 0, {}, Evals(913, 0.05, gen));
    // Not a paper method: its eval set must not become a column.
    store.AddTrial("smoke", 1000, 0, {}, Evals(915, 0.3, {"smoke-test"}));
    // Never succeeded: must not appear.
    store.AddTrial("xception", 3000000, 0, {}, Evals(914, 0.3, kCross), {"failed", "lost"});
  }

  std::vector<ResultGroup> Groups() {
    StatusOr<std::vector<TrialResult>> trials = ReadTrialResults(db_path_);
    EXPECT_TRUE(trials.ok()) << trials.status();
    return GroupSeeds(*trials);
  }

  void ExpectGolden(const std::string& name, const std::string& actual) {
    const std::string path = kSource + "/results/testdata/golden/" + name;
    if (std::getenv("SD2_UPDATE_GOLDEN")) {
      ASSERT_TRUE(MakeDirs(kSource + "/results/testdata/golden").ok());
      ASSERT_TRUE(WriteFileAtomic(path, actual).ok());
    }
    StatusOr<std::string> expected = ReadFile(path);
    ASSERT_TRUE(expected.ok()) << expected.status();
    EXPECT_EQ(actual, *expected) << "golden file " << path
                                 << " differs (SD2_UPDATE_GOLDEN=1 rewrites it)";
  }

  fs::path dir_;
  std::string db_path_;
  PaperData paper_;
  std::map<std::string, EvalData> sd2_seed1_;
};

TEST_F(TablesTest, ReaderTakesNewestSucceededAttemptAndSkipsUnfinishedTrials) {
  StatusOr<std::vector<TrialResult>> trials = ReadTrialResults(db_path_);
  ASSERT_TRUE(trials.ok()) << trials.status();
  EXPECT_EQ(trials->size(), 14u + 1 + 2 + 3 + 1);  // the never-succeeded trial is absent
  for (const TrialResult& t : *trials) EXPECT_NE(t.scale, 3000000);
  const TrialResult& probe = (*trials)[17];
  EXPECT_EQ(probe.method, "probe");
  EXPECT_EQ(probe.attempt_id, 19);  // attempt 2 of that trial, not the failed first
  EXPECT_EQ(probe.evals.size(), 2u);
  const TrialResult& first = (*trials)[0];
  ASSERT_TRUE(first.evals.count("TIMIT (HQ)"));
  EXPECT_FALSE(first.evals.at("TIMIT (HQ)").auc.has_value());  // fake-only: no AUC
  EXPECT_TRUE(first.evals.at("UADFV").video_auc.has_value());
}

TEST_F(TablesTest, SeedsAreAveragedAndCellsCarryPaperValuesAndDeltas) {
  std::vector<ResultGroup> groups = Groups();
  Table t3 = BuildTable(3, groups, paper_);
  ASSERT_EQ(t3.rows.size(), 7u);
  EXPECT_EQ(t3.rows[6].label, "SD2");
  EXPECT_EQ(t3.rows[6].seeds, 2);
  ASSERT_EQ(t3.columns.size(), 8u);  // the paper's 7 columns + mAUC
  EXPECT_EQ(t3.columns[0], "UADFV");
  // Seed 0 of sd2 at 1M was built with Evals(6 * 10 + 2, 0.05 + 0.02 * 6, all).
  const double sep = 0.05 + 0.02 * 6;
  EvalData seed0 = MakeScores(62 * 100 + 0, 40, sep);
  const double expected = 50.0 * (*RocAuc(seed0.labels, seed0.scores) +
                                  *RocAuc(sd2_seed1_["UADFV"].labels, sd2_seed1_["UADFV"].scores));
  const Cell& c = t3.rows[6].cells[0];
  ASSERT_TRUE(c.ours && c.paper);
  EXPECT_NEAR(*c.ours, expected, 1e-9);
  EXPECT_DOUBLE_EQ(*c.paper, 96.44);
  EXPECT_NEAR(*c.Delta(), expected - 96.44, 1e-9);
  // Three of the seven columns have no eval set: missing, and the mean is partial.
  EXPECT_FALSE(t3.rows[6].cells[4].ours.has_value());
  EXPECT_TRUE(t3.rows[6].cells[7].partial);
  EXPECT_FALSE(t3.rows[6].cells[7].Delta().has_value());
  // Exactly the maximum of each column is bold.
  for (size_t col = 0; col < 4; ++col) {
    double best = -1;
    for (const auto& r : t3.rows) best = std::max(best, *r.cells[col].ours);
    for (const auto& r : t3.rows) EXPECT_EQ(r.cells[col].best, *r.cells[col].ours == best);
  }
}

TEST_F(TablesTest, AblationScaleAndProbeTablesFollowThePaperLayout) {
  std::vector<ResultGroup> groups = Groups();
  Table t5 = BuildTable(5, groups, paper_);
  ASSERT_EQ(t5.rows.size(), 4u);
  EXPECT_EQ(t5.rows[0].switches,
            (std::vector<std::string>{"\u2713", "\u2013", "\u2013", "\u2013"}));
  EXPECT_TRUE(t5.rows[0].cells[0].ours.has_value());
  EXPECT_FALSE(t5.rows[2].cells[0].ours.has_value());  // clam + ld_face only: not run
  EXPECT_DOUBLE_EQ(*t5.rows[3].cells[0].paper, 87.79);
  Table t6 = BuildTable(6, groups, paper_);
  EXPECT_EQ(t6.columns, (std::vector<std::string>{"100K", "1M"}));
  EXPECT_DOUBLE_EQ(*t6.rows[0].cells[1].paper, 71.69);
  Table t4 = BuildTable(4, groups, paper_);
  ASSERT_EQ(t4.rows.size(), 3u);  // paper order: UnivFD, CLIP-SVD (Effort), SD2
  EXPECT_EQ(t4.rows[0].label, "UnivFD");
  EXPECT_EQ(t4.rows[1].label, "CLIP-SVD (Effort)");
  EXPECT_EQ(t4.rows[2].label, "SD2");
  Table t7 = BuildTable(7, groups, paper_);
  EXPECT_EQ(t7.columns.back(), "mACC");
  EXPECT_EQ(t7.columns[t7.columns.size() - 2], "synthetic-test");  // ours, not the paper's
  EXPECT_EQ(ScaleLabel(3584280), "3.6M");
  EXPECT_EQ(ScaleLabel(2500), "2.5K");
}

TEST_F(TablesTest, RenderersMatchGoldenFiles) {
  std::vector<ResultGroup> groups = Groups();
  std::vector<Table> tables;
  for (int n = 2; n <= 8; ++n) tables.push_back(BuildTable(n, groups, paper_));
  std::string md, tex;
  for (const Table& t : tables) {
    md += Render(t, Format::kMarkdown) + "\n";
    tex += Render(t, Format::kLatex) + "\n";
  }
  ExpectGolden("tables.md", md);
  ExpectGolden("tables.tex", tex);
  ExpectGolden("tables.csv", RenderCsv(tables));
  const std::string svg = ScalingSvg(tables[4]);
  ExpectGolden("scaling.svg", svg);
  ExpectGolden("report.html", RenderHtmlReport(tables, svg));
}

TEST_F(TablesTest, EmptyStoreGivesThePaperLayoutWithoutOurValues) {
  const std::string empty = (dir_ / "empty.db").string();
  { TestStore store(empty); }
  StatusOr<std::vector<TrialResult>> trials = ReadTrialResults(empty);
  ASSERT_TRUE(trials.ok()) << trials.status();
  EXPECT_TRUE(trials->empty());
  Table t6 = BuildTable(6, GroupSeeds(*trials), paper_);
  EXPECT_EQ(t6.columns, (std::vector<std::string>{"100K", "1M", "3M"}));
  EXPECT_DOUBLE_EQ(*t6.rows[6].cells[2].paper, 87.79);
  EXPECT_FALSE(t6.rows[6].cells[2].ours.has_value());
  EXPECT_NE(ScalingSvg(t6).find("no results yet"), std::string::npos);
}

// Groups as a demo run at shrunken scales would give them.
std::vector<ResultGroup> ScaledGroups(const std::vector<int64_t>& scales) {
  std::vector<ResultGroup> out;
  for (int64_t s : scales) {
    ResultGroup g;
    g.method = "spsl";
    g.scale = s;
    g.seeds = 1;
    g.config_key = std::to_string(s);
    g.auc = {{"UADFV", 0.5 + static_cast<double>(s) * 1e-6}};
    out.push_back(g);
  }
  return out;
}

TEST(ScaleTableTest, DemoScalesStandForThePaperScalesWithTheSameRatios) {
  StatusOr<PaperData> paper = LoadPaperData(kSource + "/data/paper/reported.toml");
  ASSERT_TRUE(paper.ok()) << paper.status();
  Table t = BuildTable(6, ScaledGroups({2000, 20000, 60000}), *paper);
  EXPECT_EQ(t.columns, (std::vector<std::string>{"2K", "20K", "60K"}));
  EXPECT_DOUBLE_EQ(*t.rows[2].cells[0].paper, 71.56);  // SPSL 100K
  EXPECT_DOUBLE_EQ(*t.rows[2].cells[2].paper, 75.68);  // SPSL 3M
  EXPECT_NEAR(*t.rows[2].cells[1].ours, 52.0, 1e-9);   // mean over the one column present
  EXPECT_TRUE(t.rows[2].cells[1].partial);
  EXPECT_NE(t.notes[0].find("2K -> 100K, 20K -> 1M, 60K -> 3M"), std::string::npos) << t.notes[0];
  t = BuildTable(6, ScaledGroups({20000, 60000}), *paper);  // only the two larger scales ran
  EXPECT_DOUBLE_EQ(*t.rows[2].cells[0].paper, 73.84);       // SPSL 1M
  t = BuildTable(6, ScaledGroups({1000, 7000}), *paper);
  EXPECT_FALSE(t.rows[2].cells[0].paper.has_value());
  EXPECT_NE(t.notes[0].find("no paper values"), std::string::npos);
  t = BuildTable(6, ScaledGroups({100000, 3584280}), *paper);
  EXPECT_EQ(t.columns, (std::vector<std::string>{"100K", "3.6M"}));
  EXPECT_DOUBLE_EQ(*t.rows[2].cells[1].paper, 75.68);
}

TEST(StoreReaderTest, ReportsMissingAndForeignDatabases) {
  StatusOr<std::vector<TrialResult>> r = ReadTrialResults("/nonexistent/sd2.db");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "no database at /nonexistent/sd2.db");
  const fs::path dir = fs::temp_directory_path() / ("sd2_store_reader_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "other.db").string();
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db, "CREATE TABLE t (x); PRAGMA user_version = 7;", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  r = ReadTrialResults(path);
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), path + ": store schema version 7 is newer than this sd2 (" +
                                      std::to_string(kStoreSchemaVersion) + ")");
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db, "PRAGMA user_version = 1;", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  r = ReadTrialResults(path);
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("no such table: trials"), std::string::npos) << r.status();
  fs::remove_all(dir);
}

TEST(PaperDataTest, ParsesTheShippedFileAndReportsSyntaxErrorsWithPosition) {
  StatusOr<PaperData> p = LoadPaperData(kSource + "/data/paper/reported.toml");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_NE(p->Table(3), nullptr);
  EXPECT_EQ(p->Table(3)->columns.size(), 7u);
  EXPECT_DOUBLE_EQ(*p->Table(3)->Row("SD2")->summary, 87.79);
  EXPECT_EQ(p->Table(5)->rows.size(), 4u);
  StatusOr<PaperData> bad = ParsePaperData("[table2]\ncolumns = [1, \n", "x.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind("x.toml:2:16: ", 0), 0u) << bad.status();
  bad = ParsePaperData("[table3]\ncolumns = [\"A\"]\n[[table3.rows]]\nvalues = {A = \"x\"}\n",
                       "y.toml");
  EXPECT_EQ(bad.status().message(), "y.toml:4:15: value 'A' is not a number");
  StatusOr<std::string> dir = LocatePaperData("/nonexistent", "");
  EXPECT_EQ(dir.status().message(), "--paper-data /nonexistent: no reported.toml there");
  dir = LocatePaperData("", "");
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_TRUE(PathExists(*dir + "/reported.toml"));
}

TEST(PaperDataTest, DeepNestingIsAnErrorNotACrash) {
  std::string key = "[table3]\nx";
  for (int i = 0; i < 100000; ++i) key += ".x";
  StatusOr<PaperData> bad = ParsePaperData(key + " = 1\n", "deep.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "deep.toml:2:126: TOML nests deeper than 64 levels (tables, dotted keys, arrays and "
            "inline tables together)");
}

}  // namespace
}  // namespace sd2::results
