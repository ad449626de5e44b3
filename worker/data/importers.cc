#include "worker/data/importers.h"

#include <limits.h>
#include <toml++/toml.h>
#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/bounded_parse.h"
#include "common/bounded_toml.h"
#include "common/file_util.h"

namespace sd2::worker::data {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

StatusOr<std::string> LabelMap::LookUp(const std::string& label) const {
  std::map<std::string, std::string> lower;
  for (const auto& [k, v] : labels) lower[Lower(k)] = v;
  std::string key = Lower(label);
  if (auto it = lower.find(key); it != lower.end()) return it->second;
  static const char* kSuffixes[] = {"_fake", "-fake", "_ff", "-ff", "_cdf", "-cdf"};
  for (bool changed = true; changed;) {
    changed = false;
    for (const char* suf : kSuffixes) {
      if (EndsWith(key, suf) && key.size() > std::string(suf).size()) {
        key.resize(key.size() - std::string(suf).size());
        changed = true;
        if (auto it = lower.find(key); it != lower.end()) return it->second;
      }
    }
  }
  if (EndsWith(Lower(label), "real")) return std::string("REAL");
  return NotFoundError("no type for DeepfakeBench label \"" + label +
                       "\"; map it in a TOML file passed with --map, e.g. [labels] \"" + label +
                       "\" = \"FS\"");
}

LabelMap DefaultLabelMap() {
  LabelMap m;
  const std::pair<const char*, const char*> table[] = {
      // FaceForensics++ and its relatives.
      {"FF-real", "REAL"},
      {"FF-DF", "FS"},
      {"FF-FS", "FS"},
      {"FF-FH", "FS"},
      {"FF-F2F", "FR"},
      {"FF-NT", "FR"},
      {"FF-fake", "FS"},
      {"DFD_fake", "FS"},
      {"CelebDFv1_fake", "FS"},
      {"CelebDFv2_fake", "FS"},
      {"Celeb-DF-v1_fake", "FS"},
      {"Celeb-DF-v2_fake", "FS"},
      {"DFDCP_FakeA", "FS"},
      {"DFDCP_FakeB", "FS"},
      {"DFDCP_fake", "FS"},
      {"DFDC_Fake", "FS"},
      {"UADFV_Fake", "FS"},
      {"FaceShifter_fake", "FS"},
      {"DeeperForensics-1.0_fake", "FS"},
      {"WDF_fake", "FS"},
      {"KoDF_fake", "FS"},
      {"TIMIT_fake", "FS"},
      {"DFF_fake", "EFS"},
      {"DFFD_fake", "FE"},
      // DF40 face swapping.
      {"blendface", "FS"},
      {"e4s", "FS"},
      {"facedancer", "FS"},
      {"faceswap", "FS"},
      {"fsgan", "FS"},
      {"inswap", "FS"},
      {"mobileswap", "FS"},
      {"simswap", "FS"},
      {"uniface", "FS"},
      {"deepfacelab", "FS"},
      // DF40 face reenactment.
      {"danet", "FR"},
      {"fomm", "FR"},
      {"facevid2vid", "FR"},
      {"hyperreenact", "FR"},
      {"lia", "FR"},
      {"mcnet", "FR"},
      {"mraa", "FR"},
      {"one_shot_free", "FR"},
      {"pirender", "FR"},
      {"sadtalker", "FR"},
      {"tpsm", "FR"},
      {"wav2lip", "FR"},
      {"heygen", "FR"},
      // DF40 entire face synthesis.
      {"ddim", "EFS"},
      {"dit", "EFS"},
      {"sit", "EFS"},
      {"pixart", "EFS"},
      {"rddm", "EFS"},
      {"sd2.1", "EFS"},
      {"stylegan2", "EFS"},
      {"stylegan3", "EFS"},
      {"styleganxl", "EFS"},
      {"vqgan", "EFS"},
      {"midjourney", "EFS"},
      {"whichisreal", "EFS"},
      // DF40 face editing.
      {"collabdiff", "FE"},
      {"e4e", "FE"},
      {"stargan", "FE"},
      {"starganv2", "FE"},
      {"styleclip", "FE"},
  };
  for (const auto& [k, v] : table) m.labels[k] = v;
  m.datasets = {{"FaceForensics++", "FF++"}, {"Celeb-DF-v2", "CDF"}, {"Celeb-DF-v1", "CDFv1"}};
  return m;
}

StatusOr<LabelMap> LoadLabelMap(const std::string& toml_path) {
  LabelMap m = DefaultLabelMap();
  if (!PathExists(toml_path)) return NotFoundError("label map not found: " + toml_path);
  toml::table t;
  try {
    t = ParseTomlFileBounded(toml_path);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    return InvalidArgumentError(toml_path + ":" + std::to_string(b.line) + ":" +
                                std::to_string(b.column) + ": " + std::string(e.description()));
  }
  auto where = [&](const toml::node& n) {
    return toml_path + ":" + std::to_string(n.source().begin.line) + ":" +
           std::to_string(n.source().begin.column) + ": ";
  };
  for (auto&& [key, node] : t) {
    const std::string k(key.str());
    if (k != "labels" && k != "datasets") {
      return InvalidArgumentError(where(node) + "unknown table \"" + k +
                                  "\" (expected [labels] or [datasets])");
    }
    const toml::table* sub = node.as_table();
    if (!sub) return InvalidArgumentError(where(node) + "\"" + k + "\" must be a table");
    for (auto&& [name, value] : *sub) {
      const auto* s = value.as_string();
      if (!s)
        return InvalidArgumentError(where(value) + "value of \"" + std::string(name.str()) +
                                    "\" must be a string");
      const std::string v = s->get();
      if (k == "labels") {
        if (TypeIndexOf(v) < 0) {
          return InvalidArgumentError(where(value) + "unknown type \"" + v +
                                      "\" (expected REAL, FS, FR, EFS or FE)");
        }
        m.labels[std::string(name.str())] = v;
      } else {
        m.datasets[std::string(name.str())] = v;
      }
    }
  }
  return m;
}

std::optional<Df40Table::Place> Df40Table::Find(const std::string& dataset_name) const {
  const std::string key = Lower(dataset_name);
  for (const Df40Method& m : methods) {
    for (const auto& [name, domain] : m.datasets) {
      if (Lower(name) == key) return Place{&m, domain};
    }
  }
  return std::nullopt;
}

StatusOr<Df40Table> LoadDf40Table(const std::string& toml_path) {
  if (!PathExists(toml_path)) return NotFoundError("DF40 methods table not found: " + toml_path);
  toml::table t;
  try {
    t = ParseTomlFileBounded(toml_path);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    return InvalidArgumentError(toml_path + ":" + std::to_string(b.line) + ":" +
                                std::to_string(b.column) + ": " + std::string(e.description()));
  }
  auto where = [&](const toml::source_region& r) {
    return toml_path + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column) +
           ": ";
  };
  auto string_of = [&](const toml::node& n, const std::string& key) -> StatusOr<std::string> {
    const auto* v = n.as_string();
    if (v == nullptr || v->get().empty()) {
      return InvalidArgumentError(where(n.source()) + "\"" + key + "\" must be a non-empty string");
    }
    return v->get();
  };
  Df40Table table;
  table.source = toml_path;
  std::map<std::string, std::string> seen;  // lower-cased dataset name -> its method
  for (auto&& [key, node] : t) {
    const std::string k(key.str());
    if (k == "known_dataset" || k == "test_dataset") {
      SD2_ASSIGN_OR_RETURN(std::string v, string_of(node, k));
      (k == "known_dataset" ? table.known_dataset : table.test_dataset) = v;
      continue;
    }
    if (k != "method") {
      return InvalidArgumentError(where(key.source()) + "unknown key \"" + k +
                                  "\" (expected known_dataset, test_dataset or [[method]])");
    }
    const toml::array* arr = node.as_array();
    if (arr == nullptr) {
      return InvalidArgumentError(where(node.source()) +
                                  "\"method\" must be an array of tables ([[method]])");
    }
    for (const toml::node& mn : *arr) {
      const toml::table* mt = mn.as_table();
      if (mt == nullptr) {
        return InvalidArgumentError(where(mn.source()) + "each [[method]] must be a table");
      }
      Df40Method m;
      bool has_known = false;
      for (auto&& [mk, mv] : *mt) {
        const std::string f(mk.str());
        if (f == "name") {
          SD2_ASSIGN_OR_RETURN(m.name, string_of(mv, f));
        } else if (f == "type") {
          SD2_ASSIGN_OR_RETURN(m.type, string_of(mv, f));
          if (TypeIndexOf(m.type) < 1) {
            return InvalidArgumentError(where(mv.source()) + "unknown type \"" + m.type +
                                        "\" (expected FS, FR, EFS or FE)");
          }
        } else if (f == "known") {
          const auto* b = mv.as_boolean();
          if (b == nullptr) {
            return InvalidArgumentError(where(mv.source()) + "\"known\" must be true or false");
          }
          m.known = b->get();
          has_known = true;
        } else if (f == "datasets") {
          const toml::table* dt = mv.as_table();
          if (dt == nullptr || dt->empty()) {
            return InvalidArgumentError(where(mv.source()) +
                                        "\"datasets\" must be a non-empty table of dataset name "
                                        "= \"domain\"");
          }
          for (auto&& [dk, dv] : *dt) {
            const std::string name(dk.str());
            SD2_ASSIGN_OR_RETURN(std::string domain, string_of(dv, name));
            m.datasets.emplace_back(name, domain);
          }
        } else {
          return InvalidArgumentError(where(mk.source()) + "unknown key \"" + f +
                                      "\" in [[method]] (expected name, type, known, datasets)");
        }
      }
      const char* missing = m.name.empty()       ? "name"
                            : m.type.empty()     ? "type"
                            : !has_known         ? "known"
                            : m.datasets.empty() ? "datasets"
                                                 : nullptr;
      if (missing != nullptr) {
        return InvalidArgumentError(where(mn.source()) + "[[method]] " +
                                    (m.name.empty() ? "" : "\"" + m.name + "\" ") +
                                    "is missing \"" + missing + "\"");
      }
      for (const auto& [name, domain] : m.datasets) {
        auto [it, fresh] = seen.emplace(Lower(name), m.name);
        if (!fresh) {
          return InvalidArgumentError(where(mn.source()) + "dataset name \"" + name +
                                      "\" of method \"" + m.name + "\" is already listed for \"" +
                                      it->second + "\" (names match case-insensitively)");
        }
      }
      table.methods.push_back(std::move(m));
    }
  }
  return table;
}

