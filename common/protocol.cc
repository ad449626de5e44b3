#include "common/protocol.h"

#include <cmath>
#include <limits>

#include "common/bounded_parse.h"

namespace sd2::protocol {

using nlohmann::json;

namespace {

const char* TypeName(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "object";
    case json::value_t::array:
      return "array";
    case json::value_t::string:
      return "string";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "integer";
    case json::value_t::number_float:
      return "number";
    default:
      return "binary";
  }
}

// Bounds on strings and arrays of one message, beyond the byte limit.
constexpr size_t kMaxKeyChars = 256;

}  // namespace

StatusOr<Message> Decode(std::string_view bytes, size_t max_bytes) {
  if (bytes.size() > max_bytes) {
    return ResourceExhaustedError("message of " + std::to_string(bytes.size()) +
                                  " bytes exceeds the limit of " + std::to_string(max_bytes));
  }
  if (bytes.empty()) return InvalidArgumentError("empty message");
  // The depth is checked on the bytes, before anything is built: copies and dump() of a value
  // recurse once per level (docs/security.md, Limits).
  if (size_t at = FindJsonTooDeep(bytes, kMaxMessageDepth); at != 0) {
    return InvalidArgumentError("message nests JSON deeper than " +
                                std::to_string(kMaxMessageDepth) + " levels (at byte " +
                                std::to_string(at) + ")");
  }
  json j = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgumentError("message is not valid JSON");
  if (!j.is_object()) {
    return InvalidArgumentError(std::string("message must be a JSON object, got ") + TypeName(j));
  }
  auto v = j.find("v");
  if (v == j.end() || !v->is_number_integer()) {
    return InvalidArgumentError("message has no integer protocol version 'v'");
  }
  if (v->get<int64_t>() != kVersion) {
    return FailedPreconditionError("protocol version " + std::to_string(v->get<int64_t>()) +
                                   " is not supported (this build speaks " +
                                   std::to_string(kVersion) + ")");
  }
  auto t = j.find("type");
  if (t == j.end() || !t->is_string() || t->get_ref<const std::string&>().empty()) {
    return InvalidArgumentError("message has no string 'type'");
  }
  Message m;
  m.type = t->get<std::string>();
  if (m.type.size() > 64) return InvalidArgumentError("message type is too long");
  m.body = std::move(j);
  return m;
}

std::string EncodeRaw(const std::string& type, json fields) {
  if (!fields.is_object()) fields = json::object();
  fields["v"] = kVersion;
  fields["type"] = type;
  return fields.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool IsValidTrialKey(std::string_view key) {
  if (key.empty() || key.size() > kMaxTrialKeyChars || key == "." || key == "..") return false;
  for (char c : key) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// ---- FieldReader ----

FieldReader::FieldReader(const json& obj, std::string context)
    : obj_(obj), context_(std::move(context)) {
  if (!obj_.is_object()) Fail(std::string("expected an object, got ") + TypeName(obj_));
}

void FieldReader::Fail(const std::string& message) {
  if (status_.ok()) status_ = InvalidArgumentError(context_ + ": " + message);
}

const json* FieldReader::Get(const char* key, bool required) {
  if (!status_.ok()) return nullptr;
  auto it = obj_.find(key);
  if (it == obj_.end() || it->is_null()) {
    if (required) Fail(std::string("missing field '") + key + "'");
    return nullptr;
  }
  return &*it;
}

std::string FieldReader::Str(const char* key, bool required) {
  const json* v = Get(key, required);
  if (!v) return "";
  if (!v->is_string()) {
    Fail(std::string("field '") + key + "': expected a string, got " + TypeName(*v));
    return "";
  }
  return v->get<std::string>();
}

int64_t FieldReader::Int(const char* key, bool required, int64_t def) {
  const json* v = Get(key, required);
  if (!v) return def;
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return static_cast<int64_t>(u);
    }
  }
  Fail(std::string("field '") + key + "': expected an integer, got " + TypeName(*v));
  return def;
}

double FieldReader::Num(const char* key, bool required, double def) {
  const json* v = Get(key, required);
  if (!v) return def;
  if (!v->is_number()) {
    Fail(std::string("field '") + key + "': expected a number, got " + TypeName(*v));
    return def;
  }
  double d = v->get<double>();
  if (!std::isfinite(d)) {
    Fail(std::string("field '") + key + "': not a finite number");
    return def;
  }
  return d;
}

