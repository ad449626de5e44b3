// Expansion of a validated sweep into trials, and trial tables for the command line.
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#include "sweeps/internal.h"
#include "sweeps/sweep.h"

namespace sd2::sweeps {
namespace {

using internal::ErrorList;
using nlohmann::json;
namespace fs = std::filesystem;

// Objects merge key by key; null removes; anything else replaces.
void DeepMerge(json* target, const json& patch) {
  if (!patch.is_object() || !target->is_object()) {
    *target = patch;
    return;
  }
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    if (it.value().is_null()) {
      target->erase(it.key());
    } else if (it.value().is_object() && target->contains(it.key()) &&
               (*target)[it.key()].is_object()) {
      DeepMerge(&(*target)[it.key()], it.value());
    } else {
      (*target)[it.key()] = it.value();
    }
  }
}

std::string AbsolutePath(const std::string& p) {
  if (p.empty()) return p;
  std::error_code ec;
  fs::path abs = fs::absolute(fs::path(p), ec);
  if (ec) return p;
  return abs.lexically_normal().string();
}

class Expander {
 public:
  Expander(const SweepSpec& spec, const ExpandOptions& options)
      : spec_(spec), options_(options), errors_(spec.path) {}

  ErrorList& errors() { return errors_; }

  std::string Sub(const Text& t) {
    auto v = internal::Substitute(t, options_.vars, &errors_);
    return v ? *v : std::string();
  }

  json StringList(const std::vector<Text>& list, bool types) {
    json out = json::array();
    for (const auto& t : list) {
      std::string v = Sub(t);
      if (types) {
        std::string e = internal::TypeError(v);
        if (!e.empty()) errors_.Add(t.pos, e);
      }
      out.push_back(v);
    }
    return out;
  }

  json Filter(const DataFilter& f) {
    json out = json::object();
    std::string split = Sub(f.split);
    std::string e = internal::SplitError(split);
    if (!e.empty()) errors_.Add(f.split.pos, e);
    out["split"] = split;
    out["datasets"] = StringList(f.datasets, false);
    out["subsets"] = StringList(f.subsets, false);
    out["types"] = StringList(f.types, true);
    // The DF40 keys only when used: filters without them keep their configs (and trial keys).
    if (!f.domains.empty()) out["domains"] = StringList(f.domains, false);
    if (!f.method_types.empty()) {
      json types = json::array();
      for (const Text& t : f.method_types) {
        std::string v = Sub(t);
        std::string e = internal::MethodTypeError(v);
        if (!e.empty()) errors_.Add(t.pos, e);
        types.push_back(v);
      }
      out["method_types"] = types;
    }
    if (f.known.has_value()) out["known"] = *f.known;
    return out;
  }

  // The data and eval parts shared by every trial of the sweep.
  void BuildShared() {
    json data = json::object();
    std::string manifest = AbsolutePath(Sub(spec_.manifest));
    data["manifest"] = manifest;
    if (!spec_.manifest_digest.value.empty()) {
      std::string digest = Sub(spec_.manifest_digest);
      bool hex = digest.size() == 64 && std::all_of(digest.begin(), digest.end(), [](char c) {
                   return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                 });
      if (!hex) {
        errors_.Add(spec_.manifest_digest.pos,
                    "'data.manifest_digest' must be 64 lower-case hex digits (SHA-256), got \"" +
                        digest + "\"");
      }
      data["manifest_digest"] = digest;
    }
    if (!spec_.root.value.empty()) {
      data["root"] = AbsolutePath(Sub(spec_.root));
    } else {
      data["root"] = fs::path(manifest).parent_path().string();
    }
    data["train"] = Filter(spec_.train);
    data_ = data;
    json evals = json::array();
    std::vector<std::pair<std::string, json>> sorted;
    for (const auto& ev : spec_.evals) {
      json e = Filter(ev.filter);
      e["name"] = Sub(ev.name);
      sorted.emplace_back(e["name"].get<std::string>(), e);
    }
    // Sorted by name: the order of [[eval]] entries in the file does not change the key.
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [name, e] : sorted) evals.push_back(e);
    evals_ = evals;
    // hparams.pretrained per method; one written value (a global [hparams] key reaches several
    // methods) is substituted once, so an undefined variable is reported once.
    std::map<std::pair<int, int>, std::string> by_pos;
    for (const auto& [method, text] : spec_.pretrained) {
      auto key = std::make_pair(text.pos.line, text.pos.column);
      auto it = by_pos.find(key);
      if (it == by_pos.end()) it = by_pos.emplace(key, AbsolutePath(Sub(text))).first;
      pretrained_[method] = it->second;
    }
  }

  // The method's merged hyper-parameters with hparams.pretrained substituted; an empty value
  // (e.g. --var SD2_CLIP=) means no pretrained weights and leaves the key out.
  json Hparams(const std::string& method) const {
    json h = spec_.hparams.at(method);
    auto it = pretrained_.find(method);
    if (it != pretrained_.end()) {
      if (it->second.empty()) {
        h.erase("pretrained");
      } else {
        h["pretrained"] = it->second;
      }
    }
    return h;
  }