StatusOr<std::string> LocateDf40Table() {
  std::vector<std::string> candidates;
  char buf[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (len > 0) {
    std::string exe(buf, static_cast<size_t>(len));
    candidates.push_back(exe.substr(0, exe.rfind('/')) + "/../share/sd2/df40_methods.toml");
  }
#ifdef SD2_SOURCE_DIR
  candidates.push_back(std::string(SD2_SOURCE_DIR) + "/data/df40_methods.toml");
#endif
  std::string tried;
  for (const std::string& c : candidates) {
    if (PathExists(c)) return c;
    tried += (tried.empty() ? "" : ", ") + c;
  }
  return NotFoundError("the DF40 methods table df40_methods.toml was not found (tried " + tried +
                       "); pass --methods FILE");
}

namespace {

std::string CleanFolder(std::string p) {
  std::replace(p.begin(), p.end(), '\\', '/');
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

bool IsAbsolute(const std::string& p) {
  // POSIX, or a Windows drive ("D:/..."), which no POSIX root contains.
  return (!p.empty() && p.front() == '/') ||
         (p.size() >= 3 && std::isalpha(static_cast<unsigned char>(p[0])) && p[1] == ':' &&
          p[2] == '/');
}

// The manifest path of one frame path: rebased, then relative to `root` (absolute, normalised;
// "" = none). An error message (without the location) when it falls outside.
StatusOr<std::string> PlaceFramePath(const std::string& frame, const std::string& root,
                                     const std::vector<Rebase>& rebases) {
  std::string path = frame;
  std::replace(path.begin(), path.end(), '\\', '/');
  const Rebase* best = nullptr;
  for (const Rebase& r : rebases) {
    const bool under =
        path.compare(0, r.from.size(), r.from) == 0 &&
        (path.size() == r.from.size() || path[r.from.size()] == '/' || r.from.back() == '/');
    if (under && (best == nullptr || r.from.size() > best->from.size())) best = &r;
  }
  if (best != nullptr) {
    // `rest` is "" or starts with '/' (the folder "/" keeps its slash: CleanFolder).
    std::string rest = path.substr(best->from.size());
    if (best->from.back() == '/') rest.insert(0, "/");
    if (!rest.empty() && best->to.back() == '/') rest.erase(0, 1);
    path = best->to + rest;
  }
  if (IsAbsolute(path)) {
    if (root.empty()) {
      return InvalidArgumentError("absolute frame path " + path +
                                  " but no --root was given (pass --root DIR, or --rebase "
                                  "OLD=NEW for a JSON made on another machine)");
    }
    const fs::path rel = fs::path(path).lexically_normal().lexically_relative(root);
    const std::string r = rel.generic_string();
    if (path.front() != '/' || r.empty() || r == "." || !PathStaysInside(r)) {
      return InvalidArgumentError("frame path " + path + " is outside --root " + root +
                                  (best != nullptr ? ""
                                                   : " (a JSON made on another machine? "
                                                     "map its folders with --rebase OLD=NEW)"));
    }
    return r;
  }
  if (!PathStaysInside(path)) {
    return InvalidArgumentError("frame path " + path + " leaves the root with \"..\"" +
                                (path.empty() ? " (it is empty)" : ""));
  }
  return path;
}

}  // namespace

StatusOr<Rebase> ParseRebase(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    return InvalidArgumentError("--rebase \"" + text +
                                "\": expected OLD=NEW with both folders non-empty, e.g. "
                                "--rebase /home/me/datasets=/data");
  }
  return Rebase{CleanFolder(text.substr(0, eq)), CleanFolder(text.substr(eq + 1))};
}

StatusOr<std::vector<Record>> ImportDeepfakeBench(const DeepfakeBenchOptions& o,
                                                  DeepfakeBenchReport* report) {
  std::vector<std::string> files;
  std::error_code ec;
  if (fs::is_directory(o.json_path, ec)) {
    for (const auto& e : fs::directory_iterator(o.json_path, ec)) {
      if (e.path().extension() == ".json") files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) return NotFoundError("no *.json files in " + o.json_path);
  } else if (fs::exists(o.json_path, ec)) {
    files.push_back(o.json_path);
  } else {
    return NotFoundError("no such file or folder: " + o.json_path);
  }
  std::string root;
  if (!o.root.empty()) {
    std::string r = o.root;
    std::replace(r.begin(), r.end(), '\\', '/');
    root = fs::absolute(fs::path(r), ec).lexically_normal().generic_string();
    while (root.size() > 1 && root.back() == '/') root.pop_back();
  }
  for (const Rebase& r : o.rebases) {
    if (r.from.empty() || r.to.empty()) {
      return InvalidArgumentError("--rebase: OLD and NEW must both be non-empty");
    }
  }
  DeepfakeBenchReport rep;
  std::vector<Record> out;
  for (const std::string& file : files) {
    SD2_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
    // Syntax errors and nesting deeper than kMaxJsonDepth name their line:col; a number beyond
    // double's range has no position.
    size_t error_byte = 0;
    StatusOr<json> parsed = ParseJsonBounded(text, {}, &error_byte);
    if (!parsed.ok()) {
      if (error_byte == 0) return InvalidArgumentError(file + ": " + parsed.status().message());
      size_t line = 1, col = 1;
      for (size_t i = 0; i + 1 < error_byte && i < text.size(); ++i) {
        if (text[i] == '\n') {
          ++line;
          col = 1;
        } else {
          ++col;
        }
      }
      return InvalidArgumentError(file + ":" + std::to_string(line) + ":" + std::to_string(col) +
                                  ": " + parsed.status().message());
    }
    json j = *std::move(parsed);
    auto bad = [&](const std::string& where, const std::string& msg) {
      return InvalidArgumentError(file + ": at " + where + ": " + msg);
    };
    if (!j.is_object()) return bad("top level", "expected an object {dataset: {...}}");
    size_t before = out.size();
    for (auto& [dataset_name, labels] : j.items()) {
      if (!labels.is_object()) return bad(dataset_name, "expected an object of labels");
      std::string dataset = dataset_name;
      if (auto it = o.map.datasets.find(dataset_name); it != o.map.datasets.end()) {
        dataset = it->second;
      }
      const std::optional<Df40Table::Place> place = o.df40.Find(dataset_name);
      if (place) dataset = place->method->known ? o.df40.known_dataset : o.df40.test_dataset;
      const size_t dataset_start = out.size();
      // A label's type: DF40 datasets hold the method's real and fake images; elsewhere the
      // label map decides.
      auto type_of = [&](const std::string& label) -> StatusOr<std::string> {
        if (!place) return o.map.LookUp(label);
        StatusOr<std::string> t = o.map.LookUp(label);
        const bool real = (t.ok() && *t == "REAL") || EndsWith(Lower(label), "real");
        return real ? std::string("REAL") : place->method->type;
      };
      for (auto& [label, splits] : labels.items()) {
        const std::string where_label = dataset_name + "/" + label;
        if (!splits.is_object()) return bad(where_label, "expected an object of splits");
        StatusOr<std::string> type = type_of(label);
        if (!type.ok()) return type.status().WithPrefix(file + ": at " + where_label);
        for (auto& [split, level_or_videos] : splits.items()) {
          const std::string where_split = where_label + "/" + split;
          if (!level_or_videos.is_object()) return bad(where_split, "expected an object");
          // A split holds videos directly or compression levels holding videos.
          std::vector<std::pair<std::string, const json*>> groups;
          bool has_levels = false;
          for (auto& [k, v] : level_or_videos.items()) {
            if (v.is_object() && !v.contains("frames") && !v.contains("label")) has_levels = true;
            (void)k;
          }
          if (has_levels) {
            for (auto& [level, videos] : level_or_videos.items()) {
              if (o.compression.empty() || level == o.compression) {
                groups.emplace_back(level, &videos);
              }
            }
          } else {
            groups.emplace_back("", &level_or_videos);
          }
          std::string sp = split == "validation" ? "val" : split;
          for (const auto& [level, videos] : groups) {
            if (!videos->is_object()) {
              return bad(where_split + "/" + level, "expected an object of videos");
            }
            for (auto& [video, entry] : videos->items()) {
              const std::string where_video =
                  where_split + (level.empty() ? "" : "/" + level) + "/" + video;
              if (!entry.is_object() || !entry.contains("frames") || !entry["frames"].is_array()) {
                return bad(where_video, "expected {\"label\": ..., \"frames\": [paths]}");
              }
              std::string vtype = *type;
              if (entry.contains("label") && entry["label"].is_string() &&
                  entry["label"].get<std::string>() != label) {
                StatusOr<std::string> t2 = type_of(entry["label"].get<std::string>());
                if (!t2.ok()) return t2.status().WithPrefix(file + ": at " + where_video);
                vtype = *t2;
              }
              for (const json& frame : entry["frames"]) {
                if (!frame.is_string()) return bad(where_video, "frame paths must be strings");
                StatusOr<std::string> path =
                    PlaceFramePath(frame.get<std::string>(), root, o.rebases);
                if (!path.ok()) return bad(where_video, path.status().message());
                Record r;
                r.path = *path;
                r.dataset = dataset;
                r.subset = label;
                r.split = sp;
                r.type = vtype;
                r.video = dataset_name + "/" + label + "/" + video;
                if (place) {
                  r.subset = dataset_name;
                  r.id = dataset_name + "/" + r.path;
                  r.domain = place->domain;
                  r.method = place->method->name;
                  r.method_type = place->method->type;
                  r.known = place->method->known;
                }
                out.push_back(std::move(r));
              }
            }
          }
        }
      }
      if (place) {
        rep.placed.push_back(dataset_name);
      } else {
        rep.unplaced.push_back(
            {file, dataset_name, dataset, static_cast<int64_t>(out.size() - dataset_start)});
      }
    }
    if (out.size() == before) {
      return InvalidArgumentError(file + ": no frames imported" +
                                  (o.compression.empty()
                                       ? std::string()
                                       : " (no split has compression level \"" + o.compression +
                                             "\"? pass --compression)"));
    }
  }
  for (const Df40Method& m : o.df40.methods) {
    for (const auto& entry : m.datasets) {
      const std::string& name = entry.first;
      const bool found = std::any_of(rep.placed.begin(), rep.placed.end(),
                                     [&](const std::string& p) { return Lower(p) == Lower(name); });
      if (!found) rep.absent.push_back(name);
    }
  }
  if (report != nullptr) *report = std::move(rep);
  return out;
}

StatusOr<std::vector<Record>> ImportGenImage(const std::string& root) {
  static const std::map<std::string, std::string> kNames = {{"midjourney", "Midjourney"},
                                                            {"stable_diffusion_v_1_4", "SD v1.4"},
                                                            {"stable_diffusion_v_1_5", "SD v1.5"},
                                                            {"sdv14", "SD v1.4"},
                                                            {"sdv15", "SD v1.5"},
                                                            {"adm", "ADM"},
                                                            {"glide", "GLIDE"},
                                                            {"wukong", "Wukong"},
                                                            {"vqdm", "VQDM"},
                                                            {"biggan", "BigGAN"}};
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return NotFoundError("not a folder: " + root);
  std::vector<Record> out;
  try {
    std::vector<fs::path> gens;
    for (const auto& gen : fs::directory_iterator(root)) {
      if (gen.is_directory()) gens.push_back(gen.path());
    }
    std::sort(gens.begin(), gens.end());
    for (const fs::path& gen_path : gens) {
      const std::string gen_name = gen_path.filename().string();
      std::string subset = gen_name;
      if (auto it = kNames.find(Lower(gen_name)); it != kNames.end()) subset = it->second;
      std::vector<std::string> files;
      for (auto it = fs::recursive_directory_iterator(gen_path);
           it != fs::recursive_directory_iterator(); ++it) {
        if (!it->is_regular_file()) continue;
        std::string ext = Lower(it->path().extension().string());
        if (ext != ".png" && ext != ".jpg" && ext != ".jpeg") continue;
        files.push_back(fs::relative(it->path(), root).generic_string());
      }
      std::sort(files.begin(), files.end());
      for (const std::string& f : files) {
        // .../{train,val}/{ai,nature}/file
        std::vector<std::string> parts;
        for (const auto& p : fs::path(f)) parts.push_back(p.string());
        if (parts.size() < 3) continue;
        const std::string kind = Lower(parts[parts.size() - 2]);
        const std::string split = Lower(parts[parts.size() - 3]);
        if ((kind != "ai" && kind != "nature") || (split != "train" && split != "val")) continue;
        Record r;
        r.path = f;
        r.dataset = "GenImage";
        r.subset = subset;
        r.split = split == "val" ? "test" : "train";
        r.type = kind == "ai" ? "EFS" : "REAL";
        r.video = f;
        out.push_back(std::move(r));
      }
    }
  } catch (const fs::filesystem_error& e) {
    return InternalError(std::string("reading ") + root + ": " + e.what());
  }
  if (out.empty()) {
    return NotFoundError("no images under " + root +
                         " in <generator>/.../{train,val}/{ai,nature}/ folders");
  }
  return out;
}

}  // namespace sd2::worker::data
