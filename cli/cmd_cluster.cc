// sd2ctl slurm render: write sbatch scripts for a sweep, for users who submit by hand.
// sd2ctl launch: start worker groups through a launcher (local mpirun or Slurm).
//
//   sd2ctl slurm render sweeps/paper/table6_scaling.toml --out slurm/ --shape groups
//       --coordinator tcp://login1:5555 --partition gpu --time 12:00:00   (one command)
//   sd2ctl slurm render table6.toml --shape allocation --db /shared/sd2.db --nodes 4
//   sd2ctl launch --launcher local --coordinator tcp://127.0.0.1:5555 --groups 2 --ranks 2
//   sd2ctl launch --launcher slurm --sweep table6.toml --coordinator tcp://login1:5555
//       --groups 8 --script-dir /shared/sd2/slurm --partition gpu          (one command)
#include <CLI/CLI.hpp>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include "cli/command.h"
#include "cluster/command_runner.h"
#include "cluster/local_launcher.h"
#include "cluster/slurm_launcher.h"
#include "cluster/slurm_script.h"
#include "common/file_util.h"
#include "common/status.h"
#include "sweeps/sweep.h"

namespace sd2::cli {
namespace {

using cluster::AllocationSpec;
using cluster::GroupSpec;
using cluster::SlurmJobOptions;

int Fail(const std::string& cmd, const Status& s) {
  std::cerr << cmd << ": " << s.message() << "\n";
  return ExitCodeFor(s);
}

StatusOr<std::map<std::string, std::string>> ParseVars(const std::vector<std::string>& vars,
                                                       const std::string& flag) {
  std::map<std::string, std::string> out;
  for (const auto& v : vars) {
    auto eq = v.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidArgumentError(flag + " '" + v + "': expected NAME=VALUE");
    }
    out[v.substr(0, eq)] = v.substr(eq + 1);
  }
  return out;
}

// A Slurm job name from a sweep name: letters, digits, '_', '-', '.'; others become '_'.
std::string JobName(const std::string& sweep_name) {
  std::string out;
  for (char c : sweep_name) {
    out +=
        (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.') ? c : '_';
  }
  return out.empty() ? "sd2" : out;
}

std::string Absolute(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

constexpr const char* kDevicesHelp =
    "worker --devices cpu|cuda (default: cuda when the group has GPUs, else the worker's cpu)";

Status CheckDevices(const std::string& devices) {
  if (devices.empty() || devices == "cpu" || devices == "cuda") return OkStatus();
  return InvalidArgumentError("--devices '" + devices + "': expected cpu or cuda");
}

// Options shared by `slurm render` and `launch --launcher slurm`.
struct JobFlags {
  std::string partition, account, qos, time = "24:00:00", launcher = "srun", worker = "sd2-worker",
                                       log_dir, gpu_request = "gpus-per-node";
  int signal_seconds = 300;
  bool no_requeue = false;
  std::vector<std::string> extra;

  void Add(CLI::App& app) {
    app.add_option("--partition", partition, "Slurm partition");
    app.add_option("--account", account, "Slurm account");
    app.add_option("--qos", qos, "Slurm QOS");
    app.add_option("--time", time, "time limit, [D-]HH:MM:SS")->capture_default_str();
    app.add_option("--signal-seconds", signal_seconds,
                   "USR1 (checkpoint and requeue) this many seconds before the time limit")
        ->capture_default_str();
    app.add_option("--rank-launcher", launcher, "how the job starts ranks: srun | mpirun | direct")
        ->capture_default_str();
    app.add_option("--worker", worker, "sd2-worker path on the compute nodes")
        ->capture_default_str();
    app.add_option("--log-dir", log_dir, "directory for the jobs' output files");
    app.add_flag("--no-requeue", no_requeue, "do not requeue a preempted job");
    app.add_option("--sbatch", extra, "extra sbatch option, e.g. --sbatch=--constraint=a100");
    app.add_option("--gpu-request", gpu_request,
                   "how the script asks for GPUs: gpus-per-node (#SBATCH --gpus-per-node=N) or "
                   "gres (#SBATCH --gres=gpu:N)")
        ->capture_default_str();
  }

  StatusOr<SlurmJobOptions> ToOptions() const {
    SlurmJobOptions job;
    job.partition = partition;
    job.account = account;
    job.qos = qos;
    job.time = time;
    job.signal_seconds = signal_seconds;
    job.requeue = !no_requeue;
    job.output_dir = log_dir.empty() ? "" : Absolute(log_dir);
    job.worker_binary = worker;
    job.extra_sbatch = extra;
    job.gpu_request = gpu_request;
    SD2_ASSIGN_OR_RETURN(job.rank_launcher, cluster::ParseRankLauncher(launcher));
    SD2_RETURN_IF_ERROR(cluster::ValidateJobOptions(job));
    return job;
  }
};

int RunSlurmRender(int argc, char** argv) {
  const std::string cmd = argv[0];
  CLI::App app(
      "Write sbatch scripts that run a sweep on Slurm. --shape groups: one job array of worker "
      "groups that connect to a long-lived sd2-coordinator (--coordinator). --shape allocation: "
      "one job that runs the whole sweep with the mpirun sweep launch (--db on shared storage), "
      "requeued until the sweep is done. See docs/cluster.md.",
      cmd);
  std::string sweep_path, out_dir = ".", shape = "groups", coordinator, db, work_dir, devices;
  int nodes = 0, gpus_per_node = -1, cpus_per_task = 1, groups = 0, group_size = 0,
      tasks_per_node = 0, idle_exit = 300;
  std::vector<std::string> var_args, env_args;
  JobFlags flags;
  app.add_option("SWEEP", sweep_path, "sweep file (TOML)")->required();
  app.add_option("--out", out_dir, "directory for the scripts")->capture_default_str();
  app.add_option("--shape", shape, "groups | allocation")->capture_default_str();
  app.add_option("--coordinator", coordinator, "groups: the coordinator endpoint tcp://HOST:PORT");
  app.add_option("--db", db, "allocation: the SQLite store on shared storage");
  app.add_option("--nodes", nodes, "nodes per group (groups) or of the allocation (default 1)");
  app.add_option("--gpus-per-node", gpus_per_node, "GPUs per node (default: from the sweep)");
  app.add_option("--tasks-per-node", tasks_per_node, "allocation: ranks per node");
  app.add_option("--cpus-per-task", cpus_per_task, "CPU cores per rank")->capture_default_str();
  app.add_option("--groups", groups, "groups: array size (default: one per trial)");
  app.add_option("--group-size", group_size, "allocation: ranks per group (default: the sweep's)");
  app.add_option("--work-dir", work_dir, "worker --work-dir (checkpoints; shared storage)");
  app.add_option("--devices", devices, kDevicesHelp);
  app.add_option("--idle-exit", idle_exit, "groups: worker --idle-exit seconds")
      ->capture_default_str();
  app.add_option("--var", var_args, "sweep variable NAME=VALUE");
  app.add_option("--env", env_args, "environment NAME=VALUE exported in the script");
  flags.Add(app);
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;

  auto spec = sweeps::LoadSweepFile(sweep_path);
  if (!spec.ok()) return Fail(cmd, spec.status());
  auto vars = ParseVars(var_args, "--var");
  if (!vars.ok()) return Fail(cmd, vars.status());
  auto env = ParseVars(env_args, "--env");
  if (!env.ok()) return Fail(cmd, env.status());
  auto job = flags.ToOptions();
  if (!job.ok()) return Fail(cmd, job.status());
  if (Status d = CheckDevices(devices); !d.ok()) return Fail(cmd, d);
  if (!work_dir.empty()) work_dir = Absolute(work_dir);
  const std::string name = JobName(spec->name);

  std::string script, file;
  if (shape == "groups") {
    if (coordinator.empty()) {
      return Fail(cmd, InvalidArgumentError(
                           "--shape groups needs --coordinator tcp://HOST:PORT (the long-lived "
                           "sd2-coordinator the groups connect to)"));
    }
    GroupSpec g;
    g.name = name;
    g.ranks = spec->ranks;
    g.gpus_per_rank = spec->gpus_per_rank;
    g.nodes = nodes > 0 ? nodes : 1;
    g.cpus_per_rank = cpus_per_task;
    g.devices = devices;
    g.coordinator = coordinator;
    g.work_dir = work_dir;
    g.idle_exit_seconds = idle_exit;
    g.env = *env;
    if (g.ranks % g.nodes != 0) {
      return Fail(cmd, InvalidArgumentError("the sweep's groups have " + std::to_string(g.ranks) +
                                            " ranks, which do not split over --nodes " +
                                            std::to_string(g.nodes)));
    }
    int want_gpus = g.gpus_per_rank * (g.ranks / g.nodes);
    if (gpus_per_node >= 0 && gpus_per_node != want_gpus) {
      return Fail(cmd, InvalidArgumentError(
                           "--gpus-per-node " + std::to_string(gpus_per_node) +
                           " does not match the sweep: " + std::to_string(g.ranks / g.nodes) +
                           " ranks per node x " + std::to_string(g.gpus_per_rank) +
                           " GPU(s) per rank = " + std::to_string(want_gpus)));
    }
    if (groups <= 0) {
      sweeps::ExpandOptions eo;
      eo.vars = *vars;
      auto trials = sweeps::Expand(*spec, eo);
      if (!trials.ok()) {
        return Fail(cmd, trials.status().WithPrefix(
                             "cannot count the sweep's trials (give --groups K or the --var "
                             "values it needs)"));
      }
      groups = std::max<int>(1, int(trials->size()));
    }
    auto r = cluster::RenderGroupsScript(g, *job, groups);
    if (!r.ok()) return Fail(cmd, r.status());
    script = *r;
    file = name + "-groups.sbatch";
  } else if (shape == "allocation") {
    if (db.empty()) {
      return Fail(cmd, InvalidArgumentError(
                           "--shape allocation needs --db PATH (the SQLite store, on storage "
                           "every node of the job can reach)"));
    }
    AllocationSpec a;
    a.name = name;
    a.sweep_file = Absolute(sweep_path);
    a.db_path = Absolute(db);
    a.nodes = nodes > 0 ? nodes : 1;
    a.group_size = group_size > 0 ? group_size : spec->ranks;
    a.gpus_per_rank = spec->gpus_per_rank;
    a.cpus_per_rank = cpus_per_task;
    a.devices = devices;
    if (tasks_per_node > 0) {
      a.tasks_per_node = tasks_per_node;
    } else if (gpus_per_node > 0 && a.gpus_per_rank > 0) {
      a.tasks_per_node = gpus_per_node / a.gpus_per_rank;
    } else {
      a.tasks_per_node = a.group_size;
    }
    if (gpus_per_node >= 0 && gpus_per_node != a.tasks_per_node * a.gpus_per_rank) {
      return Fail(cmd, InvalidArgumentError("--gpus-per-node " + std::to_string(gpus_per_node) +
                                            " does not match " + std::to_string(a.tasks_per_node) +
                                            " ranks per node x " + std::to_string(a.gpus_per_rank) +
                                            " GPU(s) per rank"));
    }
    a.work_dir = work_dir;
    a.vars = *vars;
    a.env = *env;
    auto r = cluster::RenderAllocationScript(a, *job);
    if (!r.ok()) return Fail(cmd, r.status());
    script = *r;
    file = name + "-allocation.sbatch";
  } else {
    return Fail(cmd,
                InvalidArgumentError("--shape '" + shape + "': expected groups or allocation"));
  }
  Status s = MakeDirs(out_dir);
  if (s.ok()) s = WriteFileAtomic(out_dir + "/" + file, script);
  if (!s.ok()) return Fail(cmd, s);
  std::error_code ec;
  std::filesystem::permissions(out_dir + "/" + file, std::filesystem::perms::owner_exec,
                               std::filesystem::perm_options::add, ec);
  std::cout << out_dir << "/" << file << "\n";
  return kExitOk;
}

int RunLaunch(int argc, char** argv) {
  const std::string cmd = argv[0];
  CLI::App app(
      "Start worker groups that connect to a coordinator, through a launcher: local (mpirun on "
      "this machine or a --hostfile) or slurm (sbatch job arrays). Prints one handle per group "
      "(launcher and pid or job id); --wait polls until every group ended.",
      cmd);
  std::string launcher = "local", coordinator, sweep_path, name = "sd2", work_dir, hostfile, map_by,
              script_dir, devices;
  int groups = 1, ranks = 0, gpus_per_rank = -1, nodes = 1, cpus_per_rank = 1, idle_exit = 0;
  bool oversubscribe = false, wait = false;
  std::vector<std::string> pass_env, env_args;
  JobFlags flags;
  app.add_option("--launcher", launcher, "local | slurm")->capture_default_str();
  app.add_option("--coordinator", coordinator, "coordinator endpoint tcp://HOST:PORT")->required();
  app.add_option("--sweep", sweep_path, "take the group shape (ranks, GPUs) from a sweep file");
  app.add_option("--groups", groups, "how many groups")->capture_default_str();
  app.add_option("--ranks", ranks, "ranks per group (default: the sweep's, else 1)");
  app.add_option("--gpus-per-rank", gpus_per_rank, "GPUs per rank (default: the sweep's, else 0)");
  app.add_option("--nodes", nodes, "nodes per group (slurm)")->capture_default_str();
  app.add_option("--cpus-per-rank", cpus_per_rank, "CPU cores per rank")->capture_default_str();
  app.add_option("--name", name, "group name (job name, log names)")->capture_default_str();
  app.add_option("--work-dir", work_dir, "worker --work-dir");
  app.add_option("--devices", devices, kDevicesHelp);
  app.add_option("--idle-exit", idle_exit, "worker --idle-exit seconds (0: never)");
  app.add_option("--env", env_args, "environment NAME=VALUE for every rank");
  app.add_option("--hostfile", hostfile, "local: mpirun --hostfile");
  app.add_option("--map-by", map_by, "local: mpirun --map-by");
  app.add_flag("--oversubscribe", oversubscribe, "local: mpirun --oversubscribe");
  app.add_option("-x", pass_env, "local: forward this environment variable to the ranks");
  app.add_option("--script-dir", script_dir, "slurm: where the sbatch scripts are written")
      ->capture_default_str();
  app.add_flag("--wait", wait, "poll until every group ended; exit 1 if any failed");
  flags.Add(app);
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;

  GroupSpec spec;
  spec.name = name;
  spec.coordinator = coordinator;
  spec.nodes = nodes;
  spec.cpus_per_rank = cpus_per_rank;
  spec.work_dir = work_dir.empty() ? "" : Absolute(work_dir);
  spec.idle_exit_seconds = idle_exit;
  if (Status d = CheckDevices(devices); !d.ok()) return Fail(cmd, d);
  spec.devices = devices;
  if (!sweep_path.empty()) {
    auto sweep = sweeps::LoadSweepFile(sweep_path);
    if (!sweep.ok()) return Fail(cmd, sweep.status());
    spec.ranks = sweep->ranks;
    spec.gpus_per_rank = sweep->gpus_per_rank;
    if (name == "sd2") spec.name = JobName(sweep->name);
  }
  if (ranks > 0) spec.ranks = ranks;
  if (gpus_per_rank >= 0) spec.gpus_per_rank = gpus_per_rank;
  auto env = ParseVars(env_args, "--env");
  if (!env.ok()) return Fail(cmd, env.status());
  spec.env = *env;
  if (groups < 1) return Fail(cmd, InvalidArgumentError("--groups must be >= 1"));

  cluster::SystemCommandRunner runner;
  std::unique_ptr<cluster::Launcher> l;
  if (launcher == "local") {
    cluster::LocalMpirunOptions o;
    o.worker_binary = flags.worker;
    o.hostfile = hostfile;
    o.map_by = map_by;
    o.oversubscribe = oversubscribe;
    o.pass_env = pass_env;
    o.log_dir = flags.log_dir;
    l = std::make_unique<cluster::LocalMpirunLauncher>(&runner, o);
  } else if (launcher == "slurm") {
    auto job = flags.ToOptions();
    if (!job.ok()) return Fail(cmd, job.status());
    cluster::SlurmLauncherOptions o;
    o.job = *job;
    o.script_dir = Absolute(script_dir.empty() ? "sd2-slurm" : script_dir);
    l = std::make_unique<cluster::SlurmLauncher>(&runner, o);
  } else {
    return Fail(cmd,
                InvalidArgumentError("--launcher '" + launcher + "': expected local or slurm"));
  }
  auto handles = l->LaunchMany(spec, groups);
  if (!handles.ok()) return Fail(cmd, handles.status());
  for (const auto& h : *handles) std::cout << h.launcher << " " << h.id << "\n" << std::flush;
  if (!wait) return kExitOk;
  int failed = 0;
  std::map<std::string, cluster::LaunchState> last;
  size_t ended = 0;
  while (ended < handles->size()) {
    ended = 0;
    for (const auto& h : *handles) {
      auto s = l->Poll(h);
      if (!s.ok()) return Fail(cmd, s.status());
      if (last.count(h.id) == 0 || last[h.id] != *s) {
        std::cout << h.launcher << " " << h.id << " " << cluster::LaunchStateName(*s) << "\n"
                  << std::flush;
        last[h.id] = *s;
      }
      if (cluster::IsTerminal(*s)) ++ended;
    }
    if (ended < handles->size()) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  for (const auto& [id, s] : last) failed += s == cluster::LaunchState::kFailed;
  return failed ? kExitFailure : kExitOk;
}

}  // namespace

SD2_REGISTER_COMMAND("slurm render", "write sbatch scripts for a sweep (groups or allocation)",
                     RunSlurmRender);
SD2_REGISTER_COMMAND("launch", "start worker groups through local mpirun or Slurm", RunLaunch);

}  // namespace sd2::cli
