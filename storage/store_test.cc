// Contract tests of the SQLite store (storage/store.h).
#include "storage/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <string>

namespace sd2::storage {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sd2_store_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "sd2.db").string();
    auto s = Store::Open(path_);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(s).value();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  int64_t AddTrial(const std::string& key) {
    TrialRow t;
    t.trial_key = key;
    t.method = "smoke";
    t.config_json = R"({"method":"smoke"})";
    t.created_at = t.updated_at = 1.0;
    auto id = store_->InsertTrial(t);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : 0;
  }
  int64_t AddAttempt(int64_t trial, int number) {
    AttemptRow a;
    a.trial_id = trial;
    a.number = number;
    a.created_at = 2.0;
    auto id = store_->InsertAttempt(a);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : 0;
  }

  std::filesystem::path dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, OpenMigratesToCurrentVersionWithWalAndForeignKeys) {
  EXPECT_EQ(store_->SchemaVersion(), kSchemaVersion);
  ASSERT_TRUE(store_->Exec("INSERT INTO groups (id, size, last_seen) VALUES ('g', 1, 0)").ok());
  // WAL mode leaves a -wal file next to the database.
  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));
  // Foreign keys are enforced: an attempt of a trial that does not exist is refused.
  AttemptRow a;
  a.trial_id = 999;
  a.number = 1;
  auto id = store_->InsertAttempt(a);
  EXPECT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(StoreTest, ReopenKeepsDataAndVersion) {
  int64_t t = AddTrial("k1");
  store_.reset();
  auto s = Store::Open(path_);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->SchemaVersion(), kSchemaVersion);
  auto row = (*s)->GetTrial(t);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->trial_key, "k1");
}

TEST_F(StoreTest, MigratesAVersionOneDatabase) {
  store_.reset();
  std::filesystem::remove(path_);
  std::filesystem::remove(path_ + "-wal");
  std::filesystem::remove(path_ + "-shm");
  // Build a version-1 database by hand from the v1 DDL file.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  std::string ddl = std::string(SD2_SOURCE_DIR) + "/storage/schema.sql";
  FILE* f = fopen(ddl.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::string sql;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) sql.append(buf, n);
  fclose(f);
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "PRAGMA user_version = 1; INSERT INTO trials (trial_key, method, scale, "
                         "seed, config_json, created_at, updated_at) VALUES "
                         "('old', 'smoke', 0, 0, '{}', 0, 0);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto s = Store::Open(path_);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->SchemaVersion(), kSchemaVersion);
  auto t = (*s)->FindTrialByKey("old");
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t->has_value());
  EXPECT_EQ((*t)->resources_json, "{}");
}

TEST_F(StoreTest, MigratesAVersionTwoDatabaseKeepingItsAttempts) {
  store_.reset();
  std::filesystem::remove(path_);
  std::filesystem::remove(path_ + "-wal");
  std::filesystem::remove(path_ + "-shm");
  // A version-2 store as shipped: the v1 DDL, migration 2, and an attempt written at v2.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  std::string ddl = std::string(SD2_SOURCE_DIR) + "/storage/schema.sql";
  FILE* f = fopen(ddl.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::string sql;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) sql.append(buf, n);
  fclose(f);
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "ALTER TABLE trials ADD COLUMN resources_json TEXT NOT NULL DEFAULT '{}';"
                         "ALTER TABLE trials ADD COLUMN label TEXT;"
                         "CREATE INDEX trials_by_state ON trials(state);"
                         "CREATE INDEX sweep_trials_by_trial ON sweep_trials(trial_id);"
                         "CREATE INDEX attempts_by_trial ON attempts(trial_id, number);"
                         "PRAGMA user_version = 2;"
                         "INSERT INTO trials (trial_key, method, scale, seed, config_json, "
                         "resources_json, created_at, updated_at) VALUES ('old', 'smoke', 0, 0, "
                         "'{}', '{\"gpus_per_rank\":1,\"ranks\":8}', 0, 0);"
                         "INSERT INTO attempts (trial_id, number, state, group_id, host, "
                         "created_at) VALUES (1, 1, 'failed', 'g1', 'node7', 5);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto s = Store::Open(path_);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->SchemaVersion(), 3);
  auto old = (*s)->FindAttempt(1, 1);
  ASSERT_TRUE(old.ok()) << old.status();
  ASSERT_TRUE(old->has_value());
  EXPECT_EQ((*old)->host, "node7");
  EXPECT_EQ((*old)->state, "failed");
  EXPECT_EQ((*old)->devices, "");
  EXPECT_EQ((*old)->slurm_job_id, "");
  // The new columns are written and read back, on insert and on update.
  AttemptRow a;
  a.trial_id = 1;
  a.number = 2;
  a.host = "gpu01";
  a.devices = "cuda:0,cuda:1";
  a.slurm_job_id = "1240";
  a.slurm_array_job_id = "1234";
  a.slurm_array_task_id = "6";
  a.created_at = 6;
  auto id = (*s)->InsertAttempt(a);
  ASSERT_TRUE(id.ok()) << id.status();
  auto back = (*s)->GetAttempt(*id);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->devices, "cuda:0,cuda:1");
  EXPECT_EQ(back->slurm_job_id, "1240");
  EXPECT_EQ(back->slurm_array_job_id, "1234");
  EXPECT_EQ(back->slurm_array_task_id, "6");
  AttemptRow up = **old;
  up.devices = "cpu";
  up.slurm_job_id = "99";
  ASSERT_TRUE((*s)->UpdateAttempt(up).ok());
  auto up_back = (*s)->FindAttempt(1, 1);
  ASSERT_TRUE(up_back.ok() && up_back->has_value());
  EXPECT_EQ((*up_back)->devices, "cpu");
  EXPECT_EQ((*up_back)->slurm_job_id, "99");
  EXPECT_EQ((*up_back)->slurm_array_task_id, "");
}

