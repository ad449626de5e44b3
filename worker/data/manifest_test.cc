#include "worker/data/manifest.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

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

TEST(ManifestTest, Df40FieldsRoundTripAndOldRowsLoad) {
  TempDir dir;
  const std::string path = dir.path() + "/m.jsonl";
  Record a = MakeRecord("a/1.jpg", "REAL");
  a.domain = "FF";
  a.method = "SimSwap";
  a.method_type = "FS";
  a.known = true;
  Record b = MakeRecord("a/2.jpg", "EFS");
  b.domain = "FFHQ";
  b.method = "MidJourney6";
  b.method_type = "EFS";
  b.known = false;
  Record old = MakeRecord("a/3.jpg", "FS");
  ASSERT_TRUE(WriteManifest(path, {a, b, old}).ok());
  StatusOr<std::vector<Record>> back = ReadManifest(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 3u);
  EXPECT_EQ((*back)[0], a);
  EXPECT_EQ((*back)[1], b);
  EXPECT_EQ((*back)[2], old);
  EXPECT_FALSE((*back)[2].known.has_value());
  // A row without the optional keys serialises exactly as before they existed.
  EXPECT_EQ(RecordToJson(old).find("known"), std::string::npos);
  EXPECT_EQ(RecordToJson(old).find("domain"), std::string::npos);
  // A manifest written before the keys existed loads.
  StatusOr<std::vector<Record>> legacy = ParseManifest(
      R"({"path":"x.jpg","dataset":"DF40","subset":"FF","split":"test","type":"FS","video":"v"})",
      "old.jsonl");
  ASSERT_TRUE(legacy.ok()) << legacy.status();
  EXPECT_TRUE((*legacy)[0].domain.empty());
  EXPECT_FALSE((*legacy)[0].known.has_value());

  ExpectError(R"({"path":"a.jpg","dataset":"D","split":"test","type":"FS","known":"yes"})",
              "m.jsonl:1:58:", "\"known\" must be a boolean, got string");
  ExpectError(R"({"path":"a.jpg","dataset":"D","split":"test","type":"FS","method_type":"REAL"})",
              "m.jsonl:1:58:", "unknown method_type \"REAL\"");
  ExpectError(R"({"path":"a.jpg","dataset":"D","split":"test","type":"FS","domain":3})",
              "m.jsonl:1:58:", "key \"domain\" must be a string, got number");
}

TEST(ManifestTest, RowErrorsKeepGoingWhenCollected) {
  const std::string good = RecordToJson(MakeRecord("a.jpg", "REAL"));
  const std::string text = good + "\n{\"path\": \"b.jpg\",\n" +
                           R"({"path":"/etc/x.jpg","dataset":"D","split":"train","type":"FS"})" +
                           "\n" + RecordToJson(MakeRecord("c.jpg", "FS")) + "\n";
  // By default the first bad row fails the read.
  EXPECT_FALSE(ParseManifest(text, "m.jsonl").ok());
  std::vector<Status> errors;
  ManifestReadOptions o;
  o.row_errors = &errors;
  StatusOr<std::vector<Record>> r = ParseManifest(text, "m.jsonl", o);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].path, "a.jpg");
  EXPECT_EQ((*r)[1].path, "c.jpg");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].message().rfind("m.jsonl:2:", 0), 0u) << errors[0].message();
  EXPECT_NE(errors[0].message().find("invalid JSON"), std::string::npos);
  EXPECT_EQ(errors[1].message().rfind("m.jsonl:3:2:", 0), 0u) << errors[1].message();
  EXPECT_NE(errors[1].message().find("absolute"), std::string::npos);
}

