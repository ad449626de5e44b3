#include "worker/data/stats.h"

#include <limits.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <sstream>
#include <string_view>
#include <thread>

#include "worker/data/image.h"

namespace sd2::worker::data {

std::vector<DatasetStats> ComputeStats(const std::vector<Record>& records) {
  std::vector<DatasetStats> rows;
  std::map<std::string, size_t> index;
  DatasetStats overall;
  overall.dataset = "Overall";
  for (const Record& r : records) {
    auto [it, inserted] = index.emplace(r.dataset, rows.size());
    if (inserted) {
      rows.emplace_back();
      rows.back().dataset = r.dataset;
    }
    for (DatasetStats* s : {&rows[it->second], &overall}) {
      const bool real = r.type == "REAL";
      (real ? s->real : s->fake)++;
      s->total++;
      s->per_split[r.split]++;
      s->per_type[r.type]++;
    }
  }
  rows.push_back(overall);
  for (DatasetStats& s : rows) {
    for (int t = 1; t < 5; ++t) {
      if (s.per_type.count(kTypeNames[t])) s.types.push_back(kTypeNames[t]);
    }
  }
  return rows;
}

std::string RenderStats(const std::vector<DatasetStats>& rows) {
  std::vector<std::string> splits;
  for (const DatasetStats& s : rows) {
    for (const auto& [split, n] : s.per_split) {
      if (std::find(splits.begin(), splits.end(), split) == splits.end()) splits.push_back(split);
    }
  }
  // Conventional order first.
  auto rank = [](const std::string& s) {
    return s == "train" ? 0 : s == "val" ? 1 : s == "test" ? 2 : 3;
  };
  std::stable_sort(splits.begin(), splits.end(), [&](const std::string& a, const std::string& b) {
    return rank(a) != rank(b) ? rank(a) < rank(b) : a < b;
  });
  std::vector<std::vector<std::string>> table;
  std::vector<std::string> header = {"Dataset", "Types", "Real", "Fake", "Total"};
  for (const std::string& sp : splits) header.push_back(sp);
  table.push_back(header);
  for (const DatasetStats& s : rows) {
    std::string types;
    for (const std::string& t : s.types) types += (types.empty() ? "" : ", ") + t;
    std::vector<std::string> row = {s.dataset, types.empty() ? "-" : types,
                                    s.real ? std::to_string(s.real) : "-",
                                    s.fake ? std::to_string(s.fake) : "-", std::to_string(s.total)};
    for (const std::string& sp : splits) {
      auto it = s.per_split.find(sp);
      row.push_back(it == s.per_split.end() ? "0" : std::to_string(it->second));
    }
    table.push_back(row);
  }
  std::vector<size_t> width(header.size(), 0);
  for (const auto& row : table) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::ostringstream os;
  for (size_t r = 0; r < table.size(); ++r) {
    os << "|";
    for (size_t i = 0; i < table[r].size(); ++i) {
      const std::string& cell = table[r][i];
      const bool left = i < 2;
      std::string pad(width[i] - cell.size(), ' ');
      os << " " << (left ? cell + pad : pad + cell) << " |";
    }
    os << "\n";
    if (r == 0) {
      os << "|";
      for (size_t i = 0; i < width.size(); ++i) {
        os << (i < 2 ? " " + std::string(width[i], '-') + " |"
                     : " " + std::string(width[i] - 1, '-') + ": |");
      }
      os << "\n";
    }
  }
  return os.str();
}

std::vector<BadImage> VerifyImages(const std::vector<Record>& records, const std::string& root,
                                   int threads,
                                   const std::function<void(size_t, size_t)>& progress) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::string prefix = root;
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  // A relative path that a symlink leads out of the resolved root is reported, as the loader
  // refuses it.
  std::string real_root;
  if (char buf[PATH_MAX]; ::realpath(prefix.empty() ? "." : prefix.c_str(), buf)) {
    real_root = std::string(buf) + (std::string_view(buf) == "/" ? "" : "/");
  }
  std::vector<std::string> reason(records.size());
  std::atomic<size_t> next{0}, done{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < records.size();) {
      const std::string& p = records[i].path;
      const std::string file = !p.empty() && p.front() == '/' ? p : prefix + p;
      char buf[PATH_MAX];
      if (!real_root.empty() && (p.empty() || p.front() != '/') && ::realpath(file.c_str(), buf) &&
          std::string_view(buf).substr(0, real_root.size()) != real_root) {
        reason[i] = "resolves to " + std::string(buf) + ", outside the root " + real_root;
      } else if (StatusOr<Image> img = LoadImage(file); !img.ok()) {
        reason[i] = img.status().ToString();
      }
      done.fetch_add(1);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(work);
  if (progress) {
    while (done.load() < records.size()) {
      progress(done.load(), records.size());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    progress(records.size(), records.size());
  }
  for (std::thread& t : pool) t.join();
  std::vector<BadImage> bad;
  for (size_t i = 0; i < records.size(); ++i) {
    if (!reason[i].empty()) bad.push_back({records[i].path, reason[i]});
  }
  return bad;
}

}  // namespace sd2::worker::data
