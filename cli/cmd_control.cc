// sd2ctl submit / status / cancel / resume / logs / watch: the coordinator's control requests
// (docs/protocol.md).
//
//   sd2ctl submit sweeps/paper/table6_scaling.toml --var SD2_DATA=/data --coordinator tcp://h:5557
//   sd2ctl status --json
//   sd2ctl watch --once
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>

#include "cli/command.h"
#include "common/protocol.h"
#include "coordinator/client.h"
#include "coordinator/submit.h"

namespace sd2::cli {
namespace {

namespace proto = sd2::protocol;
using nlohmann::json;

constexpr const char* kDefaultEndpoint = "tcp://127.0.0.1:5557";

int Report(const std::string& cmd, const Status& s) {
  std::cerr << "sd2ctl " << cmd << ": " << s << "\n";
  return ExitCodeFor(s);
}

coordinator::ClientOptions QuickClient() {
  coordinator::ClientOptions o;
  o.timeout_s = 5;
  o.give_up_s = 10;
  return o;
}

// Sends `req`, returns the reply or an error (error replies included).
StatusOr<proto::Message> Ask(const std::string& endpoint, const std::string& req) {
  coordinator::Client client(endpoint, QuickClient());
  SD2_ASSIGN_OR_RETURN(proto::Message reply, client.CallRaw(req));
  SD2_RETURN_IF_ERROR(proto::ReplyStatus(reply));
  return reply;
}

void AddEndpoint(CLI::App& app, std::string* ep) {
  app.add_option("--coordinator", *ep, "coordinator endpoint")->default_val(kDefaultEndpoint);
}

int Submit(int argc, char** argv) {
  CLI::App app{"submit a sweep file to the coordinator", "sd2ctl submit"};
  std::string file, ep, scale_map, override_json;
  std::vector<std::string> vars;
  bool dry_run = false, force = false;
  app.add_option("FILE", file, "sweep file")->required();
  app.add_option("--var", vars, "sweep variable NAME=VALUE (repeatable)");
  app.add_option("--scale-map", scale_map, "scale replacements, e.g. 100000=300,1M=3000");
  app.add_option("--override", override_json, "JSON object merged into every trial config");
  app.add_flag("--dry-run", dry_run, "print the trial table, submit nothing");
  app.add_flag("--force", force, "retrain trials whose key already succeeded");
  AddEndpoint(app, &ep);
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  auto opts = coordinator::ParseExpandFlags(vars, scale_map, override_json);
  if (!opts.ok()) return Report("submit", opts.status());
  if (dry_run) {
    auto trials = coordinator::ExpandFile(file, *opts);
    if (!trials.ok()) return Report("submit", trials.status());
    std::cout << sweeps::FormatTrialTable(*trials);
    return kExitOk;
  }
  auto req = coordinator::BuildSubmit(file, *opts, force);
  if (!req.ok()) return Report("submit", req.status());
  auto reply = Ask(ep, proto::Encode(*req));
  if (!reply.ok()) return Report("submit", reply.status());
  auto sub = proto::ParseAs<proto::Submitted>(*reply);
  if (!sub.ok()) return Report("submit", sub.status());
  std::cout << "sweep " << sub->sweep_id << ": " << sub->trials << " trials, " << sub->queued
            << " queued, " << sub->reused << " reused\n";
  return kExitOk;
}

std::string Bar(double frac, int width) {
  int filled = static_cast<int>(std::lround(std::clamp(frac, 0.0, 1.0) * width));
  return "[" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
}

std::string Duration(double s) {
  char buf[32];
  if (s < 120) {
    std::snprintf(buf, sizeof buf, "%.0fs", s);
  } else if (s < 7200) {
    std::snprintf(buf, sizeof buf, "%.0fm", s / 60);
  } else {
    std::snprintf(buf, sizeof buf, "%.1fh", s / 3600);
  }
  return buf;
}

// One text frame of `status` / `watch`.
std::string Frame(const json& st) {
  std::string out;
  char line[256];
  for (const auto& s : st.value("sweeps", json::array())) {
    const json& t = s["trials"];
    int64_t total = t.value("total", int64_t{0});
    int64_t done = t.value("succeeded", int64_t{0}) + t.value("reused", int64_t{0}) +
                   t.value("failed", int64_t{0}) + t.value("cancelled", int64_t{0});
    std::string eta = s.contains("eta_s") && s["eta_s"].is_number()
                          ? "ETA " + Duration(s["eta_s"].get<double>())
                          : (done == total ? "done" : "ETA -");
    std::snprintf(line, sizeof line, "sweep %-4lld %-22.22s %s %4lld/%-4lld %-10s",
                  static_cast<long long>(s.value("sweep", int64_t{0})),
                  s.value("name", std::string()).c_str(),
                  Bar(total ? double(done) / double(total) : 1.0, 24).c_str(),
                  static_cast<long long>(done), static_cast<long long>(total), eta.c_str());
    out += line;
    std::snprintf(line, sizeof line,
                  " queued %lld running %lld ok %lld reused %lld failed %lld cancelled %lld\n",
                  static_cast<long long>(t.value("queued", int64_t{0})),
                  static_cast<long long>(t.value("running", int64_t{0})),
                  static_cast<long long>(t.value("succeeded", int64_t{0})),
                  static_cast<long long>(t.value("reused", int64_t{0})),
                  static_cast<long long>(t.value("failed", int64_t{0})),
                  static_cast<long long>(t.value("cancelled", int64_t{0})));
    out += line;
    // Why queued trials wait: "  waiting: 21 trials: needs cuda groups; 2 cpu groups registered".
    for (const auto& w : s.value("waiting", json::array())) {
      int64_t n = w.value("trials", int64_t{0});
      out += "  waiting: " + std::to_string(n) + (n == 1 ? " trial: " : " trials: ") +
             w.value("reason", std::string()) + "\n";
    }
  }
  const json groups = st.value("groups", json::array());
  out += "groups: " + std::to_string(groups.size()) + "\n";
  for (const auto& g : groups) {
    std::string trial = g["trial"].is_object() ? g["trial"].value("key", std::string()) + " #" +
                                                     std::to_string(g["trial"].value("attempt", 0))
                                               : "-";
    std::snprintf(line, sizeof line, "  %-28.28s %2d x %-4s %-5s %s",
                  g.value("id", std::string()).c_str(), g.value("size", 0),
                  g.value("devices", std::string()).c_str(),
                  g.value("state", std::string()).c_str(), trial.c_str());
    out += line;
    const std::string rank_devices = g.value("rank_devices", std::string());
    if (rank_devices != g.value("devices", std::string())) out += " [" + rank_devices + "]";
    const std::string job = g.value("slurm_job_id", std::string());
    if (!job.empty()) out += " slurm job " + job;
    out += "\n";
  }
  return out;
}

int Status_(int argc, char** argv) {
  CLI::App app{"show sweeps and worker groups", "sd2ctl status"};
  std::string ep;
  int64_t sweep = 0;
  bool as_json = false;
  app.add_option("--sweep", sweep, "only this sweep");
  app.add_flag("--json", as_json, "print the status document as JSON");
  AddEndpoint(app, &ep);
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  auto reply = Ask(ep, proto::Encode(proto::StatusRequest{sweep}));
  if (!reply.ok()) return Report("status", reply.status());
  json body = reply->body;
  body.erase("v");
  body.erase("type");
  if (as_json) {
    std::cout << body.dump(2) << "\n";
  } else {
    std::cout << Frame(body);
  }
  return kExitOk;
}

int Cancel(int argc, char** argv) {
  CLI::App app{"cancel a trial (by key) or a whole sweep (--sweep ID)", "sd2ctl cancel"};
  std::string ep;
  proto::Cancel c;
  app.add_option("TRIAL", c.trial_key, "trial key");
  app.add_option("--sweep", c.sweep, "sweep id");
  AddEndpoint(app, &ep);
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  if ((c.sweep == 0) == c.trial_key.empty()) {
    return Report("cancel", InvalidArgumentError("give a TRIAL key or --sweep ID (not both)"));
  }
  auto reply = Ask(ep, proto::Encode(c));
  if (!reply.ok()) return Report("cancel", reply.status());
  std::cout << "cancelled " << reply->body.value("accepted", int64_t{0}) << " trials\n";
  return kExitOk;
}

int Resume(int argc, char** argv) {
  CLI::App app{"re-queue the failed and cancelled trials of a sweep", "sd2ctl resume"};
  std::string ep;
  proto::Resume r;
  app.add_option("SWEEP", r.sweep, "sweep id")->required();
  AddEndpoint(app, &ep);
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  auto reply = Ask(ep, proto::Encode(r));
  if (!reply.ok()) return Report("resume", reply.status());
  std::cout << "re-queued " << reply->body.value("accepted", int64_t{0}) << " trials\n";
  return kExitOk;
}

int Logs(int argc, char** argv) {
  CLI::App app{"attempts, last metrics and events of a trial", "sd2ctl logs"};
  std::string ep;
  proto::Logs l;
  bool as_json = false;
  app.add_option("TRIAL", l.trial_key, "trial key")->required();
  app.add_flag("--json", as_json, "print JSON");
  AddEndpoint(app, &ep);
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  auto reply = Ask(ep, proto::Encode(l));
  if (!reply.ok()) return Report("logs", reply.status());
  const json& b = reply->body;
  if (as_json) {
    json out = b;
    out.erase("v");
    out.erase("type");
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "trial " << b.value("trial", std::string()) << ": "
            << b.value("state", std::string()) << "\n";
  for (const auto& a : b["attempts"]) {
    // Where it ran: "on gpu01:77 (host gpu01, cuda:0,cuda:1, slurm job 1240 = array 1234_6)".
    std::string where = "host " + a.value("host", std::string());
    if (!a.value("devices", std::string()).empty()) where += ", " + a["devices"].get<std::string>();
    const std::string job = a.value("slurm_job_id", std::string());
    const std::string array = a.value("slurm_array_job_id", std::string());
    if (!job.empty()) {
      where += ", slurm job " + job;
      if (!array.empty()) {
        where += " = array " + array + "_" + a.value("slurm_array_task_id", std::string());
      }
    }
    std::cout << "  attempt " << a.value("number", 0) << " " << a.value("state", std::string())
              << " on " << a.value("group", std::string()) << " (" << where << "), "
              << a.value("metrics", 0) << " metric rows";
    if (!a.value("error", std::string()).empty())
      std::cout << ": " << a["error"].get<std::string>();
    std::cout << "\n";
  }
  for (const auto& e : b["events"]) {
    std::cout << "  " << e.value("kind", std::string()) << ": " << e.value("message", std::string())
              << "\n";
  }
  return kExitOk;
}

volatile std::sig_atomic_t g_stop = 0;
extern "C" void OnInterrupt(int) { g_stop = 1; }

int Watch(int argc, char** argv) {
  CLI::App app{"live view: progress bar and ETA per sweep, state of each group", "sd2ctl watch"};
  std::string ep;
  int64_t sweep = 0;
  bool once = false;
  double every = 1;
  app.add_option("--sweep", sweep, "only this sweep");
  app.add_flag("--once", once, "print one frame and exit");
  app.add_option("--interval", every, "seconds between frames")->check(CLI::PositiveNumber);
  AddEndpoint(app, &ep);
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  std::signal(SIGINT, OnInterrupt);
  bool tty = ::isatty(STDOUT_FILENO);
  while (!g_stop) {
    auto reply = Ask(ep, proto::Encode(proto::StatusRequest{sweep}));
    if (!reply.ok()) return Report("watch", reply.status());
    if (tty && !once) std::cout << "\033[H\033[2J";
    std::cout << Frame(reply->body) << std::flush;
    bool active = false;
    for (const auto& s : reply->body["sweeps"]) active = active || s.value("state", "") == "active";
    if (once || !active) break;
    std::this_thread::sleep_for(std::chrono::duration<double>(every));
  }
  return kExitOk;
}

}  // namespace

SD2_REGISTER_COMMAND("submit", "submit a sweep file to the coordinator (--dry-run: table only)",
                     Submit);
SD2_REGISTER_COMMAND("status", "sweeps and worker groups (--json)", Status_);
SD2_REGISTER_COMMAND("cancel", "cancel a trial or a sweep", Cancel);
SD2_REGISTER_COMMAND("resume", "re-queue a sweep's failed and cancelled trials", Resume);
SD2_REGISTER_COMMAND("logs", "attempts, metrics and events of a trial", Logs);
SD2_REGISTER_COMMAND("watch", "live progress of sweeps and groups (--once: one frame)", Watch);

}  // namespace sd2::cli
