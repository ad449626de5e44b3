#include "results/paper_data.h"

#include <unistd.h>

#include <toml++/toml.h>
#include <climits>
#include <sstream>

#include "common/bounded_toml.h"
#include "common/file_util.h"

namespace sd2::results {

const PaperRow* PaperTable::Row(const std::string& method) const {
  for (const PaperRow& r : rows) {
    if (r.method == method) return &r;
  }
  return nullptr;
}

const PaperTable* PaperData::Table(int number) const {
  auto it = tables.find(number);
  return it == tables.end() ? nullptr : &it->second;
}

namespace {

std::string Where(const std::string& source, const toml::source_region& r) {
  std::ostringstream os;
  os << source << ":" << r.begin.line << ":" << r.begin.column;
  return os.str();
}

StatusOr<double> Number(const toml::node& n, const std::string& source, const std::string& what) {
  if (auto v = n.value<double>()) return *v;
  return InvalidArgumentError(Where(source, n.source()) + ": " + what + " is not a number");
}

StatusOr<PaperTable> ParseTable(int number, const toml::table& t, const std::string& source) {
  PaperTable out;
  out.number = number;
  out.caption = t["caption"].value_or(std::string());
  out.metric = t["metric"].value_or(std::string());
  out.summary_key = t["summary_key"].value_or(std::string());
  if (const toml::array* cols = t["columns"].as_array()) {
    for (const toml::node& c : *cols) {
      auto s = c.value<std::string>();
      if (!s) return InvalidArgumentError(Where(source, c.source()) + ": column is not a string");
      out.columns.push_back(*s);
    }
  }
  const toml::array* rows = t["rows"].as_array();
  if (!rows) {
    return InvalidArgumentError(Where(source, t.source()) + ": table" + std::to_string(number) +
                                " has no rows");
  }
  for (const toml::node& rn : *rows) {
    const toml::table* r = rn.as_table();
    if (!r) return InvalidArgumentError(Where(source, rn.source()) + ": row is not a table");
    PaperRow row;
    row.method = (*r)["method"].value_or(std::string());
    if (const toml::table* values = (*r)["values"].as_table()) {
      for (const auto& [k, v] : *values) {
        SD2_ASSIGN_OR_RETURN(row.values[std::string(k.str())],
                             Number(v, source, "value '" + std::string(k.str()) + "'"));
      }
    }
    for (const char* key : {"mAUC", "mACC"}) {
      if (const toml::node* s = r->get(key)) {
        SD2_ASSIGN_OR_RETURN(row.summary, Number(*s, source, key));
      }
    }
    for (const char* key : {"L_C", "CLAM", "L_D_Face", "L_D_Env"}) {
      if (auto b = (*r)[key].value<bool>()) row.switches[key] = *b;
    }
    out.rows.push_back(std::move(row));
  }
  return out;
}

}  // namespace

StatusOr<PaperData> ParsePaperData(const std::string& toml_text, const std::string& source_name) {
  toml::table root;
  try {
    root = ParseTomlBounded(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    return InvalidArgumentError(Where(source_name, e.source()) + ": " +
                                std::string(e.description()));
  }
  PaperData data;
  for (int n = 2; n <= 8; ++n) {
    const toml::table* t = root["table" + std::to_string(n)].as_table();
    if (!t) continue;
    SD2_ASSIGN_OR_RETURN(data.tables[n], ParseTable(n, *t, source_name));
  }
  if (data.tables.empty()) {
    return InvalidArgumentError(source_name + ": no [table2]..[table8] found");
  }
  return data;
}

StatusOr<PaperData> LoadPaperData(const std::string& reported_toml_path) {
  SD2_ASSIGN_OR_RETURN(std::string text, ReadFile(reported_toml_path));
  return ParsePaperData(text, reported_toml_path);
}

StatusOr<std::string> LocatePaperData(const std::string& explicit_dir, const std::string& argv0) {
  if (!explicit_dir.empty()) {
    if (!PathExists(explicit_dir + "/reported.toml")) {
      return InvalidArgumentError("--paper-data " + explicit_dir + ": no reported.toml there");
    }
    return explicit_dir;
  }
  std::vector<std::string> candidates;
  char buf[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  std::string exe = len > 0 ? std::string(buf, static_cast<size_t>(len)) : argv0;
  if (exe.empty()) exe = argv0;
  auto slash = exe.rfind('/');
  if (slash != std::string::npos) {
    candidates.push_back(exe.substr(0, slash) + "/../share/sd2");
  }
#ifdef SD2_SOURCE_DIR
  candidates.push_back(std::string(SD2_SOURCE_DIR) + "/data/paper");
#endif
  for (const std::string& c : candidates) {
    if (PathExists(c + "/reported.toml")) return c;
  }
  std::string tried;
  for (const std::string& c : candidates) tried += (tried.empty() ? "" : ", ") + c;
  return NotFoundError("the paper's reported.toml was not found (tried " + tried +
                       "); pass --paper-data DIR");
}

std::string PaperMethodName(const std::string& method_id) {
  static const std::map<std::string, std::string> kNames = {
      {"xception", "Xception"}, {"recce", "RECCE"},         {"spsl", "SPSL"},
      {"clip", "CLIP"},         {"clip_lora", "CLIP-LoRA"}, {"clip_svd", "CLIP-SVD (Effort)"},
      {"sd2", "SD2"},           {"univfd", "UnivFD"}};
  auto it = kNames.find(method_id);
  return it == kNames.end() ? std::string() : it->second;
}

const std::vector<std::string>& PaperMethodOrder() {
  static const std::vector<std::string> kOrder = {"xception",  "recce",    "spsl", "clip",
                                                  "clip_lora", "clip_svd", "sd2"};
  return kOrder;
}

}  // namespace sd2::results
