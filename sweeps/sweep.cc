// Parsing and validation of sweep files (docs/sweeps.md); built-in method tables; trial keys.
#include "sweeps/sweep.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "common/bounded_toml.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "sweeps/internal.h"

namespace sd2::sweeps {
namespace internal {

void ErrorList::Add(SourcePos pos, std::string message) {
  errors_.push_back({pos, std::move(message)});
}

Status ErrorList::ToStatus() const {
  if (errors_.empty()) return OkStatus();
  std::vector<Entry> sorted = errors_;
  std::stable_sort(sorted.begin(), sorted.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.pos.line, a.pos.column) < std::tie(b.pos.line, b.pos.column);
  });
  std::string out;
  for (const auto& e : sorted) {
    if (!out.empty()) out += "\n";
    out += file_ + ":" + std::to_string(e.pos.line) + ":" + std::to_string(e.pos.column) + ": " +
           e.message;
  }
  return InvalidArgumentError(out);
}

namespace {
const std::vector<std::string> kClipModels = {"vit_l14", "vit_b16", "tiny"};
const std::vector<std::string> kCnnModels = {"xception", "tiny"};
const std::vector<std::string> kSmokeModels = {"tiny"};
const std::vector<std::string> kNoModels = {};
}  // namespace

const std::vector<std::string>& ModelsFor(const std::string& method) {
  if (method == "xception" || method == "recce" || method == "spsl") return kCnnModels;
  if (method == "clip" || method == "clip_lora" || method == "clip_svd" || method == "sd2" ||
      method == "univfd")
    return kClipModels;
  if (method == "smoke") return kSmokeModels;
  return kNoModels;
}

bool IsKnownMethod(const std::string& method) {
  const auto& m = KnownMethods();
  return std::find(m.begin(), m.end(), method) != m.end();
}

namespace {
bool IsVarStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsVarChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Finds the next ${NAME} at or after `from`. Returns false at the end; sets `error` on a
// malformed reference.
bool NextVar(const std::string& s, size_t from, size_t* start, size_t* end, std::string* name,
             std::string* error) {
  size_t p = s.find("${", from);
  if (p == std::string::npos) return false;
  size_t close = s.find('}', p + 2);
  if (close == std::string::npos) {
    *error = "unterminated '${' in \"" + s + "\"";
    return false;
  }
  std::string n = s.substr(p + 2, close - p - 2);
  bool ok = !n.empty() && IsVarStart(n[0]) && std::all_of(n.begin(), n.end(), IsVarChar);
  if (!ok) {
    *error = "bad variable name '${" + n + "}' in \"" + s + "\" (use letters, digits and _)";
    return false;
  }
  *start = p;
  *end = close + 1;
  *name = n;
  return true;
}
}  // namespace

std::string CheckVarSyntax(const std::string& text) {
  size_t from = 0, start = 0, end = 0;
  std::string name, error;
  while (NextVar(text, from, &start, &end, &name, &error)) from = end;
  return error;
}

std::optional<std::string> Substitute(const Text& text,
                                      const std::map<std::string, std::string>& vars,
                                      ErrorList* errors) {
  std::string out;
  size_t from = 0, start = 0, end = 0;
  std::string name, error;
  bool ok = true;
  while (NextVar(text.value, from, &start, &end, &name, &error)) {
    out += text.value.substr(from, start - from);
    auto it = vars.find(name);
    if (it == vars.end()) {
      errors->Add(text.pos, "undefined variable ${" + name + "} (define it with --var " + name +
                                "=VALUE or in the environment)");
      ok = false;
    } else {
      out += it->second;
    }
    from = end;
  }
  if (!error.empty()) {
    errors->Add(text.pos, error);
    return std::nullopt;
  }
  out += text.value.substr(from);
  if (!ok) return std::nullopt;
  return out;
}

std::string SplitError(const std::string& split) {
  if (split == "train" || split == "val" || split == "test") return "";
  return "unknown split '" + split + "' (expected train, val or test)";
}

std::string TypeError(const std::string& type) {
  static const std::set<std::string> kTypes = {"REAL", "FS", "FR", "EFS", "FE"};
  if (kTypes.count(type)) return "";
  return "unknown type '" + type + "' (expected REAL, FS, FR, EFS or FE)";
}

std::string MethodTypeError(const std::string& type) {
  static const std::set<std::string> kTypes = {"FS", "FR", "EFS", "FE"};
  if (kTypes.count(type)) return "";
  return "unknown method type '" + type + "' (expected FS, FR, EFS or FE)";
}

}  // namespace internal

using internal::ErrorList;
using nlohmann::json;

// ------------------------------------------------------------------------------------------
// Methods and their built-in hyper-parameters (sources in docs/sweeps.md).

const std::vector<std::string>& KnownMethods() {
  static const std::vector<std::string> kMethods = {
      "xception", "recce", "spsl", "clip", "clip_lora", "clip_svd", "sd2", "univfd", "smoke"};
  return kMethods;
}

bool NeedsPretrained(const std::string& method) {
  return method == "xception" || method == "recce" || method == "spsl" || method == "clip" ||
         method == "clip_lora" || method == "clip_svd" || method == "univfd" || method == "sd2";
}

