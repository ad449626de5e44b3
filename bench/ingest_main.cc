// bench_ingest: metric ingestion end to end (client -> ZeroMQ -> coordinator -> SQLite) against
// a raw batched SQLite insert of the same rows into the same table.
//
//   bench_ingest [ROWS] [BATCH]   (defaults 1000000 and 10000)
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "coordinator/client.h"
#include "coordinator/server.h"

namespace proto = sd2::protocol;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::vector<proto::MetricRow> Rows(int64_t from, int64_t n) {
  std::vector<proto::MetricRow> rows;
  rows.reserve(n);
  const char* names[] = {"loss", "lr", "acc", "grad_norm"};
  for (int64_t i = from; i < from + n; ++i) {
    rows.push_back({i, i / 4, names[i % 4], 1.0 / double(i + 1), 1.7e9 + double(i) * 1e-3});
  }
  return rows;
}

int Die(const sd2::Status& s) {
  std::cerr << "bench_ingest: " << s << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t total = argc > 1 ? std::atoll(argv[1]) : 1000000;
  int64_t batch = argc > 2 ? std::atoll(argv[2]) : 10000;
  auto dir =
      std::filesystem::temp_directory_path() / ("sd2_bench_ingest_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  struct Cleanup {
    std::filesystem::path d;
    ~Cleanup() { std::filesystem::remove_all(d); }
  } cleanup{dir};

  // Ours: a coordinator with one leased trial; one client sends every batch and waits for
  // its ack, as a worker's rank 0 does.
  auto store = sd2::storage::Store::Open((dir / "ours.db").string());
  if (!store.ok()) return Die(store.status());
  sd2::coordinator::SystemClock clock;
  sd2::coordinator::Core core(store->get(), &clock, {});
  if (auto s = core.Recover(); !s.ok()) return Die(s);
  sd2::coordinator::ServerOptions so;
  so.bind = "ipc://" + (dir / "c.sock").string();
  sd2::coordinator::Server server(&core, so);
  if (auto s = server.Bind(); !s.ok()) return Die(s);
  std::thread t([&] { (void)server.Run(); });
  double ours = 0;
  {
    sd2::coordinator::Client c(server.endpoint());
    proto::Submit sub;
    sub.name = "bench";
    sub.trials.push_back({});
    sub.trials[0].key = "bench";
    sub.trials[0].method = "smoke";
    if (auto r = c.CallAs<proto::Submitted>(sub); !r.ok()) return Die(r.status());
    proto::Register reg;
    reg.group = "g";
    if (auto r = c.CallAs<proto::Registered>(reg); !r.ok()) return Die(r.status());
    if (auto r = c.CallAs<proto::LeaseGrant>(proto::LeaseRequest{"g"}); !r.ok()) {
      return Die(r.status());
    }
    // Encoding is the worker's cost, not ingestion's: prepare the messages first.
    std::vector<std::string> messages;
    for (int64_t i = 0; i < total; i += batch) {
      messages.push_back(proto::Encode(proto::MetricsBatch{"bench", 1, Rows(i, batch)}));
    }
    auto t0 = Clock::now();
    for (const auto& m : messages) {
      auto r = c.CallRaw(m);
      if (!r.ok()) return Die(r.status());
      if (auto s = proto::ReplyStatus(*r); !s.ok()) return Die(s);
    }
    ours = Seconds(t0);
    (void)c.Call(proto::Shutdown{});
  }
  t.join();
  auto stored = (*store)->CountRows("metrics");
  if (!stored.ok() || *stored != total) {
    std::cerr << "bench_ingest: stored " << (stored.ok() ? *stored : -1) << " rows, expected "
              << total << "\n";
    return 1;
  }

  // Reference: the same rows inserted with one prepared statement, one transaction per batch,
  // into the same table (same schema, WAL, synchronous=NORMAL).
  auto ref_store = sd2::storage::Store::Open((dir / "ref.db").string());
  if (!ref_store.ok()) return Die(ref_store.status());
  if (auto s = (*ref_store)
                   ->Exec("INSERT INTO trials (id, trial_key, method, scale, seed, config_json, "
                          "created_at, "
                          "updated_at) VALUES (1, 'bench', 'smoke', 0, 0, '{}', 0, 0);"
                          "INSERT INTO attempts (id, trial_id, number, state, created_at) VALUES "
                          "(1, 1, 1, 'running', 0);");
      !s.ok()) {
    return Die(s);
  }
  sqlite3* db = (*ref_store)->raw();
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db,
                     "INSERT INTO metrics (attempt_id, seq, step, name, value, wall_time) "
                     "VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                     -1, &st, nullptr);
  std::vector<std::vector<proto::MetricRow>> batches;
  for (int64_t i = 0; i < total; i += batch) batches.push_back(Rows(i, batch));
  auto t1 = Clock::now();
  for (const auto& rows : batches) {
    sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
    for (const auto& r : rows) {
      sqlite3_bind_int64(st, 1, r.seq);
      sqlite3_bind_int64(st, 2, r.step);
      sqlite3_bind_text(st, 3, r.name.data(), int(r.name.size()), SQLITE_STATIC);
      sqlite3_bind_double(st, 4, r.value);
      sqlite3_bind_double(st, 5, r.time);
      if (sqlite3_step(st) != SQLITE_DONE) return Die(sd2::InternalError(sqlite3_errmsg(db)));
      sqlite3_reset(st);
    }
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  }
  double ref = Seconds(t1);
  sqlite3_finalize(st);
  double rate = double(total) / ours;
  double ratio = ref / ours;
  std::printf(
      "bench ingest: ours=%.3fs ref=%.3fs ratio=%.2fx (%lld metric rows in batches of %lld: "
      "ours %.0f rows/s end to end, raw SQLite %.0f rows/s; goal ratio >= 0.3 and >= 100000 "
      "rows/s: %s)\n",
      ours, ref, ratio, static_cast<long long>(total), static_cast<long long>(batch), rate,
      double(total) / ref, (ratio >= 0.3 && rate >= 100000) ? "met" : "NOT met");
  return 0;
}
