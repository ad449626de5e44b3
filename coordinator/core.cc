#include "coordinator/core.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <iostream>
#include <limits>

#include "common/bounded_parse.h"
#include "storage/integrity.h"

namespace sd2::coordinator {

using nlohmann::json;
namespace proto = sd2::protocol;

double SystemClock::Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double SystemClock::Monotonic() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool FirstFitPolicy::Fits(const GroupState& group, const QueuedTrial& trial) const {
  if (trial.ranks > group.size) return false;
  if (trial.gpus_per_rank > 0 && group.devices != "cuda") return false;
  return true;
}

std::string AttemptHosts(const GroupState& g) {
  std::string out;
  std::set<std::string> seen;
  for (const auto& r : g.ranks) {
    if (!seen.insert(r.host).second) continue;
    out += (out.empty() ? "" : ",") + r.host;
  }
  return out.empty() ? g.host : out;
}

std::string AttemptDevices(const GroupState& g) {
  std::string out;
  for (const auto& r : g.ranks) out += (out.empty() ? "" : ",") + r.device;
  return out.empty() ? g.devices : out;
}

std::string WaitReason(const QueuedTrial& q, const std::vector<const GroupState*>& groups,
                       const SchedulingPolicy& policy, double now, const std::string& dependency) {
  auto plural = [](size_t n, const std::string& one, const std::string& many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
  };
  if (q.not_before > now) {
    return "retry back-off (" +
           std::to_string(static_cast<int64_t>(std::ceil(q.not_before - now))) + " s left)";
  }
  if (!dependency.empty()) return "waits for trial " + dependency;
  size_t fitting = 0, busy = 0;
  for (const GroupState* g : groups) {
    if (!policy.Fits(*g, q)) continue;
    ++fitting;
    if (g->attempt_id) ++busy;
  }
  if (fitting > busy) return "ready: a fitting group is idle";
  if (fitting > 0) {
    return "waits for a free group (" + plural(busy, "fitting group", "fitting groups") + " busy)";
  }
  std::string need = std::string("needs ") + (q.gpus_per_rank > 0 ? "cuda groups" : "groups");
  if (q.ranks > 1) need += " of >= " + std::to_string(q.ranks) + " ranks";
  if (groups.empty()) return need + "; no worker groups registered";
  // What is there instead: "2 cpu groups", "2 cpu groups of 1 rank, 1 cuda group of 4 ranks".
  std::map<std::pair<std::string, int>, size_t> kinds;
  for (const GroupState* g : groups) kinds[{g->devices, q.ranks > 1 ? g->size : 0}]++;
  std::string have;
  for (const auto& [kind, n] : kinds) {
    have += (have.empty() ? "" : ", ") + plural(n, kind.first + " group", kind.first + " groups");
    if (kind.second > 0) have += " of " + plural(static_cast<size_t>(kind.second), "rank", "ranks");
  }
  return need + "; " + have + " registered";
}

namespace {

// Runs `fn` in a transaction; the callbacks it collects run only after the commit succeeded,
// so memory never runs ahead of the database.
Status Commit(storage::Store* store,
              const std::function<Status(std::vector<std::function<void()>>*)>& fn) {
  std::vector<std::function<void()>> after;
  Status s = store->InTransaction([&]() { return fn(&after); });
  if (!s.ok()) return s;
  for (auto& f : after) f();
  return OkStatus();
}

// Priorities travel as int64 and are stored as int: each part is bounded so that their sum and
// its negation (the queue key) fit in an int.
constexpr int64_t kMaxPriority = 1'000'000'000;

StatusOr<int> SumPriority(int64_t sweep, int64_t trial, const std::string& key) {
  if (sweep < -kMaxPriority || sweep > kMaxPriority || trial < -kMaxPriority ||
      trial > kMaxPriority) {
    return InvalidArgumentError("priority of " + (key.empty() ? "the sweep" : "trial " + key) +
                                " is outside [-" + std::to_string(kMaxPriority) + ", " +
                                std::to_string(kMaxPriority) + "]");
  }
  return static_cast<int>(sweep + trial);
}

// Attempt numbers travel as int64 and are stored as int; a number no attempt can have is
// NotFound, never truncated onto another attempt's number.
StatusOr<int> AttemptNumber(const std::string& key, int64_t attempt) {
  if (attempt < 1 || attempt > std::numeric_limits<int>::max()) {
    return NotFoundError("trial '" + key + "' has no attempt " + std::to_string(attempt));
  }
  return static_cast<int>(attempt);
}

json ParseJsonOr(const std::string& text, json def) {
  if (text.empty()) return def;
  auto j = ParseJsonBounded(text);
  return j.ok() ? *std::move(j) : def;
}

}  // namespace

Core::Core(storage::Store* store, Clock* clock, CoreOptions options,
           std::unique_ptr<SchedulingPolicy> policy)
    : store_(store), clock_(clock), options_(std::move(options)), policy_(std::move(policy)) {
  if (!policy_) policy_ = std::make_unique<FirstFitPolicy>();
}

QueuedTrial Core::ToQueued(const storage::TrialRow& t) {
  QueuedTrial q;
  q.id = t.id;
  q.priority = t.priority;
  q.not_before = t.not_before;
  q.depends_on = t.depends_on.value_or(0);
  json r = ParseJsonOr(t.resources_json, json::object());
  if (r.is_object()) {
    if (r.contains("ranks") && r["ranks"].is_number_integer()) {
      q.ranks = static_cast<int>(std::clamp<int64_t>(r["ranks"].get<int64_t>(), 1, 1 << 20));
    }
    if (r.contains("gpus_per_rank") && r["gpus_per_rank"].is_number_integer()) {
      q.gpus_per_rank =
          static_cast<int>(std::clamp<int64_t>(r["gpus_per_rank"].get<int64_t>(), 0, 1 << 20));
    }
  }
  return q;
}

void Core::Enqueue(const storage::TrialRow& t) { queue_[{-t.priority, t.id}] = ToQueued(t); }

Status Core::Event(const std::string& kind, std::optional<int64_t> sweep,
                   std::optional<int64_t> trial, std::optional<int64_t> attempt,
                   const std::string& message) {
  return store_->AddEvent({0, clock_->Now(), kind, sweep, trial, attempt, message});
}

Status Core::Recover() {
  trials_.clear();
  trial_by_key_.clear();
  queue_.clear();
  leases_.clear();
  lease_by_trial_.clear();
  sweep_pending_.clear();
  double now = clock_->Now();
  SD2_ASSIGN_OR_RETURN(auto trials, store_->ListTrials());
  for (const auto& t : trials) {
    TrialInfo info;
    info.key = t.trial_key;
    info.state = t.state;
    info.attempts = t.attempts;
    info.max_attempts = t.max_attempts;
    trials_[t.id] = info;
    trial_by_key_[t.trial_key] = t.id;
  }
  // Failures per trial, and the attempts that still hold leases.
  for (const char* state : {"failed", "lost"}) {
    SD2_ASSIGN_OR_RETURN(auto rows, store_->ListAttemptsInState(state));
    for (const auto& a : rows) trials_[a.trial_id].failures++;
  }
  std::vector<storage::AttemptRow> active;
  for (const char* state : {"leased", "running"}) {
    SD2_ASSIGN_OR_RETURN(auto rows, store_->ListAttemptsInState(state));
    active.insert(active.end(), rows.begin(), rows.end());
  }
  for (const auto& a : active) {
    Lease l;
    l.attempt_id = a.id;
    l.trial_id = a.trial_id;
    l.number = a.number;
    l.trial_key = trials_[a.trial_id].key;
    l.group = a.group_id;
    l.expires_at = clock_->Monotonic() + options_.lease_s;  // measured from the restart
    l.running = a.state == "running";
    leases_[a.id] = l;
    lease_by_trial_[a.trial_id] = a.id;
  }
  // Running trials without an active attempt (should not happen) go back to the queue.
  for (const auto& t : trials) {
    if (t.state == "queued" || (t.state == "running" && !lease_by_trial_.count(t.id))) {
      storage::TrialRow q = t;
      if (t.state == "running") {
        q.state = "queued";
        q.updated_at = now;
        SD2_RETURN_IF_ERROR(store_->UpdateTrial(q));
        trials_[t.id].state = "queued";
      }
      Enqueue(q);
    }
  }
  SD2_ASSIGN_OR_RETURN(auto sweeps, store_->ListSweeps());
  for (const auto& s : sweeps) {
    SD2_ASSIGN_OR_RETURN(auto ids, store_->SweepTrialIds(s.id));
    for (int64_t id : ids) trials_[id].sweeps.push_back(s.id);
    if (s.state != "active") continue;
    auto& pending = sweep_pending_[s.id];
    for (int64_t id : ids) {
      const std::string& st = trials_[id].state;
      if (!IsTerminal(st) || lease_by_trial_.count(id)) pending.insert(id);
    }
    if (pending.empty()) {
      SD2_RETURN_IF_ERROR(store_->SetSweepState(s.id, "done"));
      sweep_pending_.erase(s.id);
    }
  }
  SD2_ASSIGN_OR_RETURN(auto groups, store_->ListGroups());
  for (const auto& g : groups) {
    GroupState gs;
    gs.id = g.id;
    gs.host = g.host;
    gs.size = g.size;
    gs.devices = g.devices;
    gs.version = g.version;
    gs.last_seen = g.last_seen;
    for (const auto& [aid, l] : leases_) {
      if (l.group == g.id) gs.attempt_id = aid;
    }
    groups_[g.id] = gs;
  }
  if (options_.expire_leases_on_recover) {
    std::vector<Lease> old;
    for (const auto& [aid, l] : leases_) old.push_back(l);
    for (const auto& l : old) {
      SD2_RETURN_IF_ERROR(Commit(store_, [&](auto* after) {
        return EndAttempt(l, "preempted", "the job that ran it ended", json(), after);
      }));
    }
  }
  return Event("recover", std::nullopt, std::nullopt, std::nullopt,
               std::to_string(queue_.size()) + " queued, " + std::to_string(leases_.size()) +
                   " leases kept");
}

std::string Core::HandleBytes(std::string_view bytes, size_t max_bytes) {
  counters_.messages++;
  auto msg = proto::Decode(bytes, max_bytes);
  if (!msg.ok()) {
    counters_.malformed++;
    counters_.errors++;
    return proto::ErrorReply(msg.status());
  }
  counters_.messages--;  // Handle counts it
  return Handle(*msg);
}

std::string Core::Handle(const proto::Message& msg) {
  counters_.messages++;
  StatusOr<std::string> r = [&]() -> StatusOr<std::string> {
    if (!disk_full_.ok() &&
        (msg.type == proto::Submit::kType || msg.type == proto::LeaseRequest::kType)) {
      return ResourceExhaustedError(
          "the coordinator stopped accepting work: the database disk is full (" +
          disk_full_.message() + "); free space and restart it");
    }
    try {
      return Dispatch(msg);
    } catch (const std::exception& e) {
      return InternalError(std::string("coordinator: ") + e.what());
    }
  }();
  if (!r.ok()) {
    counters_.errors++;
    if (disk_full_.ok() && storage::IsDiskFull(r.status())) {
      disk_full_ = r.status();
      std::cerr << "sd2-coordinator: database disk full, no longer accepting work: " << r.status()
                << std::endl;
    }
    if (r.status().code() == StatusCode::kInvalidArgument) counters_.malformed++;
    return proto::ErrorReply(r.status());
  }
  return *r;
}

StatusOr<std::string> Core::Dispatch(const proto::Message& msg) {
  const std::string& t = msg.type;
#define SD2_ROUTE(Type, Fn)                                         \
  if (t == proto::Type::kType) {                                    \
    SD2_ASSIGN_OR_RETURN(auto m, proto::ParseAs<proto::Type>(msg)); \
    return Fn(m);                                                   \
  }
  SD2_ROUTE(Heartbeat, OnHeartbeat)
  SD2_ROUTE(MetricsBatch, OnMetrics)
  SD2_ROUTE(ScoresBatch, OnScores)
  SD2_ROUTE(LeaseRequest, OnLeaseRequest)
  SD2_ROUTE(Result, OnResult)
  SD2_ROUTE(CheckpointRecord, OnCheckpoint)
  SD2_ROUTE(Register, OnRegister)
  SD2_ROUTE(Submit, OnSubmit)
  SD2_ROUTE(Cancel, OnCancel)
  SD2_ROUTE(Resume, OnResume)
  SD2_ROUTE(Logs, OnLogs)
#undef SD2_ROUTE
  if (t == proto::StatusRequest::kType) {
    SD2_ASSIGN_OR_RETURN(auto m, proto::ParseAs<proto::StatusRequest>(msg));
    SD2_ASSIGN_OR_RETURN(json j, StatusJson(m.sweep));
    return proto::EncodeRaw("status_reply", std::move(j));
  }
  if (t == proto::Shutdown::kType) {
    shutdown_requested_ = true;
    return proto::Encode(proto::Ack{});
  }
  return InvalidArgumentError("unknown message type '" + t + "'");
}

// ---- groups ----

StatusOr<std::string> Core::OnRegister(const proto::Register& m) {
  double now = clock_->Now();
  GroupState g;
  auto it = groups_.find(m.group);
  if (it != groups_.end()) g = it->second;
  g.id = m.group;
  g.host = m.host;
  if (m.size < 1 || m.size > (1 << 20)) {
    return InvalidArgumentError("register: group size " + std::to_string(m.size) +
                                " is outside [1, 1048576]");
  }
  g.size = static_cast<int>(m.size);
  g.devices = m.devices;
  g.version = m.version;
  g.git_commit = m.git_commit;
  g.versions_json = m.versions.dump();
  g.ranks = m.ranks;
  g.slurm = m.slurm;
  g.last_seen = now;
  proto::Registered reply;
  reply.heartbeat_s = options_.heartbeat_s;
  reply.lease_s = options_.lease_s;
  int64_t kept = 0;
  for (const auto& ref : m.held) {
    Lease* l = FindLease(ref.trial_key, ref.attempt);
    if (l && l->group == m.group && !kept) {
      l->expires_at = clock_->Monotonic() + options_.lease_s;
      kept = l->attempt_id;
      reply.keep.push_back(ref);
    } else {
      reply.stop.push_back(ref);
    }
  }
  // A lease this group held in our books but no longer claims is lost.
  std::vector<Lease> abandoned;
  for (const auto& [aid, l] : leases_) {
    if (l.group == m.group && aid != kept) abandoned.push_back(l);
  }
  SD2_RETURN_IF_ERROR(Commit(store_, [&](auto* after) -> Status {
    SD2_RETURN_IF_ERROR(store_->UpsertGroup(
        {g.id, g.host, g.size, g.devices, g.version, kept ? "busy" : "idle", now}));
    for (const auto& l : abandoned) {
      SD2_RETURN_IF_ERROR(EndAttempt(l, "lost", "group re-registered without it", json(), after));
    }
    return OkStatus();
  }));
  g.attempt_id = kept;
  groups_[g.id] = g;
  return proto::Encode(reply);
}

StatusOr<std::string> Core::GrantFor(GroupState& g, const Lease& lease) {
  SD2_ASSIGN_OR_RETURN(auto trial, store_->GetTrial(lease.trial_id));
  proto::LeaseGrant grant;
  grant.trial_key = lease.trial_key;
  grant.attempt = lease.number;
  grant.config = ParseJsonOr(trial.config_json, json::object());
  grant.resources = ParseJsonOr(trial.resources_json, json::object());
  grant.lease_s = options_.lease_s;
  g.attempt_id = lease.attempt_id;
  return proto::Encode(grant);
}

StatusOr<std::string> Core::OnLeaseRequest(const proto::LeaseRequest& m) {
  auto git = groups_.find(m.group);
  if (git == groups_.end()) {
    return FailedPreconditionError("unknown group '" + m.group + "': register first");
  }
  GroupState& g = git->second;
  double now = clock_->Now();
  g.last_seen = now;
  // A resent request whose grant was lost gets the same grant again.
  for (auto& [aid, l] : leases_) {
    if (l.group == g.id) {
      l.expires_at = clock_->Monotonic() + options_.lease_s;
      return GrantFor(g, l);
    }
  }
  const QueuedTrial* pick = nullptr;
  QueueKey pick_key;
  for (const auto& [k, q] : queue_) {
    if (q.not_before > now) continue;
    if (q.depends_on) {
      auto d = trials_.find(q.depends_on);
      if (d == trials_.end() || d->second.state != "succeeded") continue;
    }
    if (!policy_->Fits(g, q)) continue;
    pick = &q;
    pick_key = k;
    break;
  }
  if (!pick) {
    proto::NoWork nw;
    nw.retry_after_s = options_.no_work_retry_s;
    nw.drained = Drained();
    return proto::Encode(nw);
  }
  int64_t trial_id = pick->id;
  TrialInfo& info = trials_[trial_id];
  Lease lease;
  lease.trial_id = trial_id;
  lease.trial_key = info.key;
  lease.number = info.attempts + 1;
  lease.group = g.id;
  lease.expires_at = clock_->Monotonic() + options_.lease_s;
  SD2_RETURN_IF_ERROR(Commit(store_, [&](auto* after) -> Status {
    storage::AttemptRow a;
    a.trial_id = trial_id;
    a.number = lease.number;
    a.state = "leased";
    a.group_id = g.id;
    a.host = AttemptHosts(g);
    a.devices = AttemptDevices(g);
    a.slurm_job_id = g.slurm.job_id;
    a.slurm_array_job_id = g.slurm.array_job_id;
    a.slurm_array_task_id = g.slurm.array_task_id;
    a.git_commit = g.git_commit;
    a.versions_json = g.versions_json;
    a.lease_expires_at = now + options_.lease_s;  // wall time in the store
    a.created_at = now;
    SD2_ASSIGN_OR_RETURN(lease.attempt_id, store_->InsertAttempt(a));
    SD2_ASSIGN_OR_RETURN(auto t, store_->GetTrial(trial_id));
    t.state = "running";
    t.attempts = lease.number;
    t.updated_at = now;
    SD2_RETURN_IF_ERROR(store_->UpdateTrial(t));
    SD2_RETURN_IF_ERROR(
        store_->UpsertGroup({g.id, g.host, g.size, g.devices, g.version, "busy", now}));
    SD2_RETURN_IF_ERROR(Event("lease", std::nullopt, trial_id, lease.attempt_id,
                              "attempt " + std::to_string(lease.number) + " to group " + g.id));
    after->push_back([&, pick_key]() {
      queue_.erase(pick_key);
      info.state = "running";
      info.attempts = lease.number;
      leases_[lease.attempt_id] = lease;
      lease_by_trial_[trial_id] = lease.attempt_id;
      counters_.leases_granted++;
    });
    return OkStatus();
  }));
  return GrantFor(g, lease);
}

Core::Lease* Core::FindLease(const std::string& key, int64_t attempt) {
  auto t = trial_by_key_.find(key);
  if (t == trial_by_key_.end()) return nullptr;
  auto l = lease_by_trial_.find(t->second);
  if (l == lease_by_trial_.end()) return nullptr;
  Lease& lease = leases_.at(l->second);
  return lease.number == attempt ? &lease : nullptr;
}

StatusOr<std::string> Core::OnHeartbeat(const proto::Heartbeat& m) {
  auto git = groups_.find(m.group);
  if (git == groups_.end()) {
    return FailedPreconditionError("unknown group '" + m.group + "': register first");
  }
  double now = clock_->Now();
  git->second.last_seen = now;
  proto::HeartbeatReply reply;
  if (m.trial_key.empty()) return proto::Encode(reply);
  Lease* l = FindLease(m.trial_key, m.attempt);
  if (!l || l->group != m.group) {
    reply.stop = true;
    reply.reason = "lease lost";
    return proto::Encode(reply);
  }
  l->expires_at = clock_->Monotonic() + options_.lease_s;
  if (trials_[l->trial_id].state == "cancelled") {
    reply.stop = true;
    reply.reason = "cancelled";
  }
  if (!l->running) {
    SD2_ASSIGN_OR_RETURN(auto a, store_->GetAttempt(l->attempt_id));
    a.state = "running";
    a.started_at = now;
    a.lease_expires_at = now + options_.lease_s;  // wall time in the store
    SD2_RETURN_IF_ERROR(store_->UpdateAttempt(a));
    l->running = true;
  }
  return proto::Encode(reply);
}

// ---- data ----

StatusOr<int64_t> Core::DataAttempt(const std::string& key, int64_t attempt,
                                    const std::string& group) {
  auto other_group = [&](const std::string& owner) {
    return AbortedError("attempt " + std::to_string(attempt) + " of trial '" + key +
                        "' belongs to group " + owner + ", not " + group);
  };
  if (Lease* l = FindLease(key, attempt)) {
    if (!group.empty() && group != l->group) return other_group(l->group);
    l->expires_at = std::max(l->expires_at, clock_->Monotonic() + options_.lease_s);
    return l->attempt_id;
  }
  auto t = trial_by_key_.find(key);
  if (t == trial_by_key_.end()) return NotFoundError("unknown trial '" + key + "'");
  SD2_ASSIGN_OR_RETURN(int number, AttemptNumber(key, attempt));
  SD2_ASSIGN_OR_RETURN(auto a, store_->FindAttempt(t->second, number));
  if (!a) {
    return NotFoundError("trial '" + key + "' has no attempt " + std::to_string(attempt));
  }
  // A finished attempt's data is a resend from the group that ran it, and from no one else.
  if (a->state == "succeeded") {
    if (group != a->group_id) return other_group(a->group_id);
    return a->id;
  }
  return AbortedError("lease lost: attempt " + std::to_string(attempt) + " of trial '" + key +
                      "' is " + a->state);
}

StatusOr<std::string> Core::OnMetrics(proto::MetricsBatch& m) {
  SD2_ASSIGN_OR_RETURN(int64_t aid, DataAttempt(m.trial_key, m.attempt, m.group));
  std::vector<storage::MetricRow> rows;
  rows.reserve(m.rows.size());
  for (auto& r : m.rows) rows.push_back({r.seq, r.step, std::move(r.name), r.value, r.time});
  SD2_ASSIGN_OR_RETURN(int64_t n, store_->InsertMetrics(aid, rows));
  counters_.metric_rows += n;
  return proto::Encode(proto::Ack{n, static_cast<int64_t>(rows.size()) - n});
}

StatusOr<std::string> Core::OnScores(proto::ScoresBatch& m) {
  SD2_ASSIGN_OR_RETURN(int64_t aid, DataAttempt(m.trial_key, m.attempt, m.group));
  std::vector<storage::ScoreRow> rows;
  rows.reserve(m.rows.size());
  for (auto& r : m.rows) {
    rows.push_back(
        {std::move(r.sample_id), std::move(r.video_id), r.label, std::move(r.type), r.score});
  }
  SD2_ASSIGN_OR_RETURN(int64_t n, store_->InsertScores(aid, m.eval_set, rows));
  counters_.score_rows += n;
  return proto::Encode(proto::Ack{n, static_cast<int64_t>(rows.size()) - n});
}

StatusOr<std::string> Core::OnCheckpoint(const proto::CheckpointRecord& m) {
  SD2_ASSIGN_OR_RETURN(int64_t aid, DataAttempt(m.trial_key, m.attempt, m.group));
  SD2_RETURN_IF_ERROR(store_->InsertCheckpoint({0, aid, m.step, m.path, m.digest, clock_->Now()}));
  return proto::Encode(proto::Ack{1, 0});
}

// ---- results and expiry ----

Status Core::FinishTrialInSweeps(int64_t trial_id, std::vector<std::function<void()>>* after) {
  for (int64_t sw : trials_[trial_id].sweeps) {
    auto it = sweep_pending_.find(sw);
    if (it == sweep_pending_.end()) continue;
    if (it->second.size() == 1 && it->second.count(trial_id)) {
      SD2_RETURN_IF_ERROR(store_->SetSweepState(sw, "done"));
      SD2_RETURN_IF_ERROR(Event("sweep_done", sw, std::nullopt, std::nullopt, ""));
    }
    after->push_back([this, sw, trial_id]() {
      auto p = sweep_pending_.find(sw);
      if (p == sweep_pending_.end()) return;
      p->second.erase(trial_id);
      if (p->second.empty()) sweep_pending_.erase(p);
    });
  }
  return OkStatus();
}

Status Core::EndAttempt(const Lease& lease, const std::string& outcome, const std::string& error,
                        const json& variant, std::vector<std::function<void()>>* after) {
  double now = clock_->Now();
  SD2_ASSIGN_OR_RETURN(auto a, store_->GetAttempt(lease.attempt_id));
  a.state = outcome;
  a.ended_at = now;
  a.lease_expires_at.reset();
  a.error = error;
  if (variant.is_object() && !variant.empty()) a.variant_json = variant.dump();
  SD2_RETURN_IF_ERROR(store_->UpdateAttempt(a));
  SD2_ASSIGN_OR_RETURN(auto t, store_->GetTrial(lease.trial_id));
  TrialInfo& info = trials_[lease.trial_id];
  int failures = info.failures + ((outcome == "failed" || outcome == "lost") ? 1 : 0);
  bool cancelled = t.state == "cancelled";  // cancel was requested while it ran
  std::string next;
  if (outcome == "succeeded") {
    next = "succeeded";
  } else if (cancelled) {
    next = "cancelled";
  } else if (outcome == "preempted" || outcome == "cancelled") {
    // A cancelled outcome for a trial no longer cancelled: it was submitted again while its
    // attempt was stopping, so it runs again, without back-off.
    next = "queued";
  } else if (failures >= t.max_attempts) {
    next = "failed";
  } else {
    next = "queued";
  }
  t.state = next;
  t.updated_at = now;
  if (outcome == "failed" || outcome == "lost") t.last_error = error;
  if (next == "queued" && outcome != "preempted" && outcome != "cancelled") {
    t.not_before = now + std::min(options_.backoff_max_s,
                                  options_.backoff_base_s * std::pow(2.0, failures - 1));
  } else if (next == "queued") {
    t.not_before = now;
  }
  SD2_RETURN_IF_ERROR(store_->UpdateTrial(t));
  SD2_RETURN_IF_ERROR(Event(outcome, std::nullopt, t.id, a.id,
                            "attempt " + std::to_string(a.number) + " " + outcome +
                                (error.empty() ? "" : ": " + error) + "; trial " + next));
  if (IsTerminal(next)) SD2_RETURN_IF_ERROR(FinishTrialInSweeps(t.id, after));
  auto git = groups_.find(lease.group);
  if (git != groups_.end()) {
    SD2_RETURN_IF_ERROR(store_->UpsertGroup({git->second.id, git->second.host, git->second.size,
                                             git->second.devices, git->second.version, "idle",
                                             git->second.last_seen}));
  }
  after->push_back([this, lease, t, next, failures]() {
    TrialInfo& ti = trials_[lease.trial_id];
    ti.state = next;
    ti.failures = failures;
    leases_.erase(lease.attempt_id);
    lease_by_trial_.erase(lease.trial_id);
    auto g = groups_.find(lease.group);
    if (g != groups_.end() && g->second.attempt_id == lease.attempt_id) g->second.attempt_id = 0;
    if (next == "queued") Enqueue(t);
  });
  return OkStatus();
}

StatusOr<std::string> Core::OnResult(const proto::Result& m) {
  Lease* l = FindLease(m.trial_key, m.attempt);
  if (!l) {
    // A resend of a result we already recorded is acknowledged again.
    auto t = trial_by_key_.find(m.trial_key);
    if (t == trial_by_key_.end()) return NotFoundError("unknown trial '" + m.trial_key + "'");
    SD2_ASSIGN_OR_RETURN(int number, AttemptNumber(m.trial_key, m.attempt));
    SD2_ASSIGN_OR_RETURN(auto a, store_->FindAttempt(t->second, number));
    if (a && a->state == m.outcome) return proto::Encode(proto::Ack{0, 1});
    return AbortedError("lease lost: attempt " + std::to_string(m.attempt) + " of trial '" +
                        m.trial_key + "' is " + (a ? a->state : std::string("unknown")));
  }
  if (l->group != m.group) {
    return AbortedError("lease lost: attempt " + std::to_string(m.attempt) + " of trial '" +
                        m.trial_key + "' belongs to group " + l->group);
  }
  Lease lease = *l;
  SD2_RETURN_IF_ERROR(Commit(store_, [&](auto* after) {
    return EndAttempt(lease, m.outcome, m.error, m.variant, after);
  }));
  if (auto g = groups_.find(m.group); g != groups_.end()) g->second.last_seen = clock_->Now();
  return proto::Encode(proto::Ack{1, 0});
}

int Core::Tick() {
  double now = clock_->Now();
  double mono = clock_->Monotonic();
  std::vector<Lease> expired;
  for (const auto& [aid, l] : leases_) {
    if (l.expires_at < mono) expired.push_back(l);
  }
  int n = 0;
  for (const auto& l : expired) {
    Status s = Commit(store_, [&](auto* after) {
      return EndAttempt(
          l, "lost", "lease expired (no heartbeat for " + std::to_string(options_.lease_s) + " s)",
          json(), after);
    });
    if (s.ok()) {
      ++n;
      counters_.leases_expired++;
    }
  }
  // Trials whose dependency ended without success can never run.
  std::vector<int64_t> doomed;
  for (const auto& [k, q] : queue_) {
    if (!q.depends_on) continue;
    auto d = trials_.find(q.depends_on);
    if (d != trials_.end() && (d->second.state == "failed" || d->second.state == "cancelled")) {
      doomed.push_back(q.id);
    }
  }
  for (int64_t id : doomed) {
    (void)Commit(store_, [&](auto* after) -> Status {
      SD2_ASSIGN_OR_RETURN(auto t, store_->GetTrial(id));
      t.state = "failed";
      t.last_error =
          "dependency " + trials_[*t.depends_on].key + " " + trials_[*t.depends_on].state;
      t.updated_at = now;
      SD2_RETURN_IF_ERROR(store_->UpdateTrial(t));
      SD2_RETURN_IF_ERROR(Event("failed", std::nullopt, id, std::nullopt, t.last_error));
      SD2_RETURN_IF_ERROR(FinishTrialInSweeps(id, after));
      after->push_back([this, t]() {
        queue_.erase({-t.priority, t.id});
        trials_[t.id].state = "failed";
      });
      return OkStatus();
    });
  }
  return n;
}

// ---- control ----

StatusOr<std::string> Core::OnSubmit(const proto::Submit& m) {
  double now = clock_->Now();
  proto::Submitted reply;
  std::vector<storage::TrialRow> to_queue;
  std::map<std::string, int64_t> new_keys;  // key -> id, for depends_on within the submit
  SD2_RETURN_IF_ERROR(Commit(store_, [&](auto* after) -> Status {
    storage::SweepRow sw;
    sw.name = m.name;
    sw.spec_path = m.spec_path;
    sw.spec_toml = m.spec_toml;
    SD2_ASSIGN_OR_RETURN(sw.priority, SumPriority(m.priority, 0, ""));
    sw.created_at = now;
    SD2_ASSIGN_OR_RETURN(reply.sweep_id, store_->InsertSweep(sw));
    std::set<int64_t> pending;
    std::vector<std::pair<int64_t, std::string>> states;  // for memory after commit
    int ordinal = 0;
    for (const auto& spec : m.trials) {
      std::optional<int64_t> dep;
      if (!spec.depends_on.empty()) {
        auto nk = new_keys.find(spec.depends_on);
        if (nk != new_keys.end()) {
          dep = nk->second;
        } else {
          SD2_ASSIGN_OR_RETURN(auto d, store_->FindTrialByKey(spec.depends_on));
          if (!d) {
            return InvalidArgumentError("trial " + spec.key + " depends on unknown trial " +
                                        spec.depends_on);
          }
          dep = d->id;
        }
      }
      SD2_ASSIGN_OR_RETURN(auto existing, store_->FindTrialByKey(spec.key));
      bool reused = false;
      int64_t id;
      if (!existing) {
        storage::TrialRow t;
        t.trial_key = spec.key;
        t.method = spec.method;
        t.scale = spec.scale;
        t.seed = spec.seed;
        t.config_json = spec.config.dump();
        t.resources_json = spec.resources.dump();
        t.label = spec.label;
        SD2_ASSIGN_OR_RETURN(t.priority, SumPriority(m.priority, spec.priority, spec.key));
        t.max_attempts = static_cast<int>(spec.max_attempts);
        t.depends_on = dep;
        t.created_at = t.updated_at = now;
        SD2_ASSIGN_OR_RETURN(id, store_->InsertTrial(t));
        t.id = id;
        to_queue.push_back(t);
        states.emplace_back(id, "queued");
        pending.insert(id);
        reply.queued++;
      } else {
        storage::TrialRow t = *existing;
        id = t.id;
        bool stopping = t.state == "cancelled" && lease_by_trial_.count(id);
        bool active = t.state == "queued" || t.state == "running" || lease_by_trial_.count(id);
        if (t.state == "succeeded" && !m.force) {
          reused = true;
          reply.reused++;
          SD2_RETURN_IF_ERROR(
              Event("reuse", reply.sweep_id, id, std::nullopt, "key already succeeded"));
        } else if (stopping) {
          // Cancelled, but its attempt is still stopping: withdraw the cancel. The attempt's
          // end (EndAttempt) re-queues it, or records its success.
          t.state = "running";
          t.max_attempts = trials_[id].failures + static_cast<int>(spec.max_attempts);
          SD2_ASSIGN_OR_RETURN(t.priority, SumPriority(m.priority, spec.priority, spec.key));
          t.updated_at = now;
          SD2_RETURN_IF_ERROR(store_->UpdateTrial(t));
          SD2_RETURN_IF_ERROR(Event("resubmit", reply.sweep_id, id, std::nullopt,
                                    "cancel withdrawn; runs again when its attempt has stopped"));
          after->push_back([this, id, max_attempts = t.max_attempts]() {
            trials_[id].state = "running";
            trials_[id].max_attempts = max_attempts;
          });
          pending.insert(id);
          reply.queued++;
        } else if (active) {
          pending.insert(id);  // already queued or running for another sweep
        } else {
          // Forced retrain, or a failed/cancelled trial submitted again.
          t.state = "queued";
          t.not_before = 0;
          t.max_attempts = trials_[id].failures + static_cast<int>(spec.max_attempts);
          SD2_ASSIGN_OR_RETURN(t.priority, SumPriority(m.priority, spec.priority, spec.key));
          t.updated_at = now;
          SD2_RETURN_IF_ERROR(store_->UpdateTrial(t));
          to_queue.push_back(t);
          states.emplace_back(id, "queued");
          pending.insert(id);
          reply.queued++;
        }
      }
      new_keys[spec.key] = id;
      SD2_RETURN_IF_ERROR(store_->LinkSweepTrial(reply.sweep_id, id, ordinal++, reused));
    }
    reply.trials = static_cast<int64_t>(m.trials.size());
    if (pending.empty()) SD2_RETURN_IF_ERROR(store_->SetSweepState(reply.sweep_id, "done"));
    SD2_RETURN_IF_ERROR(Event("submit", reply.sweep_id, std::nullopt, std::nullopt,
                              m.name + ": " + std::to_string(reply.trials) + " trials, " +
                                  std::to_string(reply.reused) + " reused"));
    after->push_back([this, &to_queue, &m, &new_keys, states, pending, reply]() {
      for (const auto& t : to_queue) {
        TrialInfo& info = trials_[t.id];
        info.key = t.trial_key;
        info.state = "queued";
        info.attempts = t.attempts;
        info.max_attempts = t.max_attempts;
        trial_by_key_[t.trial_key] = t.id;
        Enqueue(t);
      }
      for (const auto& spec : m.trials)
        trials_[new_keys[spec.key]].sweeps.push_back(reply.sweep_id);
      if (!pending.empty()) sweep_pending_[reply.sweep_id] = pending;
    });
    return OkStatus();
  }));
  return proto::Encode(reply);
}

StatusOr<std::string> Core::OnCancel(const proto::Cancel& m) {
  std::vector<int64_t> ids;
  if (!m.trial_key.empty()) {
    auto t = trial_by_key_.find(m.trial_key);
    if (t == trial_by_key_.end()) return NotFoundError("unknown trial '" + m.trial_key + "'");
    ids.push_back(t->second);
  } else {
    SD2_ASSIGN_OR_RETURN(auto sw, store_->GetSweep(m.sweep));
    (void)sw;
    SD2_ASSIGN_OR_RETURN(ids, store_->SweepTrialIds(m.sweep));
  }
  double now = clock_->Now();
  int64_t cancelled = 0;
  SD2_RETURN_IF_ERROR(Commit(store_, [&](auto* after) -> Status {
    for (int64_t id : ids) {
      SD2_ASSIGN_OR_RETURN(auto t, store_->GetTrial(id));
      if (IsTerminal(t.state)) continue;
      if (m.sweep) {
        // A trial another live sweep still waits for is left running for that sweep; only
        // this sweep stops waiting for it.
        bool shared = false;
        for (int64_t other : trials_[id].sweeps) {
          auto p = sweep_pending_.find(other);
          if (other != m.sweep && p != sweep_pending_.end() && p->second.count(id)) shared = true;
        }
        if (shared) {
          SD2_RETURN_IF_ERROR(
              Event("cancel", m.sweep, id, std::nullopt, "kept: another active sweep needs it"));
          continue;
        }
      }
      bool running = lease_by_trial_.count(id) > 0;
      t.state = "cancelled";
      t.updated_at = now;
      SD2_RETURN_IF_ERROR(store_->UpdateTrial(t));
      SD2_RETURN_IF_ERROR(Event("cancel", m.sweep ? std::optional<int64_t>(m.sweep) : std::nullopt,
                                id, std::nullopt, running ? "stopping its group" : "dequeued"));
      // A running trial stays pending until its group reports or its lease expires.
      if (!running) SD2_RETURN_IF_ERROR(FinishTrialInSweeps(id, after));
      ++cancelled;
      after->push_back([this, t]() {
        queue_.erase({-t.priority, t.id});
        trials_[t.id].state = "cancelled";
      });
    }
    if (m.sweep) SD2_RETURN_IF_ERROR(store_->SetSweepState(m.sweep, "cancelled"));
    return OkStatus();
  }));
  if (m.sweep) sweep_pending_.erase(m.sweep);
  return proto::Encode(proto::Ack{cancelled, 0});
}

StatusOr<std::string> Core::OnResume(const proto::Resume& m) {
  SD2_ASSIGN_OR_RETURN(auto sw, store_->GetSweep(m.sweep));
  SD2_ASSIGN_OR_RETURN(auto ids, store_->SweepTrialIds(m.sweep));
  double now = clock_->Now();
  int64_t requeued = 0;
  std::vector<storage::TrialRow> rows;
  std::set<int64_t> pending =
      sweep_pending_.count(m.sweep) ? sweep_pending_[m.sweep] : std::set<int64_t>{};
  SD2_RETURN_IF_ERROR(Commit(store_, [&](auto* after) -> Status {
    for (int64_t id : ids) {
      SD2_ASSIGN_OR_RETURN(auto t, store_->GetTrial(id));
      if (t.state != "failed" && t.state != "cancelled") continue;
      bool stopping = lease_by_trial_.count(id) > 0;  // cancelled but still stopping
      t.state = stopping ? "running" : "queued";      // stopping: re-queued when its attempt ends
      t.not_before = 0;
      t.max_attempts = trials_[id].failures + 3;
      t.updated_at = now;
      SD2_RETURN_IF_ERROR(store_->UpdateTrial(t));
      rows.push_back(t);
      pending.insert(id);
      ++requeued;
    }
    if (!pending.empty()) SD2_RETURN_IF_ERROR(store_->SetSweepState(sw.id, "active"));
    SD2_RETURN_IF_ERROR(Event("resume", sw.id, std::nullopt, std::nullopt,
                              std::to_string(requeued) + " trials re-queued"));
    after->push_back([&]() {
      for (const auto& t : rows) {
        trials_[t.id].state = t.state;
        trials_[t.id].max_attempts = t.max_attempts;
        if (t.state == "queued") Enqueue(t);
      }
      if (!pending.empty()) sweep_pending_[sw.id] = pending;
    });
    return OkStatus();
  }));
  return proto::Encode(proto::Ack{requeued, 0});
}

StatusOr<std::string> Core::OnLogs(const proto::Logs& m) {
  SD2_ASSIGN_OR_RETURN(auto t, store_->FindTrialByKey(m.trial_key));
  if (!t) return NotFoundError("unknown trial '" + m.trial_key + "'");
  json out;
  out["trial"] = m.trial_key;
  out["state"] = t->state;
  out["last_error"] = t->last_error;
  out["attempts"] = json::array();
  SD2_ASSIGN_OR_RETURN(auto attempts, store_->ListAttempts(t->id));
  for (const auto& a : attempts) {
    SD2_ASSIGN_OR_RETURN(auto metrics, store_->ListMetrics(a.id));
    json last = json::object();
    for (const auto& r : metrics) last[r.name] = {{"step", r.step}, {"value", r.value}};
    out["attempts"].push_back(json{{"number", a.number},
                                   {"state", a.state},
                                   {"group", a.group_id},
                                   {"host", a.host},
                                   {"devices", a.devices},
                                   {"slurm_job_id", a.slurm_job_id},
                                   {"slurm_array_job_id", a.slurm_array_job_id},
                                   {"slurm_array_task_id", a.slurm_array_task_id},
                                   {"error", a.error},
                                   {"metrics", metrics.size()},
                                   {"last", last}});
  }
  out["events"] = json::array();
  SD2_ASSIGN_OR_RETURN(auto events, store_->ListEvents(t->id));
  for (const auto& e : events) {
    out["events"].push_back(json{{"time", e.time}, {"kind", e.kind}, {"message", e.message}});
  }
  return proto::EncodeRaw("logs_reply", std::move(out));
}

StatusOr<json> Core::StatusJson(int64_t sweep) {
  double now = clock_->Now();
  // Per sweep: the largest group its queued trials need, and why they wait.
  std::vector<const GroupState*> live;
  for (const auto& [id, g] : groups_) {
    if (now - g.last_seen <= options_.group_gone_s) live.push_back(&g);
  }
  std::map<int64_t, std::pair<int, int>> needs;  // sweep -> (ranks, gpus_per_rank)
  std::map<int64_t, std::map<std::string, int64_t>> waiting;
  for (const auto& [k, q] : queue_) {
    auto t = trials_.find(q.id);
    if (t == trials_.end()) continue;
    std::string dependency;
    if (q.depends_on) {
      auto d = trials_.find(q.depends_on);
      if (d == trials_.end()) {
        dependency = "#" + std::to_string(q.depends_on) + " (unknown)";
      } else if (d->second.state != "succeeded") {
        dependency = d->second.key + " (" + d->second.state + ")";
      }
    }
    std::string reason = WaitReason(q, live, *policy_, now, dependency);
    for (int64_t sw : t->second.sweeps) {
      auto& n = needs.try_emplace(sw, q.ranks, q.gpus_per_rank).first->second;
      n.first = std::max(n.first, q.ranks);
      n.second = std::max(n.second, q.gpus_per_rank);
      waiting[sw][reason]++;
    }
  }
  json out;
  out["sweeps"] = json::array();
  SD2_ASSIGN_OR_RETURN(auto sweeps, store_->ListSweeps());
  bool found = false;
  for (const auto& s : sweeps) {
    if (sweep && s.id != sweep) continue;
    found = true;
    SD2_ASSIGN_OR_RETURN(auto c, store_->CountSweep(s.id));
    int64_t done = c.succeeded + c.failed + c.cancelled + c.reused;
    json eta = nullptr;
    int64_t trained = c.succeeded + c.failed;
    if (s.state == "active" && trained > 0 && c.total > done) {
      eta =
          (now - s.created_at) / static_cast<double>(trained) * static_cast<double>(c.total - done);
    }
    out["sweeps"].push_back({{"sweep", s.id},
                             {"name", s.name},
                             {"state", s.state},
                             {"created_at", s.created_at},
                             {"eta_s", eta},
                             {"trials",
                              {{"total", c.total},
                               {"queued", c.queued},
                               {"running", c.running},
                               {"succeeded", c.succeeded},
                               {"failed", c.failed},
                               {"reused", c.reused},
                               {"cancelled", c.cancelled}}}});
    json& entry = out["sweeps"].back();
    if (auto n = needs.find(s.id); n != needs.end()) {
      entry["needs"] = {{"ranks", n->second.first}, {"gpus_per_rank", n->second.second}};
    }
    entry["waiting"] = json::array();
    if (auto w = waiting.find(s.id); w != waiting.end()) {
      std::vector<std::pair<std::string, int64_t>> reasons(w->second.begin(), w->second.end());
      std::stable_sort(reasons.begin(), reasons.end(),
                       [](const auto& a, const auto& b) { return a.second > b.second; });
      for (const auto& [reason, n] : reasons) {
        entry["waiting"].push_back({{"reason", reason}, {"trials", n}});
      }
    }
  }
  if (sweep && !found) return NotFoundError("no sweep " + std::to_string(sweep));
  // Top level: the requested sweep, or the newest one.
  if (!out["sweeps"].empty()) {
    const json& chosen = out["sweeps"].back();
    out["sweep"] = chosen["sweep"];
    out["trials"] = chosen["trials"];
    out["state"] = chosen["state"];
  } else {
    out["sweep"] = nullptr;
    out["trials"] = {{"total", 0},  {"queued", 0}, {"running", 0},  {"succeeded", 0},
                     {"failed", 0}, {"reused", 0}, {"cancelled", 0}};
  }
  out["groups"] = json::array();
  for (const auto& [id, g] : groups_) {
    std::string state = g.attempt_id ? "busy" : "idle";
    if (now - g.last_seen > options_.group_gone_s) state = "gone";
    json trial = nullptr;
    if (auto l = leases_.find(g.attempt_id); g.attempt_id && l != leases_.end()) {
      trial = {{"key", l->second.trial_key}, {"attempt", l->second.number}};
    }
    out["groups"].push_back({{"id", id},
                             {"host", g.host},
                             {"size", g.size},
                             {"devices", g.devices},
                             {"rank_devices", AttemptDevices(g)},
                             {"slurm_job_id", g.slurm.job_id},
                             {"state", state},
                             {"trial", trial},
                             {"last_seen_s", now - g.last_seen}});
  }
  out["counters"] = {{"messages", counters_.messages},
                     {"malformed", counters_.malformed},
                     {"errors", counters_.errors},
                     {"leases_granted", counters_.leases_granted},
                     {"leases_expired", counters_.leases_expired}};
  return out;
}

}  // namespace sd2::coordinator