bool FieldReader::Bool(const char* key, bool required, bool def) {
  const json* v = Get(key, required);
  if (!v) return def;
  if (!v->is_boolean()) {
    Fail(std::string("field '") + key + "': expected true or false, got " + TypeName(*v));
    return def;
  }
  return v->get<bool>();
}

json FieldReader::Obj(const char* key, bool required) {
  const json* v = Get(key, required);
  if (!v) return json::object();
  if (!v->is_object()) {
    Fail(std::string("field '") + key + "': expected an object, got " + TypeName(*v));
    return json::object();
  }
  return *v;
}

const json* FieldReader::Arr(const char* key, bool required) {
  const json* v = Get(key, required);
  if (!v) return nullptr;
  if (!v->is_array()) {
    Fail(std::string("field '") + key + "': expected an array, got " + TypeName(*v));
    return nullptr;
  }
  return v;
}

namespace {

void CheckKey(FieldReader& r, const std::string& key, const char* field) {
  if (key.size() > kMaxKeyChars) {
    r.Fail(std::string("field '") + field + "' is longer than " + std::to_string(kMaxKeyChars) +
           " characters");
  }
}

void CheckAttempt(FieldReader& r, int64_t attempt) {
  if (attempt < 1) r.Fail("field 'attempt' must be >= 1, got " + std::to_string(attempt));
}

// Trial keys name directories (work_dir/<key>), so both sides check them on decode.
void CheckTrialKey(FieldReader& r, const std::string& key, const char* field, bool optional) {
  if (!r.status().ok() || (optional && key.empty()) || IsValidTrialKey(key)) return;
  std::string shown;
  for (char c : key.substr(0, 64)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
  r.Fail(std::string("field '") + field + "' is not a trial key (1 to " +
         std::to_string(kMaxTrialKeyChars) + " characters of 0-9 A-Z a-z . _ -, not . or ..): \"" +
         shown + (key.size() > 64 ? "...\"" : "\""));
}

std::vector<LeaseRef> ParseRefs(FieldReader& r, const char* key) {
  std::vector<LeaseRef> out;
  const json* a = r.Arr(key, false);
  if (!a) return out;
  for (size_t i = 0; i < a->size(); ++i) {
    FieldReader e((*a)[i], std::string(key) + "[" + std::to_string(i) + "]");
    LeaseRef ref{e.Str("trial"), e.Int("attempt")};
    CheckTrialKey(e, ref.trial_key, "trial", false);
    if (!e.status().ok()) {
      r.Fail(e.status().message());
      break;
    }
    out.push_back(ref);
  }
  return out;
}

json RefsToJson(const std::vector<LeaseRef>& refs) {
  json a = json::array();
  for (const auto& r : refs) a.push_back(ToJson(r));
  return a;
}

}  // namespace

json ToJson(const LeaseRef& m) { return {{"trial", m.trial_key}, {"attempt", m.attempt}}; }

json ToJson(const Register& m) {
  json j = {{"group", m.group},       {"host", m.host},
            {"size", m.size},         {"devices", m.devices},
            {"version", m.version},   {"git_commit", m.git_commit},
            {"versions", m.versions}, {"held", RefsToJson(m.held)}};
  if (!m.ranks.empty()) {
    json ranks = json::array();
    for (const auto& r : m.ranks) ranks.push_back({{"host", r.host}, {"device", r.device}});
    j["ranks"] = std::move(ranks);
  }
  if (!m.slurm.job_id.empty() || !m.slurm.array_job_id.empty() || !m.slurm.array_task_id.empty()) {
    j["slurm"] = {{"job_id", m.slurm.job_id},
                  {"array_job_id", m.slurm.array_job_id},
                  {"array_task_id", m.slurm.array_task_id}};
  }
  return j;
}
Status Parse(const json& j, Register* m) {
  FieldReader r(j, Register::kType);
  m->group = r.Str("group");
  m->host = r.Str("host", false);
  m->size = r.Int("size");
  m->devices = r.Str("devices", false);
  if (m->devices.empty()) m->devices = "cpu";
  m->version = r.Str("version", false);
  m->git_commit = r.Str("git_commit", false);
  m->versions = r.Obj("versions", false);
  m->held = ParseRefs(r, "held");
  m->ranks.clear();
  if (const json* ranks = r.Arr("ranks", false)) {
    for (size_t i = 0; i < ranks->size() && r.status().ok(); ++i) {
      const std::string field = "ranks[" + std::to_string(i) + "]";
      FieldReader e((*ranks)[i], field);
      RankPlace p{e.Str("host"), e.Str("device")};
      CheckKey(e, p.host, "host");
      CheckKey(e, p.device, "device");
      if (!e.status().ok()) r.Fail(e.status().message());
      m->ranks.push_back(std::move(p));
    }
  }
  if (r.status().ok() && !m->ranks.empty() && static_cast<int64_t>(m->ranks.size()) != m->size) {
    r.Fail("field 'ranks' has " + std::to_string(m->ranks.size()) + " entries for " +
           std::to_string(m->size) + " ranks");
  }
  json slurm = r.Obj("slurm", false);
  if (r.status().ok() && !slurm.empty()) {
    FieldReader e(slurm, "slurm");
    m->slurm.job_id = e.Str("job_id", false);
    m->slurm.array_job_id = e.Str("array_job_id", false);
    m->slurm.array_task_id = e.Str("array_task_id", false);
    CheckKey(e, m->slurm.job_id, "job_id");
    CheckKey(e, m->slurm.array_job_id, "array_job_id");
    CheckKey(e, m->slurm.array_task_id, "array_task_id");
    if (!e.status().ok()) r.Fail(e.status().message());
  }
  CheckKey(r, m->group, "group");
  if (r.status().ok() && m->group.empty()) r.Fail("field 'group' is empty");
  if (r.status().ok() && (m->size < 1 || m->size > 1 << 20)) {
    r.Fail("field 'size' must be between 1 and 1048576, got " + std::to_string(m->size));
  }
  if (r.status().ok() && m->devices != "cpu" && m->devices != "cuda") {
    r.Fail("field 'devices' must be \"cpu\" or \"cuda\", got \"" + m->devices + "\"");
  }
  return r.status();
}

json ToJson(const Registered& m) {
  return {{"keep", RefsToJson(m.keep)},
          {"stop", RefsToJson(m.stop)},
          {"heartbeat_s", m.heartbeat_s},
          {"lease_s", m.lease_s}};
}
Status Parse(const json& j, Registered* m) {
  FieldReader r(j, Registered::kType);
  m->keep = ParseRefs(r, "keep");
  m->stop = ParseRefs(r, "stop");
  m->heartbeat_s = r.Num("heartbeat_s");
  m->lease_s = r.Num("lease_s");
  return r.status();
}

json ToJson(const LeaseRequest& m) { return {{"group", m.group}}; }
Status Parse(const json& j, LeaseRequest* m) {
  FieldReader r(j, LeaseRequest::kType);
  m->group = r.Str("group");
  CheckKey(r, m->group, "group");
  return r.status();
}

json ToJson(const LeaseGrant& m) {
  return {{"trial", m.trial_key},
          {"attempt", m.attempt},
          {"config", m.config},
          {"resources", m.resources},
          {"lease_s", m.lease_s}};
}
Status Parse(const json& j, LeaseGrant* m) {
  FieldReader r(j, LeaseGrant::kType);
  m->trial_key = r.Str("trial");
  m->attempt = r.Int("attempt");
  m->config = r.Obj("config");
  m->resources = r.Obj("resources", false);
  m->lease_s = r.Num("lease_s");
  CheckAttempt(r, m->attempt);
  CheckTrialKey(r, m->trial_key, "trial", false);
  return r.status();
}

json ToJson(const NoWork& m) {
  return {{"retry_after_s", m.retry_after_s}, {"drained", m.drained}};
}
Status Parse(const json& j, NoWork* m) {
  FieldReader r(j, NoWork::kType);
  m->retry_after_s = r.Num("retry_after_s");
  m->drained = r.Bool("drained");
  return r.status();
}

json ToJson(const Heartbeat& m) {
  return {{"group", m.group}, {"trial", m.trial_key}, {"attempt", m.attempt}, {"step", m.step}};
}
Status Parse(const json& j, Heartbeat* m) {
  FieldReader r(j, Heartbeat::kType);
  m->group = r.Str("group");
  m->trial_key = r.Str("trial", false);
  m->attempt = r.Int("attempt", false);
  m->step = r.Int("step", false);
  CheckKey(r, m->group, "group");
  CheckKey(r, m->trial_key, "trial");
  CheckTrialKey(r, m->trial_key, "trial", true);
  if (!m->trial_key.empty()) CheckAttempt(r, m->attempt);
  return r.status();
}

json ToJson(const HeartbeatReply& m) { return {{"stop", m.stop}, {"reason", m.reason}}; }
Status Parse(const json& j, HeartbeatReply* m) {
  FieldReader r(j, HeartbeatReply::kType);
  m->stop = r.Bool("stop", true);
  m->reason = r.Str("reason", false);
  return r.status();
}

json ToJson(const MetricsBatch& m) {
  json rows = json::array();
  for (const auto& x : m.rows)
    rows.push_back(json::array({x.seq, x.step, x.name, x.value, x.time}));
  json j = {{"trial", m.trial_key}, {"attempt", m.attempt}, {"rows", std::move(rows)}};
  if (!m.group.empty()) j["group"] = m.group;
  return j;
}
Status Parse(const json& j, MetricsBatch* m) {
  FieldReader r(j, MetricsBatch::kType);
  m->trial_key = r.Str("trial");
  m->attempt = r.Int("attempt");
  m->group = r.Str("group", false);
  CheckKey(r, m->group, "group");
  CheckKey(r, m->trial_key, "trial");
  CheckTrialKey(r, m->trial_key, "trial", false);
  CheckAttempt(r, m->attempt);
  const json* rows = r.Arr("rows");
  if (!r.status().ok()) return r.status();
  if (rows->size() > kMaxMetricRowsPerBatch) {
    return ResourceExhaustedError("metrics: " + std::to_string(rows->size()) +
                                  " rows, more than the limit of " +
                                  std::to_string(kMaxMetricRowsPerBatch));
  }
  m->rows.clear();
  m->rows.reserve(rows->size());
  for (size_t i = 0; i < rows->size(); ++i) {
    const json& e = (*rows)[i];
    auto bad = [&](const std::string& why) {
      return InvalidArgumentError("metrics: rows[" + std::to_string(i) + "]: " + why);
    };
    if (!e.is_array() || e.size() != 5) return bad("expected [seq, step, name, value, time]");
    if (!e[0].is_number_integer() || !e[1].is_number_integer()) {
      return bad("seq and step must be integers");
    }
    if (!e[2].is_string()) return bad("name must be a string");
    if (!e[3].is_number() || !e[4].is_number()) return bad("value and time must be numbers");
    MetricRow row{e[0].get<int64_t>(), e[1].get<int64_t>(), e[2].get<std::string>(),
                  e[3].get<double>(), e[4].get<double>()};
    if (row.seq < 0) return bad("seq must be >= 0");
    if (row.name.empty() || row.name.size() > kMaxKeyChars) return bad("bad metric name");
    if (!std::isfinite(row.time)) return bad("time is not finite");
    m->rows.push_back(std::move(row));
  }
  return OkStatus();
}

json ToJson(const ScoresBatch& m) {
  json rows = json::array();
  for (const auto& x : m.rows) {
    rows.push_back(json::array({x.sample_id, x.video_id, x.label, x.type, x.score}));
  }
  json j = {{"trial", m.trial_key},
            {"attempt", m.attempt},
            {"seq", m.seq},
            {"eval_set", m.eval_set},
            {"rows", std::move(rows)}};
  if (!m.group.empty()) j["group"] = m.group;
  return j;
}
Status Parse(const json& j, ScoresBatch* m) {
  FieldReader r(j, ScoresBatch::kType);
  m->trial_key = r.Str("trial");
  m->attempt = r.Int("attempt");
  m->group = r.Str("group", false);
  CheckKey(r, m->group, "group");
  m->seq = r.Int("seq");
  m->eval_set = r.Str("eval_set");
  CheckKey(r, m->trial_key, "trial");
  CheckTrialKey(r, m->trial_key, "trial", false);
  CheckKey(r, m->eval_set, "eval_set");
  CheckAttempt(r, m->attempt);
  if (r.status().ok() && m->eval_set.empty()) r.Fail("field 'eval_set' is empty");
  const json* rows = r.Arr("rows");
  if (!r.status().ok()) return r.status();
  if (rows->size() > kMaxScoreRowsPerBatch) {
    return ResourceExhaustedError("scores: " + std::to_string(rows->size()) +
                                  " rows, more than the limit of " +
                                  std::to_string(kMaxScoreRowsPerBatch));
  }
  m->rows.clear();
  m->rows.reserve(rows->size());
  for (size_t i = 0; i < rows->size(); ++i) {
    const json& e = (*rows)[i];
    auto bad = [&](const std::string& why) {
      return InvalidArgumentError("scores: rows[" + std::to_string(i) + "]: " + why);
    };
    if (!e.is_array() || e.size() != 5) {
      return bad("expected [sample, video, label, type, score]");
    }
    if (!e[0].is_string() || e[0].get_ref<const std::string&>().empty()) {
      return bad("sample must be a non-empty string");
    }
    if (!e[1].is_string() || !e[3].is_string()) return bad("video and type must be strings");
    if (!e[2].is_number_integer() || (e[2].get<int64_t>() != 0 && e[2].get<int64_t>() != 1)) {
      return bad("label must be 0 or 1");
    }
    if (!e[4].is_number() || !std::isfinite(e[4].get<double>())) {
      return bad("score must be a finite number");
    }
    m->rows.push_back(ScoreRow{e[0].get<std::string>(), e[1].get<std::string>(),
                               static_cast<int>(e[2].get<int64_t>()), e[3].get<std::string>(),
                               e[4].get<double>()});
  }
  return OkStatus();
}

json ToJson(const CheckpointRecord& m) {
  json j = {{"trial", m.trial_key},
            {"attempt", m.attempt},
            {"step", m.step},
            {"path", m.path},
            {"digest", m.digest}};
  if (!m.group.empty()) j["group"] = m.group;
  return j;
}
Status Parse(const json& j, CheckpointRecord* m) {
  FieldReader r(j, CheckpointRecord::kType);
  m->trial_key = r.Str("trial");
  m->attempt = r.Int("attempt");
  m->group = r.Str("group", false);
  CheckKey(r, m->group, "group");
  m->step = r.Int("step");
  m->path = r.Str("path");
  m->digest = r.Str("digest", false);
  CheckKey(r, m->trial_key, "trial");
  CheckTrialKey(r, m->trial_key, "trial", false);
  CheckAttempt(r, m->attempt);
  if (r.status().ok() && m->path.empty()) r.Fail("field 'path' is empty");
  return r.status();
}

json ToJson(const Result& m) {
  return {{"group", m.group},     {"trial", m.trial_key}, {"attempt", m.attempt},
          {"outcome", m.outcome}, {"error", m.error},     {"variant", m.variant}};
}
Status Parse(const json& j, Result* m) {
  FieldReader r(j, Result::kType);
  m->group = r.Str("group");
  m->trial_key = r.Str("trial");
  m->attempt = r.Int("attempt");
  m->outcome = r.Str("outcome");
  m->error = r.Str("error", false);
  m->variant = r.Obj("variant", false);
  CheckKey(r, m->trial_key, "trial");
  CheckTrialKey(r, m->trial_key, "trial", false);
  CheckAttempt(r, m->attempt);
  if (r.status().ok() && m->outcome != "succeeded" && m->outcome != "failed" &&
      m->outcome != "cancelled" && m->outcome != "preempted") {
    r.Fail("field 'outcome' must be succeeded, failed, cancelled or preempted, got \"" +
           m->outcome + "\"");
  }
  return r.status();
}

json ToJson(const Ack& m) { return {{"accepted", m.accepted}, {"duplicates", m.duplicates}}; }
Status Parse(const json& j, Ack* m) {
  FieldReader r(j, Ack::kType);
  m->accepted = r.Int("accepted", false);
  m->duplicates = r.Int("duplicates", false);
  return r.status();
}

json ToJson(const TrialSpec& m) {
  return {{"key", m.key},           {"method", m.method},
          {"scale", m.scale},       {"seed", m.seed},
          {"config", m.config},     {"resources", m.resources},
          {"priority", m.priority}, {"depends_on", m.depends_on},
          {"label", m.label},       {"max_attempts", m.max_attempts}};
}

json ToJson(const Submit& m) {
  json trials = json::array();
  for (const auto& t : m.trials) trials.push_back(ToJson(t));
  return {{"name", m.name},         {"spec_path", m.spec_path}, {"spec_toml", m.spec_toml},
          {"priority", m.priority}, {"force", m.force},         {"trials", std::move(trials)}};
}
Status Parse(const json& j, Submit* m) {
  FieldReader r(j, Submit::kType);
  m->name = r.Str("name");
  m->spec_path = r.Str("spec_path", false);
  m->spec_toml = r.Str("spec_toml", false);
  m->priority = r.Int("priority", false);
  m->force = r.Bool("force");
  const json* trials = r.Arr("trials");
  if (!r.status().ok()) return r.status();
  if (m->name.empty()) return InvalidArgumentError("submit: field 'name' is empty");
  if (trials->size() > kMaxTrialsPerSubmit) {
    return ResourceExhaustedError("submit: " + std::to_string(trials->size()) +
                                  " trials, more than the limit of " +
                                  std::to_string(kMaxTrialsPerSubmit));
  }
  m->trials.clear();
  for (size_t i = 0; i < trials->size(); ++i) {
    FieldReader t((*trials)[i], "submit: trials[" + std::to_string(i) + "]");
    TrialSpec s;
    s.key = t.Str("key");
    s.method = t.Str("method");
    s.scale = t.Int("scale", false);
    s.seed = t.Int("seed", false);
    s.config = t.Obj("config");
    s.resources = t.Obj("resources", false);
    s.priority = t.Int("priority", false);
    s.depends_on = t.Str("depends_on", false);
    s.label = t.Str("label", false);
    s.max_attempts = t.Int("max_attempts", false, 3);
    CheckKey(t, s.key, "key");
    CheckTrialKey(t, s.key, "key", true);  // empty: "field 'key' is empty" below
    CheckTrialKey(t, s.depends_on, "depends_on", true);
    if (t.status().ok() && s.key.empty()) t.Fail("field 'key' is empty");
    if (t.status().ok() && (s.max_attempts < 1 || s.max_attempts > 1000)) {
      t.Fail("field 'max_attempts' must be between 1 and 1000");
    }
    if (t.status().ok() && s.resources.contains("ranks") &&
        (!s.resources["ranks"].is_number_integer() || s.resources["ranks"].get<int64_t>() < 0)) {
      t.Fail("resources.ranks must be a non-negative integer");
    }
    SD2_RETURN_IF_ERROR(t.status());
    m->trials.push_back(std::move(s));
  }
  return OkStatus();
}

json ToJson(const Submitted& m) {
  return {
      {"sweep_id", m.sweep_id}, {"trials", m.trials}, {"reused", m.reused}, {"queued", m.queued}};
}
Status Parse(const json& j, Submitted* m) {
  FieldReader r(j, Submitted::kType);
  m->sweep_id = r.Int("sweep_id");
  m->trials = r.Int("trials");
  m->reused = r.Int("reused");
  m->queued = r.Int("queued", false);
  return r.status();
}

json ToJson(const StatusRequest& m) { return {{"sweep", m.sweep}}; }
Status Parse(const json& j, StatusRequest* m) {
  FieldReader r(j, StatusRequest::kType);
  m->sweep = r.Int("sweep", false);
  return r.status();
}

json ToJson(const Cancel& m) { return {{"sweep", m.sweep}, {"trial", m.trial_key}}; }
Status Parse(const json& j, Cancel* m) {
  FieldReader r(j, Cancel::kType);
  m->sweep = r.Int("sweep", false);
  m->trial_key = r.Str("trial", false);
  CheckTrialKey(r, m->trial_key, "trial", true);
  if (r.status().ok() && (m->sweep == 0) == m->trial_key.empty()) {
    r.Fail("give exactly one of 'sweep' and 'trial'");
  }
  return r.status();
}

json ToJson(const Resume& m) { return {{"sweep", m.sweep}}; }
Status Parse(const json& j, Resume* m) {
  FieldReader r(j, Resume::kType);
  m->sweep = r.Int("sweep");
  return r.status();
}

json ToJson(const Logs& m) { return {{"trial", m.trial_key}}; }
Status Parse(const json& j, Logs* m) {
  FieldReader r(j, Logs::kType);
  m->trial_key = r.Str("trial");
  CheckTrialKey(r, m->trial_key, "trial", false);
  return r.status();
}

json ToJson(const Shutdown&) { return json::object(); }
Status Parse(const json& j, Shutdown*) {
  FieldReader r(j, Shutdown::kType);
  return r.status();
}

std::string ErrorReply(const Status& status) {
  return EncodeRaw("error", {{"code", StatusCodeName(status.code())},
                             {"code_num", static_cast<int>(status.code())},
                             {"message", status.message()}});
}

Status ReplyStatus(const Message& reply) {
  if (reply.type != "error") return OkStatus();
  FieldReader r(reply.body, "error");
  int64_t code = r.Int("code_num", false, static_cast<int>(StatusCode::kInternal));
  std::string message = r.Str("message", false);
  if (message.empty()) message = "error reply without a message";
  if (code <= 0 || code > static_cast<int>(StatusCode::kInternal)) {
    code = static_cast<int>(StatusCode::kInternal);
  }
  return Status(static_cast<StatusCode>(code), message);
}

}  // namespace sd2::protocol
