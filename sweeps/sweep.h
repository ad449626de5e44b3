// Sweep files: parsing and validation of the TOML format (docs/sweeps.md), expansion into
// trials, and stable trial keys.
//
// A sweep file names methods, training scales, seeds, SD² ablation switches, hyper-parameter
// overrides, the data manifest and the eval sets. ParseSweep validates it completely and reports
// every problem as "FILE:LINE:COL: message" (one per line in the status message); Expand turns
// it into trials, each with a canonical config (docs/trial_config.md) and its key.
//
//   SD2_ASSIGN_OR_RETURN(sd2::sweeps::SweepSpec spec,
//                        sd2::sweeps::LoadSweepFile("sweeps/paper/table6_scaling.toml"));
//   sd2::sweeps::ExpandOptions options;
//   options.vars["SD2_DATA"] = "/data/mmi-dd";
//   SD2_ASSIGN_OR_RETURN(std::vector<sd2::sweeps::Trial> trials, Expand(spec, options));
//   std::cout << sd2::sweeps::FormatTrialTable(trials);
//
// All functions are thread-compatible: they touch no global mutable state.
#ifndef SD2_SWEEPS_SWEEP_H_
#define SD2_SWEEPS_SWEEP_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace sd2::sweeps {

// What Expand may change without editing the file.
struct ExpandOptions {
  // ${NAME} substitution in the strings of [data], [[eval]], [[probe]].encoder and
  // hparams.pretrained (e.g. SD2_DATA, SD2_CLIP). An undefined variable is an error naming it
  // at its FILE:LINE:COL.
  std::map<std::string, std::string> vars;
  // Replaces training scales, e.g. {100000→300, 1000000→3000, 3000000→9000} for the demo.
  // Scales not in the map stay as they are.
  std::map<int64_t, int64_t> scale_map;
  // Deep-merged into every trial config before its key is computed, e.g.
  // {"model": "tiny", "hparams": {"steps": 40}}. Objects merge key by key; anything else
  // replaces; null removes the key.
  nlohmann::json overrides = nlohmann::json::object();
  // Replaces the sweep's [resources] in every trial (not part of the key), e.g.
  // {"ranks": 1, "gpus_per_rank": 0} to run a GPU sweep on one CPU (the demo). Keys: ranks,
  // gpus_per_rank; each a non-negative integer (ranks >= 1).
  nlohmann::json resources = nlohmann::json::object();
  // As if every sweep (probe encoder sweeps included) said `allow_random_init = true`: the demo
  // runs the paper's sweeps without pretrained weights.
  bool allow_random_init = false;
};

struct Trial {
  std::string key;     // 16 hex chars: TrialKey(config)
  std::string method;  // one of KnownMethods(), or "probe"
  int64_t scale = 0;   // training images, after scale_map
  int64_t seed = 0;
  nlohmann::json config;  // canonical trial config, docs/trial_config.md
  // {"ranks": N, "gpus_per_rank": G}; not part of the key.
  nlohmann::json resources = nlohmann::json::object();
  int priority = 0;        // larger runs first; not part of the key
  std::string depends_on;  // key of a trial that must succeed first ("" = none)
  std::string label;       // human label, e.g. "sd2 3M seed0 clam=off"
};

// A position in a sweep file (1-based; 0 = unknown).
struct SourcePos {
  int line = 0;
  int column = 0;
};

// A string that may contain ${VAR} references, with where it was written.
struct Text {
  std::string value;
  SourcePos pos;
};

// Selects manifest rows: every non-empty list must contain the row's value, and a set `known`
// must equal the row's (docs/data.md: DF40's domains, method types, known vs test-only).
struct DataFilter {
  Text split;
  std::vector<Text> datasets;
  std::vector<Text> subsets;
  std::vector<Text> types;         // REAL FS FR EFS FE
  std::vector<Text> domains;       // e.g. FF, CDF
  std::vector<Text> method_types;  // FS FR EFS FE
  std::optional<bool> known;       // DF40: true = known methods, false = test-only
};

struct EvalSpec {
  Text name;
  DataFilter filter;
};

// SD² ablation switches (Table 5); all on is the full model.
struct Ablation {
  bool clam = true;
  bool ld_face = true;
  bool ld_env = true;
  bool operator==(const Ablation& o) const {
    return clam == o.clam && ld_face == o.ld_face && ld_env == o.ld_env;
  }
};

// One point of the expanded product (or an include entry), before configs are built.
struct TrialCoord {
  std::string method;
  int64_t scale = 0;  // as written in the file, before ExpandOptions::scale_map
  int64_t seed = 0;
  Ablation ablation;  // meaningful for sd2 only
};

