#include "cluster/slurm_launcher.h"

#include <sstream>
#include <utility>

#include "common/file_util.h"

namespace sd2::cluster {
namespace {

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    line = Trim(line);
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

std::vector<std::string> SplitOn(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

bool IsJobId(const std::string& id) {
  // "1234" or "1234_7".
  auto parts = SplitOn(id, '_');
  if (parts.size() > 2) return false;
  for (const auto& p : parts) {
    if (p.empty() || p.find_first_not_of("0123456789") != std::string::npos) return false;
  }
  return true;
}

std::string Brief(const CommandResult& r) {
  std::string msg = Trim(r.err.empty() ? r.out : r.err);
  return msg.empty() ? "exit code " + std::to_string(r.exit_code) : msg;
}

}  // namespace

StatusOr<std::string> ParseSbatchParsable(const std::string& out) {
  auto lines = Lines(out);
  if (lines.empty()) return UnavailableError("sbatch --parsable printed nothing");
  // sbatch may print warnings before the id; the id is the last line.
  std::string id = SplitOn(lines.back(), ';')[0];
  if (!IsJobId(id) || id.find('_') != std::string::npos) {
    return UnavailableError("sbatch --parsable printed '" + lines.back() + "', not a job id");
  }
  return id;
}

StatusOr<LaunchState> SlurmStateToLaunchState(const std::string& slurm_state, int exit_code) {
  std::string s = Trim(slurm_state);
  s = s.substr(0, s.find(' '));                        // "CANCELLED by 0"
  while (!s.empty() && s.back() == '+') s.pop_back();  // sacct's "CANCELLED+"
  if (s == "PENDING" || s == "REQUEUED" || s == "REQUEUE_HOLD" || s == "REQUEUE_FED" ||
      s == "RESIZING" || s == "SUSPENDED" || s == "CONFIGURING") {
    return LaunchState::kPending;
  }
  if (s == "RUNNING" || s == "COMPLETING" || s == "STOPPED" || s == "SIGNALING" ||
      s == "STAGE_OUT" || s == "RESV_DEL_HOLD") {
    return LaunchState::kRunning;
  }
  if (s == "PREEMPTED") return LaunchState::kPreempted;
  if (s == "COMPLETED" || s == "FAILED") {
    if (exit_code == 0) return LaunchState::kDone;
    if (exit_code == kWorkerExitPreempted) return LaunchState::kPreempted;
    return LaunchState::kFailed;
  }
  if (s == "CANCELLED" || s == "TIMEOUT" || s == "NODE_FAIL" || s == "BOOT_FAIL" ||
      s == "DEADLINE" || s == "OUT_OF_MEMORY" || s == "SPECIAL_EXIT" || s == "REVOKED") {
    return LaunchState::kFailed;
  }
  return InvalidArgumentError("unknown Slurm job state '" + slurm_state + "'");
}

std::optional<std::string> ParseSqueueState(const std::string& out, const std::string& id) {
  for (const auto& line : Lines(out)) {
    auto f = SplitOn(line, '|');
    if (f.size() >= 2 && Trim(f[0]) == id) return Trim(f[1]);
  }
  return std::nullopt;
}

std::map<std::string, std::string> ParseScontrolRecord(const std::string& line) {
  std::map<std::string, std::string> out;
  std::stringstream ss(line);
  std::string word;
  while (ss >> word) {
    auto eq = word.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    out[word.substr(0, eq)] = word.substr(eq + 1);
  }
  return out;
}

StatusOr<int> ParseSlurmExitCode(const std::string& text) {
  auto parts = SplitOn(Trim(text), ':');
  if (parts.size() != 2) return InvalidArgumentError("bad Slurm exit code '" + text + "'");
  for (const auto& p : parts) {
    if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos) {
      return InvalidArgumentError("bad Slurm exit code '" + text + "'");
    }
  }
  int code = std::stoi(parts[0]);
  int signal = std::stoi(parts[1]);
  return signal != 0 ? 128 + signal : code;
}

StatusOr<std::optional<SacctRecord>> ParseSacct(const std::string& out, const std::string& id) {
  for (const auto& line : Lines(out)) {
    auto f = SplitOn(line, '|');
    if (f.size() < 3) return UnavailableError("unexpected sacct line '" + line + "'");
    if (f[0] != id) continue;
    SD2_ASSIGN_OR_RETURN(int code, ParseSlurmExitCode(f[2]));
    return std::optional<SacctRecord>(SacctRecord{f[1], code});
  }
  return std::optional<SacctRecord>();
}

StatusOr<int> ParseMaxArraySize(const std::string& config) {
  for (const auto& line : Lines(config)) {
    auto eq = line.find('=');
    if (eq == std::string::npos || Trim(line.substr(0, eq)) != "MaxArraySize") continue;
    std::string v = Trim(line.substr(eq + 1));
    if (v.empty() || v.size() > 9 || v.find_first_not_of("0123456789") != std::string::npos) {
      return InvalidArgumentError("bad MaxArraySize '" + v + "'");
    }
    return std::stoi(v);
  }
  return NotFoundError("MaxArraySize not found in scontrol show config output");
}

std::vector<int> SplitIntoArrays(int count, int max_array_size) {
  std::vector<int> out;
  int chunk = std::max(1, max_array_size);
  while (count > 0) {
    int n = std::min(count, chunk);
    out.push_back(n);
    count -= n;
  }
  return out;
}

SlurmLauncher::SlurmLauncher(CommandRunner* runner, SlurmLauncherOptions options)
    : runner_(runner), options_(std::move(options)) {}

StatusOr<int> SlurmLauncher::MaxArraySize() {
  if (options_.max_array_size > 0) return options_.max_array_size;
  SD2_ASSIGN_OR_RETURN(CommandResult r, runner_->Run({options_.scontrol, "show", "config"}));
  if (r.exit_code != 0) return UnavailableError("scontrol show config failed: " + Brief(r));
  SD2_ASSIGN_OR_RETURN(int max, ParseMaxArraySize(r.out));
  // MaxArraySize=0 disables job arrays: submit one job per group.
  options_.max_array_size = std::max(1, max);
  return options_.max_array_size;
}

StatusOr<std::string> SlurmLauncher::Submit(const GroupSpec& spec, int array_size) {
  if (options_.script_dir.empty()) {
    return InvalidArgumentError("slurm launcher: no script directory configured");
  }
  SD2_ASSIGN_OR_RETURN(std::string script, RenderGroupsScript(spec, options_.job, array_size));
  SD2_RETURN_IF_ERROR(MakeDirs(options_.script_dir));
  std::string path =
      options_.script_dir + "/" + spec.name + "-" + std::to_string(submissions_++) + ".sbatch";
  SD2_RETURN_IF_ERROR(WriteFileAtomic(path, script));
  last_script_ = path;
  SD2_ASSIGN_OR_RETURN(CommandResult r, runner_->Run({options_.sbatch, "--parsable", path}));
  if (r.exit_code != 0) return UnavailableError("sbatch " + path + " failed: " + Brief(r));
  return ParseSbatchParsable(r.out);
}

StatusOr<LaunchHandle> SlurmLauncher::Launch(const GroupSpec& spec) {
  SD2_ASSIGN_OR_RETURN(std::string id, Submit(spec, 1));
  return LaunchHandle{"slurm", id};
}

StatusOr<std::vector<LaunchHandle>> SlurmLauncher::LaunchMany(const GroupSpec& spec, int count) {
  if (count < 0) return InvalidArgumentError("LaunchMany: negative count");
  std::vector<LaunchHandle> out;
  if (count == 0) return out;
  if (count == 1) {
    SD2_ASSIGN_OR_RETURN(LaunchHandle h, Launch(spec));
    out.push_back(h);
    return out;
  }
  SD2_ASSIGN_OR_RETURN(int max, MaxArraySize());
  for (int size : SplitIntoArrays(count, max)) {
    SD2_ASSIGN_OR_RETURN(std::string id, Submit(spec, size));
    if (size == 1) {
      out.push_back({"slurm", id});
    } else {
      for (int i = 0; i < size; ++i) out.push_back({"slurm", id + "_" + std::to_string(i)});
    }
  }
  return out;
}

StatusOr<std::string> SlurmLauncher::JobIdOf(const LaunchHandle& handle) const {
  if (handle.launcher != "slurm") {
    return InvalidArgumentError("slurm launcher: handle of launcher '" + handle.launcher + "'");
  }
  if (!IsJobId(handle.id)) return InvalidArgumentError("bad Slurm job id '" + handle.id + "'");
  return handle.id;
}

StatusOr<LaunchState> SlurmLauncher::Poll(const LaunchHandle& handle) {
  SD2_ASSIGN_OR_RETURN(std::string id, JobIdOf(handle));
  // 1. squeue knows pending and running jobs (and, with -t all, recently finished ones, but
  //    without their exit code).
  SD2_ASSIGN_OR_RETURN(CommandResult q, runner_->Run({options_.squeue, "-h", "-r", "-t", "all",
                                                      "-o", "%i|%T", "-j", id}));
  if (q.exit_code == 0) {
    if (auto state = ParseSqueueState(q.out, id)) {
      SD2_ASSIGN_OR_RETURN(LaunchState s, SlurmStateToLaunchState(*state, 0));
      if (!IsTerminal(s) || s == LaunchState::kPreempted) return s;
    }
  }
  return PollFinished(id);
}

std::map<LaunchHandle, StatusOr<LaunchState>> SlurmLauncher::PollMany(
    const std::vector<LaunchHandle>& handles) {
  std::map<LaunchHandle, StatusOr<LaunchState>> out;
  std::vector<std::pair<LaunchHandle, std::string>> jobs;
  std::string list;
  for (const LaunchHandle& h : handles) {
    StatusOr<std::string> id = JobIdOf(h);
    if (!id.ok()) {
      out.emplace(h, id.status());
      continue;
    }
    jobs.emplace_back(h, *id);
    list += (list.empty() ? "" : ",") + *id;
  }
  if (jobs.empty()) return out;
  StatusOr<CommandResult> q =
      runner_->Run({options_.squeue, "-h", "-r", "-t", "all", "-o", "%i|%T", "-j", list});
  for (const auto& [h, id] : jobs) {
    if (q.ok() && q->exit_code == 0) {
      if (auto state = ParseSqueueState(q->out, id)) {
        StatusOr<LaunchState> s = SlurmStateToLaunchState(*state, 0);
        if (!s.ok() || !IsTerminal(*s) || *s == LaunchState::kPreempted) {
          out.emplace(h, s);
          continue;
        }
      }
    } else if (!q.ok() && q.status().code() != StatusCode::kNotFound) {
      out.emplace(h, q.status());  // squeue timed out: the state is unknown, not ended
      continue;
    }
    out.emplace(h, PollFinished(id));
  }
  return out;
}

StatusOr<LaunchState> SlurmLauncher::PollFinished(const std::string& id) {
  // 2. scontrol has finished jobs for MinJobAge seconds, with their exit code.
  SD2_ASSIGN_OR_RETURN(CommandResult c, runner_->Run({options_.scontrol, "show", "job", "-o", id}));
  if (c.exit_code == 0) {
    for (const auto& line : Lines(c.out)) {
      auto rec = ParseScontrolRecord(line);
      std::string rec_id = rec.count("ArrayJobId") && rec.count("ArrayTaskId")
                               ? rec["ArrayJobId"] + "_" + rec["ArrayTaskId"]
                               : rec["JobId"];
      if (rec_id != id && rec["JobId"] != id) continue;
      if (!rec.count("JobState")) break;
      int code = 0;
      if (rec.count("ExitCode")) {
        SD2_ASSIGN_OR_RETURN(code, ParseSlurmExitCode(rec["ExitCode"]));
      }
      return SlurmStateToLaunchState(rec["JobState"], code);
    }
  }
  // 3. sacct has everything, where accounting is configured.
  SD2_ASSIGN_OR_RETURN(CommandResult a, runner_->Run({options_.sacct, "-n", "-P", "-X", "-o",
                                                      "JobID,State,ExitCode", "-j", id}));
  if (a.exit_code == 0) {
    SD2_ASSIGN_OR_RETURN(std::optional<SacctRecord> rec, ParseSacct(a.out, id));
    if (rec) return SlurmStateToLaunchState(rec->state, rec->exit_code);
  }
  return NotFoundError("Slurm job " + id + " is unknown to squeue, scontrol and sacct (" +
                       Brief(a) + ")");
}

Status SlurmLauncher::Cancel(const LaunchHandle& handle) {
  SD2_ASSIGN_OR_RETURN(std::string id, JobIdOf(handle));
  SD2_ASSIGN_OR_RETURN(CommandResult r, runner_->Run({options_.scancel, id}));
  if (r.exit_code == 0) return OkStatus();
  std::string msg = Brief(r);
  if (msg.find("already completing or completed") != std::string::npos) return OkStatus();
  if (msg.find("Invalid job id") != std::string::npos) {
    return NotFoundError("scancel " + id + ": " + msg);
  }
  return UnavailableError("scancel " + id + " failed: " + msg);
}

}  // namespace sd2::cluster
