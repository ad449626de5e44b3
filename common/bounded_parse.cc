#include "common/bounded_parse.h"

#include <string>
#include <vector>

namespace sd2 {

using nlohmann::json;

size_t FindJsonTooDeep(std::string_view text, size_t max_depth) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return i + 1;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return 0;
}

StatusOr<json> ParseJsonBounded(std::string_view text, const JsonLimits& limits,
                                size_t* error_byte) {
  if (error_byte) *error_byte = 0;
  if (size_t at = FindJsonTooDeep(text, limits.max_depth); at != 0) {
    if (error_byte) *error_byte = at;
    return InvalidArgumentError("JSON nests deeper than " + std::to_string(limits.max_depth) +
                                " levels (at byte " + std::to_string(at) + ")");
  }
  auto strip = [](const std::string& what) {
    // nlohmann's messages start with "[json.exception.parse_error.101] ".
    size_t p = what.find("] ");
    return p == std::string::npos ? what : what.substr(p + 2);
  };
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    if (error_byte) *error_byte = e.byte;
    return InvalidArgumentError("invalid JSON: " + strip(e.what()));
  } catch (const json::exception& e) {  // e.g. out_of_range: a number beyond double's range
    return InvalidArgumentError("invalid JSON: " + strip(e.what()));
  }
}

json ParseJsonBoundedOrThrow(std::string_view text, const JsonLimits& limits) {
  if (size_t at = FindJsonTooDeep(text, limits.max_depth); at != 0) {
    throw json::parse_error::create(
        101, at, "JSON nests deeper than " + std::to_string(limits.max_depth) + " levels", nullptr);
  }
  return json::parse(text.begin(), text.end());
}

namespace {

// Index just past the TOML string starting at text[i] (a quote): basic "..." and literal '...',
// and their multi-line forms """...""" and '''...'''. An unterminated single-line string ends at
// the newline; an unterminated multi-line one at the end of the text.
size_t SkipTomlString(std::string_view text, size_t i) {
  const char q = text[i];
  const bool basic = q == '"';
  if (text.substr(i, 3) == std::string_view(basic ? "\"\"\"" : "'''")) {
    for (size_t j = i + 3; j < text.size(); ++j) {
      if (basic && text[j] == '\\') {
        ++j;
      } else if (text[j] == q && text.substr(j, 3) == text.substr(i, 3)) {
        j += 3;
        // Up to two more quotes belong to the string ("""a"""" is `a"`).
        for (int k = 0; k < 2 && j < text.size() && text[j] == q; ++k) ++j;
        return j;
      }
    }
    return text.size();
  }
  for (size_t j = i + 1; j < text.size(); ++j) {
    if (text[j] == '\n') return j;
    if (basic && text[j] == '\\') {
      ++j;
    } else if (text[j] == q) {
      return j + 1;
    }
  }
  return text.size();
}

}  // namespace

std::string TomlTooDeepMessage(size_t max_depth) {
  return "TOML nests deeper than " + std::to_string(max_depth) +
         " levels (tables, dotted keys, arrays and inline tables together)";
}

Status CheckTomlDepth(std::string_view text, size_t max_depth) {
  TextPosition at = FindTomlTooDeep(text, max_depth);
  if (at.line == 0) return OkStatus();
  return InvalidArgumentError(std::to_string(at.line) + ":" + std::to_string(at.column) + ": " +
                              TomlTooDeepMessage(max_depth));
}