TEST_F(StoreTest, RefusesNewerSchema) {
  ASSERT_TRUE(store_->Exec("PRAGMA user_version = 99").ok());
  store_.reset();
  auto s = Store::Open(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("schema version 99 is newer"), std::string::npos)
      << s.status();
}

// Two processes open an old store at once: the one that waits for the write lock must read the
// schema version after getting it, or it re-applies the migration the other just committed.
TEST_F(StoreTest, MigrateReadsTheVersionUnderItsWriteLock) {
  // A store that looks one migration behind, whose last migration another connection is about
  // to commit.
  ASSERT_TRUE(store_->Exec("PRAGMA user_version = " + std::to_string(kSchemaVersion - 1)).ok());
  store_.reset();
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, ("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str(),
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  std::promise<void> waiting;
  std::atomic<bool> told{false};
  StoreOptions o;
  o.busy_timeout_ms = 20000;
  o.on_busy = [&] {
    if (!told.exchange(true)) waiting.set_value();
  };
  auto opened = std::async(std::launch::async, [&] { return Store::Open(path_, o); });
  // The opener is blocked on the write lock; the other connection's migration commits.
  ASSERT_EQ(waiting.get_future().wait_for(std::chrono::seconds(20)), std::future_status::ready);
  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  auto s = opened.get();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->SchemaVersion(), kSchemaVersion);
}

