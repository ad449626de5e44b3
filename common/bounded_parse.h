// Parsing JSON and TOML written by people or peers with a bound on nesting depth.
//
// nlohmann::json parses without recursion, but copying a value, dump() and comparisons recurse
// once per level: a 200 KB message of 100,000 nested arrays overflows the stack wherever the
// value is later copied or serialised. toml++ bounds inline arrays and tables (256 levels) but
// not dotted keys or table headers: `a.a.a...a = 1` with 100,000 parts overflows the stack
// while it is parsed or freed. So every reader checks the depth on the text itself, before any
// value is built, and refuses anything deeper than the limit with a precise error.
//
//   SD2_ASSIGN_OR_RETURN(nlohmann::json j, sd2::ParseJsonBounded(text));
//   toml::table t = sd2::ParseTomlBounded(toml_text, path);  // common/bounded_toml.h
#ifndef SD2_COMMON_BOUNDED_PARSE_H_
#define SD2_COMMON_BOUNDED_PARSE_H_

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace sd2 {

// Levels of arrays and objects (JSON), or of tables, dotted-key parts, arrays and inline tables
// (TOML). sd2's own files and messages use fewer than 10.
inline constexpr size_t kMaxJsonDepth = 64;
inline constexpr size_t kMaxTomlDepth = 64;

struct JsonLimits {
  size_t max_depth = kMaxJsonDepth;  // the outermost array or object is level 1
};

// The 1-based byte offset of the first '[' or '{' (outside strings) that opens level
// max_depth + 1, or 0 when the text nests no deeper than max_depth.
size_t FindJsonTooDeep(std::string_view text, size_t max_depth);

// Parses `text` as one JSON value (nlohmann's strict syntax), after checking its depth on the
// text. Never throws. Errors are INVALID_ARGUMENT:
//   "JSON nests deeper than 64 levels (at byte 65)"
//   "invalid JSON: parse error at line 1, column 5: syntax error ..." (nlohmann's message,
//   without its "[json.exception...]" prefix; also numbers beyond double's range).
// With `error_byte`, the error's 1-based byte offset goes there (0 when not known).
StatusOr<nlohmann::json> ParseJsonBounded(std::string_view text, const JsonLimits& limits = {},
                                          size_t* error_byte = nullptr);

// For code that already catches nlohmann's exceptions: json::parse after the same check, which
// throws json::parse_error (id 101, "parse error at byte 65: JSON nests deeper than 64 levels").
nlohmann::json ParseJsonBoundedOrThrow(std::string_view text, const JsonLimits& limits = {});

// Checks the nesting of a TOML document on its text: the root table is level 0; a table
// header [a.b] puts its keys at level 3, [[a.b]] at level 4; a key `x.y = v` puts v at the
// current table's level + 2; each array and inline table adds one. Ok when nothing is deeper
// than max_depth; else INVALID_ARGUMENT "LINE:COL: TOML nests deeper than 64 levels (...)".
// It reads strings, comments and multi-line values as TOML does, and over-counts rather than
// under-counts on malformed text (which the TOML parser then refuses anyway).
Status CheckTomlDepth(std::string_view text, size_t max_depth = kMaxTomlDepth);

// 1-based line and column; line 0: nowhere.
struct TextPosition {
  size_t line = 0;
  size_t column = 0;
};
// Where CheckTomlDepth's error points, or line 0.
TextPosition FindTomlTooDeep(std::string_view text, size_t max_depth = kMaxTomlDepth);
// "TOML nests deeper than 64 levels (tables, dotted keys, arrays and inline tables together)".
std::string TomlTooDeepMessage(size_t max_depth = kMaxTomlDepth);

}  // namespace sd2

#endif  // SD2_COMMON_BOUNDED_PARSE_H_
