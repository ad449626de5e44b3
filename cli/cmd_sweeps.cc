// sd2ctl validate / expand: check sweep files and show the trials they expand to.
//
//   sd2ctl validate sweeps/paper/*.toml --var SD2_DATA=/data/mmi-dd
//       --var SD2_CLIP=/models/clip-vit-large-patch14
//       --var SD2_XCEPTION=/models/xception.safetensors
//   sd2ctl expand sweeps/paper/table6_scaling.toml --json
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "common/status.h"
#include "sweeps/sweep.h"

extern char** environ;

namespace sd2::cli {
namespace {

constexpr const char* kVarHelp =
    "Define ${NAME} for the sweep's strings (repeatable); environment variables are defined "
    "too, --var wins";

// Parses a CLI11 app; returns -1 to go on, else the exit code (0 for --help, 2 for bad flags).
// Environment variables, then NAME=VALUE flags.
StatusOr<sweeps::ExpandOptions> OptionsFrom(const std::vector<std::string>& var_flags,
                                            const std::vector<std::string>& scale_flags) {
  sweeps::ExpandOptions options;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string::npos) options.vars[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& kv : var_flags) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidArgumentError("--var " + kv + ": expected NAME=VALUE");
    }
    options.vars[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& kv : scale_flags) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos) {
      return InvalidArgumentError("--scale " + kv + ": expected FROM=TO, e.g. 3M=9000");
    }
    auto from = sweeps::ParseScale(kv.substr(0, eq));
    auto to = sweeps::ParseScale(kv.substr(eq + 1));
    if (!from.ok()) return InvalidArgumentError("--scale " + kv + ": " + from.status().message());
    if (!to.ok()) return InvalidArgumentError("--scale " + kv + ": " + to.status().message());
    options.scale_map[*from] = *to;
  }
  return options;
}

int RunValidate(int argc, char** argv) {
  CLI::App app(
      "Validate sweep files: parse, check every key and value, and expand them.\n"
      "Prints \"FILE: ok, N trials\" per valid file; errors go to stderr as\n"
      "FILE:LINE:COL: message. Exit codes: 0 all valid, 2 a file is invalid.",
      argv[0]);
  std::vector<std::string> files, vars;
  app.add_option("FILE", files, "Sweep files (TOML, see docs/sweeps.md)")->required();
  app.add_option("--var", vars, kVarHelp)->type_name("NAME=VALUE");
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  auto options = OptionsFrom(vars, {});
  if (!options.ok()) {
    std::cerr << options.status().message() << "\n";
    return kExitBadInput;
  }
  int rc = kExitOk;
  for (const auto& file : files) {
    auto spec = sweeps::LoadSweepFile(file);
    Status status = spec.status();
    size_t n = 0;
    if (spec.ok()) {
      auto trials = sweeps::Expand(*spec, *options);
      status = trials.status();
      if (trials.ok()) n = trials->size();
    }
    if (!status.ok()) {
      std::cerr << status.message() << "\n";
      rc = std::max(rc, ExitCodeFor(status));
      continue;
    }
    std::cout << file << ": ok, " << n << (n == 1 ? " trial" : " trials") << "\n";
  }
  return rc;
}

int RunExpand(int argc, char** argv) {
  CLI::App app(
      "Expand a sweep file into its trials: an aligned table (the same as\n"
      "`submit --dry-run`), or one JSON object per line with --json.",
      argv[0]);
  std::string file;
  std::vector<std::string> vars, scales;
  bool as_json = false;
  app.add_option("FILE", file, "Sweep file (TOML, see docs/sweeps.md)")->required();
  app.add_option("--var", vars, kVarHelp)->type_name("NAME=VALUE");
  app.add_option("--scale", scales, "Replace a training scale, e.g. --scale 3M=9000 (repeatable)")
      ->type_name("FROM=TO");
  app.add_flag("--json", as_json, "One JSON object per trial and line (key, method, ..., config)");
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  auto options = OptionsFrom(vars, scales);
  if (!options.ok()) {
    std::cerr << options.status().message() << "\n";
    return kExitBadInput;
  }
  auto spec = sweeps::LoadSweepFile(file);
  if (!spec.ok()) {
    std::cerr << spec.status().message() << "\n";
    return ExitCodeFor(spec.status());
  }
  auto trials = sweeps::Expand(*spec, *options);
  if (!trials.ok()) {
    std::cerr << trials.status().message() << "\n";
    return ExitCodeFor(trials.status());
  }
  if (as_json) {
    for (const auto& t : *trials) std::cout << sweeps::TrialToJson(t).dump() << "\n";
  } else {
    std::cout << sweeps::FormatTrialTable(*trials);
  }
  return kExitOk;
}

}  // namespace

SD2_REGISTER_COMMAND("validate", "Check sweep files (FILE:LINE:COL errors, exit 2 if invalid)",
                     RunValidate);
SD2_REGISTER_COMMAND("expand", "Print the trials a sweep file expands to (table or --json)",
                     RunExpand);

}  // namespace sd2::cli