TEST(ManifestTest, FilterOnDomainMethodTypeAndKnown) {
  Record ff_real = MakeRecord("a.jpg", "REAL");
  ff_real.domain = "FF";
  ff_real.method_type = "FS";
  ff_real.known = true;
  Record cdf_fr = MakeRecord("b.jpg", "FR");
  cdf_fr.domain = "CDF";
  cdf_fr.method_type = "FR";
  cdf_fr.known = true;
  Record test_fs = MakeRecord("c.jpg", "FS");
  test_fs.domain = "UADFV";
  test_fs.method_type = "FS";
  test_fs.known = false;
  Record plain = MakeRecord("d.jpg", "FS");  // no DF40 placement
  auto matching = [&](const Filter& f) {
    std::string out;
    for (const Record* r : {&ff_real, &cdf_fr, &test_fs, &plain}) {
      if (Matches(f, *r)) out += r->path.substr(0, 1);
    }
    return out;
  };
  Filter f;
  EXPECT_EQ(matching(f), "abcd");
  f.domains = {"FF"};
  EXPECT_EQ(matching(f), "a");
  f = Filter();
  f.method_types = {"FS"};
  EXPECT_EQ(matching(f), "ac");  // the real row of an FS method counts
  f.known = true;
  EXPECT_EQ(matching(f), "a");
  f.known = false;
  EXPECT_EQ(matching(f), "c");
  f = Filter();
  f.known = true;
  EXPECT_EQ(matching(f), "ab");  // rows without `known` match neither value
  f.domains = {"FF", "CDF"};
  f.types = {"FR"};
  EXPECT_EQ(matching(f), "b");
}

TEST(ManifestTest, FilterFromJson) {
  StatusOr<Filter> f = FilterFromJson(nlohmann::json::parse(
      R"({"name":"DF40-FF","split":"test","datasets":["DF40"],"subsets":[],"types":"FS",
          "domains":["FF"],"method_types":["FS","FR"],"known":true})"));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->splits, std::vector<std::string>({"test"}));
  EXPECT_EQ(f->datasets, std::vector<std::string>({"DF40"}));
  EXPECT_TRUE(f->subsets.empty());
  EXPECT_EQ(f->types, std::vector<std::string>({"FS"}));
  EXPECT_EQ(f->domains, std::vector<std::string>({"FF"}));
  EXPECT_EQ(f->method_types, std::vector<std::string>({"FS", "FR"}));
  EXPECT_EQ(f->known, std::optional<bool>(true));
  f = FilterFromJson(nlohmann::json::parse(R"({"split":"test","known":null})"));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_FALSE(f->known.has_value());
  auto error = [](const char* text) {
    return FilterFromJson(nlohmann::json::parse(text)).status().message();
  };
  EXPECT_NE(error(R"({"known":"yes"})").find("\"known\" must be a boolean"), std::string::npos);
  EXPECT_NE(error(R"({"domains":7})").find("\"domains\" must be a string or an array"),
            std::string::npos);
  EXPECT_NE(error(R"({"method_types":["REAL"]})").find("unknown type \"REAL\""), std::string::npos);
  EXPECT_NE(error(R"({"types":["fake"]})").find("unknown type \"fake\""), std::string::npos);
  EXPECT_NE(error("[1]").find("must be a JSON object"), std::string::npos);
}

TEST(ManifestTest, DeepNestingIsAnErrorAtItsColumn) {
  // ~200 KB on one line: 100,000 nested arrays are refused before a value is built.
  const std::string good = RecordToJson(MakeRecord("a.jpg", "REAL")) + "\n";
  const std::string start = R"({"path":"b.jpg","dataset":"D","split":"train","type":"FS","x":)";
  const std::string deep = start + std::string(100000, '[') + std::string(100000, ']') + "}";
  // The line's object is level 1: the 64th '[' opens level 65.
  ExpectError(good + deep + "\n", "m.jsonl:2:" + std::to_string(start.size() + 64) + ": ",
              "JSON nests deeper than 64 levels");
  const std::string ok = start + std::string(63, '[') + std::string(63, ']') + "}";
  EXPECT_FALSE(ParseManifest(good + ok + "\n", "m.jsonl").ok());  // "x" is no manifest key
  EXPECT_NE(ParseManifest(good + ok + "\n", "m.jsonl").status().message().find("unknown key"),
            std::string::npos);
}

}  // namespace
}  // namespace sd2::worker::data
