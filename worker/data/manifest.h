// Manifests: the JSONL files that list a dataset's images (one JSON object per line; the format
// is documented in docs/data.md). Every writer also writes a sidecar `M.jsonl.sha256` holding the
// SHA-256 of the manifest's bytes (`sha256sum -c` reads it); ManifestDigest recomputes and checks
// it. The digest enters trial keys.
//
//   SD2_ASSIGN_OR_RETURN(std::vector<Record> recs, ReadManifest("data/train.jsonl"));
//   Filter f; f.splits = {"train"};
//   for (const Record& r : recs) if (Matches(f, r)) ...;
//   SD2_ASSIGN_OR_RETURN(std::string digest, WriteManifest("out/m.jsonl", recs));
#ifndef SD2_WORKER_DATA_MANIFEST_H_
#define SD2_WORKER_DATA_MANIFEST_H_

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "worker/data/loader.h"

namespace sd2::worker::data {

// One image. `type` is one of kTypeNames; `video` is shared by the frames of one video (for
// single images it is usually the image's own id). The optional `domain`, `method`,
// `method_type` and `known` place a row in DF40's split of its methods (docs/data.md); rows of
// other datasets usually leave them unset.
struct Record {
  std::string path;  // relative to the manifest's root
  std::string dataset, subset, split, type, video, face, env;
  std::string id;             // optional; SampleId() falls back to path
  std::string domain;         // source domain, e.g. "FF", "CDF", or a test-only method's "UADFV"
  std::string method;         // forgery method, e.g. "SimSwap"
  std::string method_type;    // FS/FR/EFS/FE of the method the row belongs to (real rows too)
  std::optional<bool> known;  // true: one of DF40's known methods, false: a test-only one

  const std::string& SampleId() const { return id.empty() ? path : id; }
  int TypeIndex() const;  // 0..4, or -1 for an unknown type (never after a successful read)
  bool operator==(const Record& o) const;
};

// Index into kTypeNames, or -1.
int TypeIndexOf(std::string_view type);

struct ManifestReadOptions {
  // Accept absolute paths and paths whose ".." climbs above the root.
  bool allow_outside_root = false;
  // When set, a bad row does not fail the read: its error ("NAME:LINE:COL: message",
  // InvalidArgument) is appended here, the row is skipped and reading goes on.
  std::vector<Status>* row_errors = nullptr;
};

// Parses manifest text. `name` is used in error messages, which read
// "NAME:LINE:COL: message" (InvalidArgument). Blank lines are skipped. Rows written before the
// optional keys existed load unchanged.
StatusOr<std::vector<Record>> ParseManifest(std::string_view text, const std::string& name,
                                            const ManifestReadOptions& options = {});
// Reads and parses a manifest file (NotFound when it does not exist).
StatusOr<std::vector<Record>> ReadManifest(const std::string& path,
                                           const ManifestReadOptions& options = {});

// One line of JSON for a record, keys in a fixed order (no trailing newline).
std::string RecordToJson(const Record& r);
// The exact bytes WriteManifest writes.
std::string SerializeManifest(const std::vector<Record>& records);
// Writes the manifest atomically plus its sidecar PATH.sha256; returns the digest.
StatusOr<std::string> WriteManifest(const std::string& path, const std::vector<Record>& records);
// SHA-256 hex of the manifest's bytes. When the sidecar exists it must agree (DataLoss
// otherwise: the manifest changed after it was written).
StatusOr<std::string> ManifestDigest(const std::string& path);

// True when the record passes the filter (empty lists match everything; a set `known` matches
// only rows whose `known` is set to the same value).
bool Matches(const Filter& filter, const Record& record);

// A filter from a trial config's filter object: "split" or "splits", "datasets", "subsets",
// "types", "domains", "method_types" (each a string or an array of strings) and "known" (a
// boolean or null). Other keys ("name") are ignored; a value of the wrong type, or a type that
// is not one of kTypeNames, is InvalidArgument naming the key.
StatusOr<Filter> FilterFromJson(const nlohmann::json& j);

// True for a path that stays inside its root ("a/../b" yes, "../b" and "/b" no).
bool PathStaysInside(std::string_view path);

}  // namespace sd2::worker::data

#endif  // SD2_WORKER_DATA_MANIFEST_H_