json DefaultHparams(const std::string& method) {
  if (method == "xception" || method == "recce" || method == "spsl") {
    // DeepfakeBench's detector configs (Yan et al., 2023): Adam, lr 2e-4, weight decay 5e-4,
    // batch 32, 10 epochs, 256 px.
    return {{"optimizer", "adam"}, {"lr", 2e-4}, {"weight_decay", 5e-4}, {"batch_size", 32},
            {"epochs", 10},        {"steps", 0}, {"image_size", 256}};
  }
  if (method == "clip" || method == "clip_svd") {
    // Not in the paper: DeepfakeBench-style Adam at a ViT fine-tuning rate, 224 px.
    return {{"optimizer", "adam"}, {"lr", 2e-5}, {"weight_decay", 5e-4}, {"batch_size", 32},
            {"epochs", 10},        {"steps", 0}, {"image_size", 224}};
  }
  if (method == "clip_lora") {
    // "CLIP-LoRA ... with our LoRA settings" (Sec. 5.2.1): r 8, alpha 32, dropout 0.1; the
    // optimizer is not stated: as clip.
    return {{"optimizer", "adam"}, {"lr", 2e-5},         {"weight_decay", 5e-4}, {"batch_size", 32},
            {"epochs", 10},        {"steps", 0},         {"image_size", 224},    {"lora_r", 8},
            {"lora_alpha", 32.0},  {"lora_dropout", 0.1}};
  }
  if (method == "sd2") {
    // Sec. 5.1: AdamW, lr 5e-7, batch 512, 4 epochs, alpha 2.0, LoRA r 8 / alpha 32 / p 0.1.
    // Weight decay is unstated: PyTorch's AdamW default 0.01.
    return {{"optimizer", "adamw"}, {"lr", 5e-7},         {"weight_decay", 0.01},
            {"batch_size", 512},    {"epochs", 4},        {"steps", 0},
            {"image_size", 224},    {"alpha", 2.0},       {"lora_r", 8},
            {"lora_alpha", 32.0},   {"lora_dropout", 0.1}};
  }
  if (method == "univfd" || method == "probe") {
    // UnivFD's linear probe (Ojha et al., 2023): Adam, lr 1e-4, batch 256; epochs chosen.
    return {{"optimizer", "adam"}, {"lr", 1e-4}, {"weight_decay", 0.0}, {"batch_size", 256},
            {"epochs", 10},        {"steps", 0}, {"image_size", 224}};
  }
  if (method == "smoke") {
    // A tiny CPU model for tests and the demo.
    return {{"optimizer", "sgd"}, {"lr", 0.05},  {"weight_decay", 0.0}, {"momentum", 0.9},
            {"batch_size", 8},    {"epochs", 1}, {"steps", 0},          {"image_size", 32}};
  }
  return json::object();
}

