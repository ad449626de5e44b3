#include "worker/data/scales.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <tuple>

#include "worker/data/random.h"

namespace sd2::worker::data {

std::vector<size_t> NestedSubset(const std::vector<Record>& records, int64_t scale, uint64_t seed) {
  std::vector<size_t> all(records.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  if (scale <= 0 || static_cast<size_t>(scale) >= records.size()) return all;

  struct Unit {
    std::vector<size_t> members;
    uint64_t hash = 0;
    double position = 0;
  };
  // unit key -> unit; stratum -> unit keys.
  using UnitKey = std::tuple<std::string, std::string, std::string, std::string>;
  std::map<UnitKey, Unit> units;
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    units[UnitKey(r.dataset, r.subset, r.type, r.video)].members.push_back(i);
  }
  std::map<std::pair<std::string, std::string>, std::vector<Unit*>> strata;
  for (auto& [key, unit] : units) {
    const auto& [dataset, subset, type, video] = key;
    std::string k = dataset;
    k += '\x1f';
    k += subset;
    k += '\x1f';
    k += type;
    k += '\x1f';
    k += video;
    unit.hash = HashString(k, seed);
    strata[{dataset, type}].push_back(&unit);
  }
  std::vector<Unit*> order;
  for (auto& [stratum, list] : strata) {
    std::sort(list.begin(), list.end(), [](const Unit* a, const Unit* b) {
      return a->hash != b->hash ? a->hash < b->hash : a->members.front() < b->members.front();
    });
    double total = 0;
    for (const Unit* u : list) total += static_cast<double>(u->members.size());
    double before = 0;
    for (Unit* u : list) {
      double size = static_cast<double>(u->members.size());
      u->position = (before + size / 2) / total;
      before += size;
      order.push_back(u);
    }
  }
  std::sort(order.begin(), order.end(), [](const Unit* a, const Unit* b) {
    if (a->position != b->position) return a->position < b->position;
    if (a->hash != b->hash) return a->hash < b->hash;
    return a->members.front() < b->members.front();
  });
  std::vector<size_t> out;
  for (const Unit* u : order) {
    if (static_cast<int64_t>(out.size()) >= scale) break;
    out.insert(out.end(), u->members.begin(), u->members.end());
  }
  std::sort(out.begin(), out.end());
  return out;
}

StatusOr<int64_t> ParseScale(const std::string& text) {
  if (text.empty()) return InvalidArgumentError("empty scale");
  std::string num = text;
  double mult = 1;
  char last = static_cast<char>(std::toupper(static_cast<unsigned char>(num.back())));
  if (last == 'K' || last == 'M' || last == 'G') {
    mult = last == 'K' ? 1e3 : last == 'M' ? 1e6 : 1e9;
    num.pop_back();
  }
  if (num.empty() || num.find_first_not_of("0123456789.") != std::string::npos ||
      std::count(num.begin(), num.end(), '.') > 1) {
    return InvalidArgumentError("invalid scale \"" + text +
                                "\" (expected a count such as 3000, 100K or 1M)");
  }
  double v = std::stod(num) * mult;
  double r = std::round(v);
  if (std::fabs(v - r) > 1e-6 || r <= 0 || r > 9e15) {
    return InvalidArgumentError("invalid scale \"" + text + "\" (must be a positive whole count)");
  }
  return static_cast<int64_t>(r);
}

std::string FormatScale(int64_t scale) {
  if (scale >= 1000000 && scale % 1000000 == 0) return std::to_string(scale / 1000000) + "M";
  if (scale >= 1000 && scale % 1000 == 0) return std::to_string(scale / 1000) + "K";
  return std::to_string(scale);
}

}  // namespace sd2::worker::data