  int64_t MapScale(int64_t scale) const {
    auto it = options_.scale_map.find(scale);
    return it == options_.scale_map.end() ? scale : it->second;
  }

  json Resources() const {
    json r = {{"ranks", spec_.ranks}, {"gpus_per_rank", spec_.gpus_per_rank}};
    for (const auto& [k, v] : options_.resources.items()) r[k] = v;
    return r;
  }

  // Merges the overrides, records or refuses random initialisation, computes the key.
  void Finish(Trial* t) {
    DeepMerge(&t->config, options_.overrides);
    bool allowed = spec_.allow_random_init || options_.allow_random_init;
    if (t->config.contains("allow_random_init")) {  // set by an override
      const json& v = t->config["allow_random_init"];
      if (v.is_boolean()) {
        allowed = allowed || v.get<bool>();
      } else {
        errors_.Add(MethodPos(t->method),
                    "'allow_random_init' must be a boolean, got " + v.dump() + " (overrides)");
      }
      t->config.erase("allow_random_init");
    }
    // In the config (and key) only of a trial that does start from random weights by choice:
    // other trials keep the keys they had before the option existed.
    if (NeedsPretrained(t->method) && !HasWeights(t->config)) {
      if (allowed) {
        t->config["allow_random_init"] = true;
      } else {
        Refuse(t->method);
      }
    }
    t->key = TrialKey(t->config);
  }

  static bool HasWeights(const json& config) {
    if (!config.contains("hparams") || !config["hparams"].is_object()) return false;
    const json& hp = config["hparams"];
    return hp.contains("pretrained") && hp["pretrained"].is_string() &&
           !hp["pretrained"].get<std::string>().empty();
  }

  SourcePos MethodPos(const std::string& method) const {
    auto it = spec_.method_pos.find(method);
    return it == spec_.method_pos.end() ? SourcePos{1, 1} : it->second;
  }

  // The paper starts these methods from pretrained weights: a trial without them is refused
  // unless the sweep opts into random initialisation. Reported once per method.
  void Refuse(const std::string& method) {
    if (!refused_.insert(method).second) return;
    const bool cnn = method == "xception" || method == "recce" || method == "spsl";
    const std::string what =
        cnn ? "ImageNet Xception weights (a safetensors file from tools/convert_pth.py), e.g. "
              "[hparams." +
                  method + "] pretrained = \"${SD2_XCEPTION}\""
            : "a Hugging Face CLIP folder (openai/clip-vit-large-patch14), e.g. [hparams." +
                  method + "] pretrained = \"${SD2_CLIP}\"";
    errors_.Add(MethodPos(method), "method '" + method +
                                       "' starts from pretrained weights in the paper, but "
                                       "hparams.pretrained is empty or unset: set "
                                       "hparams.pretrained to " +
                                       what +
                                       ", or set allow_random_init = true to train it from "
                                       "random weights");
  }

  Trial FromCoord(const TrialCoord& c) {
    Trial t;
    t.method = c.method;
    t.scale = MapScale(c.scale);
    t.seed = c.seed;
    t.priority = spec_.priority;
    t.resources = Resources();
    json config = {{"method", c.method},
                   {"scale", t.scale},
                   {"seed", c.seed},
                   {"model", spec_.models.at(c.method)},
                   {"hparams", Hparams(c.method)},
                   {"data", data_},
                   {"eval", evals_}};
    t.label = c.method + " " + FormatScale(t.scale) + " seed" + std::to_string(c.seed);
    if (c.method == "sd2") {
      config["ablation"] = {{"clam", c.ablation.clam},
                            {"ld_face", c.ablation.ld_face},
                            {"ld_env", c.ablation.ld_env}};
      config["variant"] = spec_.variant;
      if (!c.ablation.clam) t.label += " clam=off";
      if (!c.ablation.ld_face) t.label += " ld_face=off";
      if (!c.ablation.ld_env) t.label += " ld_env=off";
    }
    t.config = std::move(config);
    Finish(&t);
    return t;
  }

