// sd2ctl demo: the whole paper, end to end, on this machine.
//
// Generates the synthetic MMI-DD (once), starts sd2-coordinator on DIR/sd2.db, submits the
// paper's sweeps (sweeps/paper/*.toml) at demo scale, keeps local mpirun worker groups running
// until every trial has ended, shows live progress, and prints Tables 2-8 (report.html and
// scaling.svg go into DIR). Ctrl-C stops the groups (they checkpoint) and the coordinator; the
// same command resumes. After a finished run every trial is reused and the tables print in
// seconds.
#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/command.h"
#include "cluster/command_runner.h"
#include "cluster/launcher.h"
#include "cluster/local_launcher.h"
#include "common/bounded_parse.h"
#include "common/file_util.h"
#include "common/protocol.h"
#include "common/status.h"
#include "coordinator/client.h"
#include "coordinator/submit.h"
#include "sweeps/sweep.h"
#include "worker/data/synth.h"

namespace sd2::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

volatile sig_atomic_t g_interrupted = 0;
void OnSignal(int) { g_interrupted = 1; }

// The demo's sizes. The paper's 100K/1M/3M become s, 10s, 30s training images (the same
// 1:10:30 ratio); every model is a tiny config trained for a fixed number of steps.
struct Profile {
  std::string name;
  int64_t images = 0;      // synthetic images in all (train + val + test sets + GenImage)
  int image_size = 0;      // synthetic source side (sources vary around it)
  int64_t base_scale = 0;  // stands for 100K
  int steps = 0;           // optimizer steps per trial
  int batch_size = 0;
  int train_image_size = 0;
};

Profile MakeProfile(bool quick) {
  // 48 px training: at 32 px (and with the paper's rotate/blur/resize/JPEG augmentations) the
  // synthetic set's high-frequency traces are averaged away and tiny models stay at chance.
  if (quick) return {"quick", 3200, 48, 30, 50, 32, 48};
  return {"full", 10000, 64, 100, 200, 32, 48};
}

std::map<int64_t, int64_t> ScaleMap(const Profile& p) {
  return {{100000, p.base_scale}, {1000000, 10 * p.base_scale}, {3000000, 30 * p.base_scale}};
}

json Overrides(const Profile& p) {
  return json{{"model", "tiny"},
              {"hparams",
               {{"steps", p.steps},
                {"batch_size", p.batch_size},
                {"image_size", p.train_image_size},
                {"lr", 1e-3},
                {"augment", "flip"},  // flips only: the others erase the traces (docs/data.md)
                {"threads", 1},
                {"checkpoint_every", 20}}}};
}

std::string SelfDir() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  buf[n] = '\0';
  return fs::path(buf).parent_path().string();
}

// The paper's sweep files: next to an installed binary, else in the source tree.
StatusOr<std::vector<std::string>> PaperSweeps(const std::string& explicit_dir) {
  std::vector<std::string> candidates;
  if (!explicit_dir.empty()) {
    candidates.push_back(explicit_dir);
  } else {
    candidates.push_back(SelfDir() + "/../share/sd2/sweeps/paper");
    candidates.push_back(std::string(SD2_SOURCE_DIR) + "/sweeps/paper");
  }
  for (const std::string& dir : candidates) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (e.path().extension() == ".toml") files.push_back(fs::absolute(e.path()).string());
    }
    std::sort(files.begin(), files.end());
    if (!files.empty()) return files;
  }
  return NotFoundError("no sweep files found in " + candidates.front() +
                       (candidates.size() > 1 ? " or " + candidates.back() : "") +
                       " (use --sweeps DIR)");
}

