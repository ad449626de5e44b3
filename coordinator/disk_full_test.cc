// A full disk (SQLITE_FULL, simulated with PRAGMA max_page_count on a real file): the failing
// request gets a clear error, the coordinator stops accepting work (submit, lease requests), and
// every state committed before is kept across a restart.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

#include "coordinator/core.h"
#include "storage/integrity.h"

namespace sd2::coordinator {
namespace {

namespace proto = sd2::protocol;
namespace fs = std::filesystem;

class DiskFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sd2_disk_full_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "sd2.db").string();
    auto s = storage::Store::Open(path_);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(s).value();
    core_ = std::make_unique<Core>(store_.get(), &clock_, CoreOptions{});
    ASSERT_TRUE(core_->Recover().ok());
  }
  void TearDown() override {
    core_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }
  template <typename T>
  proto::Message Call(const T& m) {
    auto d = proto::Decode(core_->HandleBytes(proto::Encode(m)));
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : proto::Message{};
  }
  static proto::Submit Sweep(const std::string& name, int n) {
    proto::Submit sub;
    sub.name = name;
    for (int i = 0; i < n; ++i) {
      proto::TrialSpec t;
      t.key = name + std::to_string(i);
      t.method = "smoke";
      t.config = {{"method", "smoke"}, {"i", i}};
      sub.trials.push_back(t);
    }
    return sub;
  }
  static proto::MetricsBatch Metrics(const std::string& key, int64_t first, int n) {
    proto::MetricsBatch b{key, 1, {}};
    for (int i = 0; i < n; ++i) {
      b.rows.push_back({first + i, first + i, "loss_with_a_long_name_" + std::to_string(i),
                        1.0 / (i + 1), 1.0 * i});
    }
    return b;
  }

  fs::path dir_;
  std::string path_;
  FakeClock clock_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<Core> core_;
};

TEST_F(DiskFullTest, StopsAcceptingWorkAndKeepsCommittedState) {
  ASSERT_TRUE(proto::ReplyStatus(Call(Sweep("a", 3))).ok());
  proto::Register reg;
  reg.group = "g";
  ASSERT_TRUE(proto::ReplyStatus(Call(reg)).ok());
  auto grant = proto::ParseAs<proto::LeaseGrant>(Call(proto::LeaseRequest{"g"}));
  ASSERT_TRUE(grant.ok()) << grant.status();
  ASSERT_TRUE(proto::ReplyStatus(Call(Metrics(grant->trial_key, 0, 100))).ok());

  // The disk fills up: the database may grow by two pages at most.
  ASSERT_TRUE(store_->Exec("PRAGMA wal_checkpoint(TRUNCATE)").ok());
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(store_->raw(), "PRAGMA page_count", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  int64_t pages = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  ASSERT_TRUE(store_->Exec("PRAGMA max_page_count = " + std::to_string(pages + 2)).ok());

  Status failed;
  for (int i = 1; i < 200 && failed.ok(); ++i) {
    failed = proto::ReplyStatus(Call(Metrics(grant->trial_key, 100 * i, 100)));
  }
  ASSERT_FALSE(failed.ok()) << "the page limit was never reached";
  EXPECT_EQ(failed.code(), StatusCode::kResourceExhausted) << failed;
  EXPECT_NE(failed.message().find("full"), std::string::npos) << failed;
  EXPECT_FALSE(core_->disk_full().ok());

  // No new work: a submit and a lease request are refused with a clear error.
  Status sub = proto::ReplyStatus(Call(Sweep("b", 2)));
  EXPECT_EQ(sub.code(), StatusCode::kResourceExhausted) << sub;
  EXPECT_NE(sub.message().find("stopped accepting work"), std::string::npos) << sub;
  Status lease = proto::ReplyStatus(Call(proto::LeaseRequest{"g"}));
  EXPECT_EQ(lease.code(), StatusCode::kResourceExhausted) << lease;
  // Reads still work.
  EXPECT_EQ(Call(proto::StatusRequest{0}).type, "status_reply");

  auto metrics = store_->CountRows("metrics");
  ASSERT_TRUE(metrics.ok());
  int64_t committed = *metrics;
  EXPECT_EQ(committed % 100, 0) << "a partial batch was committed";
  core_.reset();
  store_.reset();

  // After a restart with space again, every committed state is there, and the file is sound.
  auto report = storage::CheckDatabaseFile(path_);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok);
  auto s = storage::Store::Open(path_);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*(*s)->CountRows("metrics"), committed);
  EXPECT_EQ(*(*s)->CountRows("trials"), 3);
  EXPECT_EQ(*(*s)->CountRows("sweeps"), 1);
  EXPECT_EQ(*(*s)->CountRows("attempts"), 1);
  Core again(s->get(), &clock_, CoreOptions{});
  ASSERT_TRUE(again.Recover().ok());
  EXPECT_TRUE(again.disk_full().ok());
  auto d = proto::Decode(again.HandleBytes(proto::Encode(Sweep("b", 2))));
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(proto::ReplyStatus(*d).ok()) << proto::ReplyStatus(*d);
}

}  // namespace
}  // namespace sd2::coordinator
