#include "worker/train/text_labels.h"

#include <toml++/toml.h>

#include "common/bounded_toml.h"
#include "worker/train/text_labels_data.h"

namespace sd2::worker::train {

StatusOr<TypeLabels> ParseTypeLabels(const std::string& toml_text) {
  static const char* kTypes[5] = {"REAL", "FS", "FR", "EFS", "FE"};
  TypeLabels out;
  try {
    toml::table t = sd2::ParseTomlBounded(toml_text);
    for (int i = 0; i < 5; ++i) {
      const toml::array* arr = t[kTypes[i]].as_array();
      if (!arr || arr->empty())
        return InvalidArgumentError(std::string("text labels: missing or empty array ") +
                                    kTypes[i]);
      for (const auto& v : *arr) {
        auto s = v.value<std::string>();
        if (!s) return InvalidArgumentError(std::string("text labels: non-string in ") + kTypes[i]);
        out[size_t(i)].push_back(*s);
      }
    }
  } catch (const toml::parse_error& e) {
    return InvalidArgumentError(std::string("text labels: ") + std::string(e.description()));
  }
  return out;
}

StatusOr<TypeLabels> PaperTypeLabels() {
  static const StatusOr<TypeLabels> labels = ParseTypeLabels(kTextLabelsToml);
  return labels;
}

}  // namespace sd2::worker::train