TEST_F(StoreTest, RejectsFilesThatAreNotDatabases) {
  std::string bad = (dir_ / "bad.db").string();
  FILE* f = fopen(bad.c_str(), "wb");
  fputs("this is not sqlite, just some text that is long enough to be a header.......", f);
  fclose(f);
  auto s = Store::Open(bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("bad.db"), std::string::npos) << s.status();
  auto e = Store::Open("");
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
  StoreOptions o;
  o.synchronous = "SOMETIMES";
  EXPECT_EQ(Store::Open(path_, o).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(StoreTest, TrialKeyIsUnique) {
  AddTrial("dup");
  TrialRow t;
  t.trial_key = "dup";
  t.method = "smoke";
  t.config_json = "{}";
  auto id = store_->InsertTrial(t);
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.status().message().find("dup"), std::string::npos);
  auto found = store_->FindTrialByKey("dup");
  ASSERT_TRUE(found.ok());
  EXPECT_TRUE(found->has_value());
  auto missing = store_->FindTrialByKey("nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST_F(StoreTest, TrialRoundTripAndUpdate) {
  TrialRow t;
  t.trial_key = "abc";
  t.method = "sd2";
  t.scale = 100000;
  t.seed = 7;
  t.config_json = R"({"method":"sd2"})";
  t.resources_json = R"({"gpus_per_rank":1,"ranks":2})";
  t.label = "sd2@100k";
  t.priority = 5;
  t.created_at = 10;
  t.updated_at = 10;
  auto id = store_->InsertTrial(t);
  ASSERT_TRUE(id.ok()) << id.status();
  auto dep = AddTrial("probe");
  auto got = store_->GetTrial(*id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->method, "sd2");
  EXPECT_EQ(got->scale, 100000);
  EXPECT_EQ(got->resources_json, t.resources_json);
  EXPECT_EQ(got->label, "sd2@100k");
  EXPECT_FALSE(got->depends_on.has_value());
  got->state = "failed";
  got->attempts = 3;
  got->last_error = "boom";
  got->not_before = 42;
  ASSERT_TRUE(store_->UpdateTrial(*got).ok());
  auto again = store_->GetTrial(*id);
  EXPECT_EQ(again->state, "failed");
  EXPECT_EQ(again->attempts, 3);
  EXPECT_EQ(again->last_error, "boom");
  EXPECT_DOUBLE_EQ(again->not_before, 42);
  // The state column is checked.
  got->state = "exploded";
  EXPECT_FALSE(store_->UpdateTrial(*got).ok());
  auto failed = store_->ListTrials("failed");
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->size(), 1u);
  EXPECT_EQ(failed->at(0).id, *id);
  EXPECT_EQ(store_->ListTrials()->size(), 2u);
  EXPECT_EQ(store_->GetTrial(dep + 100).status().code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, AttemptsAreNumberedUniquelyPerTrial) {
  int64_t t = AddTrial("k");
  int64_t a1 = AddAttempt(t, 1);
  AttemptRow dup;
  dup.trial_id = t;
  dup.number = 1;
  EXPECT_FALSE(store_->InsertAttempt(dup).ok());
  AddAttempt(t, 2);
  auto a = store_->GetAttempt(a1);
  ASSERT_TRUE(a.ok());
  a->state = "running";
  a->host = "node1";
  a->lease_expires_at = 99.5;
  a->started_at = 3.0;
  ASSERT_TRUE(store_->UpdateAttempt(*a).ok());
  auto running = store_->ListAttemptsInState("running");
  ASSERT_TRUE(running.ok());
  ASSERT_EQ(running->size(), 1u);
  EXPECT_EQ(running->at(0).host, "node1");
  EXPECT_DOUBLE_EQ(*running->at(0).lease_expires_at, 99.5);
  auto found = store_->FindAttempt(t, 2);
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->state, "leased");
  EXPECT_EQ(store_->ListAttempts(t)->size(), 2u);
  a->state = "weird";
  EXPECT_FALSE(store_->UpdateAttempt(*a).ok());
}

TEST_F(StoreTest, MetricsAreIdempotentOnAttemptAndSeq) {
  int64_t t = AddTrial("k");
  int64_t a = AddAttempt(t, 1);
  std::vector<MetricRow> rows;
  for (int i = 0; i < 100; ++i) rows.push_back({i, i / 10, "loss", 1.0 / (i + 1), 5.0 + i});
  auto n = store_->InsertMetrics(a, rows);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 100);
  // A resend after a reconnect, overlapping the first batch, adds only the new rows.
  std::vector<MetricRow> resend(rows.begin() + 50, rows.end());
  resend.push_back({100, 10, "loss", 0.001, 200});
  auto m = store_->InsertMetrics(a, resend);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, 1);
  EXPECT_EQ(*store_->CountRows("metrics"), 101);
  auto listed = store_->ListMetrics(a);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 101u);
  EXPECT_EQ(listed->at(7).step, 0);
  EXPECT_DOUBLE_EQ(listed->at(7).value, 1.0 / 8);
}

