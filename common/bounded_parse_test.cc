// ParseJsonBounded / FindJsonTooDeep and CheckTomlDepth: deep documents are refused on their
// text, before anything is built; what sd2 reads and writes passes.
#include "common/bounded_parse.h"
#include "common/bounded_toml.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <toml++/toml.h>
#include <filesystem>
#include <string>

#include "common/file_util.h"

namespace sd2 {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

std::string Nested(size_t n, const std::string& open = "[", const std::string& close = "]",
                   const std::string& inner = "") {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += open;
  s += inner;
  for (size_t i = 0; i < n; ++i) s += close;
  return s;
}

TEST(ParseJsonBoundedTest, AcceptsDepthUpToTheLimit) {
  auto j = ParseJsonBounded(Nested(64));
  ASSERT_TRUE(j.ok()) << j.status();
  size_t depth = 1;
  for (const json* p = &*j; !p->empty(); p = &(*p)[0]) ++depth;
  EXPECT_EQ(depth, 64u);
  auto o = ParseJsonBounded(Nested(64, "{\"a\":", "}", "1"));
  EXPECT_TRUE(o.ok()) << o.status();
}

TEST(ParseJsonBoundedTest, RefusesDeeperWithTheByteOfTheOffendingBracket) {
  size_t at = 0;
  auto j = ParseJsonBounded(Nested(65), {}, &at);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(j.status().message(), "JSON nests deeper than 64 levels (at byte 65)");
  EXPECT_EQ(at, 65u);
  // Objects and arrays count together; the limit is a parameter.
  auto mixed = ParseJsonBounded(R"({"a":[{"b":[1]}]})", JsonLimits{3});
  EXPECT_THAT(mixed.status().message(), HasSubstr("deeper than 3 levels (at byte 12)"));
  EXPECT_TRUE(ParseJsonBounded(R"({"a":[{"b":1}]})", JsonLimits{3}).ok());
}

TEST(ParseJsonBoundedTest, RefusesAHundredThousandLevelsWithoutBuildingThem) {
  // ~200 KB: under every byte limit; its copy or dump() would overflow the stack.
  const std::string deep = Nested(100000);
  auto j = ParseJsonBounded(deep);
  ASSERT_FALSE(j.ok());
  EXPECT_THAT(j.status().message(), HasSubstr("deeper than 64 levels"));
  EXPECT_EQ(FindJsonTooDeep(deep, 64), 65u);
  EXPECT_EQ(FindJsonTooDeep(deep, 100000), 0u);
  // Unterminated, and inside an object member.
  EXPECT_FALSE(ParseJsonBounded("{\"v\":1,\"x\":" + std::string(100000, '[')).ok());
}

TEST(ParseJsonBoundedTest, BracketsInStringsDoNotCount) {
  const std::string in_string = "[\"" + std::string(1000, '[') + "\\\"" + "{{{{\"]";
  auto j = ParseJsonBounded(in_string);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)[0].get<std::string>().size(), 1000u + 5u);
  // An escaped backslash ends before the quote: the next '[' counts.
  EXPECT_EQ(FindJsonTooDeep(R"(["\\", [[1]]])", 2), 9u);
}

TEST(ParseJsonBoundedTest, SyntaxErrorsAreValuesWithTheirByte) {
  size_t at = 0;
  auto bad = ParseJsonBounded("{\"a\": 1,", {}, &at);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("invalid JSON: parse error at line 1, column 9"));
  EXPECT_EQ(at, 9u);
  auto overflow = ParseJsonBounded("[1e999]");
  ASSERT_FALSE(overflow.ok());
  EXPECT_THAT(overflow.status().message(), HasSubstr("number overflow"));
  EXPECT_FALSE(ParseJsonBounded("").ok());
}

TEST(ParseJsonBoundedTest, OrThrowThrowsNlohmannsParseError) {
  try {
    (void)ParseJsonBoundedOrThrow(Nested(100000));
    FAIL() << "no exception";
  } catch (const json::parse_error& e) {
    EXPECT_EQ(e.byte, 65u);
    EXPECT_THAT(e.what(), HasSubstr("parse error at byte 65: JSON nests deeper than 64 levels"));
  }
  EXPECT_THROW((void)ParseJsonBoundedOrThrow("[1,"), json::parse_error);
  EXPECT_EQ(ParseJsonBoundedOrThrow(R"({"a": [1]})")["a"][0], 1);
}

// The deepest level toml++ builds (root table 0), to check CheckTomlDepth's counting.
size_t TomlDepth(const toml::node& n) {
  size_t d = 0;
  if (const auto* t = n.as_table()) {
    for (auto&& [k, v] : *t) d = std::max(d, 1 + TomlDepth(v));
  } else if (const auto* a = n.as_array()) {
    for (const auto& v : *a) d = std::max(d, 1 + TomlDepth(v));
  }
  return d;
}