  // Loads and expands the encoder sweep of `probe`; appends encoder and probe trials.
  void AddProbe(const ProbeSpec& probe, std::vector<Trial>* out) {
    std::string rel = Sub(probe.encoder);
    if (rel.empty()) return;
    fs::path path(rel);
    if (path.is_relative()) path = fs::path(spec_.path).parent_path() / path;
    std::string enc_path = path.lexically_normal().string();
    auto enc_spec = LoadSweepFile(enc_path);
    if (!enc_spec.ok()) {
      errors_.Add(probe.encoder.pos,
                  "cannot use probe encoder sweep '" + rel + "':\n" + enc_spec.status().message());
      return;
    }
    if (!enc_spec->probes.empty()) {
      errors_.Add(probe.encoder.pos, "probe encoder sweep '" + rel +
                                         "' has [[probe]] entries itself; name the sweep that "
                                         "trains the encoders");
      return;
    }
    auto enc_trials = Expand(*enc_spec, options_);
    if (!enc_trials.ok()) {
      errors_.Add(probe.encoder.pos, "cannot expand probe encoder sweep '" + rel + "':\n" +
                                         enc_trials.status().message());
      return;
    }
    std::set<int64_t> scales;
    for (int64_t s : probe.scales) scales.insert(MapScale(s));
    size_t matched = 0;
    for (const Trial& enc : *enc_trials) {
      bool ok = (probe.methods.empty() || std::find(probe.methods.begin(), probe.methods.end(),
                                                    enc.method) != probe.methods.end()) &&
                (scales.empty() || scales.count(enc.scale)) &&
                (probe.seeds.empty() ||
                 std::find(probe.seeds.begin(), probe.seeds.end(), enc.seed) != probe.seeds.end());
      if (!ok) continue;
      ++matched;
      out->push_back(enc);
      Trial t;
      t.method = "probe";
      t.scale = enc.scale;
      t.seed = enc.seed;
      t.priority = spec_.priority;
      t.resources = Resources();
      t.depends_on = enc.key;
      t.label = "probe of " + enc.label;
      json model = enc.config.contains("model") ? enc.config["model"] : json("");
      t.config = {
          {"method", "probe"},
          {"scale", t.scale},
          {"seed", t.seed},
          {"model", model},
          {"hparams", Hparams("probe")},
          {"data", data_},
          {"eval", evals_},
          {"probe", {{"of", enc.key}, {"encoder_method", enc.method}, {"train", data_["train"]}}}};
      Finish(&t);
      out->push_back(t);
    }
    if (matched == 0) {
      errors_.Add(probe.pos, "probe selects no trial of encoder sweep '" + rel + "'");
    }
  }

 private:
  const SweepSpec& spec_;
  const ExpandOptions& options_;
  ErrorList errors_;
  json data_;
  json evals_;
  std::map<std::string, std::string> pretrained_;  // method -> substituted hparams.pretrained
  std::set<std::string> refused_;                  // methods reported by Refuse
};

std::string Pad(const std::string& s, size_t width) {
  return s.size() >= width ? s : s + std::string(width - s.size(), ' ');
}

}  // namespace

StatusOr<std::vector<Trial>> Expand(const SweepSpec& spec, const ExpandOptions& options) {
  if (!options.overrides.is_object()) {
    return InvalidArgumentError("expand overrides must be a JSON object, got " +
                                options.overrides.dump());
  }
  if (!options.resources.is_object()) {
    return InvalidArgumentError("expand resources must be a JSON object, got " +
                                options.resources.dump());
  }
  for (const auto& [k, v] : options.resources.items()) {
    if ((k != "ranks" && k != "gpus_per_rank") || !v.is_number_integer() ||
        v.get<int64_t>() < (k == "ranks" ? 1 : 0)) {
      return InvalidArgumentError("expand resources: bad entry \"" + k + "\": " + v.dump() +
                                  " (ranks >= 1, gpus_per_rank >= 0)");
    }
  }
  for (const auto& [from, to] : options.scale_map) {
    if (from <= 0 || to <= 0) {
      return InvalidArgumentError("scale_map entries must be positive, got " +
                                  std::to_string(from) + " -> " + std::to_string(to));
    }
  }
  Expander ex(spec, options);
  ex.BuildShared();
  if (!ex.errors().empty()) return ex.errors().ToStatus();
  std::vector<Trial> all;
  for (const auto& c : spec.coords) all.push_back(ex.FromCoord(c));
  for (const auto& probe : spec.probes) ex.AddProbe(probe, &all);
  if (!ex.errors().empty()) return ex.errors().ToStatus();
  std::vector<Trial> out;
  std::set<std::string> seen;
  for (auto& t : all) {
    if (seen.insert(t.key).second) out.push_back(std::move(t));
  }
  return out;
}

std::string FormatTrialTable(const std::vector<Trial>& trials) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back(
      {"KEY", "METHOD", "SCALE", "SEED", "MODEL", "RANKSxGPUS", "PRIORITY", "DEPENDS_ON", "LABEL"});
  for (const auto& t : trials) {
    std::string model = t.config.contains("model") && t.config["model"].is_string()
                            ? t.config["model"].get<std::string>()
                            : "-";
    std::string res = "-";
    if (t.resources.contains("ranks") && t.resources.contains("gpus_per_rank")) {
      res = t.resources["ranks"].dump() + "x" + t.resources["gpus_per_rank"].dump();
    }
    rows.push_back({t.key, t.method, FormatScale(t.scale), std::to_string(t.seed), model, res,
                    std::to_string(t.priority), t.depends_on.empty() ? "-" : t.depends_on,
                    t.label});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  std::ostringstream os;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += i + 1 == r.size() ? r[i] : Pad(r[i], width[i] + 2);
    }
    os << line << "\n";
  }
  os << trials.size() << (trials.size() == 1 ? " trial" : " trials") << "\n";
  return os.str();
}

nlohmann::json TrialToJson(const Trial& t) {
  return {{"key", t.key},
          {"method", t.method},
          {"scale", t.scale},
          {"seed", t.seed},
          {"label", t.label},
          {"priority", t.priority},
          {"depends_on", t.depends_on},
          {"resources", t.resources},
          {"config", t.config}};
}

}  // namespace sd2::sweeps
