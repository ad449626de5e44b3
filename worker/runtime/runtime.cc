#include "worker/runtime/runtime.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "common/bounded_parse.h"
#include "common/file_util.h"
#include "common/protocol.h"
#include "coordinator/client.h"
#include "worker/method.h"
#include "worker/runtime/smoke_method.h"
#ifdef SD2_HAVE_TORCH_METHODS
#include "worker/train/methods.h"
#endif
#ifdef SD2_HAVE_BASELINES
#include "worker/baselines/register.h"
#endif

namespace sd2::worker {

namespace proto = sd2::protocol;
using coordinator::Client;
using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

std::atomic<bool> g_preempted{false};
extern "C" void OnPreemptSignal(int) { g_preempted.store(true); }

double WallNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

double Since(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

// Renews the lease from its own thread (with its own socket) so a long step never misses a
// heartbeat; learns of cancels and lost leases.
class Heartbeater {
 public:
  Heartbeater(const std::string& endpoint, proto::Register reg, std::string key, int64_t attempt,
              double period_s)
      : endpoint_(endpoint),
        reg_(std::move(reg)),
        key_(std::move(key)),
        attempt_(attempt),
        period_s_(period_s) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~Heartbeater() {
    {
      std::lock_guard<std::mutex> l(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  std::atomic<bool> cancelled{false};
  std::atomic<bool> lease_lost{false};
  std::atomic<int64_t> step{0};

 private:
  void Loop() {
    coordinator::ClientOptions co;
    co.timeout_s = co.give_up_s = std::max(1.0, period_s_);
    Client client(endpoint_, co);
    std::unique_lock<std::mutex> l(mu_);
    while (!done_) {
      l.unlock();
      Beat(client);
      l.lock();
      cv_.wait_for(l, std::chrono::duration<double>(period_s_), [this] { return done_; });
    }
  }
  void Beat(Client& client) {
    auto reply = client.Call(proto::Heartbeat{reg_.group, key_, attempt_, step.load()});
    if (!reply.ok()) return;  // coordinator away: keep trying; the lease decides
    Status s = proto::ReplyStatus(*reply);
    if (s.code() == StatusCode::kFailedPrecondition) {
      // The coordinator restarted and does not know us yet: register with our lease.
      proto::Register r = reg_;
      r.held = {{key_, attempt_}};
      auto reg = client.CallAs<proto::Registered>(r);
      if (reg.ok() && !reg->stop.empty()) lease_lost = true;
      return;
    }
    auto hb = proto::ParseAs<proto::HeartbeatReply>(*reply);
    if (hb.ok() && hb->stop) {
      if (hb->reason == "cancelled") {
        cancelled = true;
      } else {
        lease_lost = true;
      }
    }
  }

  std::string endpoint_;
  proto::Register reg_;
  std::string key_;
  int64_t attempt_;
  double period_s_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// work_dir/<key>, created. The key is checked again here (protocol::IsValidTrialKey): one plain
// name, so the directory is a child of work_dir; a symlink planted there is refused, whatever it
// points at, so nothing the method writes lands outside --work-dir.
StatusOr<std::string> TrialWorkDir(const std::string& work_dir, const std::string& key) {
  if (!proto::IsValidTrialKey(key)) {
    return InvalidArgumentError("trial key \"" + key.substr(0, 64) +
                                "\" is no plain name: refusing it as a directory under " +
                                work_dir);
  }
  SD2_RETURN_IF_ERROR(MakeDirs(work_dir));
  std::error_code ec;
  const std::filesystem::path root = std::filesystem::canonical(work_dir, ec);
  if (ec) return UnavailableError(work_dir + ": " + ec.message());
  const std::filesystem::path dir = root / key;
  if (std::filesystem::is_symlink(std::filesystem::symlink_status(dir, ec))) {
    return FailedPreconditionError(dir.string() + " is a symlink (to " +
                                   std::filesystem::read_symlink(dir, ec).string() +
                                   "): a trial's work dir must be a directory inside " + work_dir);
  }
  SD2_RETURN_IF_ERROR(MakeDirs(dir.string()));
  const std::filesystem::path real = std::filesystem::canonical(dir, ec);
  if (ec || real.parent_path() != root) {
    return FailedPreconditionError(dir.string() + " resolves outside " + work_dir);
  }
  return dir.string();
}

// Is `path` (resolved through the symlinks that exist) inside the resolved `root`?
bool PathIsUnder(const std::string& path, const std::string& root) {
  std::error_code ec;
  const std::filesystem::path p = std::filesystem::weakly_canonical(path, ec);
  if (ec) return false;
  const std::filesystem::path r = std::filesystem::weakly_canonical(root, ec);
  if (ec) return false;
  auto pi = p.begin();
  for (auto ri = r.begin(); ri != r.end(); ++ri, ++pi) {
    if (ri->empty()) continue;  // a trailing separator
    if (pi == p.end() || *pi != *ri) return false;
  }
  return true;
}

// The paths a trial config makes the worker read: a probe's encoder trial is a trial key (it
// names a sibling work dir); with allowed read roots (--allow-read-root), data.manifest,
// data.root, every eval's manifest and root, and hparams.pretrained must each lie under one of
// them. Without any, read paths are not restricted (the default: the coordinator's operators
// are trusted with the worker's file system).
Status CheckReadPaths(const GroupOptions& o, const json& config) {
  if (!config.is_object()) return OkStatus();
  if (auto p = config.find("probe"); p != config.end() && p->is_object()) {
    const json of = p->value("of", json());
    if (!of.is_string() || !proto::IsValidTrialKey(of.get<std::string>())) {
      return InvalidArgumentError("config.probe.of " + of.dump() +
                                  " is not a trial key: it names the encoder's work dir");
    }
  }
  if (o.allow_read_roots.empty()) return OkStatus();
  std::vector<std::pair<std::string, std::string>> paths;  // (config field, path)
  auto add = [&](const json& obj, const char* key, const std::string& field) {
    if (!obj.is_object()) return;
    auto it = obj.find(key);
    if (it != obj.end() && it->is_string() && !it->get<std::string>().empty()) {
      paths.emplace_back(field, it->get<std::string>());
    }
  };
  const json data = config.value("data", json::object());
  add(data, "manifest", "data.manifest");
  add(data, "root", "data.root");
  add(config.value("hparams", json::object()), "pretrained", "hparams.pretrained");
  const json eval = config.value("eval", json::array());
  for (size_t i = 0; eval.is_array() && i < eval.size(); ++i) {
    add(eval[i], "manifest", "eval[" + std::to_string(i) + "].manifest");
    add(eval[i], "root", "eval[" + std::to_string(i) + "].root");
  }
  for (const auto& [field, path] : paths) {
    bool allowed = false;
    for (const std::string& root : o.allow_read_roots) allowed = allowed || PathIsUnder(path, root);
    if (!allowed) {
      std::string roots;
      for (const std::string& root : o.allow_read_roots)
        roots += (roots.empty() ? "" : ", ") + root;
      return InvalidArgumentError(field + " " + path +
                                  " is outside the worker's allowed read roots (" + roots +
                                  "; sd2-worker --allow-read-root)");
    }
  }
  return OkStatus();
}

// INVALID_ARGUMENT naming the first score that is NaN or infinite.
Status CheckScoresFinite(const std::string& eval_set, const std::vector<ScoreRow>& rows) {
  for (size_t i = 0; i < rows.size(); ++i) {
    const double v = rows[i].score;
    if (std::isfinite(v)) continue;
    return InvalidArgumentError("scores of " + eval_set + ": row " + std::to_string(i) +
                                " (sample '" + rows[i].sample_id + "') has score " +
                                (std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf")) +
                                "; no score of the set was kept (did training diverge?)");
  }
  return OkStatus();
}

// Rank 0's reports of one attempt: buffered metrics with sequence numbers, score batches.
class Reporter {
 public:
  Reporter(Client* client, const GroupOptions& o, std::string group, std::string key,
           int64_t attempt, std::atomic<bool>* lease_lost)
      : client_(client),
        o_(o),
        group_(std::move(group)),
        key_(std::move(key)),
        attempt_(attempt),
        lease_lost_(lease_lost) {}

  void Metric(int64_t step, const std::string& name, double value) {
    buf_.push_back({seq_++, step, name, value, WallNow()});
    if (buf_.size() >= o_.metrics_batch || Since(last_flush_) >= o_.metrics_flush_s) {
      (void)Flush(false);
    }
  }
  // Sends buffered metrics; with `must`, an error reply or no reply is retried (UntilAcked)
  // and the error is returned when the coordinator never acknowledged them.
  Status Flush(bool must) {
    last_flush_ = SteadyClock::now();
    if (buf_.empty()) return OkStatus();
    proto::MetricsBatch batch{key_, attempt_, buf_, group_};
    Status s = must ? UntilAcked(batch) : client_->CallAs<proto::Ack>(batch).status();
    if (s.ok() || s.code() == StatusCode::kAborted) buf_.clear();
    if (s.code() == StatusCode::kAborted) *lease_lost_ = true;
    return must ? s : OkStatus();
  }
  // Every score of the set reaches the coordinator, or the attempt fails: non-finite scores
  // are refused before any is sent; each batch is retried (UntilAcked).
  Status Scores(const std::string& eval_set, const std::vector<ScoreRow>& rows) {
    SD2_RETURN_IF_ERROR(CheckScoresFinite(eval_set, rows));
    for (size_t i = 0; i < rows.size() || i == 0; i += o_.scores_batch) {
      proto::ScoresBatch b{key_, attempt_, score_seq_++, eval_set, {}, group_};
      for (size_t j = i; j < std::min(rows.size(), i + o_.scores_batch); ++j) {
        b.rows.push_back(
            {rows[j].sample_id, rows[j].video_id, rows[j].label, rows[j].type, rows[j].score});
      }
      Status s = UntilAcked(b);
      if (!s.ok()) return s.WithPrefix("scores of " + eval_set);
      if (rows.empty()) break;
    }
    return OkStatus();
  }
  void Checkpoint(int64_t step, const std::string& path) {
    auto r = client_->CallAs<proto::Ack>(
        proto::CheckpointRecord{key_, attempt_, step, path, "", group_});
    if (!r.ok() && r.status().code() == StatusCode::kAborted) *lease_lost_ = true;
  }

 private:
  // Sends `request` until it is acknowledged. An error reply (a coordinator whose disk is full,
  // or restarting) and no reply at all (the client's own resends ran out) are retried with
  // back-off, 0.1 s doubling to 2 s, until give_up_s after the first try; ABORTED (the lease is
  // lost) is final at once.
  template <typename T>
  Status UntilAcked(const T& request) {
    const auto start = SteadyClock::now();
    double backoff = 0.1;
    for (int tries = 1;; ++tries) {
      auto r = client_->CallAs<proto::Ack>(request);
      if (r.ok()) return OkStatus();
      if (r.status().code() == StatusCode::kAborted) {
        *lease_lost_ = true;
        return r.status();
      }
      if (Since(start) + backoff > o_.give_up_s) {
        char took[32];
        std::snprintf(took, sizeof took, "%.1f", Since(start));
        return r.status().WithPrefix("not acknowledged after " + std::to_string(tries) +
                                     (tries == 1 ? " try" : " tries") + " in " + took + " s");
      }
      std::this_thread::sleep_for(std::chrono::duration<double>(backoff));
      backoff = std::min(2.0, backoff * 2);
    }
  }

  Client* client_;
  const GroupOptions& o_;
  std::string group_;
  std::string key_;
  int64_t attempt_;
  std::atomic<bool>* lease_lost_;
  std::vector<proto::MetricRow> buf_;
  int64_t seq_ = 0;
  int64_t score_seq_ = 0;
  SteadyClock::time_point last_flush_ = SteadyClock::now();
};

// Every rank: did any rank fail? (sum of flags)
bool AnyRankFailed(Communicator* comm, bool failed) {
  double f = failed ? 1.0 : 0.0;
  if (!comm->AllReduceSum(&f, 1).ok()) return true;
  return f > 0;
}

struct TrialOutcome {
  std::string outcome;  // succeeded | failed | cancelled | preempted | "" (lease lost)
  std::string error;
  json variant = json::object();
};

// Runs a granted trial on every rank; rank 0 reports. Returns the outcome on rank 0.
TrialOutcome RunTrial(const GroupOptions& o, Communicator* comm, const proto::Register& reg,
                      Client* client, const proto::LeaseGrant& g, double heartbeat_s) {
  bool root = comm->rank() == 0;
  TrialOutcome out;
  std::unique_ptr<Heartbeater> hb;
  std::atomic<bool> local_lost{false};
  std::unique_ptr<Reporter> rep;
  if (root) {
    hb =
        std::make_unique<Heartbeater>(client->endpoint(), reg, g.trial_key, g.attempt, heartbeat_s);
    rep = std::make_unique<Reporter>(client, o, reg.group, g.trial_key, g.attempt, &local_lost);
  }
  TrialContext ctx;
  ctx.config = g.config;
  ctx.trial_key = g.trial_key;
  ctx.attempt = static_cast<int>(g.attempt);
  StatusOr<std::string> work_dir = TrialWorkDir(o.work_dir, g.trial_key);
  ctx.work_dir = work_dir.ok() ? *work_dir : std::string();
  ctx.comm = o.train_comm ? o.train_comm : comm;
  ctx.host_comm = comm;
  ctx.device = o.device.empty() ? "cpu" : o.device;
  Status dir = work_dir.status();
  if (dir.ok()) dir = CheckReadPaths(o, g.config);
  Status s;
  Status scores_status;  // rank 0: the first score upload that failed
  if (!dir.ok()) {
    s = dir;
  } else {
    ctx.report_metric = [&](int64_t step, const std::string& name, double value) {
      if (!root) return;
      hb->step = step;
      rep->Metric(step, name, value);
    };
    ctx.report_scores = [&](const std::string& set, const std::vector<ScoreRow>& rows) {
      // The first set that does not reach the coordinator fails the attempt.
      if (root && scores_status.ok()) scores_status = rep->Scores(set, rows);
    };
    ctx.report_checkpoint = [&](int64_t step, const std::string& path) {
      if (root) rep->Checkpoint(step, path);
    };
    ctx.report_variant = [&](const json& v) {
      if (root && v.is_object()) out.variant.update(v);
    };
    ctx.should_stop = [&]() {
      return g_preempted.load() ||
             (root && (hb->cancelled.load() || hb->lease_lost.load() || local_lost.load()));
    };
    ctx.preempted = [&]() { return g_preempted.load(); };
    auto method = MethodRegistry::Global().Create(g.config.value("method", std::string()));
    if (!method.ok()) {
      s = method.status();
    } else {
      try {
        s = (*method)->Run(ctx);
      } catch (const std::exception& e) {
        s = InternalError(std::string("method threw: ") + e.what());
      }
    }
  }
  bool any_failed = AnyRankFailed(comm, !s.ok() && s.code() != StatusCode::kCancelled);
  if (!root) return out;
  Status flushed = rep->Flush(true);
  bool lost = hb->lease_lost.load() || local_lost.load();
  hb.reset();
  if (lost) return out;  // someone else holds this trial now: report nothing
  if (s.ok() && !any_failed && flushed.ok() && scores_status.ok()) {
    out.outcome = "succeeded";
  } else if (s.code() == StatusCode::kCancelled) {
    out.outcome = g_preempted.load() ? "preempted" : "cancelled";
  } else {
    out.outcome = "failed";
    out.error = !s.ok()               ? s.ToString()
                : any_failed          ? std::string("another rank of the group failed")
                : !scores_status.ok() ? scores_status.ToString()
                                      : flushed.ToString();
  }
  return out;
}

}  // namespace

void InstallPreemptionHandlers() {
  std::signal(SIGTERM, OnPreemptSignal);
  std::signal(SIGUSR1, OnPreemptSignal);
}
bool PreemptionRequested() { return g_preempted.load(); }
void TEST_ResetPreemption() { g_preempted.store(false); }

void RegisterAllMethods() {
  RegisterSmokeMethod();
#ifdef SD2_HAVE_TORCH_METHODS
  RegisterTorchMethods();
#endif
#ifdef SD2_HAVE_BASELINES
  RegisterBaselineMethods();
#endif
}

Status RunGroup(const GroupOptions& o, Communicator* comm) {
  if (o.devices == "cuda" && o.device.rfind("cuda:", 0) != 0) {
    return InvalidArgumentError("a cuda group needs each rank's device (cuda:N), got '" + o.device +
                                "'");
  }
  if (o.train_comm && o.train_comm->size() != comm->size()) {
    return InvalidArgumentError("the training communicator has " +
                                std::to_string(o.train_comm->size()) + " ranks, the group " +
                                std::to_string(comm->size()));
  }
  bool root = comm->rank() == 0;
  std::unique_ptr<Client> client;
  proto::Register reg;
  double heartbeat_s = 1;
  if (root) {
    coordinator::ClientOptions co;
    co.timeout_s = 5;
    co.give_up_s = o.give_up_s;
    client = std::make_unique<Client>(o.coordinator, co);
    reg.group = o.group_id.empty() ? HostName() + ":" + std::to_string(::getpid()) : o.group_id;
    reg.host = HostName();
    reg.size = comm->size();
    reg.devices = o.devices;
    reg.ranks = o.ranks;
    reg.slurm = o.slurm;
#ifdef SD2_VERSION
    reg.version = SD2_VERSION;
#endif
#ifdef SD2_GIT_COMMIT
    reg.git_commit = SD2_GIT_COMMIT;
#endif
    reg.versions = {{"protocol", proto::kVersion}};
  }
  int trials = 0;
  auto idle_since = SteadyClock::now();
  bool registered = false;
  Status exit_status;
  while (true) {
    // Rank 0 decides; every rank learns the decision by broadcast.
    json cmd;
    if (root) {
      if (o.max_trials >= 0 && trials >= o.max_trials) {
        cmd = {{"cmd", "exit"}};
      } else if (g_preempted.load()) {
        cmd = {{"cmd", "exit"}};
      } else {
        if (!registered) {
          auto r = client->CallAs<proto::Registered>(reg);
          if (r.ok()) {
            registered = true;
            heartbeat_s = r->heartbeat_s;
          } else {
            exit_status = r.status().WithPrefix("register");
          }
        }
        if (!exit_status.ok()) {
          cmd = {{"cmd", "exit"}};
        } else {
          auto reply = client->Call(proto::LeaseRequest{reg.group});
          if (!reply.ok()) {
            exit_status = reply.status();
            cmd = {{"cmd", "exit"}};
          } else if (reply->type == proto::LeaseGrant::kType) {
            cmd = {{"cmd", "run"}, {"grant", reply->body}};
          } else if (reply->type == proto::NoWork::kType) {
            auto nw = proto::ParseAs<proto::NoWork>(*reply);
            bool idle_too_long = o.idle_exit_s >= 0 && Since(idle_since) >= o.idle_exit_s;
            if ((nw.ok() && nw->drained && o.exit_when_drained) || idle_too_long) {
              cmd = {{"cmd", "exit"}};
            } else {
              cmd = {{"cmd", "sleep"}, {"s", nw.ok() ? nw->retry_after_s : 1.0}};
            }
          } else {
            Status s = proto::ReplyStatus(*reply);
            if (s.code() == StatusCode::kFailedPrecondition) registered = false;
            cmd = {{"cmd", "sleep"}, {"s", 0.2}};
            if (s.ok()) exit_status = InternalError("unexpected reply '" + reply->type + "'");
            if (s.ok()) cmd = {{"cmd", "exit"}};
          }
        }
      }
    }
    std::string bytes = root ? cmd.dump() : std::string();
    SD2_RETURN_IF_ERROR(comm->Broadcast(&bytes, 0));
    if (!root) {
      // The grant's body (at most kMaxMessageDepth levels) inside the command object.
      auto parsed = ParseJsonBounded(bytes, JsonLimits{proto::kMaxMessageDepth + 1});
      if (parsed.ok()) cmd = *std::move(parsed);
    }
    std::string what = cmd.is_object() ? cmd.value("cmd", "") : "";
    if (what == "exit") break;
    if (what == "sleep") {
      std::this_thread::sleep_for(std::chrono::duration<double>(cmd.value("s", 0.5)));
      continue;
    }
    if (what != "run") return InternalError("bad command from rank 0: " + bytes);
    proto::LeaseGrant grant;
    SD2_RETURN_IF_ERROR(proto::Parse(cmd["grant"], &grant));
    TrialOutcome out = RunTrial(o, comm, reg, client.get(), grant, heartbeat_s);
    ++trials;
    idle_since = SteadyClock::now();
    if (root && !out.outcome.empty()) {
      auto r = client->CallAs<proto::Ack>(proto::Result{reg.group, grant.trial_key, grant.attempt,
                                                        out.outcome, out.error, out.variant});
      if (!r.ok() && r.status().code() != StatusCode::kAborted) {
        exit_status = r.status().WithPrefix("result of " + grant.trial_key);
      }
      std::cerr << "sd2-worker " << reg.group << ": trial " << grant.trial_key << " attempt "
                << grant.attempt << " " << out.outcome
                << (out.error.empty() ? "" : ": " + out.error) << std::endl;
    }
  }
  return exit_status;
}

Status RunLocal(const json& config, const std::string& trial_key, const std::string& out_dir,
                Communicator* comm) {
  bool root = comm->rank() == 0;
  SD2_RETURN_IF_ERROR(MakeDirs(out_dir + "/work"));
  std::ofstream metrics;
  if (root) {
    metrics.open(out_dir + "/metrics.jsonl", std::ios::app);
    if (!metrics) return UnavailableError(out_dir + "/metrics.jsonl: cannot open");
  }
  int64_t seq = 0;
  Status write_status;
  TrialContext ctx;
  ctx.config = config;
  ctx.trial_key = trial_key;
  ctx.work_dir = out_dir + "/work";
  ctx.comm = comm;
  ctx.host_comm = comm;
  ctx.report_metric = [&](int64_t step, const std::string& name, double value) {
    if (!root) return;
    metrics << json{{"seq", seq++},
                    {"step", step},
                    {"name", name},
                    {"value", value},
                    {"time", WallNow()}}
                   .dump()
            << "\n";
  };
  ctx.report_scores = [&](const std::string& set, const std::vector<ScoreRow>& rows) {
    if (!root) return;
    if (Status finite = CheckScoresFinite(set, rows); !finite.ok()) {
      if (write_status.ok()) write_status = finite;
      return;
    }
    auto quote = [](const std::string& s) {
      if (s.find_first_of(",\"\n") == std::string::npos) return s;
      std::string q = "\"";
      for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
      return q + "\"";
    };
    std::string csv = "sample,video,label,type,score\n";
    char num[64];
    for (const auto& r : rows) {
      std::snprintf(num, sizeof num, "%.17g", r.score);
      csv += quote(r.sample_id) + "," + quote(r.video_id) + "," + std::to_string(r.label) + "," +
             quote(r.type) + "," + num + "\n";
    }
    Status s = MakeDirs(out_dir + "/" + set);
    if (s.ok()) s = WriteFileAtomic(out_dir + "/" + set + "/scores.csv", csv);
    if (!s.ok() && write_status.ok()) write_status = s;
  };
  ctx.report_checkpoint = [](int64_t, const std::string&) {};
  ctx.report_variant = [](const json&) {};
  ctx.should_stop = [] { return g_preempted.load(); };
  ctx.preempted = [] { return g_preempted.load(); };
  SD2_ASSIGN_OR_RETURN(auto method,
                       MethodRegistry::Global().Create(config.value("method", std::string())));
  Status s;
  try {
    s = method->Run(ctx);
  } catch (const std::exception& e) {
    s = InternalError(std::string("method threw: ") + e.what());
  }
  SD2_RETURN_IF_ERROR(s);
  return write_status;
}

}  // namespace sd2::worker
