// Online backup (storage/backup.h) and integrity checks (storage/integrity.h) on real files:
// a backup taken while another connection commits is one consistent snapshot; corrupt files are
// detected; a full disk (PRAGMA max_page_count) fails the write with a recognisable status and
// keeps every committed transaction.
#include "storage/backup.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <utility>
#include <vector>

#include "storage/integrity.h"
#include "storage/store.h"

namespace sd2::storage {
namespace {

namespace fs = std::filesystem;

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sd2_backup_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "sd2.db").string();
    auto s = Store::Open(path_);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(s).value();
    TrialRow t;
    t.trial_key = "k";
    t.method = "smoke";
    t.config_json = R"({"method":"smoke"})";
    auto tid = store_->InsertTrial(t);
    ASSERT_TRUE(tid.ok()) << tid.status();
    AttemptRow a;
    a.trial_id = *tid;
    a.number = 1;
    auto aid = store_->InsertAttempt(a);
    ASSERT_TRUE(aid.ok()) << aid.status();
    attempt_ = *aid;
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  // Inserts `n` metric rows from seq `first` in one transaction.
  Status AddMetrics(Store* store, int64_t first, int n) {
    std::vector<MetricRow> rows;
    for (int i = 0; i < n; ++i) {
      rows.push_back({first + i, first + i, "loss", 1.0 / (first + i + 1), 1.0 * i});
    }
    return store->InTransaction([&]() -> Status {
      auto r = store->InsertMetrics(attempt_, rows);
      return r.ok() ? OkStatus() : r.status();
    });
  }
  static int64_t CountIn(const std::string& path, const char* table) {
    StoreOptions ro;
    ro.read_only = true;
    auto s = Store::Open(path, ro);
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) return -1;
    auto n = (*s)->CountRows(table);
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? *n : -1;
  }

  fs::path dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
  int64_t attempt_ = 0;
};

TEST_F(BackupTest, CopiesACheckedStore) {
  ASSERT_TRUE(AddMetrics(store_.get(), 0, 500).ok());
  std::string dest = (dir_ / "copy.db").string();
  auto r = BackupDatabase(path_, dest);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->pages, 0);
  EXPECT_GT(r->bytes, 0);
  EXPECT_EQ(r->schema_version, kSchemaVersion);
  EXPECT_EQ(CountIn(dest, "metrics"), 500);
  EXPECT_EQ(CountIn(dest, "trials"), 1);
  auto report = CheckDatabaseFile(dest);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok);
  EXPECT_EQ(report->schema_version, kSchemaVersion);
  // No temporary file is left beside it.
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename().string().find(".partial."), std::string::npos) << e.path();
  }
}

TEST_F(BackupTest, SyncsTheCopyThenItsDirectoryAfterTheRename) {
  ASSERT_TRUE(AddMetrics(store_.get(), 0, 10).ok());
  std::string dest = (dir_ / "copy.db").string();
  std::vector<std::pair<std::string, bool>> synced;  // path, dest existed then
  BackupOptions o;
  o.sync = [&](const std::string& p) {
    synced.emplace_back(p, fs::exists(dest));
    return FsyncPath(p);
  };
  auto r = BackupDatabase(path_, dest, o);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(synced.size(), 2u);
  EXPECT_NE(synced[0].first.find("copy.db.partial."), std::string::npos) << synced[0].first;
  EXPECT_FALSE(synced[0].second);
  EXPECT_EQ(fs::path(synced[1].first), dir_);
  EXPECT_TRUE(synced[1].second);  // after the rename
  // A failing directory sync fails the backup.
  o.overwrite = true;
  o.sync = [&](const std::string& p) {
    return fs::is_directory(p) ? ResourceExhaustedError(p + ": fsync: no space") : OkStatus();
  };
  auto failed = BackupDatabase(path_, dest, o);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kResourceExhausted) << failed.status();
}

TEST_F(BackupTest, BackupDuringConcurrentWritesIsAConsistentSnapshot) {
  // The writer commits batches of 50 rows; every backup must hold whole batches only and pass
  // its integrity check. The writer is the Store (the coordinator's connection).
  std::atomic<bool> stop{false};
  std::atomic<int64_t> committed{0};
  Status writer_status;
  std::thread writer([&]() {
    int64_t seq = 0;
    while (!stop) {
      Status s = AddMetrics(store_.get(), seq, 50);
      if (!s.ok()) {
        writer_status = s;
        return;
      }
      seq += 50;
      committed = seq;
    }
  });
  int64_t last = -1;
  for (int i = 0; i < 8; ++i) {
    while (committed.load() <= last + 50) std::this_thread::yield();
    std::string dest = (dir_ / ("copy" + std::to_string(i) + ".db")).string();
    int64_t before = committed.load();
    auto r = BackupDatabase(path_, dest);
    int64_t after = committed.load();
    ASSERT_TRUE(r.ok()) << r.status();
    int64_t n = CountIn(dest, "metrics");
    EXPECT_EQ(n % 50, 0) << "backup " << i << " holds a partial transaction";
    EXPECT_GE(n, before) << i;
    EXPECT_LE(n, after + 50) << i;
    auto report = CheckDatabaseFile(dest);
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_TRUE(report->ok) << i;
    last = n;
  }
  stop = true;
  writer.join();
  EXPECT_TRUE(writer_status.ok()) << writer_status;
  EXPECT_GT(committed.load(), 0);
}

