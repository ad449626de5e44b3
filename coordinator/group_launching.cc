#include "coordinator/group_launching.h"

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "common/bounded_parse.h"
#include "common/protocol.h"

namespace sd2::coordinator {

SweepGroups::SweepGroups(Core* core, const cluster::LauncherConfig& config,
                         cluster::Launcher* launcher, std::string endpoint, std::ostream* log,
                         cluster::GroupKeeper::Clock clock, cluster::Launcher* poller)
    : core_(core),
      config_(config),
      keeper_(launcher, config.keeper, clock, poller),
      endpoint_(std::move(endpoint)),
      log_(log),
      clock_(std::move(clock)) {}

std::set<std::string> SweepGroups::Tick() {
  const auto now = clock_();
  if (now >= next_check_) {
    next_check_ = now + std::chrono::seconds(1);
    StatusOr<protocol::Message> reply = protocol::Decode(core_->Handle(
        protocol::Message{protocol::StatusRequest::kType,
                          ParseJsonBoundedOrThrow(protocol::Encode(protocol::StatusRequest{}))}));
    if (reply.ok() && protocol::ReplyStatus(*reply).ok() && reply->body.contains("sweeps")) {
      std::map<std::string, cluster::GroupSpec> want;
      for (const nlohmann::json& s : reply->body["sweeps"]) {
        if (!s.contains("trials") || !s.contains("sweep")) continue;
        const nlohmann::json& t = s["trials"];
        if (t.value("queued", int64_t{0}) + t.value("running", int64_t{0}) == 0) continue;
        std::string key = "sweep-" + std::to_string(s["sweep"].get<int64_t>());
        cluster::GroupSpec spec = config_.group;
        spec.coordinator = endpoint_;
        spec.name = "sd2-" + key;
        // The shape the sweep's queued trials need; with GPUs, the workers start on CUDA
        // (WorkerCommand adds --devices cuda unless the config says devices = "cpu").
        if (const auto n = s.find("needs"); n != s.end() && n->is_object()) {
          spec.ranks = std::max(1, n->value("ranks", spec.ranks));
          spec.gpus_per_rank = std::max(0, n->value("gpus_per_rank", spec.gpus_per_rank));
        }
        want.emplace(std::move(key), std::move(spec));
      }
      for (const auto& [key, spec] : want) {
        if (active_.count(key)) continue;
        Status st = keeper_.SetTarget(key, spec, config_.groups);
        if (!st.ok() && log_) *log_ << "sd2-coordinator: launcher: " << key << ": " << st << "\n";
      }
      cluster::GroupSpec idle = config_.group;
      idle.coordinator = endpoint_;
      for (const std::string& key : active_) {
        if (!want.count(key)) (void)keeper_.SetTarget(key, idle, 0);
      }
      active_.clear();
      for (const auto& [key, spec] : want) active_.insert(key);
    }
  }
  for (const cluster::KeeperEvent& e : keeper_.Tick()) {
    if (log_) {
      *log_ << "sd2-coordinator: launcher: " << e.key << ": "
            << cluster::KeeperEventKindName(e.kind) << " " << e.handle.launcher << ":"
            << e.handle.id << (e.detail.empty() ? "" : " (" + e.detail + ")") << std::endl;
    }
  }
  return active_;
}

}  // namespace sd2::coordinator