TextPosition FindTomlTooDeep(std::string_view text, size_t max_depth) {
  enum class Mode { kLineStart, kKey, kValue, kAfterValue };
  struct Open {
    bool array;    // an array, or an inline table
    size_t level;  // the level of the array or table itself
  };
  std::vector<Open> open;
  Mode mode = Mode::kLineStart;
  size_t table_level = 0;  // the level of the table the last header opened
  size_t key_base = 0;     // the level of the table a key belongs to
  size_t parts = 0;        // parts of the key read so far
  size_t value_level = 0;  // the level of the value about to start

  auto too_deep = [&](size_t at) {
    TextPosition p{1, 1};
    size_t line_start = 0;
    for (size_t k = 0; k < at && k < text.size(); ++k) {
      if (text[k] == '\n') {
        ++p.line;
        line_start = k + 1;
      }
    }
    p.column = at - line_start + 1;
    return p;
  };
  auto start_key = [&](size_t base) {
    mode = Mode::kKey;
    key_base = base;
    parts = 1;
  };
  // After a ',' or a newline inside an array or inline table, or after a value at top level.
  auto next_item = [&]() {
    if (open.empty()) return;
    if (open.back().array) {
      mode = Mode::kValue;
      value_level = open.back().level + 1;
    } else {
      start_key(open.back().level);
    }
  };

  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '#') {  // a comment: to the end of the line
      while (i < text.size() && text[i] != '\n') ++i;
      continue;
    }
    switch (mode) {
      case Mode::kLineStart:
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
          ++i;
        } else if (c == '[') {
          // A table header [a.b] or an array of tables [[a.b]].
          const bool array_of_tables = i + 1 < text.size() && text[i + 1] == '[';
          i += array_of_tables ? 2 : 1;
          size_t level = array_of_tables ? 2 : 1;
          if (level > max_depth) return too_deep(i - 1);
          while (i < text.size() && text[i] != ']' && text[i] != '\n' && text[i] != '#') {
            if (text[i] == '"' || text[i] == '\'') {
              i = SkipTomlString(text, i);
              continue;
            }
            if (text[i] == '.' && ++level > max_depth) return too_deep(i);
            ++i;
          }
          table_level = level;
          mode = Mode::kAfterValue;
        } else {
          start_key(table_level);
        }
        break;
      case Mode::kKey:
        if (c == '"' || c == '\'') {
          i = SkipTomlString(text, i);
          break;
        }
        if (c == '.') {
          if (key_base + ++parts > max_depth) return too_deep(i);
        } else if (c == '=') {
          if (key_base + parts > max_depth) return too_deep(i);
          mode = Mode::kValue;
          value_level = key_base + parts;
        } else if (c == '}' && !open.empty() && !open.back().array) {
          open.pop_back();  // {} or a trailing comma
          mode = Mode::kAfterValue;
        } else if (c == '\n' && open.empty()) {
          mode = Mode::kLineStart;  // a key without a value: the parser refuses it
        }
        ++i;
        break;
      case Mode::kValue:
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
          if (c == '\n' && open.empty()) mode = Mode::kLineStart;
          ++i;
          break;
        }
        if (c == ']' && !open.empty() && open.back().array) {  // [] or a trailing comma
          open.pop_back();
          mode = Mode::kAfterValue;
          ++i;
          break;
        }
        if (value_level > max_depth) return too_deep(i);
        if (c == '[') {
          open.push_back({true, value_level});
          value_level += 1;
          ++i;
        } else if (c == '{') {
          open.push_back({false, value_level});
          start_key(value_level);
          ++i;
        } else if (c == '"' || c == '\'') {
          i = SkipTomlString(text, i);
          mode = Mode::kAfterValue;
        } else {
          mode = Mode::kAfterValue;  // a number, date, boolean, inf or nan
          ++i;
        }
        break;
      case Mode::kAfterValue:
        if (c == ',') {
          next_item();
        } else if (c == ']' && !open.empty() && open.back().array) {
          open.pop_back();
        } else if (c == '}' && !open.empty() && !open.back().array) {
          open.pop_back();
        } else if (c == '\n' && open.empty()) {
          mode = Mode::kLineStart;
        } else if (c == '"' || c == '\'') {
          i = SkipTomlString(text, i);  // malformed; its content is no structure
          break;
        } else if (c == '[' || c == '{') {
          // Malformed (a value after a value); count it all the same.
          mode = Mode::kValue;
          value_level = open.empty() ? table_level + 1 : open.back().level + 1;
          break;
        }
        ++i;
        break;
    }
  }
  return TextPosition{};
}

}  // namespace sd2
