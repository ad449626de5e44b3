// Helpers shared by the sweeps/ sources (not part of the public API): method tables, ${VAR}
// substitution and positioned error lists.
//
//   sd2::sweeps::internal::ErrorList errors("a.toml");
//   errors.Add({3, 7}, "'seeds[1]' must be >= 0, got -1");
//   if (!errors.empty()) return errors.ToStatus();  // "a.toml:3:7: 'seeds[1]' must be ..."
#ifndef SD2_SWEEPS_INTERNAL_H_
#define SD2_SWEEPS_INTERNAL_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "sweeps/sweep.h"

namespace sd2::sweeps::internal {

// Collects "FILE:LINE:COL: message" errors; ToStatus sorts them by position.
class ErrorList {
 public:
  explicit ErrorList(std::string file) : file_(std::move(file)) {}
  void Add(SourcePos pos, std::string message);
  bool empty() const { return errors_.empty(); }
  size_t size() const { return errors_.size(); }
  Status ToStatus() const;
  const std::string& file() const { return file_; }

 private:
  struct Entry {
    SourcePos pos;
    std::string message;
  };
  std::string file_;
  std::vector<Entry> errors_;
};

// The model names a method accepts; the first is its default. Empty for unknown methods.
const std::vector<std::string>& ModelsFor(const std::string& method);
bool IsKnownMethod(const std::string& method);

// Checks the ${NAME} syntax of `text` (NAME = [A-Za-z_][A-Za-z0-9_]*); returns an error
// message or "".
std::string CheckVarSyntax(const std::string& text);
// Replaces every ${NAME}; an undefined NAME is added to `errors` at text.pos.
std::optional<std::string> Substitute(const Text& text,
                                      const std::map<std::string, std::string>& vars,
                                      ErrorList* errors);

// Messages for bad enumerated filter values ("" when fine): split is train|val|test, a type is
// REAL|FS|FR|EFS|FE.
std::string SplitError(const std::string& split);
std::string TypeError(const std::string& type);
// "" for FS FR EFS FE (a DF40 method's type), else a message.
std::string MethodTypeError(const std::string& type);

}  // namespace sd2::sweeps::internal

#endif  // SD2_SWEEPS_INTERNAL_H_