// A [[probe]] entry: linear probes on encoders trained by another sweep file.
struct ProbeSpec {
  Text encoder;                      // sweep file path, relative to this file's folder
  std::vector<std::string> methods;  // empty = any
  std::vector<int64_t> scales;       // empty = any
  std::vector<int64_t> seeds;        // empty = any
  SourcePos pos;
};

// A validated sweep file. Built by ParseSweep; read by Expand.
struct SweepSpec {
  std::string name;
  std::string description;
  std::string path;  // the file name given to ParseSweep / LoadSweepFile
  std::string text;  // the TOML text as read
  int priority = 0;
  std::vector<std::string> methods;
  std::vector<int64_t> scales;
  std::vector<int64_t> seeds;
  // For every method that appears in a trial (probe included): its model and merged
  // hyper-parameters (built-in defaults < [hparams] < [hparams.<method>]).
  std::map<std::string, std::string> models;
  std::map<std::string, nlohmann::json> hparams;
  // hparams.pretrained as written (may hold ${VAR}s) with the key's position, per method that
  // sets it; Expand substitutes it into hparams (empty = no pretrained weights).
  std::map<std::string, Text> pretrained;
  // `allow_random_init = true`: trials of methods the paper starts from pretrained weights
  // (NeedsPretrained) may run without hparams.pretrained; recorded in their configs.
  bool allow_random_init = false;
  // Where each method with trials is first named (methods, [[include]]), for messages.
  std::map<std::string, SourcePos> method_pos;
  Text manifest;
  Text manifest_digest;  // empty value = not given
  Text root;             // empty value = the manifest's folder
  DataFilter train;
  std::vector<EvalSpec> evals;
  nlohmann::json variant = nlohmann::json::object();  // sd2 trials only
  int ranks = 1;
  int gpus_per_rank = 0;
  std::vector<TrialCoord> coords;  // product minus excludes, then includes
  std::vector<ProbeSpec> probes;
};

// Parses and validates a sweep file's text. `filename` prefixes every message and anchors
// relative paths ([[probe]].encoder, a relative data.manifest). On failure: InvalidArgument
// with one "FILE:LINE:COL: message" line per problem, sorted by position.
StatusOr<SweepSpec> ParseSweep(std::string_view toml_text, const std::string& filename);
// Reads `path` and parses it; an unreadable file is "PATH: cannot open: ..." (InvalidArgument).
StatusOr<SweepSpec> LoadSweepFile(const std::string& path);

// Expands a validated spec into trials: the product methods × scales × seeds × (sd2 only)
// ablation switches in file order, minus excludes, then includes, then for each [[probe]]
// entry the matched encoder trials followed by their probe trials. Trials with equal keys
// appear once (the first). Errors (undefined ${VAR}, an unreadable probe encoder file, a probe
// selector that matches nothing) are "FILE:LINE:COL: message".
StatusOr<std::vector<Trial>> Expand(const SweepSpec& spec, const ExpandOptions& options = {});

// First 16 hex digits of SHA-256 over config.dump() (canonical: sorted keys, no spaces,
// shortest round-trip doubles), with the non-semantic top-level fields "resources",
// "priority", "label" and "sweep" removed if present.
std::string TrialKey(const nlohmann::json& config);

// "100K" → 100000, "1M", "3M", "2.5K" → 2500, "1.5M", plain "300". Suffixes K and M (either
// case). Fails on empty, negative, zero, fractional results and values above 10^12.
StatusOr<int64_t> ParseScale(std::string_view s);
// The inverse for display: 3000000 → "3M", 100000 → "100K", 2500 → "2.5K", 300 → "300".
std::string FormatScale(int64_t scale);

// Aligned text table (header, one row per trial, then "N trials") for `submit --dry-run`.
std::string FormatTrialTable(const std::vector<Trial>& trials);
// The whole trial as one JSON object: key, method, scale, seed, label, priority, depends_on,
// resources, config.
nlohmann::json TrialToJson(const Trial& trial);

// Method names a sweep file may list, in the paper's table order.
const std::vector<std::string>& KnownMethods();
// True for the methods the paper trains from pretrained weights (xception, recce, spsl: ImageNet
// Xception; clip, clip_lora, clip_svd, univfd, sd2: CLIP ViT-L/14). Their trials need
// hparams.pretrained unless the sweep says allow_random_init = true.
bool NeedsPretrained(const std::string& method);
// Built-in hyper-parameters of a method ("probe" included); empty object if unknown.
nlohmann::json DefaultHparams(const std::string& method);

}  // namespace sd2::sweeps

#endif  // SD2_SWEEPS_SWEEP_H_
