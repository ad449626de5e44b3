// sd2-coordinator: the long-lived coordinator process.
//
//   sd2-coordinator --db sd2.db --bind tcp://0.0.0.0:5557 --keys DIR [--config coordinator.toml]
//
// Binding anything but loopback or ipc needs CURVE keys (`sd2ctl keys init --dir DIR`); the
// store passes PRAGMA quick_check before anything is served.
#include <toml++/toml.h>
#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cluster/command_runner.h"
#include "cluster/launcher_config.h"
#include "common/bounded_toml.h"
#include "coordinator/group_launching.h"

#include "coordinator/server.h"
#include "storage/integrity.h"
#include "storage/store.h"
#include "storage/writer_lock.h"

int main(int argc, char** argv) {
  CLI::App app{"sd2 coordinator: schedules sweeps onto worker groups, records into SQLite"};
  std::string db, bind = "tcp://127.0.0.1:5557", config, keys;
  sd2::coordinator::CoreOptions core_opts;
  bool verbose = false;
  sd2::cluster::LauncherConfig launcher_config;  // kind "none": groups are started by hand
  app.add_option("--db", db, "SQLite store (created when absent)");
  app.add_option("--bind", bind, "ZeroMQ endpoint to bind");
  app.add_option("--keys", keys, "CURVE keys directory (sd2ctl keys init); required off loopback");
  app.add_option("--config", config,
                 "TOML file with db, bind, keys, lease_s, heartbeat_s and a [launcher] table "
                 "(docs/cluster.md) that keeps worker groups running for sweeps with work");
  app.add_option("--lease-s", core_opts.lease_s, "lease duration in seconds");
  app.add_option("--heartbeat-s", core_opts.heartbeat_s, "heartbeat period told to groups");
  app.add_flag("--verbose", verbose, "log every message");
  CLI11_PARSE(app, argc, argv);
  if (!config.empty()) {
    try {
      toml::table t = sd2::ParseTomlFileBounded(config);
      if (db.empty()) db = t["db"].value_or(std::string());
      if (app.count("--bind") == 0) bind = t["bind"].value_or(bind);
      if (keys.empty()) keys = t["keys"].value_or(std::string());
      core_opts.lease_s = t["lease_s"].value_or(core_opts.lease_s);
      core_opts.heartbeat_s = t["heartbeat_s"].value_or(core_opts.heartbeat_s);
      if (const toml::table* l = t["launcher"].as_table()) {
        std::ostringstream js;
        js << toml::json_formatter{*l};
        auto launcher_json = sd2::ParseJsonBounded(js.str());
        auto parsed = launcher_json.ok() ? sd2::cluster::ParseLauncherConfig(*launcher_json)
                                         : launcher_json.status();
        if (!parsed.ok()) {
          std::cerr << config << ": " << parsed.status().message() << "\n";
          return sd2::kExitBadInput;
        }
        launcher_config = *parsed;
      }
    } catch (const toml::parse_error& e) {
      std::cerr << config << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
                << e.description() << "\n";
      return sd2::kExitBadInput;
    }
  }
  if (db.empty()) {
    std::cerr << "sd2-coordinator: --db PATH is required (or db in --config)\n";
    return sd2::kExitBadInput;
  }
  if (core_opts.lease_s <= 0 || core_opts.heartbeat_s <= 0) {
    std::cerr << "sd2-coordinator: lease and heartbeat periods must be positive\n";
    return sd2::kExitBadInput;
  }
  sd2::coordinator::ServerCurve curve;
  if (!keys.empty()) {
    auto c = sd2::coordinator::LoadServerCurve(keys);
    if (!c.ok()) {
      std::cerr << "sd2-coordinator: --keys: " << c.status() << "\n";
      return sd2::ExitCodeFor(c.status());
    }
    curve = *c;
  }
  if (auto s = sd2::coordinator::CheckBindAllowed(bind, curve); !s.ok()) {
    std::cerr << "sd2-coordinator: " << s << "\n";
    return sd2::kExitBadInput;
  }
  // One coordinator per database: the lock is held until this process ends (or is killed).
  auto writer_lock = sd2::storage::WriterLock::Acquire(db);
  if (!writer_lock.ok()) {
    std::cerr << "sd2-coordinator: refusing to start: " << writer_lock.status().message() << "\n";
    return sd2::ExitCodeFor(writer_lock.status());
  }
  auto store = sd2::storage::Store::Open(db);
  if (!store.ok()) {
    std::cerr << "sd2-coordinator: " << store.status() << "\n";
    return sd2::ExitCodeFor(store.status());
  }
  if (auto s = sd2::storage::CheckIntegrity((*store)->raw()); !s.ok()) {
    std::cerr << "sd2-coordinator: " << db << ": " << s
              << "\nrefusing to start on a damaged store; restore a backup (sd2ctl db backup)\n";
    return sd2::ExitCodeFor(s);
  }
  sd2::coordinator::SystemClock clock;
  sd2::coordinator::Core core(store->get(), &clock, core_opts);
  if (auto s = core.Recover(); !s.ok()) {
    std::cerr << "sd2-coordinator: recover: " << s << "\n";
    return 1;
  }
  // [launcher]: keep worker groups running for every sweep with queued or running trials.
  sd2::cluster::SystemCommandRunner runner;
  sd2::cluster::SystemCommandRunner poll_runner;  // the keeper's poll thread's own
  std::unique_ptr<sd2::cluster::Launcher> launcher;
  std::unique_ptr<sd2::cluster::Launcher> poller;
  std::unique_ptr<sd2::coordinator::SweepGroups> groups;
  sd2::coordinator::ServerOptions so;
  so.stop_when = [&groups] {  // runs after every tick, on the server's thread
    if (groups) groups->Tick();
    return false;
  };
  so.bind = bind;
  so.verbose = verbose;
  so.curve = curve;
  so.tick_s = std::min(0.5, core_opts.lease_s / 10);
  so.stop_signals = {SIGINT, SIGTERM};
  sd2::coordinator::Server server(&core, so);
  if (auto s = server.Bind(); !s.ok()) {
    std::cerr << "sd2-coordinator: " << s << "\n";
    return 1;
  }
  if (launcher_config.kind != "none") {
    auto l = sd2::cluster::MakeLauncher(launcher_config, &runner);
    if (!l.ok()) {
      std::cerr << "sd2-coordinator: launcher: " << l.status() << "\n";
      return sd2::ExitCodeFor(l.status());
    }
    launcher = std::move(*l);
    if (launcher_config.kind == "slurm") {
      // squeue/scontrol/sacct run on the group keeper's thread, batched and rate-limited, never
      // on the event loop (a hanging Slurm controller must not stall leases).
      auto p = sd2::cluster::MakeLauncher(launcher_config, &poll_runner);
      if (!p.ok()) {
        std::cerr << "sd2-coordinator: launcher: " << p.status() << "\n";
        return sd2::ExitCodeFor(p.status());
      }
      poller = std::move(*p);
    }
    groups = std::make_unique<sd2::coordinator::SweepGroups>(
        &core, launcher_config, launcher.get(), server.endpoint(), &std::cerr,
        std::chrono::steady_clock::now, poller.get());
  }
  std::cout << "sd2-coordinator: listening on " << server.endpoint() << " (db " << db << ")"
            << std::endl;
  sd2::Status s = server.Run();
  if (!s.ok()) {
    std::cerr << "sd2-coordinator: " << s << "\n";
    return 1;
  }
  return 0;
}