std::string FormatDuration(double s) {
  if (s < 0) return "?";
  int t = int(s + 0.5);
  char buf[32];
  if (t >= 3600) {
    std::snprintf(buf, sizeof(buf), "%dh%02dm", t / 3600, (t / 60) % 60);
  } else if (t >= 60) {
    std::snprintf(buf, sizeof(buf), "%dm%02ds", t / 60, t % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%ds", t);
  }
  return buf;
}

std::string TailOf(const std::string& path, size_t max_bytes = 2000) {
  StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return "";
  return text->size() > max_bytes ? text->substr(text->size() - max_bytes) : *text;
}

// Progress of the demo's sweeps, from the coordinator's status reply.
struct Progress {
  int64_t total = 0, ended = 0, running = 0, failed = 0;
  std::string line;
};

Progress Summarize(const json& reply, const std::map<int64_t, std::string>& names) {
  Progress p;
  std::ostringstream line;
  if (!reply.contains("sweeps") || !reply["sweeps"].is_array()) return p;
  for (const json& s : reply["sweeps"]) {
    int64_t id = s.value("sweep", int64_t{0});
    auto it = names.find(id);
    if (it == names.end() || !s.contains("trials")) continue;
    const json& t = s["trials"];
    int64_t total = t.value("total", int64_t{0});
    int64_t done = t.value("succeeded", int64_t{0}) + t.value("reused", int64_t{0});
    int64_t failed = t.value("failed", int64_t{0}) + t.value("cancelled", int64_t{0});
    p.total += total;
    p.ended += done + failed;
    p.running += t.value("running", int64_t{0});
    p.failed += failed;
    line << (line.tellp() > 0 ? "  " : "") << it->second << " " << done << "/" << total;
  }
  p.line = line.str();
  return p;
}

std::string Bar(int64_t done, int64_t total, int width = 24) {
  int filled = total > 0 ? int(width * done / total) : 0;
  return "[" + std::string(size_t(filled), '#') + std::string(size_t(width - filled), '.') + "]";
}

class Demo {
 public:
  Demo(std::string dir, Profile profile, int groups, std::string sweeps_dir)
      : dir_(std::move(dir)),
        profile_(std::move(profile)),
        groups_(groups),
        sweeps_dir_(std::move(sweeps_dir)) {}

  int Run();

 private:
  Status CheckProfile();
  Status EnsureData();
  Status StartCoordinator();
  Status SubmitSweeps();
  Status RunGroups();
  void StopGroups();
  void StopCoordinator();
  int Report();

  std::string dir_;
  Profile profile_;
  int groups_;
  std::string sweeps_dir_;
  std::string endpoint_;
  cluster::SystemCommandRunner runner_;
  int64_t coordinator_pid_ = -1;
  std::unique_ptr<cluster::LocalMpirunLauncher> launcher_;
  std::vector<cluster::LaunchHandle> handles_;
  std::map<int64_t, std::string> sweep_names_;  // sweep id -> short name
  bool any_failed_ = false;
};

Status Demo::CheckProfile() {
  const std::string path = dir_ + "/demo.json";
  json want = {{"profile", profile_.name}, {"images", profile_.images}};
  if (PathExists(path)) {
    SD2_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
    auto have = ParseJsonBounded(text);
    if (!have.ok() || *have != want) {
      return InvalidArgumentError(dir_ + " holds a demo with other settings (" + text +
                                  "); use another --dir or remove it");
    }
    return OkStatus();
  }
  return WriteFileAtomic(path, want.dump() + "\n");
}

Status Demo::EnsureData() {
  const std::string manifest = dir_ + "/data/manifest.jsonl";
  if (PathExists(manifest) && PathExists(manifest + ".sha256")) {
    std::cout << "data: synthetic MMI-DD in " << dir_ << "/data (reused)\n";
    return OkStatus();
  }
  std::cout << "data: generating a synthetic MMI-DD of " << profile_.images << " images in " << dir_
            << "/data ..." << std::flush;
  worker::data::SynthOptions o;
  o.out_dir = dir_ + "/data";
  o.images = profile_.images;
  o.seed = 2025;
  o.image_size = profile_.image_size;
  SD2_ASSIGN_OR_RETURN(worker::data::SynthSummary s, worker::data::Synthesize(o));
  std::printf(" %.1f s\n", s.seconds);
  return OkStatus();
}

Status Demo::StartCoordinator() {
  endpoint_ = "ipc://" + dir_ + "/coordinator.sock";
  std::vector<std::string> argv = {SelfDir() + "/sd2-coordinator",
                                   "--db",
                                   dir_ + "/sd2.db",
                                   "--bind",
                                   endpoint_,
                                   "--lease-s",
                                   "8",
                                   "--heartbeat-s",
                                   "1"};
  const std::string log = dir_ + "/logs/coordinator.log";
  SD2_ASSIGN_OR_RETURN(coordinator_pid_, runner_.Start(argv, {}, log));
  // Wait until it answers.
  coordinator::Client client(endpoint_, {/*timeout_s=*/1, /*give_up_s=*/1});
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline && !g_interrupted) {
    SD2_ASSIGN_OR_RETURN(std::optional<int> code, runner_.TryWait(coordinator_pid_));
    if (code) {
      coordinator_pid_ = -1;
      return UnavailableError("sd2-coordinator exited with code " + std::to_string(*code) +
                              "; its log (" + log + ") ends with:\n" + TailOf(log));
    }
    if (client.Call(protocol::StatusRequest{}).ok()) {
      std::cout << "coordinator: " << endpoint_ << " (db " << dir_ << "/sd2.db, log " << log
                << ")\n";
      return OkStatus();
    }
  }
  return UnavailableError("sd2-coordinator did not answer within 30 s; see " + log);
}

