// The wire protocol between sd2-coordinator, worker groups (rank 0) and sd2ctl: versioned JSON
// messages, one per ZeroMQ frame, every one size-checked and validated. docs/protocol.md
// describes each message and field.
//
//   std::string bytes = sd2::protocol::Encode(sd2::protocol::Heartbeat{"g1", "ab12", 1, 40});
//   SD2_ASSIGN_OR_RETURN(sd2::protocol::Message m, sd2::protocol::Decode(bytes));
//   if (m.type == sd2::protocol::Heartbeat::kType) {
//     SD2_ASSIGN_OR_RETURN(auto hb, sd2::protocol::ParseAs<sd2::protocol::Heartbeat>(m));
//   }
//
// Every request gets exactly one reply; a request that fails gets an `error` reply carrying a
// StatusCode and message (ErrorReply / ReplyStatus).
#ifndef SD2_COMMON_PROTOCOL_H_
#define SD2_COMMON_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace sd2::protocol {

inline constexpr int kVersion = 1;
inline constexpr size_t kDefaultMaxMessageBytes = size_t{64} << 20;
// Per-message limits, checked before any row is decoded (RESOURCE_EXHAUSTED beyond them).
inline constexpr size_t kMaxMetricRowsPerBatch = 100000;
inline constexpr size_t kMaxScoreRowsPerBatch = 1000000;
inline constexpr size_t kMaxTrialsPerSubmit = 100000;
// Trial keys name directories on workers (work_dir/<key>): 1 to 64 characters of 0-9 A-Z a-z
// . _ -, and not "." or "..". Every message field holding a trial key is checked on decode, on
// both sides (INVALID_ARGUMENT). sweeps::TrialKey makes 16 lowercase hex digits.
inline constexpr size_t kMaxTrialKeyChars = 64;
bool IsValidTrialKey(std::string_view key);
// Levels of JSON arrays and objects, the envelope included; checked on the bytes before parsing
// (INVALID_ARGUMENT beyond it).
inline constexpr size_t kMaxMessageDepth = 64;

// A decoded envelope: {"v": 1, "type": "...", ...fields}.
struct Message {
  std::string type;
  nlohmann::json body;  // the whole object, "v" and "type" included
};

// Checks size (<= max_bytes), nesting (<= kMaxMessageDepth), JSON syntax, that it is an
// object, version and type.
StatusOr<Message> Decode(std::string_view bytes, size_t max_bytes = kDefaultMaxMessageBytes);
// Serialises an envelope of `type` with `fields` (an object) merged in.
std::string EncodeRaw(const std::string& type, nlohmann::json fields);

// Reads typed fields of a JSON object with precise errors ("heartbeat: field 'attempt': expected
// an integer, got string"). The first error sticks; later reads return defaults.
class FieldReader {
 public:
  FieldReader(const nlohmann::json& obj, std::string context);
  std::string Str(const char* key, bool required = true);
  int64_t Int(const char* key, bool required = true, int64_t def = 0);
  double Num(const char* key, bool required = true, double def = 0);
  bool Bool(const char* key, bool required = false, bool def = false);
  // Object or array (anything JSON when `any`); absent optional → null.
  nlohmann::json Obj(const char* key, bool required = true);
  const nlohmann::json* Arr(const char* key, bool required = true);
  void Fail(const std::string& message);
  const Status& status() const { return status_; }

 private:
  const nlohmann::json* Get(const char* key, bool required);
  const nlohmann::json& obj_;
  std::string context_;
  Status status_;
};

// ---- worker group → coordinator ----

struct LeaseRef {
  std::string trial_key;
  int64_t attempt = 0;
};

// Where one rank of a group runs: its host and the device it trains on ("cpu", "cuda:1").
struct RankPlace {
  std::string host;
  std::string device;
};
// The Slurm job a group runs in (empty outside Slurm).
struct SlurmIds {
  std::string job_id;         // SLURM_JOB_ID (each array task has its own)
  std::string array_job_id;   // SLURM_ARRAY_JOB_ID
  std::string array_task_id;  // SLURM_ARRAY_TASK_ID
};

