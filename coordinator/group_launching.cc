#include "coordinator/group_launching.h"

#include <nlohmann/json.hpp>

#include "common/protocol.h"

namespace sd2::coordinator {

SweepGroups::SweepGroups(Core* core, const cluster::LauncherConfig& config,
                         cluster::Launcher* launcher, std::string endpoint, std::ostream* log,
                         cluster::GroupKeeper::Clock clock)
    : core_(core),
      config_(config),
      keeper_(launcher, config.keeper, clock),
      endpoint_(std::move(endpoint)),
      log_(log),
      clock_(std::move(clock)) {}

std::set<std::string> SweepGroups::Tick() {
  const auto now = clock_();
  if (now >= next_check_) {
    next_check_ = now + std::chrono::seconds(1);
    StatusOr<protocol::Message> reply = protocol::Decode(core_->Handle(
        protocol::Message{protocol::StatusRequest::kType,
                          nlohmann::json::parse(protocol::Encode(protocol::StatusRequest{}))}));
    if (reply.ok() && protocol::ReplyStatus(*reply).ok() && reply->body.contains("sweeps")) {
      std::set<std::string> want;
      for (const nlohmann::json& s : reply->body["sweeps"]) {
        if (!s.contains("trials") || !s.contains("sweep")) continue;
        const nlohmann::json& t = s["trials"];
        if (t.value("queued", int64_t{0}) + t.value("running", int64_t{0}) > 0) {
          want.insert("sweep-" + std::to_string(s["sweep"].get<int64_t>()));
        }
      }
      cluster::GroupSpec spec = config_.group;
      spec.coordinator = endpoint_;
      for (const std::string& key : want) {
        if (active_.count(key)) continue;
        spec.name = "sd2-" + key;
        Status st = keeper_.SetTarget(key, spec, config_.groups);
        if (!st.ok() && log_) *log_ << "sd2-coordinator: launcher: " << key << ": " << st << "\n";
      }
      for (const std::string& key : active_) {
        if (!want.count(key)) (void)keeper_.SetTarget(key, spec, 0);
      }
      active_ = want;
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