namespace {

enum class Kind { kFloat, kInt, kString, kBool };

struct HparamDef {
  const char* name;
  Kind kind;
  double lo;
  bool lo_open;  // lo itself excluded
  double hi;
  bool hi_open;
  std::vector<std::string> choices;  // kString
};

constexpr double kInf = std::numeric_limits<double>::infinity();

const std::vector<HparamDef>& HparamDefs() {
  static const std::vector<HparamDef> kDefs = {
      {"optimizer", Kind::kString, 0, false, 0, false, {"adam", "adamw", "sgd"}},
      {"lr", Kind::kFloat, 0, true, kInf, false, {}},
      {"weight_decay", Kind::kFloat, 0, false, kInf, false, {}},
      {"momentum", Kind::kFloat, 0, false, 1, true, {}},
      {"batch_size", Kind::kInt, 1, false, 1 << 20, false, {}},
      {"epochs", Kind::kInt, 1, false, 100000, false, {}},
      {"steps", Kind::kInt, 0, false, 1e12, false, {}},
      {"image_size", Kind::kInt, 8, false, 4096, false, {}},
      {"alpha", Kind::kFloat, 0, false, kInf, false, {}},
      {"lora_r", Kind::kInt, 1, false, 4096, false, {}},
      {"lora_alpha", Kind::kFloat, 0, true, kInf, false, {}},
      {"lora_dropout", Kind::kFloat, 0, false, 1, true, {}},
      // Training loop (worker/train/trainer.h).
      {"threads", Kind::kInt, 1, false, 1024, false, {}},
      {"loader_threads", Kind::kInt, 0, false, 1024, false, {}},
      {"checkpoint_every", Kind::kInt, 0, false, 1e12, false, {}},
      {"eval_batch_size", Kind::kInt, 1, false, 1 << 20, false, {}},
      {"log_every", Kind::kInt, 1, false, 1e12, false, {}},
      {"warmup", Kind::kInt, 0, false, 1e12, false, {}},
      {"accumulation", Kind::kInt, 1, false, 4096, false, {}},
      {"schedule", Kind::kString, 0, false, 0, false, {"constant", "cosine"}},
      // Training augmentations (worker/data/augment.h AugmentPreset).
      {"augment", Kind::kString, 0, false, 0, false, {"default", "flip", "none"}},
      // Weights to start from: a Hugging Face CLIP folder or a safetensors file (any path).
      {"pretrained", Kind::kString, 0, false, 0, false, {}},
      // SD² (docs/method.md).
      {"label_sampling", Kind::kString, 0, false, 0, false, {"all", "simple"}},
      // Baselines (docs/baselines.md).
      {"width", Kind::kFloat, 0, true, 64, false, {}},
      {"middle_blocks", Kind::kInt, 1, false, 64, false, {}},
      {"recce_recons", Kind::kBool, 0, false, 0, false, {}},
      {"recce_metric", Kind::kBool, 0, false, 0, false, {}},
      {"svd_rank", Kind::kInt, 1, false, 1 << 16, false, {}},
      {"svd_orthogonal_weight", Kind::kFloat, 0, false, kInf, false, {}},
      {"svd_keep_sv_weight", Kind::kFloat, 0, false, kInf, false, {}},
      // The smoke method (worker/runtime/smoke_method.h).
      {"duration_s", Kind::kFloat, 0, false, 86400, false, {}},
      {"fail_attempts", Kind::kInt, 0, false, 1000, false, {}},
  };
  return kDefs;
}

// Optional hyper-parameters (no default in DefaultHparams, so absent from trial configs unless
// a sweep sets them) and the methods that take them.
bool MethodAccepts(const std::string& method, const std::string& key) {
  static const std::vector<std::string> kLoop = {
      "threads", "loader_threads", "checkpoint_every", "eval_batch_size", "log_every",
      "warmup",  "accumulation",   "schedule",         "pretrained",      "augment"};
  if (method == "smoke") {
    return key == "duration_s" || key == "fail_attempts" || key == "checkpoint_every";
  }
  if (std::find(kLoop.begin(), kLoop.end(), key) != kLoop.end()) return true;
  if (key == "label_sampling") return method == "sd2";
  if (key == "width" || key == "middle_blocks") {
    return method == "xception" || method == "recce" || method == "spsl";
  }
  if (key == "recce_recons" || key == "recce_metric") return method == "recce";
  if (key == "svd_rank" || key == "svd_orthogonal_weight" || key == "svd_keep_sv_weight") {
    return method == "clip_svd";
  }
  return false;
}

const HparamDef* FindHparam(const std::string& name) {
  for (const auto& d : HparamDefs())
    if (name == d.name) return &d;
  return nullptr;
}

std::string FormatNumber(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

const char* TypeName(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::array:
      return "array";
    case toml::node_type::table:
      return "table";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    default:
      return "nothing";
  }
}

SourcePos PosOf(const toml::source_region& r) {
  if (r.begin.line == 0) return {1, 1};
  return {static_cast<int>(r.begin.line), static_cast<int>(r.begin.column)};
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string Join(const std::vector<std::string>& v, const std::string& sep = ", ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// "(did you mean 'x'?)" for a near miss, else "(expected one of: a, b)".
std::string Suggest(const std::string& word, const std::vector<std::string>& options) {
  std::string best;
  size_t best_d = 3;
  for (const auto& o : options) {
    size_t d = EditDistance(word, o);
    if (d < best_d) best_d = d, best = o;
  }
  if (!best.empty()) return "(did you mean '" + best + "'?)";
  return "(expected one of: " + Join(options) + ")";
}

// One toml table being validated, with the dotted path used in messages.
struct Scope {
  const toml::table* table;
  std::string path;  // "" for the root, "data", "eval[0]", "hparams.sd2"
  SourcePos pos;     // where the table starts (for missing keys)
  std::string Path(const std::string& key) const { return path.empty() ? key : path + "." + key; }
};

class Parser {
 public:
  Parser(std::string file) : errors_(std::move(file)) {}

  ErrorList& errors() { return errors_; }

  void Err(SourcePos pos, std::string msg) { errors_.Add(pos, std::move(msg)); }

  // Reports keys of `s` not in `allowed`.
  void CheckKeys(const Scope& s, const std::vector<std::string>& allowed) {
    for (auto&& [k, v] : *s.table) {
      std::string key(k.str());
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
      std::string where = s.path.empty() ? "" : " in '" + s.path + "'";
      Err(PosOf(k.source()), "unknown key '" + key + "'" + where + " " + Suggest(key, allowed));
    }
  }

  // The node of `key`, or nullptr. `key_pos` gets the key's position.
  const toml::node* Find(const Scope& s, const std::string& key, SourcePos* key_pos) {
    auto it = s.table->find(key);
    if (it == s.table->end()) return nullptr;
    *key_pos = PosOf(it->first.source());
    return &it->second;
  }

  void Missing(const Scope& s, const std::string& key) {
    Err(s.pos, "missing required key '" + s.Path(key) + "'");
  }

  void WrongType(SourcePos pos, const std::string& path, const std::string& expected,
                 const toml::node& n) {
    Err(pos, "'" + path + "' must be " + expected + ", got " + TypeName(n));
  }

  std::optional<Text> GetText(const Scope& s, const std::string& key, bool required,
                              bool allow_vars) {
    SourcePos pos;
    const toml::node* n = Find(s, key, &pos);
    if (!n) {
      if (required) Missing(s, key);
      return std::nullopt;
    }
    return TextOf(*n, pos, s.Path(key), allow_vars);
  }

  std::optional<Text> TextOf(const toml::node& n, SourcePos pos, const std::string& path,
                             bool allow_vars) {
    if (!n.is_string()) {
      WrongType(pos, path, "a string", n);
      return std::nullopt;
    }
    Text t{*n.value<std::string>(), pos};
    if (allow_vars) {
      std::string e = internal::CheckVarSyntax(t.value);
      if (!e.empty()) {
        Err(pos, "'" + path + "': " + e);
        return std::nullopt;
      }
    }
    return t;
  }

  std::optional<int64_t> GetInt(const Scope& s, const std::string& key, int64_t lo, int64_t hi) {
    SourcePos pos;
    const toml::node* n = Find(s, key, &pos);
    if (!n) return std::nullopt;
    return IntOf(*n, pos, s.Path(key), lo, hi);
  }

  std::optional<int64_t> IntOf(const toml::node& n, SourcePos pos, const std::string& path,
                               int64_t lo, int64_t hi) {
    if (!n.is_integer()) {
      WrongType(pos, path, "an integer", n);
      return std::nullopt;
    }
    int64_t v = *n.value<int64_t>();
    if (v < lo) {
      Err(pos, "'" + path + "' must be >= " + std::to_string(lo) + ", got " + std::to_string(v));
      return std::nullopt;
    }
    if (v > hi) {
      Err(pos, "'" + path + "' must be <= " + std::to_string(hi) + ", got " + std::to_string(v));
      return std::nullopt;
    }
    return v;
  }

  std::optional<int64_t> ScaleOf(const toml::node& n, SourcePos pos, const std::string& path) {
    if (n.is_integer()) {
      int64_t v = *n.value<int64_t>();
      if (v <= 0) {
        Err(pos, "'" + path + "' must be > 0, got " + std::to_string(v));
        return std::nullopt;
      }
      if (v > 1000000000000LL) {
        Err(pos, "'" + path + "' must be <= 10^12, got " + std::to_string(v));
        return std::nullopt;
      }
      return v;
    }
    if (n.is_string()) {
      std::string s = *n.value<std::string>();
      auto v = ParseScale(s);
      if (!v.ok()) {
        Err(pos, "'" + path + "': " + v.status().message());
        return std::nullopt;
      }
      return *v;
    }
    WrongType(pos, path, "an integer or a string like \"100K\"", n);
    return std::nullopt;
  }

  // An array value; a wrong type is reported. `pos` gets the key's position.
  const toml::array* GetArray(const Scope& s, const std::string& key, SourcePos* pos,
                              bool required) {
    const toml::node* n = Find(s, key, pos);
    if (!n) {
      if (required) Missing(s, key);
      return nullptr;
    }
    if (!n->is_array()) {
      WrongType(*pos, s.Path(key), "an array", *n);
      return nullptr;
    }
    return n->as_array();
  }

  // A sub-table; a wrong type is reported.
  std::optional<Scope> GetTable(const Scope& s, const std::string& key, SourcePos* key_pos) {
    const toml::node* n = Find(s, key, key_pos);
    if (!n) return std::nullopt;
    if (!n->is_table()) {
      WrongType(*key_pos, s.Path(key), "a table", *n);
      return std::nullopt;
    }
    SourcePos tpos = PosOf(n->source());
    return Scope{n->as_table(), s.Path(key), tpos};
  }

  // Array of strings (with optional ${VAR}); elements checked for duplicates.
  std::vector<Text> GetTextList(const Scope& s, const std::string& key, bool allow_vars) {
    std::vector<Text> out;
    SourcePos pos;
    const toml::array* a = GetArray(s, key, &pos, false);
    if (!a) return out;
    for (size_t i = 0; i < a->size(); ++i) {
      const toml::node& e = *a->get(i);
      std::string path = s.Path(key) + "[" + std::to_string(i) + "]";
      auto t = TextOf(e, PosOf(e.source()), path, allow_vars);
      if (!t) continue;
      bool dup =
          std::any_of(out.begin(), out.end(), [&](const Text& o) { return o.value == t->value; });
      if (dup) {
        Err(t->pos, "'" + path + "': duplicate value \"" + t->value + "\"");
        continue;
      }
      out.push_back(*t);
    }
    return out;
  }

  DataFilter GetFilter(const Scope& s, const std::string& default_split) {
    DataFilter f;
    auto split = GetText(s, "split", false, true);
    f.split = split ? *split : Text{default_split, s.pos};
    if (split && split->value.find("${") == std::string::npos) {
      std::string e = internal::SplitError(split->value);
      if (!e.empty()) Err(split->pos, "'" + s.Path("split") + "': " + e);
    }
    f.datasets = GetTextList(s, "datasets", true);
    f.subsets = GetTextList(s, "subsets", true);
    f.types = GetTextList(s, "types", true);
    for (size_t i = 0; i < f.types.size(); ++i) {
      if (f.types[i].value.find("${") != std::string::npos) continue;
      std::string e = internal::TypeError(f.types[i].value);
      if (!e.empty()) Err(f.types[i].pos, "'" + s.Path("types") + "': " + e);
    }
    f.domains = GetTextList(s, "domains", true);
    f.method_types = GetTextList(s, "method_types", true);
    for (const Text& t : f.method_types) {
      if (t.value.find("${") != std::string::npos) continue;
      std::string e = internal::MethodTypeError(t.value);
      if (!e.empty()) Err(t.pos, "'" + s.Path("method_types") + "': " + e);
    }
    SourcePos kpos;
    if (const toml::node* n = Find(s, "known", &kpos)) {
      if (n->is_boolean()) {
        f.known = *n->value<bool>();
      } else {
        WrongType(kpos, s.Path("known"), "a boolean", *n);
      }
    }
    return f;
  }

  // Validates one hyper-parameter value; returns its JSON form.
  std::optional<json> HparamValue(const HparamDef& d, const toml::node& n, SourcePos pos,
                                  const std::string& path) {
    switch (d.kind) {
      case Kind::kString: {
        if (!n.is_string()) {
          WrongType(pos, path, "a string", n);
          return std::nullopt;
        }
        std::string v = *n.value<std::string>();
        if (d.choices.empty()) {  // free text, e.g. a path; ${VAR}s are substituted by Expand
          if (v.empty()) {
            Err(pos, "'" + path + "' must not be empty");
            return std::nullopt;
          }
          std::string e = internal::CheckVarSyntax(v);
          if (!e.empty()) {
            Err(pos, "'" + path + "': " + e);
            return std::nullopt;
          }
          return json(v);
        }
        if (std::find(d.choices.begin(), d.choices.end(), v) == d.choices.end()) {
          Err(pos, "'" + path + "': unknown value \"" + v + "\" " + Suggest(v, d.choices));
          return std::nullopt;
        }
        return json(v);
      }
      case Kind::kBool: {
        if (!n.is_boolean()) {
          WrongType(pos, path, "a boolean", n);
          return std::nullopt;
        }
        return json(*n.value<bool>());
      }
      case Kind::kInt: {
        auto v = IntOf(n, pos, path, static_cast<int64_t>(d.lo), static_cast<int64_t>(d.hi));
        if (!v) return std::nullopt;
        return json(*v);
      }
      case Kind::kFloat: {
        double v;
        if (n.is_integer()) {
          v = static_cast<double>(*n.value<int64_t>());
        } else if (n.is_floating_point()) {
          v = *n.value<double>();
        } else {
          WrongType(pos, path, "a number", n);
          return std::nullopt;
        }
        if (!std::isfinite(v)) {
          Err(pos, "'" + path + "' must be a finite number, got " + FormatNumber(v));
          return std::nullopt;
        }
        if (d.lo_open ? !(v > d.lo) : !(v >= d.lo)) {
          Err(pos, "'" + path + "' must be " + (d.lo_open ? "> " : ">= ") + FormatNumber(d.lo) +
                       ", got " + FormatNumber(v));
          return std::nullopt;
        }
        if (d.hi_open ? !(v < d.hi) : !(v <= d.hi)) {
          Err(pos, "'" + path + "' must be " + (d.hi_open ? "< " : "<= ") + FormatNumber(d.hi) +
                       ", got " + FormatNumber(v));
          return std::nullopt;
        }
        return json(v);
      }
    }
    return std::nullopt;
  }

 private:
  ErrorList errors_;
};

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Partial trial coordinates of an exclude/include entry.
struct Selector {
  std::optional<std::string> method;
  std::optional<int64_t> scale;
  std::optional<int64_t> seed;
  std::optional<bool> clam, ld_face, ld_env;
  SourcePos pos;
  bool HasAblation() const { return clam || ld_face || ld_env; }
  bool Matches(const TrialCoord& c) const {
    if (method && *method != c.method) return false;
    if (scale && *scale != c.scale) return false;
    if (seed && *seed != c.seed) return false;
    if (HasAblation() && c.method != "sd2") return false;
    if (clam && *clam != c.ablation.clam) return false;
    if (ld_face && *ld_face != c.ablation.ld_face) return false;
    if (ld_env && *ld_env != c.ablation.ld_env) return false;
    return true;
  }
};

const std::vector<std::string> kAblationKeys = {"clam", "ld_face", "ld_env"};

// Reads the exclude or include list ("exclude"/"include").
std::vector<Selector> GetSelectors(Parser& p, const Scope& root, const std::string& key,
                                   bool* present) {
  std::vector<Selector> out;
  SourcePos pos;
  const toml::array* a = p.GetArray(root, key, &pos, false);
  *present = p.Find(root, key, &pos) != nullptr;
  if (!a) return out;
  for (size_t i = 0; i < a->size(); ++i) {
    const toml::node& e = *a->get(i);
    std::string path = key + "[" + std::to_string(i) + "]";
    SourcePos epos = PosOf(e.source());
    if (!e.is_table()) {
      p.WrongType(epos, path, "a table", e);
      continue;
    }
    Scope s{e.as_table(), path, epos};
    p.CheckKeys(s, {"method", "scale", "seed", "clam", "ld_face", "ld_env"});
    Selector sel;
    sel.pos = epos;
    bool ok = true;
    SourcePos kpos;
    if (const toml::node* n = p.Find(s, "method", &kpos)) {
      auto t = p.TextOf(*n, kpos, s.Path("method"), false);
      if (!t) {
        ok = false;
      } else if (!internal::IsKnownMethod(t->value)) {
        p.Err(kpos, "'" + s.Path("method") + "': unknown method '" + t->value + "' " +
                        Suggest(t->value, KnownMethods()));
        ok = false;
      } else {
        sel.method = t->value;
      }
    }
    if (const toml::node* n = p.Find(s, "scale", &kpos)) {
      sel.scale = p.ScaleOf(*n, kpos, s.Path("scale"));
      ok = ok && sel.scale.has_value();
    }
    if (p.Find(s, "seed", &kpos)) {
      sel.seed = p.GetInt(s, "seed", 0, int64_t{1} << 53);
      ok = ok && sel.seed.has_value();
    }
    for (const auto& ak : kAblationKeys) {
      const toml::node* n = p.Find(s, ak, &kpos);
      if (!n) continue;
      if (!n->is_boolean()) {
        p.WrongType(kpos, s.Path(ak), "a boolean", *n);
        ok = false;
        continue;
      }
      bool v = *n->value<bool>();
      (ak == "clam" ? sel.clam : ak == "ld_face" ? sel.ld_face : sel.ld_env) = v;
      if (sel.method && *sel.method != "sd2") {
        p.Err(kpos, "'" + s.Path(ak) + "': ablation switches apply to sd2 only, not '" +
                        *sel.method + "'");
        ok = false;
      }
    }
    if (s.table->empty()) {
      p.Err(epos, "'" + path + "' is empty: name at least one of method, scale, seed, " +
                      "clam, ld_face, ld_env");
      ok = false;
    }
    if (key == "include" && ok) {
      for (const char* req : {"method", "scale", "seed"}) {
        if (!s.table->contains(req)) {
          p.Missing(s, req);
          ok = false;
        }
      }
    }
    if (ok) out.push_back(sel);
  }
  return out;
}

}  // namespace

StatusOr<int64_t> ParseScale(std::string_view s) {
  std::string str(s);
  if (str.empty()) return InvalidArgumentError("empty scale");
  int64_t mult = 1;
  std::string num = str;
  char last = str.back();
  if (last == 'K' || last == 'k') {
    mult = 1000;
    num = str.substr(0, str.size() - 1);
  } else if (last == 'M' || last == 'm') {
    mult = 1000000;
    num = str.substr(0, str.size() - 1);
  }
  auto bad = [&]() {
    return InvalidArgumentError("bad scale \"" + str +
                                "\" (expected a positive count like 300, \"100K\", \"1M\")");
  };
  if (num.empty() || num.size() > 20) return bad();
  size_t dots = 0;
  for (char c : num) {
    if (c == '.') {
      ++dots;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return bad();
    }
  }
  if (dots > 1 || num.front() == '.' || num.back() == '.') return bad();
  // Exact decimal arithmetic: integer part and fraction digits.
  size_t dot = num.find('.');
  std::string int_part = num.substr(0, dot);
  std::string frac = dot == std::string::npos ? "" : num.substr(dot + 1);
  if (int_part.size() > 13) return bad();
  int64_t value = std::stoll(int_part) * mult;
  int64_t frac_scale = mult;
  for (char c : frac) {
    if (frac_scale % 10 != 0) {
      if (c != '0') {
        return InvalidArgumentError("scale \"" + str + "\" is not a whole number of images");
      }
      continue;
    }
    frac_scale /= 10;
    value += (c - '0') * frac_scale;
  }
  if (value <= 0) return InvalidArgumentError("scale \"" + str + "\" must be > 0");
  if (value > 1000000000000LL) return InvalidArgumentError("scale \"" + str + "\" is above 10^12");
  return value;
}

std::string FormatScale(int64_t scale) {
  auto with_suffix = [](int64_t v, int64_t unit, const char* suffix) {
    std::string s = std::to_string(v / unit);
    int64_t rest = v % unit;
    if (rest != 0) {
      std::string frac = std::to_string(rest);
      frac = std::string(std::to_string(unit).size() - 1 - frac.size(), '0') + frac;
      while (!frac.empty() && frac.back() == '0') frac.pop_back();
      s += "." + frac;
    }
    return s + suffix;
  };
  if (scale >= 1000000 && scale % 100000 == 0) return with_suffix(scale, 1000000, "M");
  if (scale >= 1000 && scale % 100 == 0) return with_suffix(scale, 1000, "K");
  return std::to_string(scale);
}

std::string TrialKey(const nlohmann::json& config) {
  json c = config;
  if (c.is_object()) {
    for (const char* k : {"resources", "priority", "label", "sweep"}) c.erase(k);
  }
  return Sha256Hex(c.dump(-1, ' ', false, json::error_handler_t::replace)).substr(0, 16);
}

StatusOr<SweepSpec> LoadSweepFile(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return InvalidArgumentError(text.status().message());
  return ParseSweep(*text, path);
}

StatusOr<SweepSpec> ParseSweep(std::string_view toml_text, const std::string& filename) {
  SweepSpec spec;
  spec.path = filename;
  spec.text = std::string(toml_text);
  Parser p(filename);

  toml::table root_table;
  try {
    root_table = ParseTomlBounded(toml_text, filename);
  } catch (const toml::parse_error& e) {
    p.Err(PosOf(e.source()), std::string(e.description()));
    return p.errors().ToStatus();
  }
  Scope root{&root_table, "", {1, 1}};
  p.CheckKeys(root, {"name", "description", "priority", "methods", "scales", "seeds", "model",
                     "data", "eval", "ablation", "hparams", "variant", "resources", "exclude",
                     "include", "probe", "allow_random_init"});

  // name, description, priority.
  if (auto name = p.GetText(root, "name", true, false)) {
    const std::string& n = name->value;
    bool ok = !n.empty() && n.size() <= 128 && std::all_of(n.begin(), n.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    });
    if (!ok) {
      p.Err(
          name->pos,
          "'name' must be 1-128 characters of letters, digits, '_', '-' or '.', got \"" + n + "\"");
    }
    spec.name = n;
  }
  if (auto d = p.GetText(root, "description", false, false)) spec.description = d->value;
  if (auto pr = p.GetInt(root, "priority", -1000000, 1000000)) spec.priority = int(*pr);
  SourcePos ari_pos;
  if (const toml::node* n = p.Find(root, "allow_random_init", &ari_pos)) {
    if (n->is_boolean()) {
      spec.allow_random_init = *n->value<bool>();
    } else {
      p.WrongType(ari_pos, "allow_random_init", "a boolean", *n);
    }
  }

  // methods, scales, seeds.
  SourcePos methods_pos;
  const toml::array* methods = p.GetArray(root, "methods", &methods_pos, false);
  bool has_methods_key = p.Find(root, "methods", &methods_pos) != nullptr;
  if (methods) {
    if (methods->empty()) p.Err(methods_pos, "'methods' must not be empty");
    for (size_t i = 0; i < methods->size(); ++i) {
      const toml::node& e = *methods->get(i);
      std::string path = "methods[" + std::to_string(i) + "]";
      auto t = p.TextOf(e, PosOf(e.source()), path, false);
      if (!t) continue;
      if (!internal::IsKnownMethod(t->value)) {
        p.Err(t->pos, "'" + path + "': unknown method '" + t->value + "' " +
                          Suggest(t->value, KnownMethods()));
        continue;
      }
      if (Contains(spec.methods, t->value)) {
        p.Err(t->pos, "'" + path + "': duplicate method '" + t->value + "'");
        continue;
      }
      spec.methods.push_back(t->value);
      spec.method_pos.emplace(t->value, t->pos);
    }
  }
  SourcePos scales_pos;
  const toml::array* scales = p.GetArray(root, "scales", &scales_pos, false);
  bool has_scales_key = p.Find(root, "scales", &scales_pos) != nullptr;
  if (scales) {
    if (scales->empty()) p.Err(scales_pos, "'scales' must not be empty");
    for (size_t i = 0; i < scales->size(); ++i) {
      const toml::node& e = *scales->get(i);
      std::string path = "scales[" + std::to_string(i) + "]";
      auto v = p.ScaleOf(e, PosOf(e.source()), path);
      if (!v) continue;
      if (std::find(spec.scales.begin(), spec.scales.end(), *v) != spec.scales.end()) {
        p.Err(PosOf(e.source()), "'" + path + "': duplicate scale " + FormatScale(*v));
        continue;
      }
      spec.scales.push_back(*v);
    }
  }
  SourcePos seeds_pos;
  const toml::array* seeds = p.GetArray(root, "seeds", &seeds_pos, false);
  bool has_seeds_key = p.Find(root, "seeds", &seeds_pos) != nullptr;
  if (seeds) {
    if (seeds->empty()) p.Err(seeds_pos, "'seeds' must not be empty");
    for (size_t i = 0; i < seeds->size(); ++i) {
      const toml::node& e = *seeds->get(i);
      std::string path = "seeds[" + std::to_string(i) + "]";
      auto v = p.IntOf(e, PosOf(e.source()), path, 0, int64_t{1} << 53);
      if (!v) continue;
      if (std::find(spec.seeds.begin(), spec.seeds.end(), *v) != spec.seeds.end()) {
        p.Err(PosOf(e.source()), "'" + path + "': duplicate seed " + std::to_string(*v));
        continue;
      }
      spec.seeds.push_back(*v);
    }
  } else if (!has_seeds_key) {
    spec.seeds = {0};
  }

  // include / exclude / probe decide which methods have trials.
  bool has_exclude = false, has_include = false;
  std::vector<Selector> excludes = GetSelectors(p, root, "exclude", &has_exclude);
  std::vector<Selector> includes = GetSelectors(p, root, "include", &has_include);
  SourcePos probe_key_pos;
  bool has_probe = p.Find(root, "probe", &probe_key_pos) != nullptr;

  if (!has_methods_key && !has_probe && !has_include) {
    p.Missing(root, "methods");
  }
  if (has_methods_key && !has_scales_key) p.Missing(root, "scales");
  if (!has_methods_key && has_scales_key) {
    p.Err(scales_pos, "'scales' needs 'methods'");
  }

  // Methods with trials: listed ones, included ones, and probe.
  std::vector<std::string> used = spec.methods;
  for (const auto& inc : includes) {
    if (inc.method && !Contains(used, *inc.method)) used.push_back(*inc.method);
    if (inc.method) spec.method_pos.emplace(*inc.method, inc.pos);
  }
  if (has_probe) used.push_back("probe");
  bool has_sd2 = Contains(used, "sd2");

  // [ablation].
  std::vector<bool> clams = {true}, ld_faces = {true}, ld_envs = {true};
  SourcePos ablation_pos;
  if (auto ab = p.GetTable(root, "ablation", &ablation_pos)) {
    p.CheckKeys(*ab, kAblationKeys);
    if (!has_sd2) {
      p.Err(ablation_pos, "'ablation' applies to sd2 trials, but this sweep has no sd2 method");
    }
    for (const auto& k : kAblationKeys) {
      SourcePos kpos;
      const toml::node* n = p.Find(*ab, k, &kpos);
      if (!n) continue;
      std::vector<bool>& out = k == "clam" ? clams : k == "ld_face" ? ld_faces : ld_envs;
      if (n->is_boolean()) {
        out = {*n->value<bool>()};
        continue;
      }
      if (!n->is_array()) {
        p.WrongType(kpos, ab->Path(k), "a boolean or an array of booleans", *n);
        continue;
      }
      const toml::array& a = *n->as_array();
      if (a.empty()) {
        p.Err(kpos, "'" + ab->Path(k) + "' must not be empty");
        continue;
      }
      std::vector<bool> vals;
      for (size_t i = 0; i < a.size(); ++i) {
        const toml::node& e = *a.get(i);
        std::string path = ab->Path(k) + "[" + std::to_string(i) + "]";
        if (!e.is_boolean()) {
          p.WrongType(PosOf(e.source()), path, "a boolean", e);
          continue;
        }
        bool v = *e.value<bool>();
        if (std::find(vals.begin(), vals.end(), v) != vals.end()) {
          p.Err(PosOf(e.source()), "'" + path + "': duplicate value " + (v ? "true" : "false"));
          continue;
        }
        vals.push_back(v);
      }
      if (!vals.empty()) out = vals;
    }
  }

  // [variant] (sd2 only). Defaults follow the paper's equations, with L_C a batch mean.
  spec.variant = {
      {"lc_reduction", "mean"}, {"ls_reduction", "sum"}, {"siglip_temperature", "shared"}};
  SourcePos variant_pos;
  if (auto var = p.GetTable(root, "variant", &variant_pos)) {
    p.CheckKeys(*var, {"lc_reduction", "ls_reduction", "siglip_temperature"});
    if (!has_sd2) {
      p.Err(variant_pos, "'variant' applies to sd2 trials, but this sweep has no sd2 method");
    }
    const std::map<std::string, std::vector<std::string>> kChoices = {
        {"lc_reduction", {"mean", "sum"}},
        {"ls_reduction", {"sum", "mean"}},
        {"siglip_temperature", {"shared", "separate"}}};
    for (const auto& [k, choices] : kChoices) {
      auto t = p.GetText(*var, k, false, false);
      if (!t) continue;
      if (!Contains(choices, t->value)) {
        p.Err(t->pos, "'" + var->Path(k) + "': unknown value \"" + t->value + "\" " +
                          Suggest(t->value, choices));
        continue;
      }
      spec.variant[k] = t->value;
    }
  }

  // model: a string for every method, or a table method → model.
  for (const auto& m : used) {
    if (m != "probe") spec.models[m] = internal::ModelsFor(m).front();
  }
  SourcePos model_pos;
  if (const toml::node* mn = p.Find(root, "model", &model_pos)) {
    auto check = [&](const std::string& method, const std::string& model, SourcePos pos,
                     const std::string& path) {
      const auto& allowed = internal::ModelsFor(method);
      if (!Contains(allowed, model)) {
        p.Err(pos, "'" + path + "': model '" + model + "' is not available for method '" + method +
                       "' (available: " + Join(allowed) + ")");
        return;
      }
      spec.models[method] = model;
    };
    if (mn->is_string()) {
      std::string model = *mn->value<std::string>();
      for (const auto& m : used) {
        if (m != "probe") check(m, model, model_pos, "model");
      }
    } else if (mn->is_table()) {
      Scope ms{mn->as_table(), "model", PosOf(mn->source())};
      for (auto&& [k, v] : *ms.table) {
        std::string method(k.str());
        SourcePos kpos = PosOf(k.source());
        if (!internal::IsKnownMethod(method)) {
          p.Err(kpos, "'model." + method + "': unknown method '" + method + "' " +
                          Suggest(method, KnownMethods()));
          continue;
        }
        if (!Contains(used, method)) {
          p.Err(kpos,
                "'model." + method + "': method '" + method + "' has no trials in this sweep");
          continue;
        }
        auto t = p.TextOf(v, kpos, "model." + method, false);
        if (t) check(method, t->value, kpos, "model." + method);
      }
    } else {
      p.WrongType(model_pos, "model", "a string or a table", *mn);
    }
  }

  // [hparams]: global keys, then [hparams.<method>].
  for (const auto& m : used) spec.hparams[m] = DefaultHparams(m);
  SourcePos hp_pos;
  if (auto hp = p.GetTable(root, "hparams", &hp_pos)) {
    std::vector<std::string> hp_names;
    for (const auto& d : HparamDefs()) hp_names.push_back(d.name);
    std::vector<std::string> allowed = hp_names;
    for (const auto& m : KnownMethods()) allowed.push_back(m);
    allowed.push_back("probe");
    // Global overrides first, so per-method tables win regardless of file order.
    for (int pass = 0; pass < 2; ++pass) {
      for (auto&& [k, v] : *hp->table) {
        std::string key(k.str());
        SourcePos kpos = PosOf(k.source());
        const HparamDef* def = FindHparam(key);
        bool is_method = internal::IsKnownMethod(key) || key == "probe";
        if (pass == 0 && def) {
          auto val = p.HparamValue(*def, v, kpos, hp->Path(key));
          if (!val) continue;
          bool applied = false;
          for (auto& [m, h] : spec.hparams) {
            if (h.contains(key) || MethodAccepts(m, key)) {
              h[key] = *val;
              if (key == "pretrained") spec.pretrained[m] = Text{val->get<std::string>(), kpos};
              applied = true;
            }
          }
          if (!applied) {
            p.Err(kpos, "'hparams." + key + "': no method of this sweep has hyper-parameter '" +
                            key + "'");
          }
        } else if (pass == 1 && is_method) {
          if (!v.is_table()) {
            p.WrongType(kpos, hp->Path(key), "a table", v);
            continue;
          }
          if (!Contains(used, key)) {
            p.Err(kpos, "'hparams." + key + "': method '" + key + "' has no trials in this sweep");
            continue;
          }
          json& h = spec.hparams[key];
          std::vector<std::string> method_keys;
          for (auto& [hk, hv] : h.items()) method_keys.push_back(hk);
          for (auto&& [k2, v2] : *v.as_table()) {
            std::string key2(k2.str());
            SourcePos k2pos = PosOf(k2.source());
            std::string path = "hparams." + key + "." + key2;
            if (!h.contains(key2) && !(FindHparam(key2) && MethodAccepts(key, key2))) {
              p.Err(k2pos, "unknown key '" + key2 + "' in 'hparams." + key + "' " +
                               Suggest(key2, method_keys));
              continue;
            }
            auto val = p.HparamValue(*FindHparam(key2), v2, k2pos, path);
            if (!val) continue;
            h[key2] = *val;
            if (key2 == "pretrained") spec.pretrained[key] = Text{val->get<std::string>(), k2pos};
          }
        } else if (pass == 0 && !def && !is_method) {
          p.Err(kpos, "unknown key '" + key + "' in 'hparams' " + Suggest(key, allowed));
        }
      }
    }
  }

  // [data].
  SourcePos data_pos;
  if (auto data = p.GetTable(root, "data", &data_pos)) {
    p.CheckKeys(*data, {"manifest", "manifest_digest", "root", "train"});
    if (auto m = p.GetText(*data, "manifest", true, true)) {
      spec.manifest = *m;
      if (m->value.empty()) p.Err(m->pos, "'data.manifest' must not be empty");
    }
    if (auto d = p.GetText(*data, "manifest_digest", false, true)) {
      spec.manifest_digest = *d;
      bool hex = d->value.size() == 64 && std::all_of(d->value.begin(), d->value.end(), [](char c) {
                   return std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f');
                 });
      if (!hex && d->value.find("${") == std::string::npos) {
        p.Err(d->pos, "'data.manifest_digest' must be 64 lower-case hex digits (SHA-256)");
      }
    }
    if (auto r = p.GetText(*data, "root", false, true)) spec.root = *r;
    SourcePos tpos;
    if (auto train = p.GetTable(*data, "train", &tpos)) {
      p.CheckKeys(*train,
                  {"split", "datasets", "subsets", "types", "domains", "method_types", "known"});
      spec.train = p.GetFilter(*train, "train");
    } else {
      spec.train.split = Text{"train", data->pos};
    }
  } else if (!p.Find(root, "data", &data_pos)) {
    p.Missing(root, "data");
  }

  // [[eval]].
  SourcePos eval_pos;
  const toml::array* evals = p.GetArray(root, "eval", &eval_pos, false);
  if (!p.Find(root, "eval", &eval_pos)) {
    p.Err({1, 1}, "missing required key 'eval' (at least one [[eval]] set)");
  } else if (evals && evals->empty()) {
    p.Err(eval_pos, "'eval' must not be empty");
  }
  if (evals) {
    std::map<std::string, SourcePos> names;
    for (size_t i = 0; i < evals->size(); ++i) {
      const toml::node& e = *evals->get(i);
      std::string path = "eval[" + std::to_string(i) + "]";
      SourcePos epos = PosOf(e.source());
      if (!e.is_table()) {
        p.WrongType(epos, path, "a table", e);
        continue;
      }
      Scope s{e.as_table(), path, epos};
      p.CheckKeys(
          s, {"name", "split", "datasets", "subsets", "types", "domains", "method_types", "known"});
      EvalSpec ev;
      auto name = p.GetText(s, "name", true, true);
      if (!name) continue;
      if (name->value.empty()) {
        p.Err(name->pos, "'" + s.Path("name") + "' must not be empty");
        continue;
      }
      auto [it, fresh] = names.emplace(name->value, name->pos);
      if (!fresh) {
        p.Err(name->pos, "'" + s.Path("name") + "': duplicate eval set name \"" + name->value +
                             "\" (first at line " + std::to_string(it->second.line) + ")");
        continue;
      }
      ev.name = *name;
      ev.filter = p.GetFilter(s, "test");
      spec.evals.push_back(ev);
    }
  }

  // [resources].
  SourcePos res_pos;
  if (auto res = p.GetTable(root, "resources", &res_pos)) {
    p.CheckKeys(*res, {"ranks", "gpus_per_rank"});
    if (auto r = p.GetInt(*res, "ranks", 1, 4096)) spec.ranks = int(*r);
    if (auto g = p.GetInt(*res, "gpus_per_rank", 0, 64)) spec.gpus_per_rank = int(*g);
  }

  // [[probe]].
  if (has_probe) {
    SourcePos ppos;
    const toml::array* probes = p.GetArray(root, "probe", &ppos, false);
    if (probes && probes->empty()) p.Err(ppos, "'probe' must not be empty");
    for (size_t i = 0; probes && i < probes->size(); ++i) {
      const toml::node& e = *probes->get(i);
      std::string path = "probe[" + std::to_string(i) + "]";
      SourcePos epos = PosOf(e.source());
      if (!e.is_table()) {
        p.WrongType(epos, path, "a table", e);
        continue;
      }
      Scope s{e.as_table(), path, epos};
      p.CheckKeys(s, {"encoder", "methods", "scales", "seeds"});
      ProbeSpec probe;
      probe.pos = epos;
      auto enc = p.GetText(s, "encoder", true, true);
      if (enc) probe.encoder = *enc;
      SourcePos apos;
      if (const toml::array* a = p.GetArray(s, "methods", &apos, false)) {
        for (size_t j = 0; j < a->size(); ++j) {
          const toml::node& m = *a->get(j);
          std::string mpath = s.Path("methods") + "[" + std::to_string(j) + "]";
          auto t = p.TextOf(m, PosOf(m.source()), mpath, false);
          if (!t) continue;
          if (!internal::IsKnownMethod(t->value)) {
            p.Err(t->pos, "'" + mpath + "': unknown method '" + t->value + "' " +
                              Suggest(t->value, KnownMethods()));
            continue;
          }
          probe.methods.push_back(t->value);
        }
      }
      if (const toml::array* a = p.GetArray(s, "scales", &apos, false)) {
        for (size_t j = 0; j < a->size(); ++j) {
          const toml::node& m = *a->get(j);
          auto v =
              p.ScaleOf(m, PosOf(m.source()), s.Path("scales") + "[" + std::to_string(j) + "]");
          if (v) probe.scales.push_back(*v);
        }
      }
      if (const toml::array* a = p.GetArray(s, "seeds", &apos, false)) {
        for (size_t j = 0; j < a->size(); ++j) {
          const toml::node& m = *a->get(j);
          auto v = p.IntOf(m, PosOf(m.source()), s.Path("seeds") + "[" + std::to_string(j) + "]", 0,
                           int64_t{1} << 53);
          if (v) probe.seeds.push_back(*v);
        }
      }
      if (enc) spec.probes.push_back(probe);
    }
  }

  // The product minus excludes, then includes. Skipped when earlier errors leave it unclear.
  if (p.errors().empty()) {
    std::vector<TrialCoord> product;
    for (const auto& m : spec.methods) {
      for (int64_t scale : spec.scales) {
        for (int64_t seed : spec.seeds) {
          if (m != "sd2") {
            product.push_back({m, scale, seed, Ablation{}});
            continue;
          }
          for (bool c : clams)
            for (bool f : ld_faces)
              for (bool e : ld_envs) product.push_back({m, scale, seed, Ablation{c, f, e}});
        }
      }
    }
    constexpr size_t kMaxTrials = 100000;
    if (product.size() > kMaxTrials) {
      p.Err(methods_pos, "the sweep expands to " + std::to_string(product.size()) +
                             " trials (limit " + std::to_string(kMaxTrials) + ")");
      return p.errors().ToStatus();
    }
    for (size_t i = 0; i < excludes.size(); ++i) {
      if (!std::any_of(product.begin(), product.end(),
                       [&](const TrialCoord& c) { return excludes[i].Matches(c); })) {
        p.Err(excludes[i].pos, "'exclude[" + std::to_string(i) + "]' matches no trial");
      }
    }
    for (const auto& c : product) {
      if (std::none_of(excludes.begin(), excludes.end(),
                       [&](const Selector& s) { return s.Matches(c); }))
        spec.coords.push_back(c);
    }
    if (has_exclude && spec.coords.empty() && includes.empty() && spec.probes.empty()) {
      p.Err(methods_pos, "every trial is excluded");
    }
    for (size_t i = 0; i < includes.size(); ++i) {
      const Selector& s = includes[i];
      TrialCoord c{*s.method, *s.scale, *s.seed, Ablation{}};
      if (s.clam) c.ablation.clam = *s.clam;
      if (s.ld_face) c.ablation.ld_face = *s.ld_face;
      if (s.ld_env) c.ablation.ld_env = *s.ld_env;
      bool dup = std::any_of(spec.coords.begin(), spec.coords.end(), [&](const TrialCoord& o) {
        return o.method == c.method && o.scale == c.scale && o.seed == c.seed &&
               (c.method != "sd2" || o.ablation == c.ablation);
      });
      if (dup) {
        p.Err(s.pos, "'include[" + std::to_string(i) + "]' repeats a trial already in the sweep");
        continue;
      }
      spec.coords.push_back(c);
    }
  }

  if (!p.errors().empty()) return p.errors().ToStatus();
  return spec;
}

}  // namespace sd2::sweeps
