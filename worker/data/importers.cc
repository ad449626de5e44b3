#include "worker/data/importers.h"

#include <toml++/toml.h>
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

StatusOr<std::vector<Record>> ImportDeepfakeBench(const DeepfakeBenchOptions& o) {
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
  std::string root = o.root;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
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
      for (auto& [label, splits] : labels.items()) {
        const std::string where_label = dataset_name + "/" + label;
        if (!splits.is_object()) return bad(where_label, "expected an object of splits");
        StatusOr<std::string> type = o.map.LookUp(label);
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
                StatusOr<std::string> t2 = o.map.LookUp(entry["label"].get<std::string>());
                if (!t2.ok()) return t2.status().WithPrefix(file + ": at " + where_video);
                vtype = *t2;
              }
              for (const json& frame : entry["frames"]) {
                if (!frame.is_string()) return bad(where_video, "frame paths must be strings");
                std::string path = frame.get<std::string>();
                std::replace(path.begin(), path.end(), '\\', '/');
                if (!root.empty() && path.rfind(root + "/", 0) == 0) {
                  path = path.substr(root.size() + 1);
                } else if (!path.empty() && path.front() == '/') {
                  return bad(where_video, "absolute frame path " + path + " is not under --root " +
                                              (root.empty() ? "(none given)" : root));
                }
                Record r;
                r.path = path;
                r.dataset = dataset;
                r.subset = label;
                r.split = sp;
                r.type = vtype;
                r.video = dataset_name + "/" + label + "/" + video;
                out.push_back(std::move(r));
              }
            }
          }
        }
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
