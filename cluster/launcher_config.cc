#include "cluster/launcher_config.h"

#include <chrono>
#include <functional>
#include <map>

namespace sd2::cluster {
namespace {

using json = nlohmann::json;

Status TypeError(const std::string& key, const char* want) {
  return InvalidArgumentError("launcher." + key + ": expected " + want);
}

Status GetInt(const json& v, const std::string& key, int* out) {
  if (!v.is_number_integer()) return TypeError(key, "an integer");
  int64_t x = v.get<int64_t>();
  if (x < -1000000000 || x > 1000000000) return TypeError(key, "an integer in range");
  *out = int(x);
  return OkStatus();
}
Status GetString(const json& v, const std::string& key, std::string* out) {
  if (!v.is_string()) return TypeError(key, "a string");
  *out = v.get<std::string>();
  return OkStatus();
}
Status GetBool(const json& v, const std::string& key, bool* out) {
  if (!v.is_boolean()) return TypeError(key, "true or false");
  *out = v.get<bool>();
  return OkStatus();
}
Status GetStrings(const json& v, const std::string& key, std::vector<std::string>* out) {
  if (!v.is_array()) return TypeError(key, "an array of strings");
  out->clear();
  for (const auto& e : v) {
    if (!e.is_string()) return TypeError(key, "an array of strings");
    out->push_back(e.get<std::string>());
  }
  return OkStatus();
}
Status GetSeconds(const json& v, const std::string& key, std::chrono::milliseconds* out) {
  if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 1e7) {
    return TypeError(key, "a number of seconds >= 0");
  }
  *out = std::chrono::milliseconds(int64_t(v.get<double>() * 1000));
  return OkStatus();
}

}  // namespace