TEST_F(BackupTest, RefusesBadRequests) {
  std::string dest = (dir_ / "copy.db").string();
  EXPECT_EQ(BackupDatabase((dir_ / "absent.db").string(), dest).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(BackupDatabase(path_, path_).status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(BackupDatabase(path_, dest).ok());
  auto again = BackupDatabase(path_, dest);
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(again.status().message().find("--force"), std::string::npos) << again.status();
  BackupOptions o;
  o.overwrite = true;
  EXPECT_TRUE(BackupDatabase(path_, dest, o).ok());
  // A file that is not a database at all.
  std::string text = (dir_ / "notes.txt").string();
  {
    std::ofstream f(text);
    for (int i = 0; i < 200; ++i) f << "this is not an SQLite database\n";
  }
  auto r = BackupDatabase(text, (dir_ / "x.db").string());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status();
  EXPECT_FALSE(fs::exists(dir_ / "x.db"));
  // An SQLite database that is not an sd2 store.
  std::string plain = (dir_ / "plain.db").string();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(plain.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  EXPECT_EQ(BackupDatabase(plain, (dir_ / "y.db").string()).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(dir_ / "y.db"));
  // A destination in a directory that does not exist.
  EXPECT_FALSE(BackupDatabase(path_, (dir_ / "no" / "such" / "dir.db").string()).ok());
}

TEST_F(BackupTest, IntegrityCheckFindsCorruption) {
  ASSERT_TRUE(AddMetrics(store_.get(), 0, 3000).ok());
  EXPECT_TRUE(CheckIntegrity(store_->raw()).ok());
  ASSERT_TRUE(store_->Exec("PRAGMA wal_checkpoint(TRUNCATE)").ok());
  store_.reset();
  auto good = CheckDatabaseFile(path_);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_TRUE(good->ok);
  EXPECT_GT(good->pages, 10);
  // Overwrite the middle of the file (b-tree pages, not the header) with garbage.
  {
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(good->page_size * (good->pages / 2));
    std::string junk(good->page_size * 3, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto bad = CheckDatabaseFile(path_);
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_FALSE(bad->ok);
  ASSERT_FALSE(bad->problems.empty());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  Status s = CheckIntegrity(db);
  sqlite3_close(db);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("integrity"), std::string::npos) << s;
  // A backup of a corrupt database is refused, and leaves nothing behind.
  auto r = BackupDatabase(path_, (dir_ / "copy.db").string());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status();
  EXPECT_FALSE(fs::exists(dir_ / "copy.db"));
  EXPECT_EQ(CheckDatabaseFile((dir_ / "absent.db").string()).status().code(),
            StatusCode::kNotFound);
}

TEST_F(BackupTest, FullDiskKeepsEveryCommittedTransaction) {
  ASSERT_TRUE(AddMetrics(store_.get(), 0, 100).ok());
  // Simulate a full disk: the database may not grow past its current size plus a few pages.
  auto pages = CheckDatabaseFile(path_);
  ASSERT_TRUE(pages.ok());
  ASSERT_TRUE(store_->Exec("PRAGMA wal_checkpoint(TRUNCATE)").ok());
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(store_->raw(), "PRAGMA page_count", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  int64_t now = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  ASSERT_TRUE(store_->Exec("PRAGMA max_page_count = " + std::to_string(now + 4)).ok());
  int64_t seq = 100, committed = 100;
  Status s;
  for (int i = 0; i < 1000 && s.ok(); ++i) {
    s = AddMetrics(store_.get(), seq, 50);
    if (s.ok()) committed += 50;
    seq += 50;
  }
  ASSERT_FALSE(s.ok()) << "the page limit was never reached";
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s;
  EXPECT_TRUE(IsDiskFull(s)) << s;
  EXPECT_FALSE(IsDiskFull(ResourceExhaustedError("message of 9 bytes exceeds the limit of 8")));
  // The failed transaction was rolled back; the connection still reads.
  auto n = store_->CountRows("metrics");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, committed);
  store_.reset();
  // After a restart (no page limit), every committed row is there and the file is sound.
  EXPECT_EQ(CountIn(path_, "metrics"), committed);
  auto report = CheckDatabaseFile(path_);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok);
}

}  // namespace
}  // namespace sd2::storage