struct Register {
  static constexpr const char* kType = "register";
  std::string group;  // stable id chosen by the group (host:pid:rank0 by default)
  std::string host;
  int64_t size = 1;             // ranks in the group
  std::string devices = "cpu";  // "cpu" | "cuda"
  std::string version;          // sd2 version
  std::string git_commit;
  nlohmann::json versions = nlohmann::json::object();  // library versions
  std::vector<LeaseRef> held;  // leases the group believes it holds (reconnect)
  // Optional: one entry per rank in rank order (wire "ranks": [{"host", "device"}]); empty or
  // exactly `size` entries.
  std::vector<RankPlace> ranks;
  SlurmIds slurm;  // optional (wire "slurm": {"job_id", "array_job_id", "array_task_id"})
};
struct Registered {
  static constexpr const char* kType = "registered";
  std::vector<LeaseRef> keep;  // held leases still valid
  std::vector<LeaseRef> stop;  // held leases given away or finished: stop working on them
  double heartbeat_s = 1;
  double lease_s = 10;
};

struct LeaseRequest {
  static constexpr const char* kType = "lease_request";
  std::string group;
};
struct LeaseGrant {
  static constexpr const char* kType = "lease_grant";
  std::string trial_key;
  int64_t attempt = 0;
  nlohmann::json config = nlohmann::json::object();     // docs/trial_config.md
  nlohmann::json resources = nlohmann::json::object();  // {"ranks", "gpus_per_rank"}
  double lease_s = 10;
};
struct NoWork {
  static constexpr const char* kType = "no_work";
  double retry_after_s = 1;
  bool drained = false;  // nothing queued or running anywhere (a sweep launch may exit)
};

struct Heartbeat {
  static constexpr const char* kType = "heartbeat";
  std::string group;
  std::string trial_key;  // empty: idle group, just alive
  int64_t attempt = 0;
  int64_t step = 0;
};
struct HeartbeatReply {
  static constexpr const char* kType = "heartbeat_ack";
  bool stop = false;   // cancelled, or the lease was given away
  std::string reason;  // "cancelled" | "lease lost" | ...
};

struct MetricRow {
  int64_t seq = 0;
  int64_t step = 0;
  std::string name;
  double value = 0;
  double time = 0;
};
struct MetricsBatch {
  static constexpr const char* kType = "metrics";
  std::string trial_key;
  int64_t attempt = 0;
  std::vector<MetricRow> rows;  // wire: "rows": [[seq, step, name, value, time], ...]
  // The sending group (optional on the wire). Data for a succeeded attempt is accepted only
  // from the group that ran it; data naming another group than the lease holder is refused.
  // (`= {}`: aggregate initializers that leave it out stay free of -Wmissing-field-initializers.)
  std::string group = {};
};

struct ScoreRow {
  std::string sample_id;
  std::string video_id;
  int label = 0;  // 1 = fake
  std::string type;
  double score = 0;
};
struct ScoresBatch {
  static constexpr const char* kType = "scores";
  std::string trial_key;
  int64_t attempt = 0;
  int64_t seq = 0;  // batch number within the attempt
  std::string eval_set;
  std::vector<ScoreRow> rows;  // wire: "rows": [[sample, video, label, type, score], ...]
  std::string group = {};      // as MetricsBatch::group
};

struct CheckpointRecord {
  static constexpr const char* kType = "checkpoint";
  std::string trial_key;
  int64_t attempt = 0;
  int64_t step = 0;
  std::string path;
  std::string digest;
  std::string group = {};  // as MetricsBatch::group
};

struct Result {
  static constexpr const char* kType = "result";
  std::string group;
  std::string trial_key;
  int64_t attempt = 0;
  std::string outcome;  // succeeded | failed | cancelled | preempted
  std::string error;
  nlohmann::json variant = nlohmann::json::object();
};

// Generic success reply: counts of rows stored and ignored as duplicates.
struct Ack {
  static constexpr const char* kType = "ack";
  int64_t accepted = 0;
  int64_t duplicates = 0;
};

// ---- sd2ctl → coordinator (control) ----

struct TrialSpec {
  std::string key;
  std::string method;
  int64_t scale = 0;
  int64_t seed = 0;
  nlohmann::json config = nlohmann::json::object();
  nlohmann::json resources = nlohmann::json::object();
  int64_t priority = 0;
  std::string depends_on;  // trial key or ""
  std::string label;
  int64_t max_attempts = 3;
};
struct Submit {
  static constexpr const char* kType = "submit";
  std::string name;
  std::string spec_path;
  std::string spec_toml;
  int64_t priority = 0;
  bool force = false;
  std::vector<TrialSpec> trials;
};
struct Submitted {
  static constexpr const char* kType = "submitted";
  int64_t sweep_id = 0;
  int64_t trials = 0;
  int64_t reused = 0;
  int64_t queued = 0;
};

