// toml::parse with the nesting bound of common/bounded_parse.h, for every TOML sd2 reads
// (sweeps, configs, label maps, the paper's data). Header-only: include it from a target that
// links tomlplusplus::tomlplusplus.
//
// A document deeper than kMaxTomlDepth throws toml::parse_error, as any other TOML error does,
// with the line and column of the offending '.', '[' or '{' — before toml++ builds anything.
// So the callers' existing `catch (const toml::parse_error&)` reports it as
// "sweep.toml:2:128: TOML nests deeper than 64 levels (...)".
//
//   try {
//     toml::table t = sd2::ParseTomlBounded(text, path);
//   } catch (const toml::parse_error& e) { ... e.description(), e.source().begin ... }
#ifndef SD2_COMMON_BOUNDED_TOML_H_
#define SD2_COMMON_BOUNDED_TOML_H_

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>

#include <toml++/toml.h>

#include "common/bounded_parse.h"

namespace sd2 {

inline toml::table ParseTomlBounded(std::string_view text, std::string_view source_path = {}) {
  TextPosition at = FindTomlTooDeep(text, kMaxTomlDepth);
  if (at.line != 0) {
    toml::source_position pos{static_cast<toml::source_index>(at.line),
                              static_cast<toml::source_index>(at.column)};
    const std::string message = TomlTooDeepMessage(kMaxTomlDepth);  // copied by the exception
    throw toml::parse_error(message.c_str(), pos, std::make_shared<const std::string>(source_path));
  }
  return toml::parse(text, source_path);
}

// toml::parse_file's contract (a file that cannot be read is a parse_error naming it).
inline toml::table ParseTomlFileBounded(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw toml::parse_error("File could not be opened for reading", toml::source_position{},
                            std::make_shared<const std::string>(path));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return ParseTomlBounded(text.str(), path);
}

}  // namespace sd2

#endif  // SD2_COMMON_BOUNDED_TOML_H_
