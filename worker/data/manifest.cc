#include "worker/data/manifest.h"

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>

#include "common/bounded_parse.h"
#include "common/file_util.h"
#include "common/hash.h"

namespace sd2::worker::data {
namespace {

using nlohmann::json;

// 1-based column of `"key"` in the line, or 1.
size_t KeyColumn(std::string_view line, const std::string& key) {
  const std::string quoted = "\"" + key + "\"";
  size_t pos = line.find(quoted);
  return pos == std::string_view::npos ? 1 : pos + 1;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return v.empty() || std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

int TypeIndexOf(std::string_view type) {
  for (int i = 0; i < 5; ++i) {
    if (type == kTypeNames[i]) return i;
  }
  return -1;
}

int Record::TypeIndex() const { return TypeIndexOf(type); }

bool Record::operator==(const Record& o) const {
  return path == o.path && dataset == o.dataset && subset == o.subset && split == o.split &&
         type == o.type && video == o.video && face == o.face && env == o.env && id == o.id &&
         domain == o.domain && method == o.method && method_type == o.method_type &&
         known == o.known;
}

bool PathStaysInside(std::string_view path) {
  if (path.empty() || path.front() == '/') return false;
  int depth = 0;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (part == "..") {
      if (--depth < 0) return false;
    } else if (!part.empty() && part != ".") {
      ++depth;
    }
    start = end + 1;
  }
  return true;
}

namespace {

// Parses one non-blank manifest line; `where(col)` gives the "NAME:LINE:COL: " prefix.
Status ParseRow(std::string_view line, const std::function<std::string(size_t)>& where,
                const ManifestReadOptions& options, Record* out) {
  // Syntax errors, numbers beyond double's range (1e999) and nesting deeper than
  // kMaxJsonDepth are errors at their column (1 when nlohmann names none).
  size_t error_byte = 0;
  StatusOr<json> parsed = ParseJsonBounded(line, {}, &error_byte);
  if (!parsed.ok()) {
    return InvalidArgumentError(where(std::max<size_t>(error_byte, 1)) + parsed.status().message());
  }
  json j = *std::move(parsed);
  if (!j.is_object()) return InvalidArgumentError(where(1) + "expected a JSON object");
  Record r;
  struct Field {
    const char* key;
    std::string* out;
    bool required;
  };
  const Field fields[] = {{"path", &r.path, true},      {"dataset", &r.dataset, true},
                          {"subset", &r.subset, false}, {"split", &r.split, true},
                          {"type", &r.type, true},      {"video", &r.video, false},
                          {"face", &r.face, false},     {"env", &r.env, false},
                          {"id", &r.id, false},         {"domain", &r.domain, false},
                          {"method", &r.method, false}, {"method_type", &r.method_type, false}};
  for (const Field& f : fields) {
    auto it = j.find(f.key);
    if (it == j.end() || it->is_null()) {
      if (f.required) {
        return InvalidArgumentError(where(1) + "missing required key \"" + f.key + "\"");
      }
      continue;
    }
    if (!it->is_string()) {
      return InvalidArgumentError(where(KeyColumn(line, f.key)) + "key \"" + f.key +
                                  "\" must be a string, got " + it->type_name());
    }
    *f.out = it->get<std::string>();
  }
  if (auto it = j.find("known"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) {
      return InvalidArgumentError(where(KeyColumn(line, "known")) +
                                  "key \"known\" must be a boolean, got " + it->type_name());
    }
    r.known = it->get<bool>();
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = it.key() == "known";
    for (const Field& f : fields) known = known || it.key() == f.key;
    if (!known) {
      return InvalidArgumentError(where(KeyColumn(line, it.key())) + "unknown key \"" + it.key() +
                                  "\"");
    }
  }
  if (r.path.empty()) {
    return InvalidArgumentError(where(KeyColumn(line, "path")) + "\"path\" is empty");
  }
  if (r.TypeIndex() < 0) {
    return InvalidArgumentError(where(KeyColumn(line, "type")) + "unknown type \"" + r.type +
                                "\" (expected REAL, FS, FR, EFS or FE)");
  }
  if (!r.method_type.empty() && TypeIndexOf(r.method_type) < 1) {
    return InvalidArgumentError(where(KeyColumn(line, "method_type")) + "unknown method_type \"" +
                                r.method_type + "\" (expected FS, FR, EFS or FE)");
  }
  if (!options.allow_outside_root && !PathStaysInside(r.path)) {
    return InvalidArgumentError(where(KeyColumn(line, "path")) + "path \"" + r.path +
                                "\" is absolute or leaves the root (set allow_outside_root "
                                "to accept it)");
  }
  if (r.video.empty()) r.video = r.SampleId();
  *out = std::move(r);
  return OkStatus();
}

}  // namespace

StatusOr<std::vector<Record>> ParseManifest(std::string_view text, const std::string& name,
                                            const ManifestReadOptions& options) {
  std::vector<Record> records;
  size_t line_no = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    auto where = [&](size_t col) {
      return name + ":" + std::to_string(line_no) + ":" + std::to_string(col) + ": ";
    };
    Record r;
    Status st = ParseRow(line, where, options, &r);
    if (st.ok()) {
      records.push_back(std::move(r));
    } else if (options.row_errors != nullptr) {
      options.row_errors->push_back(std::move(st));
    } else {
      return st;
    }
  }
  return records;
}

StatusOr<std::vector<Record>> ReadManifest(const std::string& path,
                                           const ManifestReadOptions& options) {
  if (!PathExists(path)) return NotFoundError("manifest not found: " + path);
  SD2_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParseManifest(text, path, options);
}

std::string RecordToJson(const Record& r) {
  nlohmann::ordered_json j;
  j["path"] = r.path;
  if (!r.id.empty()) j["id"] = r.id;
  j["dataset"] = r.dataset;
  j["subset"] = r.subset;
  j["split"] = r.split;
  j["type"] = r.type;
  j["video"] = r.video;
  j["face"] = r.face;
  j["env"] = r.env;
  // The optional keys only when set: manifests without them keep their bytes (and digests).
  if (!r.domain.empty()) j["domain"] = r.domain;
  if (!r.method.empty()) j["method"] = r.method;
  if (!r.method_type.empty()) j["method_type"] = r.method_type;
  if (r.known.has_value()) j["known"] = *r.known;
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string SerializeManifest(const std::vector<Record>& records) {
  std::string out;
  out.reserve(records.size() * 200);
  for (const Record& r : records) {
    out += RecordToJson(r);
    out += '\n';
  }
  return out;
}

StatusOr<std::string> WriteManifest(const std::string& path, const std::vector<Record>& records) {
  const std::string text = SerializeManifest(records);
  const std::string digest = Sha256Hex(text);
  SD2_RETURN_IF_ERROR(WriteFileAtomic(path, text));
  size_t slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  SD2_RETURN_IF_ERROR(WriteFileAtomic(path + ".sha256", digest + "  " + base + "\n"));
  return digest;
}

StatusOr<std::string> ManifestDigest(const std::string& path) {
  if (!PathExists(path)) return NotFoundError("manifest not found: " + path);
  SD2_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  const std::string digest = Sha256Hex(text);
  const std::string sidecar = path + ".sha256";
  if (PathExists(sidecar)) {
    SD2_ASSIGN_OR_RETURN(std::string side, ReadFile(sidecar));
    std::string recorded = side.substr(0, side.find_first_of(" \t\n"));
    if (recorded != digest) {
      return DataLossError("manifest " + path + " has SHA-256 " + digest + " but " + sidecar +
                           " records " + recorded +
                           ": the manifest changed after it was written (rewrite it with "
                           "sd2ctl, or delete the sidecar to accept the new content)");
    }
  }
  return digest;
}

bool Matches(const Filter& filter, const Record& r) {
  return Contains(filter.datasets, r.dataset) && Contains(filter.subsets, r.subset) &&
         Contains(filter.splits, r.split) && Contains(filter.types, r.type) &&
         Contains(filter.domains, r.domain) && Contains(filter.method_types, r.method_type) &&
         (!filter.known.has_value() || r.known == filter.known);
}

StatusOr<Filter> FilterFromJson(const json& j) {
  if (!j.is_object()) {
    return InvalidArgumentError(std::string("filter must be a JSON object, got ") + j.type_name());
  }
  auto list = [&](const char* key, std::vector<std::string>* out) -> Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return OkStatus();
    if (it->is_string()) {
      out->push_back(it->get<std::string>());
      return OkStatus();
    }
    if (!it->is_array()) {
      return InvalidArgumentError(std::string("filter key \"") + key +
                                  "\" must be a string or an array of strings, got " +
                                  it->type_name());
    }
    for (const json& v : *it) {
      if (!v.is_string()) {
        return InvalidArgumentError(std::string("filter key \"") + key +
                                    "\" must hold strings, got " + v.type_name());
      }
      out->push_back(v.get<std::string>());
    }
    return OkStatus();
  };
  Filter f;
  SD2_RETURN_IF_ERROR(list("datasets", &f.datasets));
  SD2_RETURN_IF_ERROR(list("subsets", &f.subsets));
  SD2_RETURN_IF_ERROR(list("splits", &f.splits));
  SD2_RETURN_IF_ERROR(list("split", &f.splits));
  SD2_RETURN_IF_ERROR(list("types", &f.types));
  SD2_RETURN_IF_ERROR(list("domains", &f.domains));
  SD2_RETURN_IF_ERROR(list("method_types", &f.method_types));
  for (const std::string& t : f.types) {
    if (TypeIndexOf(t) < 0) {
      return InvalidArgumentError("filter key \"types\": unknown type \"" + t +
                                  "\" (expected REAL, FS, FR, EFS or FE)");
    }
  }
  for (const std::string& t : f.method_types) {
    if (TypeIndexOf(t) < 1) {
      return InvalidArgumentError("filter key \"method_types\": unknown type \"" + t +
                                  "\" (expected FS, FR, EFS or FE)");
    }
  }
  if (auto it = j.find("known"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) {
      return InvalidArgumentError(std::string("filter key \"known\" must be a boolean, got ") +
                                  it->type_name());
    }
    f.known = it->get<bool>();
  }
  return f;
}

}  // namespace sd2::worker::data