TEST_F(StoreTest, ScoresAreIdempotentAndLabelIsChecked) {
  int64_t t = AddTrial("k");
  int64_t a = AddAttempt(t, 1);
  std::vector<ScoreRow> rows = {{"s1", "v1", 1, "FS", 0.9}, {"s2", "v1", 0, "REAL", 0.2}};
  auto n = store_->InsertScores(a, "DF40-FF", rows);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(*store_->InsertScores(a, "DF40-FF", rows), 0);
  EXPECT_EQ(*store_->InsertScores(a, "CDF", rows), 2);
  auto bad = store_->InsertScores(a, "X", {{"s3", "", 2, "FS", 0.5}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("s3"), std::string::npos) << bad.status();
  // The failed batch left nothing behind.
  EXPECT_EQ(*store_->CountRows("scores"), 4);
  auto listed = store_->ListScores(a, "DF40-FF");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ(listed->at(0).sample_id, "s1");
  EXPECT_EQ(listed->at(0).type, "FS");
  EXPECT_DOUBLE_EQ(listed->at(1).score, 0.2);
}

TEST_F(StoreTest, TransactionsRollBackOnError) {
  Status s = store_->InTransaction([&]() -> Status {
    AddTrial("inside");
    return AbortedError("changed my mind");
  });
  EXPECT_EQ(s.code(), StatusCode::kAborted);
  EXPECT_FALSE(store_->FindTrialByKey("inside")->has_value());
  ASSERT_TRUE(store_
                  ->InTransaction([&]() -> Status {
                    AddTrial("kept");
                    // Nested transactions join the outer one.
                    return store_->InTransaction([&]() -> Status {
                      AddTrial("kept2");
                      return OkStatus();
                    });
                  })
                  .ok());
  EXPECT_TRUE(store_->FindTrialByKey("kept2")->has_value());
}

TEST_F(StoreTest, SweepsLinkTrialsAndCountStates) {
  SweepRow w;
  w.name = "table6";
  w.spec_toml = "name = 'table6'";
  w.created_at = 1;
  auto sw = store_->InsertSweep(w);
  ASSERT_TRUE(sw.ok()) << sw.status();
  int64_t t1 = AddTrial("a"), t2 = AddTrial("b"), t3 = AddTrial("c");
  ASSERT_TRUE(store_->LinkSweepTrial(*sw, t1, 0, false).ok());
  ASSERT_TRUE(store_->LinkSweepTrial(*sw, t2, 1, true).ok());
  ASSERT_TRUE(store_->LinkSweepTrial(*sw, t3, 2, false).ok());
  auto tr = store_->GetTrial(t3);
  tr->state = "running";
  ASSERT_TRUE(store_->UpdateTrial(*tr).ok());
  auto tr2 = store_->GetTrial(t2);
  tr2->state = "succeeded";
  ASSERT_TRUE(store_->UpdateTrial(*tr2).ok());
  auto c = store_->CountSweep(*sw);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->total, 3);
  EXPECT_EQ(c->queued, 1);
  EXPECT_EQ(c->running, 1);
  EXPECT_EQ(c->reused, 1);
  EXPECT_EQ(c->succeeded, 0);
  EXPECT_EQ(*store_->SweepTrialIds(*sw), (std::vector<int64_t>{t1, t2, t3}));
  EXPECT_EQ(*store_->SweepsOfTrial(t2), (std::vector<int64_t>{*sw}));
  ASSERT_TRUE(store_->SetSweepState(*sw, "done").ok());
  EXPECT_EQ(store_->GetSweep(*sw)->state, "done");
  EXPECT_TRUE(store_->SweepsOfTrial(t2)->empty());
  EXPECT_FALSE(store_->SetSweepState(*sw, "bogus").ok());
  EXPECT_EQ(store_->SetSweepState(12345, "done").code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, CheckpointsGroupsAndEvents) {
  int64_t t = AddTrial("k");
  int64_t a = AddAttempt(t, 1);
  ASSERT_TRUE(store_->InsertCheckpoint({0, a, 10, "/w/k/ckpt-10", "d1", 5}).ok());
  ASSERT_TRUE(store_->InsertCheckpoint({0, a, 10, "/w/k/ckpt-10", "d1", 6}).ok());  // resend
  ASSERT_TRUE(store_->InsertCheckpoint({0, a, 20, "/w/k/ckpt-20", "", 7}).ok());
  auto cks = store_->ListCheckpoints(a);
  ASSERT_TRUE(cks.ok());
  ASSERT_EQ(cks->size(), 2u);
  EXPECT_EQ(cks->at(1).path, "/w/k/ckpt-20");
  ASSERT_TRUE(store_->UpsertGroup({"g1", "h", 2, "cpu", "0.1", "idle", 1}).ok());
  ASSERT_TRUE(store_->UpsertGroup({"g1", "h2", 2, "cpu", "0.1", "busy", 2}).ok());
  auto groups = store_->ListGroups();
  ASSERT_EQ(groups->size(), 1u);
  EXPECT_EQ(groups->at(0).host, "h2");
  EXPECT_EQ(groups->at(0).state, "busy");
  ASSERT_TRUE(store_->AddEvent({0, 1, "lease", std::nullopt, t, a, "granted"}).ok());
  ASSERT_TRUE(store_->AddEvent({0, 2, "submit", 1, std::nullopt, std::nullopt, "x"}).ok());
  EXPECT_EQ(store_->ListEvents(t)->size(), 1u);
  EXPECT_EQ(store_->ListEvents(0)->size(), 2u);
  EXPECT_EQ(store_->CountRows("nope; DROP TABLE x").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(StoreTest, ReadOnlyOpenSeesWritesAndCannotWrite) {
  AddTrial("visible");
  StoreOptions ro;
  ro.read_only = true;
  auto r = Store::Open(path_, ro);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE((*r)->FindTrialByKey("visible")->has_value());
  TrialRow t;
  t.trial_key = "w";
  t.method = "m";
  t.config_json = "{}";
  EXPECT_FALSE((*r)->InsertTrial(t).ok());
  auto missing = Store::Open((dir_ / "missing.db").string(), ro);
  EXPECT_FALSE(missing.ok());
}

}  // namespace
}  // namespace sd2::storage
