// Small file helpers with Status results. WriteFileAtomic writes a temporary file in the same
// directory, fsyncs it and renames it over the target, so readers see the old or the new
// content and never a torn file.
#ifndef SD2_COMMON_FILE_UTIL_H_
#define SD2_COMMON_FILE_UTIL_H_

#include <string>

#include "common/status.h"

namespace sd2 {

StatusOr<std::string> ReadFile(const std::string& path);
Status WriteFileAtomic(const std::string& path, const std::string& content);
// mkdir -p.
Status MakeDirs(const std::string& path);
bool PathExists(const std::string& path);

}  // namespace sd2

#endif  // SD2_COMMON_FILE_UTIL_H_
