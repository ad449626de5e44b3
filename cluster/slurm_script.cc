#include "cluster/slurm_script.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "cluster/command_runner.h"

namespace sd2::cluster {
namespace {

bool HasNewline(const std::string& s) { return s.find_first_of("\r\n") != std::string::npos; }

Status CheckText(const std::string& field, const std::string& value) {
  if (HasNewline(value)) return InvalidArgumentError(field + " must not contain a newline");
  return OkStatus();
}

// Quotes a value for `export NAME=VALUE` and command lines in the script.
std::string Quote(const std::string& s) { return JoinCommandLine({s}); }

void Sbatch(std::ostringstream& os, const std::string& option) {
  os << "#SBATCH " << option << "\n";
}

struct Resources {
  std::string name;
  int nodes;
  int tasks_per_node;
  int gpus_per_node;
  int cpus_per_task;
  std::map<std::string, std::string> env;
};

void RenderHeader(std::ostringstream& os, const Resources& r, const SlurmJobOptions& job,
                  int array_size) {
  Sbatch(os, "--job-name=" + r.name);
  Sbatch(os, "--nodes=" + std::to_string(r.nodes));
  Sbatch(os, "--ntasks-per-node=" + std::to_string(r.tasks_per_node));
  Sbatch(os, "--cpus-per-task=" + std::to_string(r.cpus_per_task));
  if (r.gpus_per_node > 0) {
    Sbatch(os, (job.gpu_request == "gres" ? "--gres=gpu:" : "--gpus-per-node=") +
                   std::to_string(r.gpus_per_node));
  }
  if (!job.time.empty()) Sbatch(os, "--time=" + job.time);
  if (!job.partition.empty()) Sbatch(os, "--partition=" + job.partition);
  if (!job.account.empty()) Sbatch(os, "--account=" + job.account);
  if (!job.qos.empty()) Sbatch(os, "--qos=" + job.qos);
  if (job.requeue) Sbatch(os, "--requeue");
  if (job.signal_seconds > 0) Sbatch(os, "--signal=B:USR1@" + std::to_string(job.signal_seconds));
  Sbatch(os, "--open-mode=append");
  std::string dir = job.output_dir.empty() ? "" : job.output_dir + "/";
  Sbatch(os, "--output=" + dir + (array_size > 1 ? "%x-%A_%a.out" : "%x-%j.out"));
  if (array_size > 1) Sbatch(os, "--array=0-" + std::to_string(array_size - 1));
  for (const auto& line : job.extra_sbatch) Sbatch(os, line);
  os << "set -euo pipefail\n\n";
  os << "# NCCL and MPI environment (docs/cluster.md explains each); values exported before "
        "sbatch\n"
        "# win.\n"
        "export NCCL_DEBUG=\"${NCCL_DEBUG:-WARN}\"\n"
        "export NCCL_ASYNC_ERROR_HANDLING=\"${NCCL_ASYNC_ERROR_HANDLING:-1}\"\n"
        "export OMP_NUM_THREADS=\"${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}\"\n"
        "export OMPI_MCA_mpi_yield_when_idle=\"${OMPI_MCA_mpi_yield_when_idle:-1}\"\n";
  for (const auto& [name, value] : r.env) os << "export " << name << "=" << Quote(value) << "\n";
  os << "SD2_WORKER=\"${SD2_WORKER:-" << job.worker_binary << "}\"\n\n";
}

// The part both shapes share: run the worker in the background, forward USR1/TERM to it, wait
// for it (again after a trapped signal interrupts `wait`), and leave its exit code in $rc.
void RenderRunWorker(std::ostringstream& os, const SlurmJobOptions& job,
                     const std::vector<std::string>& worker_args) {
  os << "# Slurm sends USR1 to this shell before the time limit (--signal=B:USR1@SECONDS), and\n"
        "# TERM on scancel or preemption. Forward both to the worker: it writes a checkpoint and\n"
        "# exits "
     << kWorkerExitPreempted
     << " (preempted).\n"
        "worker_pid=\"\"\n"
        "signalled=0\n"
        "last_signal=\"\"\n"
        "pending_signal=\"\"\n"
        "forward() {\n"
        "  signalled=1\n"
        "  last_signal=$1\n"
        "  echo \"sd2: got SIG$1, forwarding it to the worker (pid ${worker_pid:-none})\" >&2\n"
        "  if [[ -n \"$worker_pid\" ]]; then\n"
        "    kill -s \"$1\" \"$worker_pid\" 2>/dev/null || true\n"
        "  else\n"
        "    pending_signal=$1  # arrived before the worker started: forwarded once it has\n"
        "  fi\n"
        "}\n"
        "trap 'forward USR1' USR1\n"
        "trap 'forward TERM' TERM\n\n";
  std::string args = JoinCommandLine(worker_args);
  switch (job.rank_launcher) {
    case RankLauncher::kSrun:
      os << "srun --kill-on-bad-exit=1 \"$SD2_WORKER\" " << args << " &\n";
      break;
    case RankLauncher::kMpirun:
      os << "mpirun -np \"${SLURM_NTASKS:-1}\" \"$SD2_WORKER\" " << args << " &\n";
      break;
    case RankLauncher::kDirect:
      os << "\"$SD2_WORKER\" " << args << " &\n";
      break;
  }
  os << "worker_pid=$!\n"
        "if [[ -n \"$pending_signal\" ]]; then kill -s \"$pending_signal\" \"$worker_pid\" || "
        "true; fi\n"
        "rc=0\n"
        "while :; do\n"
        "  signalled=0\n"
        "  status=0\n"
        "  wait \"$worker_pid\" || status=$?\n"
        "  # 127: reaped already by the previous wait, whose status stands.\n"
        "  if ((status == 127 && rc > 128)); then break; fi\n"
        "  rc=$status\n"
        "  # A trapped signal interrupts wait (status > 128) while the worker checkpoints: wait "
        "again.\n"
        "  if ((signalled && rc > 128)); then continue; fi\n"
        "  break\n"
        "done\n"
        "echo \"sd2: worker exited with status $rc\" >&2\n\n";
}

void RenderExit(std::ostringstream& os, const SlurmJobOptions& job, const std::string& done_msg) {
  os << "case \"$rc\" in\n"
        "  0)\n"
        "    echo \"sd2: "
     << done_msg
     << "\" >&2\n"
        "    exit 0\n"
        "    ;;\n"
        "  "
     << kWorkerExitPreempted << ")\n";
  if (job.requeue) {
    os << "    # Preempted: the checkpoint is written. After TERM (scancel, or a preemption that\n"
          "    # Slurm requeues itself) stop here; otherwise requeue this job so the work "
          "resumes.\n"
          "    if [[ \"$last_signal\" == TERM ]]; then\n"
          "      echo \"sd2: stopped by SIGTERM; not requeueing\" >&2\n"
          "      exit 0\n"
          "    fi\n"
          "    echo \"sd2: preempted; requeueing job ${SLURM_JOB_ID:-?}\" >&2\n"
          "    if [[ -n \"${SLURM_JOB_ID:-}\" ]]; then\n"
          "      scontrol requeue \"$SLURM_JOB_ID\" || echo \"sd2: scontrol requeue failed\" >&2\n"
          "    fi\n"
          "    exit 0\n";
  } else {
    os << "    echo \"sd2: preempted (this job is not requeued: rendered without --requeue)\" >&2\n"
          "    exit "
       << kWorkerExitPreempted << "\n";
  }
  os << "    ;;\n"
        "  *)\n"
        "    exit \"$rc\"\n"
        "    ;;\n"
        "esac\n";
}

Status ValidateEnv(const std::map<std::string, std::string>& env) {
  for (const auto& [name, value] : env) {
    bool ok = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
    for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    if (!ok) return InvalidArgumentError("bad environment variable name '" + name + "'");
    SD2_RETURN_IF_ERROR(CheckText("environment variable " + name, value));
  }
  return OkStatus();
}

StatusOr<int> ParseField(const std::string& text, const std::string& part) {
  if (part.empty() || part.size() > 4 ||
      part.find_first_not_of("0123456789") != std::string::npos) {
    return InvalidArgumentError("bad Slurm time '" + text +
                                "': expected [D-]HH:MM:SS, MM:SS or minutes");
  }
  return std::stoi(part);
}

}  // namespace

const char* RankLauncherName(RankLauncher l) {
  switch (l) {
    case RankLauncher::kSrun:
      return "srun";
    case RankLauncher::kMpirun:
      return "mpirun";
    case RankLauncher::kDirect:
      return "direct";
  }
  return "?";
}

StatusOr<RankLauncher> ParseRankLauncher(const std::string& name) {
  if (name == "srun") return RankLauncher::kSrun;
  if (name == "mpirun") return RankLauncher::kMpirun;
  if (name == "direct") return RankLauncher::kDirect;
  return InvalidArgumentError("unknown rank launcher '" + name +
                              "' (expected srun, mpirun or direct)");
}

StatusOr<int64_t> ParseSlurmTime(const std::string& text) {
  std::string rest = text;
  int64_t days = 0;
  bool has_days = false;
  if (auto dash = rest.find('-'); dash != std::string::npos) {
    SD2_ASSIGN_OR_RETURN(int d, ParseField(text, rest.substr(0, dash)));
    days = d;
    has_days = true;
    rest = rest.substr(dash + 1);
  }
  std::vector<int> parts;
  std::stringstream ss(rest);
  std::string part;
  while (std::getline(ss, part, ':')) {
    SD2_ASSIGN_OR_RETURN(int v, ParseField(text, part));
    parts.push_back(v);
  }
  if (!rest.empty() && rest.back() == ':') parts.push_back(-1);
  if (parts.empty() || parts.size() > 3 ||
      std::find(parts.begin(), parts.end(), -1) != parts.end()) {
    return InvalidArgumentError("bad Slurm time '" + text +
                                "': expected [D-]HH:MM:SS, MM:SS or minutes");
  }
  int64_t seconds = 0;
  if (has_days) {
    // D-HH, D-HH:MM, D-HH:MM:SS
    seconds = parts[0] * 3600LL + (parts.size() > 1 ? parts[1] * 60LL : 0) +
              (parts.size() > 2 ? parts[2] : 0);
  } else if (parts.size() == 1) {
    seconds = parts[0] * 60LL;  // minutes
  } else if (parts.size() == 2) {
    seconds = parts[0] * 60LL + parts[1];  // MM:SS
  } else {
    seconds = parts[0] * 3600LL + parts[1] * 60LL + parts[2];
  }
  if (seconds + days <= 0) return InvalidArgumentError("Slurm time '" + text + "' is zero");
  return days * 86400 + seconds;
}

Status ValidateJobOptions(const SlurmJobOptions& job) {
  for (const auto& [field, value] :
       {std::pair<std::string, std::string>{"partition", job.partition},
        {"account", job.account},
        {"qos", job.qos},
        {"output_dir", job.output_dir},
        {"worker_binary", job.worker_binary}}) {
    SD2_RETURN_IF_ERROR(CheckText(field, value));
    if (field != "output_dir" && field != "worker_binary" &&
        value.find_first_of(" \t'\"$`\\") != std::string::npos) {
      return InvalidArgumentError(field + " '" + value + "' must not contain spaces or quotes");
    }
  }
  if (job.gpu_request != "gpus-per-node" && job.gpu_request != "gres") {
    return InvalidArgumentError("gpu_request '" + job.gpu_request +
                                "': expected gpus-per-node or gres");
  }
  if (job.worker_binary.empty()) return InvalidArgumentError("worker_binary is empty");
  if (job.worker_binary.find_first_of("}\"`$") != std::string::npos) {
    return InvalidArgumentError("worker_binary '" + job.worker_binary +
                                "' must not contain } \" ` or $");
  }
  if (job.output_dir.find_first_of(" \t") != std::string::npos) {
    return InvalidArgumentError("output_dir '" + job.output_dir + "' must not contain spaces");
  }
  if (job.signal_seconds < 0 || job.signal_seconds > 65535) {
    return InvalidArgumentError("signal_seconds must be in 0..65535, got " +
                                std::to_string(job.signal_seconds));
  }
  if (!job.time.empty()) {
    SD2_ASSIGN_OR_RETURN(int64_t seconds, ParseSlurmTime(job.time));
    if (job.signal_seconds > 0 && job.signal_seconds >= seconds) {
      return InvalidArgumentError("signal_seconds (" + std::to_string(job.signal_seconds) +
                                  ") must be shorter than the time limit " + job.time);
    }
  }
  for (const auto& line : job.extra_sbatch) {
    SD2_RETURN_IF_ERROR(CheckText("extra sbatch option", line));
    if (line.rfind("--", 0) != 0 && line.rfind("-", 0) != 0) {
      return InvalidArgumentError("extra sbatch option '" + line + "' must start with '-'");
    }
  }
  return OkStatus();
}

StatusOr<std::string> RenderGroupsScript(const GroupSpec& spec, const SlurmJobOptions& job,
                                         int array_size) {
  SD2_RETURN_IF_ERROR(ValidateGroupSpec(spec));
  SD2_RETURN_IF_ERROR(ValidateJobOptions(job));
  SD2_RETURN_IF_ERROR(ValidateEnv(spec.env));
  if (spec.coordinator.empty()) {
    return InvalidArgumentError("groups script: a coordinator endpoint is required");
  }
  SD2_RETURN_IF_ERROR(CheckText("coordinator", spec.coordinator));
  if (array_size < 1) {
    return InvalidArgumentError("groups script: array size must be >= 1, got " +
                                std::to_string(array_size));
  }
  if (job.rank_launcher == RankLauncher::kDirect && spec.ranks != 1) {
    return InvalidArgumentError("rank launcher 'direct' runs one rank; the group has " +
                                std::to_string(spec.ranks));
  }
  int tasks_per_node = spec.ranks / spec.nodes;
  Resources r{spec.name,          spec.nodes, tasks_per_node, spec.gpus_per_rank * tasks_per_node,
              spec.cpus_per_rank, spec.env};
  std::ostringstream os;
  os << "#!/bin/bash\n"
        "# sd2 worker groups (generated by sd2ctl slurm render --shape groups): each job"
     << (array_size > 1 ? " of the array" : "") << "\n# is one group of " << spec.ranks
     << " rank(s) that connects to the coordinator at " << spec.coordinator
     << "\n# and takes trials until it has none left. Submit with: sbatch THIS_FILE\n";
  RenderHeader(os, r, job, array_size);
  std::vector<std::string> args = WorkerCommand(spec, "");
  args.erase(args.begin());
  RenderRunWorker(os, job, args);
  RenderExit(os, job, "no work left for this group");
  return os.str();
}

StatusOr<std::string> RenderAllocationScript(const AllocationSpec& spec,
                                             const SlurmJobOptions& job) {
  SD2_RETURN_IF_ERROR(ValidateJobOptions(job));
  SD2_RETURN_IF_ERROR(ValidateEnv(spec.env));
  GroupSpec check;
  check.name = spec.name;
  check.ranks = spec.nodes * spec.tasks_per_node;
  check.nodes = spec.nodes;
  check.gpus_per_rank = spec.gpus_per_rank;
  check.cpus_per_rank = spec.cpus_per_rank;
  check.devices = spec.devices;
  if (spec.tasks_per_node < 1) {
    return InvalidArgumentError("allocation script: tasks_per_node must be >= 1");
  }
  SD2_RETURN_IF_ERROR(ValidateGroupSpec(check));
  if (spec.sweep_file.empty()) return InvalidArgumentError("allocation script: no sweep file");
  if (spec.db_path.empty()) {
    return InvalidArgumentError("allocation script: no database path (--db)");
  }
  SD2_RETURN_IF_ERROR(CheckText("sweep file", spec.sweep_file));
  SD2_RETURN_IF_ERROR(CheckText("database path", spec.db_path));
  SD2_RETURN_IF_ERROR(CheckText("work dir", spec.work_dir));
  if (spec.group_size < 1 || check.ranks % spec.group_size != 0) {
    return InvalidArgumentError("allocation script: group size " + std::to_string(spec.group_size) +
                                " does not divide the " + std::to_string(check.ranks) +
                                " ranks of the allocation");
  }
  if (job.rank_launcher == RankLauncher::kDirect && check.ranks != 1) {
    return InvalidArgumentError("rank launcher 'direct' runs one rank; the allocation has " +
                                std::to_string(check.ranks));
  }
  Resources r{spec.name,           spec.nodes,
              spec.tasks_per_node, spec.gpus_per_rank * spec.tasks_per_node,
              spec.cpus_per_rank,  spec.env};
  std::ostringstream os;
  os << "#!/bin/bash\n"
        "# sd2 sweep allocation (generated by sd2ctl slurm render --shape allocation): runs the\n"
        "# whole sweep "
     << spec.sweep_file << " as " << check.ranks / spec.group_size << " group(s) of "
     << spec.group_size << " rank(s), coordinator\n# inside the job, database " << spec.db_path
     << " on shared storage; requeued until the sweep is done.\n"
        "# Submit with: sbatch THIS_FILE\n";
  RenderHeader(os, r, job, 1);
  std::vector<std::string> args = {"--sweep",      spec.sweep_file,
                                   "--group-size", std::to_string(spec.group_size),
                                   "--db",         spec.db_path};
  for (const auto& [name, value] : spec.vars) {
    SD2_RETURN_IF_ERROR(CheckText("--var " + name, value));
    args.push_back("--var");
    args.push_back(name + "=" + value);
  }
  if (!spec.work_dir.empty()) {
    args.push_back("--work-dir");
    args.push_back(spec.work_dir);
  }
  const std::string devices = WorkerDevices(spec.devices, spec.gpus_per_rank);
  if (!devices.empty() && !HasDevicesFlag(spec.worker_args)) {
    args.push_back("--devices");
    args.push_back(devices);
  }
  for (const auto& a : spec.worker_args) {
    SD2_RETURN_IF_ERROR(CheckText("worker argument", a));
    args.push_back(a);
  }
  RenderRunWorker(os, job, args);
  RenderExit(os, job, "sweep done");
  return os.str();
}

}  // namespace sd2::cluster
