// Nested training subsets ("scales"): the subset of size s1 is contained in the subset of size
// s2 > s1 drawn with the same seed, stratified by (dataset, type), with whole videos kept
// together.
//
// The rule (also in docs/data.md): records are grouped into units = (dataset, subset, type,
// video). Within each stratum (dataset, type) the units are ordered by a seeded hash of their
// key; a unit's position is the midpoint of its images' cumulative share of the stratum,
// (images before it + size/2) / stratum size, in [0, 1). All units of all strata are then
// merged in order of that position (ties by hash), and the subset of size s is the shortest
// prefix of the merged order holding at least s images. A prefix of a fixed order is nested by
// construction, and every stratum contributes in proportion to its size up to one video.
//
//   std::vector<size_t> idx = NestedSubset(records, 100000, /*seed=*/0);
//   SD2_ASSIGN_OR_RETURN(int64_t s, ParseScale("1M"));
#ifndef SD2_WORKER_DATA_SCALES_H_
#define SD2_WORKER_DATA_SCALES_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/data/manifest.h"

namespace sd2::worker::data {

// Indices into `records` (ascending) of the nested subset of `scale` images (plus at most one
// partial video's worth). scale <= 0 or >= records.size() returns every index.
std::vector<size_t> NestedSubset(const std::vector<Record>& records, int64_t scale, uint64_t seed);

// "100K" -> 100000, "1M" -> 1000000, "2.5k" -> 2500, "3000" -> 3000 (InvalidArgument
// otherwise).
StatusOr<int64_t> ParseScale(const std::string& text);
// 100000 -> "100K", 1000000 -> "1M", 2500 -> "2500".
std::string FormatScale(int64_t scale);

}  // namespace sd2::worker::data

#endif  // SD2_WORKER_DATA_SCALES_H_