TEST(CheckTomlDepthTest, CountsAsTheParserBuilds) {
  const char* docs[] = {
      "a = 1\n",
      "a.b.c = 1\n",
      "[a.b]\nc = 1\n",
      "[a.b]\nc.d = [1, [2, [3]]]\n",
      "[[a.b]]\nc = 1\n[[a.b]]\nd.e = {f = 1}\n",
      "a = {b = {c = {d = 1}}, e.f.g = 2}\n",
      "a = [\n  1,  # [[[[ a comment\n  [2, 3],\n]\n",
      "\"a.b.c\" = 1\n['x.y'.\"z\"]\nk = 'v.w'\n",
      "a = \"\"\"\n[[[[\n\"\"\"\nb = '''{{{{'''\nc = 1.5e3\nd = 1979-05-27 07:32:00\n",
      "a = [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5]\n",
      "a = {}\nb = []\nc = [[], [[]]]\n",
  };
  for (const char* doc : docs) {
    toml::table t;
    try {
      t = toml::parse(doc);
    } catch (const toml::parse_error& e) {
      FAIL() << doc << ": " << e.description();
    }
    size_t real = TomlDepth(t);
    SCOPED_TRACE(doc);
    EXPECT_TRUE(CheckTomlDepth(doc, real).ok()) << CheckTomlDepth(doc, real);
    EXPECT_FALSE(CheckTomlDepth(doc, real - 1).ok());
  }
}

TEST(CheckTomlDepthTest, RefusesDeepDottedKeysHeadersAndArraysWithLineAndColumn) {
  std::string dotted = "x = 1\na";
  for (int i = 0; i < 100000; ++i) dotted += ".a";
  dotted += " = 1\n";
  Status s = CheckTomlDepth(dotted);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "2:128: TOML nests deeper than 64 levels (tables, dotted keys, arrays and inline "
            "tables together)");

  std::string header = "[a";
  for (int i = 0; i < 100000; ++i) header += ".a";
  header += "]\nk = 1\n";
  EXPECT_THAT(CheckTomlDepth(header).message(), HasSubstr("1:129: TOML nests deeper"));
  EXPECT_THAT(CheckTomlDepth("[" + header).message(), HasSubstr("1:"));

  EXPECT_THAT(CheckTomlDepth("a = " + Nested(100000)).message(), HasSubstr("1:69: TOML nests"));
  EXPECT_THAT(CheckTomlDepth("a = " + Nested(100000, "{b = ", "}", "1")).message(),
              HasSubstr("TOML nests deeper than 64"));
  // Unterminated.
  EXPECT_FALSE(CheckTomlDepth("a = " + std::string(100000, '[')).ok());
  // Strings hold no structure.
  EXPECT_TRUE(CheckTomlDepth("a = \"" + std::string(100000, '[') + "\"\n").ok());
  EXPECT_TRUE(CheckTomlDepth("a = '" + std::string(100000, '.') + "'\n").ok());
}

TEST(ParseTomlBoundedTest, ThrowsTheParsersErrorWithLineAndColumn) {
  std::string dotted = "x = 1\na";
  for (int i = 0; i < 100000; ++i) dotted += ".a";
  dotted += " = 1\n";
  try {
    (void)ParseTomlBounded(dotted, "deep.toml");
    FAIL() << "no error";
  } catch (const toml::parse_error& e) {
    EXPECT_EQ(std::string(e.description()), TomlTooDeepMessage());
    EXPECT_EQ(e.source().begin.line, 2u);
    EXPECT_EQ(e.source().begin.column, 128u);
    ASSERT_TRUE(e.source().path);
    EXPECT_EQ(*e.source().path, "deep.toml");
  }
  toml::table t = ParseTomlBounded("a.b = [1, {c = 2}]\n", "ok.toml");
  EXPECT_EQ(t["a"]["b"][1]["c"].value_or(0), 2);
  const std::string file = ::testing::TempDir() + "/bounded_toml_test.toml";
  ASSERT_TRUE(WriteFileAtomic(file, "[" + dotted.substr(6, 200) + "]\n").ok());
  EXPECT_THROW((void)ParseTomlFileBounded(file), toml::parse_error);
  ASSERT_TRUE(WriteFileAtomic(file, "[s]\nk = 'v'\n").ok());
  EXPECT_EQ(ParseTomlFileBounded(file)["s"]["k"].value_or(std::string()), "v");
  EXPECT_THROW((void)ParseTomlFileBounded(file + ".missing"), toml::parse_error);
}

TEST(CheckTomlDepthTest, EverySweepAndConfigInTheTreePasses) {
  size_t files = 0;
  for (const char* dir : {"sweeps", "data", "worker/train", "fuzz/corpus/sweep"}) {
    std::filesystem::path p = std::filesystem::path(SD2_SOURCE_DIR) / dir;
    if (!std::filesystem::is_directory(p)) continue;
    for (const auto& e : std::filesystem::recursive_directory_iterator(p)) {
      if (e.path().extension() != ".toml") continue;
      auto text = ReadFile(e.path().string());
      ASSERT_TRUE(text.ok()) << text.status();
      EXPECT_TRUE(CheckTomlDepth(*text).ok()) << e.path() << ": " << CheckTomlDepth(*text);
      ++files;
    }
  }
  EXPECT_GT(files, 30u);
}

}  // namespace
}  // namespace sd2
