// Replays every checked-in fuzz corpus file and every crash the fuzzers found through the same
// target bodies the fuzzers run (fuzz/targets.h), in the normal build. A broken invariant aborts,
// so a regression fails this test. Specific regressions also check the exact error they give.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>

#include "common/file_util.h"
#include "common/protocol.h"
#include "fuzz/targets.h"
#include "worker/models/safetensors.h"

namespace sd2::fuzz {
namespace {

namespace fs = std::filesystem;

const fs::path kFuzzDir = fs::path(SD2_SOURCE_DIR) / "fuzz";

// Runs `fn` over every file of corpus/<name> and regressions/<name>; returns how many.
int Replay(const std::string& name, int (*fn)(const uint8_t*, size_t)) {
  int n = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    fs::path dir = kFuzzDir / kind / name;
    if (!fs::exists(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (!e.is_regular_file() || e.path().filename() == "README") continue;
      auto bytes = ReadFile(e.path().string());
      EXPECT_TRUE(bytes.ok()) << bytes.status();
      if (!bytes.ok()) continue;
      SCOPED_TRACE(e.path().string());
      EXPECT_EQ(fn(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()), 0);
      ++n;
    }
  }
  return n;
}

TEST(FuzzRegression, ProtocolCorpus) { EXPECT_GE(Replay("protocol", FuzzProtocol), 5); }
TEST(FuzzRegression, SweepCorpus) { EXPECT_GE(Replay("sweep", FuzzSweep), 3); }
TEST(FuzzRegression, ManifestCorpus) { EXPECT_GE(Replay("manifest", FuzzManifest), 3); }
TEST(FuzzRegression, SafetensorsCorpus) { EXPECT_GE(Replay("safetensors", FuzzSafetensors), 3); }

// Inputs with no bytes at all, or one byte, are answered with errors, never a crash.
TEST(FuzzRegression, TinyInputs) {
  for (std::string s : {std::string(), std::string("\0", 1), std::string("{"), std::string("\n")}) {
    const auto* d = reinterpret_cast<const uint8_t*>(s.data());
    EXPECT_EQ(FuzzProtocol(d, s.size()), 0);
    EXPECT_EQ(FuzzSweep(d, s.size()), 0);
    EXPECT_EQ(FuzzManifest(d, s.size()), 0);
    EXPECT_EQ(FuzzSafetensors(d, s.size()), 0);
  }
}

}  // namespace
}  // namespace sd2::fuzz

namespace sd2::fuzz {
namespace {

// fuzz_protocol, crash-f9a7a2cc: an `error` reply without a "message" field gave an error
// Status with an empty message (sd2ctl printed "INVALID_ARGUMENT: " and nothing else).
TEST(FuzzRegression, ErrorReplyWithoutMessageStillExplains) {
  auto bytes =
      ReadFile((kFuzzDir / "regressions/protocol/error_reply_without_message.json").string());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto m = protocol::Decode(*bytes);
  ASSERT_TRUE(m.ok()) << m.status();
  Status s = protocol::ReplyStatus(*m);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_EQ(s.message(), "error reply without a message");
}

}  // namespace
}  // namespace sd2::fuzz

namespace sd2::fuzz {
namespace {

// fuzz_safetensors under UBSan: shape [2^40, 2^24] wrapped the uint64 element count to 0, so
// a tensor of 2^64 elements with no data was accepted and SafeTensor::numel() overflowed.
TEST(FuzzRegression, SafetensorsShapeProductCannotWrap) {
  auto bytes = ReadFile((kFuzzDir / "regressions/safetensors/numel_overflow.safetensors").string());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto f = worker::models::ParseSafetensors(*bytes, "numel_overflow.safetensors");
  EXPECT_EQ(f.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(f.status().message(), "numel_overflow.safetensors: tensor 'w': too many elements");
}

}  // namespace
}  // namespace sd2::fuzz
