#include "fuzz/targets.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/protocol.h"
#include "sweeps/sweep.h"
#include "worker/data/manifest.h"
#include "worker/models/safetensors.h"

namespace sd2::fuzz {

namespace {

void Check(bool ok, const char* what, const std::string& detail = "") {
  if (ok) return;
  std::fprintf(stderr, "fuzz invariant broken: %s %s\n", what, detail.c_str());
  std::abort();
}

// An error must carry a message (precise errors are part of the contract).
void CheckError(const Status& s, const char* what) {
  Check(s.ok() || !s.message().empty(), what, "error without a message");
}

template <typename T>
void TryParse(const nlohmann::json& body) {
  T m;
  Status s = protocol::Parse(body, &m);
  CheckError(s, T::kType);
  if (s.ok()) {
    // An accepted message re-encodes and decodes again as the same type.
    std::string again = protocol::Encode(m);
    auto d = protocol::Decode(again, size_t{1} << 30);
    Check(d.ok(), "re-encoded message does not decode", d.status().message());
    T m2;
    Status s2 = protocol::Parse(d->body, &m2);
    Check(s2.ok(), "re-encoded message does not parse", s2.message());
  }
}

}  // namespace

int FuzzProtocol(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto msg = protocol::Decode(bytes, size_t{1} << 20);
  CheckError(msg.status(), "decode");
  if (!msg.ok()) {
    // The error reply for it decodes and carries the same code.
    std::string reply = protocol::ErrorReply(msg.status());
    auto r = protocol::Decode(reply);
    Check(r.ok(), "error reply does not decode", r.status().message());
    Check(protocol::ReplyStatus(*r).code() == msg.status().code(), "error reply code changed");
    return 0;
  }
  // Every typed parser sees every decoded body (they must reject what is not theirs).
  const nlohmann::json& b = msg->body;
  TryParse<protocol::Register>(b);
  TryParse<protocol::Registered>(b);
  TryParse<protocol::LeaseRequest>(b);
  TryParse<protocol::LeaseGrant>(b);
  TryParse<protocol::NoWork>(b);
  TryParse<protocol::Heartbeat>(b);
  TryParse<protocol::HeartbeatReply>(b);
  TryParse<protocol::MetricsBatch>(b);
  TryParse<protocol::ScoresBatch>(b);
  TryParse<protocol::CheckpointRecord>(b);
  TryParse<protocol::Result>(b);
  TryParse<protocol::Ack>(b);
  TryParse<protocol::Submit>(b);
  TryParse<protocol::Submitted>(b);
  TryParse<protocol::StatusRequest>(b);
  TryParse<protocol::Cancel>(b);
  TryParse<protocol::Resume>(b);
  TryParse<protocol::Logs>(b);
  TryParse<protocol::Shutdown>(b);
  CheckError(protocol::ReplyStatus(*msg), "reply status");
  return 0;
}

int FuzzSweep(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = sweeps::ParseSweep(text, "fuzz.toml");
  CheckError(spec.status(), "ParseSweep");
  if (!spec.ok()) return 0;
  Check(!spec->methods.empty(), "accepted sweep without methods");
  // Expansion of [[probe]] entries reads other files: leave those out; bound the work.
  if (!spec->probes.empty() || spec->coords.size() > 2000) return 0;
  sweeps::ExpandOptions options;
  options.vars["SD2_DATA"] = "/data";
  options.vars["SD2_CLIP"] = "/models/clip";
  options.vars["SD2_XCEPTION"] = "/models/xception.safetensors";
  auto trials = sweeps::Expand(*spec, options);
  CheckError(trials.status(), "Expand");
  return 0;
}

int FuzzManifest(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (bool allow : {false, true}) {
    worker::data::ManifestReadOptions options;
    options.allow_outside_root = allow;
    auto recs = worker::data::ParseManifest(text, "fuzz.jsonl", options);
    CheckError(recs.status(), "ParseManifest");
    if (!recs.ok()) continue;
    for (const auto& r : *recs) {
      Check(!r.path.empty(), "accepted record with an empty path");
      Check(r.TypeIndex() >= 0, "accepted record with an unknown type", r.type);
      if (!allow) {
        Check(worker::data::PathStaysInside(r.path), "path leaves the data root", r.path);
      }
    }
    // What was accepted serialises to a manifest that parses to the same records.
    std::string again = worker::data::SerializeManifest(*recs);
    auto recs2 = worker::data::ParseManifest(again, "again.jsonl", options);
    Check(recs2.ok(), "serialised manifest does not parse", recs2.status().message());
    Check(*recs2 == *recs, "manifest round trip changed the records");
  }
  return 0;
}

int FuzzSafetensors(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  auto f = worker::models::ParseSafetensors(bytes, "fuzz.safetensors");
  CheckError(f.status(), "ParseSafetensors");
  if (!f.ok()) return 0;
  for (const auto& [name, t] : f->tensors) {
    Check(t.numel() >= 0, "negative element count", name);
    Check(static_cast<size_t>(t.numel()) * worker::models::DtypeSize(t.dtype) == t.data.size(),
          "tensor bytes do not match its shape", name);
    std::vector<float> v = t.ToFloat();
    Check(v.size() == static_cast<size_t>(t.numel()), "ToFloat size", name);
  }
  std::string again = worker::models::SerializeSafetensors(*f);
  auto f2 = worker::models::ParseSafetensors(again, "again.safetensors");
  Check(f2.ok(), "serialised safetensors does not parse", f2.status().message());
  Check(f2->tensors.size() == f->tensors.size(), "round trip lost tensors");
  for (const auto& [name, t] : f->tensors) {
    auto it = f2->tensors.find(name);
    Check(it != f2->tensors.end() && it->second.data == t.data && it->second.shape == t.shape,
          "round trip changed a tensor", name);
  }
  Check(f2->metadata == f->metadata, "round trip changed the metadata");
  return 0;
}

}  // namespace sd2::fuzz