Status Demo::SubmitSweeps() {
  SD2_ASSIGN_OR_RETURN(std::vector<std::string> files, PaperSweeps(sweeps_dir_));
  sweeps::ExpandOptions opts;
  opts.vars["SD2_DATA"] = dir_ + "/data";
  // No pretrained weights here: empty paths leave hparams.pretrained out, and the demo opts
  // into random initialisation, which its trial configs record (docs/sweeps.md).
  opts.vars["SD2_CLIP"] = "";
  opts.vars["SD2_XCEPTION"] = "";
  opts.allow_random_init = true;
  opts.scale_map = ScaleMap(profile_);
  opts.overrides = Overrides(profile_);
  // The paper's sweeps ask for 8-GPU groups; the demo's groups are one CPU rank each.
  opts.resources = {{"ranks", 1}, {"gpus_per_rank", 0}};
  coordinator::Client client(endpoint_, {/*timeout_s=*/10, /*give_up_s=*/30});
  for (const std::string& file : files) {
    SD2_ASSIGN_OR_RETURN(protocol::Submit req, coordinator::BuildSubmit(file, opts));
    SD2_ASSIGN_OR_RETURN(protocol::Submitted rep, (client.CallAs<protocol::Submitted>(req)));
    std::string name = fs::path(file).stem().string();
    sweep_names_[rep.sweep_id] = name;
    std::cout << "submitted " << name << ": " << rep.trials << " trials (" << rep.reused
              << " reused, " << rep.queued << " queued)\n";
  }
  return OkStatus();
}