struct StatusRequest {
  static constexpr const char* kType = "status";
  int64_t sweep = 0;  // 0: all sweeps
};
// Reply "status_reply": {"sweeps": [{"sweep": id, "name", "state", "trials": {total, queued,
// running, succeeded, failed, reused, cancelled}, "eta_s"}], "groups": [...]} (free-form JSON).

struct Cancel {
  static constexpr const char* kType = "cancel";
  int64_t sweep = 0;      // cancel every unfinished trial of this sweep, or
  std::string trial_key;  // one trial
};
struct Resume {
  static constexpr const char* kType = "resume";
  int64_t sweep = 0;
};
struct Logs {
  static constexpr const char* kType = "logs";
  std::string trial_key;
};
struct Shutdown {
  static constexpr const char* kType = "shutdown";
};

// ---- encode / parse ----

nlohmann::json ToJson(const LeaseRef& m);
nlohmann::json ToJson(const Register& m);
nlohmann::json ToJson(const Registered& m);
nlohmann::json ToJson(const LeaseRequest& m);
nlohmann::json ToJson(const LeaseGrant& m);
nlohmann::json ToJson(const NoWork& m);
nlohmann::json ToJson(const Heartbeat& m);
nlohmann::json ToJson(const HeartbeatReply& m);
nlohmann::json ToJson(const MetricsBatch& m);
nlohmann::json ToJson(const ScoresBatch& m);
nlohmann::json ToJson(const CheckpointRecord& m);
nlohmann::json ToJson(const Result& m);
nlohmann::json ToJson(const Ack& m);
nlohmann::json ToJson(const TrialSpec& m);
nlohmann::json ToJson(const Submit& m);
nlohmann::json ToJson(const Submitted& m);
nlohmann::json ToJson(const StatusRequest& m);
nlohmann::json ToJson(const Cancel& m);
nlohmann::json ToJson(const Resume& m);
nlohmann::json ToJson(const Logs& m);
nlohmann::json ToJson(const Shutdown& m);

Status Parse(const nlohmann::json& j, Register* m);
Status Parse(const nlohmann::json& j, Registered* m);
Status Parse(const nlohmann::json& j, LeaseRequest* m);
Status Parse(const nlohmann::json& j, LeaseGrant* m);
Status Parse(const nlohmann::json& j, NoWork* m);
Status Parse(const nlohmann::json& j, Heartbeat* m);
Status Parse(const nlohmann::json& j, HeartbeatReply* m);
Status Parse(const nlohmann::json& j, MetricsBatch* m);
Status Parse(const nlohmann::json& j, ScoresBatch* m);
Status Parse(const nlohmann::json& j, CheckpointRecord* m);
Status Parse(const nlohmann::json& j, Result* m);
Status Parse(const nlohmann::json& j, Ack* m);
Status Parse(const nlohmann::json& j, Submit* m);
Status Parse(const nlohmann::json& j, Submitted* m);
Status Parse(const nlohmann::json& j, StatusRequest* m);
Status Parse(const nlohmann::json& j, Cancel* m);
Status Parse(const nlohmann::json& j, Resume* m);
Status Parse(const nlohmann::json& j, Logs* m);
Status Parse(const nlohmann::json& j, Shutdown* m);

template <typename T>
std::string Encode(const T& m) {
  return EncodeRaw(T::kType, ToJson(m));
}

// Parses a decoded message as T; the type must match.
template <typename T>
StatusOr<T> ParseAs(const Message& msg) {
  if (msg.type != T::kType) {
    return InvalidArgumentError(std::string("expected a '") + T::kType + "' message, got '" +
                                msg.type + "'");
  }
  T out;
  Status s = Parse(msg.body, &out);
  if (!s.ok()) return s;
  return out;
}

// {"type": "error", "code": "INVALID_ARGUMENT", "code_num": 1, "message": "..."}
std::string ErrorReply(const Status& status);
// Ok for any reply that is not an error; the carried Status for an error reply.
Status ReplyStatus(const Message& reply);

}  // namespace sd2::protocol

#endif  // SD2_COMMON_PROTOCOL_H_
