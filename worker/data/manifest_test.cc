#include "worker/data/manifest.h"

#include <gtest/gtest.h>

#include "common/file_util.h"
#include "common/hash.h"
#include "worker/data/test_util.h"

namespace sd2::worker::data {
namespace {

using testing::TempDir;
using testing::WriteText;

Record MakeRecord(const std::string& path, const std::string& type) {
  Record r;
  r.path = path;
  r.dataset = "DF40";
  r.subset = "FS";
  r.split = "train";
  r.type = type;
  r.video = "v1";
  r.face = "A young adult female with long \"brown\" hair.";
  r.env = "An outdoor setting.";
  return r;
}

TEST(ManifestTest, WriteReadRoundTripAndDigest) {
  TempDir dir;
  const std::string path = dir.path() + "/m.jsonl";
  std::vector<Record> recs = {MakeRecord("a/1.jpg", "REAL"), MakeRecord("a/2.jpg", "FS")};
  recs[1].id = "sample-2";
  StatusOr<std::string> digest = WriteManifest(path, recs);
  ASSERT_TRUE(digest.ok()) << digest.status();
  StatusOr<std::vector<Record>> back = ReadManifest(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0], recs[0]);
  EXPECT_EQ((*back)[1], recs[1]);
  EXPECT_EQ((*back)[1].SampleId(), "sample-2");
  EXPECT_EQ((*back)[0].SampleId(), "a/1.jpg");
  StatusOr<std::string> text = ReadFile(path);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*digest, Sha256Hex(*text));
  StatusOr<std::string> d2 = ManifestDigest(path);
  ASSERT_TRUE(d2.ok()) << d2.status();
  EXPECT_EQ(*d2, *digest);
  StatusOr<std::string> side = ReadFile(path + ".sha256");
  ASSERT_TRUE(side.ok());
  EXPECT_EQ(*side, *digest + "  m.jsonl\n");
}

TEST(ManifestTest, DigestMismatchIsDataLoss) {
  TempDir dir;
  const std::string path = dir.path() + "/m.jsonl";
  ASSERT_TRUE(WriteManifest(path, {MakeRecord("a.jpg", "REAL")}).ok());
  WriteText(path, SerializeManifest({MakeRecord("b.jpg", "REAL")}));
  StatusOr<std::string> d = ManifestDigest(path);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(d.status().message().find("changed after it was written"), std::string::npos);
  EXPECT_EQ(ManifestDigest(dir.path() + "/none.jsonl").status().code(), StatusCode::kNotFound);
}

void ExpectError(const std::string& text, const std::string& prefix, const std::string& needle) {
  StatusOr<std::vector<Record>> r = ParseManifest(text, "m.jsonl");
  ASSERT_FALSE(r.ok()) << text;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message().rfind(prefix, 0), 0u) << r.status().message();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
}

TEST(ManifestTest, ParserErrorsNameLineAndColumn) {
  const std::string good = RecordToJson(MakeRecord("a.jpg", "REAL")) + "\n";
  ExpectError(good + "{\"path\": \"b.jpg\", \n", "m.jsonl:2:", "invalid JSON");
  ExpectError(good + "\n" + "[1,2]\n", "m.jsonl:3:1:", "expected a JSON object");
  ExpectError(R"({"path":"a.jpg","dataset":"D","split":"train"})",
              "m.jsonl:1:1:", "missing required key \"type\"");
  ExpectError(R"({"path":"a.jpg","dataset":"D","split":"train","type":"FAKE"})",
              "m.jsonl:1:47:", "unknown type \"FAKE\"");
  ExpectError(R"({"path":"a.jpg","dataset":7,"split":"train","type":"FS"})",
              "m.jsonl:1:17:", "must be a string, got number");
  ExpectError(R"({"path":"a.jpg","dataset":"D","split":"train","type":"FS","lable":"x"})",
              "m.jsonl:1:59:", "unknown key \"lable\"");
  ExpectError(R"({"path":"../x.jpg","dataset":"D","split":"train","type":"FS"})",
              "m.jsonl:1:2:", "leaves the root");
  ExpectError(R"({"path":"/etc/x.jpg","dataset":"D","split":"train","type":"FS"})",
              "m.jsonl:1:2:", "absolute");
  // Found by fuzz_manifest: a number beyond double's range used to terminate the process.
  ExpectError(good + R"({"path":"a.jpg","dataset":"D","split":"train","type":"FS","face":1e999})",
              "m.jsonl:2:1:", "number overflow");
}

TEST(ManifestTest, OutsideRootAllowedWithOption) {
  ManifestReadOptions o;
  o.allow_outside_root = true;
  StatusOr<std::vector<Record>> r =
      ParseManifest(R"({"path":"/data/x.jpg","dataset":"D","split":"train","type":"FS"})", "m", o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[0].video, "/data/x.jpg");  // defaults to the sample id
  EXPECT_TRUE(PathStaysInside("a/../b/c.jpg"));
  EXPECT_TRUE(PathStaysInside("./a.jpg"));
  EXPECT_FALSE(PathStaysInside("a/../../b.jpg"));
  EXPECT_FALSE(PathStaysInside(""));
}

TEST(ManifestTest, MissingFileIsNotFound) {
  EXPECT_EQ(ReadManifest("/nonexistent/m.jsonl").status().code(), StatusCode::kNotFound);
}

TEST(ManifestTest, FilterMatches) {
  Record r = MakeRecord("a.jpg", "FS");
  Filter f;
  EXPECT_TRUE(Matches(f, r));
  f.datasets = {"DFF", "DF40"};
  f.types = {"FS"};
  EXPECT_TRUE(Matches(f, r));
  f.splits = {"test"};
  EXPECT_FALSE(Matches(f, r));
  f.splits = {};
  f.subsets = {"FR"};
  EXPECT_FALSE(Matches(f, r));
  EXPECT_EQ(TypeIndexOf("EFS"), 3);
  EXPECT_EQ(TypeIndexOf("fs"), -1);
}

}  // namespace
}  // namespace sd2::worker::data