Status Demo::RunGroups() {
  cluster::LocalMpirunOptions lo;
  lo.worker_binary = SelfDir() + "/sd2-worker";
  lo.oversubscribe = true;
  lo.allow_run_as_root = ::geteuid() == 0;
  lo.log_dir = dir_ + "/logs";
  lo.extra_mpirun_args = {"--bind-to", "none"};
  launcher_ = std::make_unique<cluster::LocalMpirunLauncher>(&runner_, lo);
  cluster::GroupSpec spec;
  spec.ranks = 1;
  spec.coordinator = endpoint_;
  spec.work_dir = dir_ + "/work";
  spec.idle_exit_seconds = 600;  // the demo stops its groups itself when the sweeps end
  spec.env = {{"OMP_NUM_THREADS", "1"}, {"OPENBLAS_NUM_THREADS", "1"}};

  coordinator::Client client(endpoint_, {/*timeout_s=*/5, /*give_up_s=*/20});
  const auto start = Clock::now();
  int64_t ended_at_start = -1;
  int relaunches = 0;
  bool tty = ::isatty(STDOUT_FILENO);
  std::string last_line;
  while (!g_interrupted) {
    SD2_ASSIGN_OR_RETURN(protocol::Message reply, client.Call(protocol::StatusRequest{}));
    SD2_RETURN_IF_ERROR(protocol::ReplyStatus(reply));
    Progress p = Summarize(reply.body, sweep_names_);
    if (ended_at_start < 0) ended_at_start = p.ended;
    if (p.ended >= p.total) {
      if (tty) std::cout << "\n";
      std::cout << "all " << p.total << " trials of the demo's sweeps ended (" << p.failed
                << " failed or cancelled) in "
                << FormatDuration(std::chrono::duration<double>(Clock::now() - start).count())
                << "\n";
      any_failed_ = p.failed > 0;
      return OkStatus();
    }
    // Keep `groups_` groups alive while there is work.
    for (size_t i = 0; i < handles_.size(); ++i) {
      StatusOr<cluster::LaunchState> st = launcher_->Poll(handles_[i]);
      if (st.ok() && !cluster::IsTerminal(*st)) continue;
      if (++relaunches > 4 * groups_) {
        return UnavailableError("worker groups keep exiting; see " + dir_ + "/logs");
      }
      spec.name = "group-" + std::to_string(i);
      SD2_ASSIGN_OR_RETURN(handles_[i], launcher_->Launch(spec));
    }
    while (int(handles_.size()) < groups_) {
      spec.name = "group-" + std::to_string(handles_.size());
      SD2_ASSIGN_OR_RETURN(cluster::LaunchHandle h, launcher_->Launch(spec));
      handles_.push_back(h);
    }
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    int64_t done_here = p.ended - ended_at_start;
    double eta = done_here > 0 ? elapsed / double(done_here) * double(p.total - p.ended) : -1;
    std::ostringstream line;
    line << Bar(p.ended, p.total) << " " << p.ended << "/" << p.total << " trials, " << p.running
         << " running, ETA " << FormatDuration(eta) << " | " << p.line;
    if (tty) {
      std::cout << "\r" << line.str() << "\033[K" << std::flush;
    } else if (line.str() != last_line) {
      std::cout << line.str() << "\n" << std::flush;
    }
    last_line = line.str();
    for (int i = 0; i < 10 && !g_interrupted; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  if (tty) std::cout << "\n";
  return CancelledError("interrupted");
}

void Demo::StopGroups() {
  if (!launcher_) return;
  for (const auto& h : handles_) (void)launcher_->Cancel(h);  // SIGTERM: checkpoint and exit
  auto deadline = Clock::now() + std::chrono::seconds(30);
  for (const auto& h : handles_) {
    while (Clock::now() < deadline) {
      StatusOr<cluster::LaunchState> st = launcher_->Poll(h);
      if (!st.ok() || cluster::IsTerminal(*st)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  for (const auto& h : handles_) {
    StatusOr<cluster::LaunchState> st = launcher_->Poll(h);
    if (st.ok() && !cluster::IsTerminal(*st)) {
      (void)runner_.Signal(std::stoll(h.id), SIGKILL);
    }
  }
  handles_.clear();
}

void Demo::StopCoordinator() {
  if (coordinator_pid_ < 0) return;
  coordinator::Client client(endpoint_, {/*timeout_s=*/2, /*give_up_s=*/4});
  (void)client.Call(protocol::Shutdown{});
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    StatusOr<std::optional<int>> code = runner_.TryWait(coordinator_pid_);
    if (!code.ok() || code->has_value()) {
      coordinator_pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  (void)runner_.Signal(coordinator_pid_, SIGKILL);
  (void)runner_.TryWait(coordinator_pid_);
  coordinator_pid_ = -1;
}

int Demo::Report() {
  const Command* report = nullptr;
  for (const Command& c : Commands()) {
    if (c.name == "report") report = &c;
  }
  if (!report) {
    std::cerr << "sd2ctl demo: this sd2ctl has no report command\n";
    return kExitFailure;
  }
  std::string db = dir_ + "/sd2.db";
  auto call = [&](std::vector<std::string> args) {
    std::string name = "sd2ctl report";
    std::vector<char*> argv = {name.data()};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return report->run(int(argv.size()) - 1, argv.data());
  };
  std::cout << "\n";
  int rc = call({"--db", db, "--format", "md"});
  if (rc != kExitOk) return rc;
  std::cout << "\nfiles:\n";
  rc = call({"--db", db, "--format", "html", "--out", dir_});
  if (rc != kExitOk) return rc;
  std::cout << "\nOpen " << dir_ << "/report.html for the tables and the scaling figure.\n";
  return kExitOk;
}

int Demo::Run() {
  auto t0 = Clock::now();
  Status s = MakeDirs(dir_ + "/logs");
  if (s.ok()) s = CheckProfile();
  if (s.ok()) s = EnsureData();
  if (s.ok() && !g_interrupted) s = StartCoordinator();
  if (s.ok() && !g_interrupted) s = SubmitSweeps();
  if (s.ok() && !g_interrupted) s = RunGroups();
  if (g_interrupted && s.ok()) s = CancelledError("interrupted");
  StopGroups();
  StopCoordinator();
  if (!s.ok()) {
    if (s.code() == StatusCode::kCancelled) {
      std::cout << "\nsd2ctl demo: interrupted; every finished trial and checkpoint is kept. "
                   "Run the same command again to resume.\n";
      return 130;
    }
    std::cerr << "sd2ctl demo: " << s.message() << "\n";
    return ExitCodeFor(s);
  }
  int rc = Report();
  std::cout << "demo finished in "
            << FormatDuration(std::chrono::duration<double>(Clock::now() - t0).count()) << "\n";
  if (rc != kExitOk) return rc;
  return any_failed_ ? kExitFailure : kExitOk;
}

int RunDemoCommand(int argc, char** argv) {
  CLI::App app(
      "Run the whole paper end to end on this machine: generate a synthetic MMI-DD, start a "
      "coordinator on DIR/sd2.db, submit the paper's sweeps at demo scale (100K/1M/3M become "
      "sizes in the same 1:10:30 ratio, tiny models), run local mpirun worker groups on the CPU, "
      "and print Tables 2-8 (DIR/report.html, DIR/scaling.svg). Interrupt it and run it again "
      "to resume.",
      argv[0]);
  std::string dir = "sd2-demo", sweeps_dir;
  bool quick = false;
  int groups = 0;
  app.add_option("--dir", dir, "working directory (data, database, checkpoints, report)")
      ->capture_default_str();
  app.add_flag("--quick", quick, "smaller scales and fewer steps: the same tables in ~3 minutes");
  app.add_option("--groups", groups, "local worker groups (default: one per core)")
      ->check(CLI::Range(1, 64));
  app.add_option("--sweeps", sweeps_dir, "directory of sweep files (default: sweeps/paper)");
  if (std::optional<int> rc = ParseCommandLine(app, argc, argv)) return *rc;
  if (groups == 0) groups = std::max(1, int(std::thread::hardware_concurrency()));
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::string abs_dir = fs::absolute(dir, ec).lexically_normal().string();
  while (abs_dir.size() > 1 && abs_dir.back() == '/') abs_dir.pop_back();

  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);

  Demo demo(abs_dir, MakeProfile(quick), groups, sweeps_dir);
  return demo.Run();
}

SD2_REGISTER_COMMAND("demo", "run the whole paper end to end on this machine", RunDemoCommand);

}  // namespace
}  // namespace sd2::cli