StatusOr<LauncherConfig> ParseLauncherConfig(const json& j) {
  LauncherConfig c;
  if (j.is_null()) return c;
  if (!j.is_object()) return InvalidArgumentError("launcher: expected a table");
  using Setter = std::function<Status(const json&, const std::string&)>;
  const std::map<std::string, Setter> setters = {
      {"kind", [&](const json& v, const std::string& k) { return GetString(v, k, &c.kind); }},
      {"groups", [&](const json& v, const std::string& k) { return GetInt(v, k, &c.groups); }},
      {"ranks", [&](const json& v, const std::string& k) { return GetInt(v, k, &c.group.ranks); }},
      {"gpus_per_rank",
       [&](const json& v, const std::string& k) { return GetInt(v, k, &c.group.gpus_per_rank); }},
      {"nodes", [&](const json& v, const std::string& k) { return GetInt(v, k, &c.group.nodes); }},
      {"cpus_per_rank",
       [&](const json& v, const std::string& k) { return GetInt(v, k, &c.group.cpus_per_rank); }},
      {"idle_exit", [&](const json& v,
                        const std::string& k) { return GetInt(v, k, &c.group.idle_exit_seconds); }},
      {"work_dir",
       [&](const json& v, const std::string& k) { return GetString(v, k, &c.group.work_dir); }},
      {"devices",
       [&](const json& v, const std::string& k) { return GetString(v, k, &c.group.devices); }},
      {"gpu_request",
       [&](const json& v, const std::string& k) {
         return GetString(v, k, &c.slurm.job.gpu_request);
       }},
      {"env",
       [&](const json& v, const std::string& k) {
         if (!v.is_object()) return TypeError(k, "a table of NAME = \"VALUE\"");
         for (const auto& [name, value] : v.items()) {
           if (!value.is_string()) return TypeError(k + "." + name, "a string");
           c.group.env[name] = value.get<std::string>();
         }
         return OkStatus();
       }},
      {"worker",
       [&](const json& v, const std::string& k) {
         SD2_RETURN_IF_ERROR(GetString(v, k, &c.local.worker_binary));
         c.slurm.job.worker_binary = c.local.worker_binary;
         return OkStatus();
       }},
      {"log_dir",
       [&](const json& v, const std::string& k) {
         SD2_RETURN_IF_ERROR(GetString(v, k, &c.local.log_dir));
         c.slurm.job.output_dir = c.local.log_dir;
         return OkStatus();
       }},
      {"mpirun",
       [&](const json& v, const std::string& k) { return GetString(v, k, &c.local.mpirun); }},
      {"hostfile",
       [&](const json& v, const std::string& k) { return GetString(v, k, &c.local.hostfile); }},
      {"map_by",
       [&](const json& v, const std::string& k) { return GetString(v, k, &c.local.map_by); }},
      {"oversubscribe",
       [&](const json& v, const std::string& k) { return GetBool(v, k, &c.local.oversubscribe); }},
      {"pass_env",
       [&](const json& v, const std::string& k) { return GetStrings(v, k, &c.local.pass_env); }},
      {"script_dir",
       [&](const json& v, const std::string& k) { return GetString(v, k, &c.slurm.script_dir); }},
      {"partition", [&](const json& v,
                        const std::string& k) { return GetString(v, k, &c.slurm.job.partition); }},
      {"account",
       [&](const json& v, const std::string& k) { return GetString(v, k, &c.slurm.job.account); }},
      {"qos",
       [&](const json& v, const std::string& k) { return GetString(v, k, &c.slurm.job.qos); }},
      {"time",
       [&](const json& v, const std::string& k) { return GetString(v, k, &c.slurm.job.time); }},
      {"signal_seconds",
       [&](const json& v, const std::string& k) {
         return GetInt(v, k, &c.slurm.job.signal_seconds);
       }},
      {"requeue",
       [&](const json& v, const std::string& k) { return GetBool(v, k, &c.slurm.job.requeue); }},
      {"rank_launcher",
       [&](const json& v, const std::string& k) {
         std::string name;
         SD2_RETURN_IF_ERROR(GetString(v, k, &name));
         auto l = ParseRankLauncher(name);
         if (!l.ok()) return l.status().WithPrefix("launcher." + k);
         c.slurm.job.rank_launcher = *l;
         return OkStatus();
       }},
      {"sbatch", [&](const json& v,
                     const std::string& k) { return GetStrings(v, k, &c.slurm.job.extra_sbatch); }},
      {"backoff_initial_s",
       [&](const json& v, const std::string& k) {
         return GetSeconds(v, k, &c.keeper.initial_backoff);
       }},
      {"backoff_max_s",
       [&](const json& v, const std::string& k) {
         return GetSeconds(v, k, &c.keeper.max_backoff);
       }},
      {"max_failures",
       [&](const json& v, const std::string& k) {
         return GetInt(v, k, &c.keeper.max_consecutive_failures);
       }},
      {"poll_s", [&](const json& v,
                     const std::string& k) { return GetSeconds(v, k, &c.keeper.poll_period); }},
  };
  for (const auto& [key, value] : j.items()) {
    auto it = setters.find(key);
    if (it == setters.end()) {
      std::string known;
      for (const auto& [k, s] : setters) known += (known.empty() ? "" : ", ") + k;
      return InvalidArgumentError("launcher." + key + ": unknown key (known: " + known + ")");
    }
    SD2_RETURN_IF_ERROR(it->second(value, key));
  }
  if (c.kind != "none" && c.kind != "local" && c.kind != "slurm") {
    return InvalidArgumentError("launcher.kind: '" + c.kind + "' (expected none, local or slurm)");
  }
  if (c.groups < 0) return InvalidArgumentError("launcher.groups: must be >= 0");
  if (c.keeper.max_consecutive_failures < 0) {
    return InvalidArgumentError("launcher.max_failures: must be >= 0");
  }
  if (c.keeper.max_backoff < c.keeper.initial_backoff) {
    return InvalidArgumentError("launcher.backoff_max_s: must be >= backoff_initial_s");
  }
  Status spec_ok = ValidateGroupSpec(c.group);
  if (!spec_ok.ok()) return spec_ok.WithPrefix("launcher");
  if (c.kind == "slurm") {
    if (c.slurm.script_dir.empty()) {
      return InvalidArgumentError("launcher.script_dir: required for kind = \"slurm\"");
    }
    Status job_ok = ValidateJobOptions(c.slurm.job);
    if (!job_ok.ok()) return job_ok.WithPrefix("launcher");
  }
  return c;
}

StatusOr<std::unique_ptr<Launcher>> MakeLauncher(const LauncherConfig& config,
                                                 CommandRunner* runner) {
  if (config.kind == "local") {
    return std::unique_ptr<Launcher>(new LocalMpirunLauncher(runner, config.local));
  }
  if (config.kind == "slurm") {
    return std::unique_ptr<Launcher>(new SlurmLauncher(runner, config.slurm));
  }
  return FailedPreconditionError("launcher.kind is '" + config.kind +
                                 "': worker groups are started by hand");
}

}  // namespace sd2::cluster
