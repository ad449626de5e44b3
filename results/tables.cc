#include "results/tables.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <set>

namespace sd2::results {
namespace {

constexpr const char* kCheck = "\u2713";  // ✓
constexpr const char* kDash = "\u2013";   // –

struct Accum {
  double sum = 0;
  int count = 0;
};

double Round2(double v) { return std::round(v * 100.0) / 100.0; }

bool AllSwitchesOn(const ResultGroup& g) {
  for (const auto& [k, v] : g.ablation) {
    if (!v) return false;
  }
  return true;
}

// The most seeds wins, then the newest, then the smallest config key (deterministic).
const ResultGroup* Best(const std::vector<const ResultGroup*>& c) {
  const ResultGroup* best = nullptr;
  for (const ResultGroup* g : c) {
    if (!best || g->seeds > best->seeds ||
        (g->seeds == best->seeds &&
         (g->newest > best->newest ||
          (g->newest == best->newest && g->config_key < best->config_key)))) {
      best = g;
    }
  }
  return best;
}

// Picks the group for one row among `c`: the largest scale (unless `scale` is given), then Best.
// Adds a note when other groups at that scale were passed over.
const ResultGroup* PickRow(std::vector<const ResultGroup*> c, const std::string& row,
                           std::optional<int64_t> scale, std::vector<std::string>* notes) {
  if (c.empty()) return nullptr;
  int64_t s = 0;
  if (scale) {
    s = *scale;
  } else {
    for (const ResultGroup* g : c) s = std::max(s, g->scale);
  }
  std::vector<const ResultGroup*> at;
  for (const ResultGroup* g : c) {
    if (g->scale == s) at.push_back(g);
  }
  if (at.empty()) return nullptr;
  const ResultGroup* best = Best(at);
  if (at.size() > 1) {
    notes->push_back(row + " (" + ScaleLabel(s) + "): " + std::to_string(at.size()) +
                     " configurations fit this row; shown: the one with the most seeds (" +
                     std::to_string(best->seeds) + "), then the newest");
  }
  return best;
}

std::optional<double> Percent(const std::map<std::string, double>& m, const std::string& key) {
  auto it = m.find(key);
  if (it == m.end()) return std::nullopt;
  return it->second * 100.0;
}

// Plain mean over `columns` of a group's metric (percent); partial when some are missing.
Cell MeanCell(const ResultGroup* g, const std::map<std::string, double> ResultGroup::*metric,
              const std::vector<std::string>& columns) {
  Cell c;
  if (!g || columns.empty()) return c;
  double sum = 0;
  size_t n = 0;
  for (const std::string& col : columns) {
    if (auto v = Percent(g->*metric, col)) {
      sum += *v;
      ++n;
    }
  }
  if (n > 0) {
    c.ours = sum / static_cast<double>(n);
    c.partial = n < columns.size();
  }
  return c;
}

void MarkBest(Table* t) {
  for (size_t col = 0; col < t->columns.size(); ++col) {
    std::optional<double> best;
    for (const TableRow& r : t->rows) {
      if (r.cells[col].ours) best = std::max(best.value_or(-1e300), Round2(*r.cells[col].ours));
    }
    if (!best) continue;
    for (TableRow& r : t->rows) {
      if (r.cells[col].ours && Round2(*r.cells[col].ours) == *best) r.cells[col].best = true;
    }
  }
}

void PartialNote(Table* t) {
  for (const TableRow& r : t->rows) {
    for (const Cell& c : r.cells) {
      if (c.partial) {
        t->notes.push_back(
            "* mean over the available columns only (some eval sets missing); "
            "no delta is shown for it");
        return;
      }
    }
  }
}

std::vector<const ResultGroup*> MainCandidates(const std::vector<ResultGroup>& groups,
                                               const std::string& method) {
  std::vector<const ResultGroup*> c;
  for (const ResultGroup& g : groups) {
    if (g.is_probe || g.method != method) continue;
    if (method == "sd2" && !AllSwitchesOn(g)) continue;
    c.push_back(&g);
  }
  return c;
}

// Tables 2, 3, 7, 8: methods x eval sets.
Table MethodTable(int number, const std::vector<ResultGroup>& groups, const PaperData& paper) {
  Table t;
  t.number = number;
  const bool auc = number == 2 || number == 3;
  const bool intra = number == 2 || number == 7;
  const PaperTable* pt = paper.Table(number);
  t.metric = pt ? pt->metric : (auc ? "AUC" : "ACC");
  t.caption = pt ? pt->caption
                 : std::string(intra ? "Intra-domain" : "Cross-domain") +
                       " detection performance (" + t.metric + ").";
  if (pt) t.columns = pt->columns;
  const size_t paper_columns = t.columns.size();
  if (intra) {
    // Our eval sets that no paper table names go to the intra-domain tables.
    std::set<std::string> named;
    for (const auto& [n, p] : paper.tables) named.insert(p.columns.begin(), p.columns.end());
    std::set<std::string> extra;
    for (const ResultGroup& g : groups) {
      const auto& order = PaperMethodOrder();
      if (g.is_probe || std::find(order.begin(), order.end(), g.method) == order.end()) continue;
      for (const auto& [set, v] : g.acc) {
        if (!named.count(set)) extra.insert(set);
      }
    }
    t.columns.insert(t.columns.end(), extra.begin(), extra.end());
    if (!extra.empty()) {
      t.notes.push_back("columns after " +
                        (paper_columns ? t.columns[paper_columns - 1] : std::string("the start")) +
                        " are eval sets the paper does not have");
    }
  }
  const std::vector<std::string> value_columns = t.columns;
  const std::string mean_name = pt && !pt->summary_key.empty() ? pt->summary_key : "m" + t.metric;
  t.columns.push_back(mean_name);
  t.has_mean = true;
  const auto metric = auc ? &ResultGroup::auc : &ResultGroup::acc;

  std::set<int64_t> scales;
  for (const std::string& m : PaperMethodOrder()) {
    const std::string name = PaperMethodName(m);
    const ResultGroup* g = PickRow(MainCandidates(groups, m), name, std::nullopt, &t.notes);
    const PaperRow* pr = pt ? pt->Row(name) : nullptr;
    TableRow row;
    row.label = name;
    row.seeds = g ? g->seeds : 0;
    if (g) scales.insert(g->scale);
    for (size_t i = 0; i < value_columns.size(); ++i) {
      Cell c;
      if (g) c.ours = Percent(g->*metric, value_columns[i]);
      if (pr && i < paper_columns) {
        auto it = pr->values.find(value_columns[i]);
        if (it != pr->values.end()) c.paper = it->second;
      }
      row.cells.push_back(c);
    }
    Cell mean = MeanCell(g, metric, value_columns);
    if (pr && value_columns.size() == paper_columns) mean.paper = pr->summary;
    row.cells.push_back(mean);
    t.rows.push_back(std::move(row));
  }
  if (scales.size() > 1) {
    std::string s;
    for (int64_t v : scales) s += (s.empty() ? "" : ", ") + ScaleLabel(v);
    t.notes.push_back("rows come from different training scales (" + s +
                      "): each method at its largest");
  } else if (scales.size() == 1) {
    t.notes.push_back("training scale: " + ScaleLabel(*scales.begin()) + " images");
  }
  MarkBest(&t);
  PartialNote(&t);
  return t;
}

// Table 4: GenImage linear probes and UnivFD, ACC.
Table ProbeTable(const std::vector<ResultGroup>& groups, const PaperData& paper) {
  Table t;
  t.number = 4;
  const PaperTable* pt = paper.Table(4);
  t.metric = "ACC";
  t.caption = pt ? pt->caption : "Cross-model evaluation performance (ACC) on GenImage.";
  if (pt) t.columns = pt->columns;
  const std::vector<std::string> value_columns = t.columns;
  t.columns.push_back(pt && !pt->summary_key.empty() ? pt->summary_key : "mACC");
  t.has_mean = true;

  std::map<std::string, std::vector<const ResultGroup*>> by_row;
  for (const ResultGroup& g : groups) {
    if (g.is_probe) {
      by_row[g.probe_encoder.empty() ? g.method : g.probe_encoder].push_back(&g);
    } else if (g.method == "univfd") {
      by_row["univfd"].push_back(&g);
    }
  }
  struct Keyed {
    size_t order;
    std::string label;
    const ResultGroup* g;
  };
  std::vector<Keyed> rows;
  for (const auto& [id, c] : by_row) {
    std::string label = PaperMethodName(id).empty() ? id : PaperMethodName(id);
    size_t order = 1000;
    if (pt) {
      for (size_t i = 0; i < pt->rows.size(); ++i) {
        if (pt->rows[i].method == label) order = i;
      }
    }
    rows.push_back({order, label, PickRow(c, label, std::nullopt, &t.notes)});
  }
  std::sort(rows.begin(), rows.end(), [](const Keyed& a, const Keyed& b) {
    return a.order != b.order ? a.order < b.order : a.label < b.label;
  });
  for (const Keyed& k : rows) {
    TableRow row;
    row.label = k.label;
    row.seeds = k.g->seeds;
    const PaperRow* pr = pt ? pt->Row(k.label) : nullptr;
    for (const std::string& col : value_columns) {
      Cell c;
      c.ours = Percent(k.g->acc, col);
      if (pr) {
        auto it = pr->values.find(col);
        if (it != pr->values.end()) c.paper = it->second;
      }
      row.cells.push_back(c);
    }
    Cell mean = MeanCell(k.g, &ResultGroup::acc, value_columns);
    if (pr) mean.paper = pr->summary;
    row.cells.push_back(mean);
    t.rows.push_back(std::move(row));
  }
  t.notes.push_back(
      "rows: linear probes on frozen encoders (named by the encoder's method) and "
      "UnivFD; the paper's other rows are copied from other papers and not rerun");
  MarkBest(&t);
  PartialNote(&t);
  return t;
}

std::vector<std::string> CrossColumns(const PaperData& paper) {
  const PaperTable* t3 = paper.Table(3);
  return t3 ? t3->columns : std::vector<std::string>{};
}

// Table 5: the SD2 ablation.
Table AblationTable(const std::vector<ResultGroup>& groups, const PaperData& paper) {
  Table t;
  t.number = 5;
  const PaperTable* pt = paper.Table(5);
  t.metric = "AUC";
  t.caption = pt ? pt->caption : "Ablation studies analyzing the impact of key components.";
  t.switch_columns = {"L_C", "CLAM", "L_D-Face", "L_D-Env"};
  t.columns = {"mAUC"};
  t.has_mean = true;
  const std::vector<std::string> cross = CrossColumns(paper);
  t.notes.push_back("mAUC: plain mean of AUC over Table 3's " + std::to_string(cross.size()) +
                    " cross-domain columns (the paper's full-model 87.79 equals Table 3's SD2 "
                    "mAUC over those columns; its caption's \"four datasets\" counts DF40-Test "
                    "once)");
  std::vector<const ResultGroup*> sd2;
  int64_t scale = 0;
  for (const ResultGroup& g : groups) {
    if (!g.is_probe && g.method == "sd2") {
      sd2.push_back(&g);
      scale = std::max(scale, g.scale);
    }
  }
  using Combo = std::array<bool, 3>;  // clam, ld_face, ld_env
  auto combo_of = [](const ResultGroup& g) {
    auto get = [&](const char* k) {
      auto it = g.ablation.find(k);
      return it == g.ablation.end() || it->second;
    };
    return Combo{get("clam"), get("ld_face"), get("ld_env")};
  };
  std::map<Combo, std::vector<const ResultGroup*>> by_combo;
  for (const ResultGroup* g : sd2) {
    if (g->scale == scale) by_combo[combo_of(*g)].push_back(g);
  }
  std::vector<std::pair<Combo, const PaperRow*>> order;
  if (pt) {
    for (const PaperRow& r : pt->rows) {
      auto sw = [&](const char* k) {
        auto it = r.switches.find(k);
        return it != r.switches.end() && it->second;
      };
      order.push_back({Combo{sw("CLAM"), sw("L_D_Face"), sw("L_D_Env")}, &r});
    }
  }
  for (const auto& [combo, c] : by_combo) {
    bool seen = false;
    for (const auto& o : order) seen = seen || o.first == combo;
    if (!seen) order.push_back({combo, nullptr});
  }
  for (const auto& [combo, pr] : order) {
    TableRow row;
    row.switches = {kCheck, combo[0] ? kCheck : kDash, combo[1] ? kCheck : kDash,
                    combo[2] ? kCheck : kDash};
    row.label = "SD2";
    const ResultGroup* g = nullptr;
    auto it = by_combo.find(combo);
    if (it != by_combo.end()) {
      std::string name = std::string("SD2 [clam=") + (combo[0] ? "on" : "off") +
                         " ld_face=" + (combo[1] ? "on" : "off") +
                         " ld_env=" + (combo[2] ? "on" : "off") + "]";
      g = PickRow(it->second, name, scale, &t.notes);
    }
    row.seeds = g ? g->seeds : 0;
    Cell c = MeanCell(g, &ResultGroup::auc, cross);
    if (pr) c.paper = pr->summary;
    row.cells.push_back(c);
    t.rows.push_back(std::move(row));
  }
  if (!sd2.empty()) t.notes.push_back("training scale: " + ScaleLabel(scale) + " images");
  MarkBest(&t);
  PartialNote(&t);
  return t;
}

std::optional<std::string> PaperScaleColumn(int64_t s) {
  if (s == 100000) return "100K";
  if (s == 1000000) return "1M";
  if (s >= 3000000 && s <= 3600000) return "3M";  // "3M" is the full 3,584,280-image set
  return std::nullopt;
}

// Demo runs shrink the paper's scales by one factor (e.g. 2K, 20K, 60K). Finds the factor that
// maps every one of `scales` onto a paper scale (within 1%), trying the smallest scale as 100K,
// then as 1M, then as 3M; returns the paper column of each scale.
std::optional<std::vector<std::string>> MatchByRatio(const std::vector<int64_t>& scales) {
  const std::vector<std::pair<double, std::string>> kPaper = {
      {1e5, "100K"}, {1e6, "1M"}, {3e6, "3M"}};
  if (scales.empty()) return std::nullopt;
  for (const auto& anchor : kPaper) {
    const double factor = static_cast<double>(scales.front()) / anchor.first;
    std::vector<std::string> cols;
    for (int64_t s : scales) {
      for (const auto& p : kPaper) {
        if (std::fabs(static_cast<double>(s) / factor - p.first) <= 0.01 * p.first) {
          cols.push_back(p.second);
          break;
        }
      }
    }
    if (cols.size() == scales.size()) return cols;
  }
  return std::nullopt;
}

// Table 6: mAUC by training scale.
Table ScaleTable(const std::vector<ResultGroup>& groups, const PaperData& paper) {
  Table t;
  t.number = 6;
  const PaperTable* pt = paper.Table(6);
  t.metric = "AUC";
  t.caption = pt ? pt->caption : "Performance (mAUC) across training data scales.";
  const std::vector<std::string> cross = CrossColumns(paper);
  std::set<int64_t> scale_set;
  for (const std::string& m : PaperMethodOrder()) {
    for (const ResultGroup* g : MainCandidates(groups, m)) scale_set.insert(g->scale);
  }
  std::vector<int64_t> scales(scale_set.begin(), scale_set.end());
  std::vector<std::optional<std::string>> paper_col(scales.size());
  bool all_paper = !scales.empty();
  for (int64_t s : scales) all_paper = all_paper && PaperScaleColumn(s).has_value();
  const std::vector<std::string> pcols =
      pt ? pt->columns : std::vector<std::string>{"100K", "1M", "3M"};
  if (scales.empty()) {
    // Nothing ran: show the paper's columns.
    const std::vector<int64_t> kPaperScales = {100000, 1000000, 3000000};
    for (size_t i = 0; i < pcols.size() && i < kPaperScales.size(); ++i) {
      scales.push_back(kPaperScales[i]);
      paper_col.push_back(pcols[i]);
    }
  } else if (all_paper) {
    for (size_t i = 0; i < scales.size(); ++i) paper_col[i] = PaperScaleColumn(scales[i]);
  } else if (auto by_ratio = MatchByRatio(scales)) {
    std::string map;
    for (size_t i = 0; i < scales.size(); ++i) {
      paper_col[i] = (*by_ratio)[i];
      map += (map.empty() ? "" : ", ") + ScaleLabel(scales[i]) + " -> " + (*by_ratio)[i];
    }
    t.notes.push_back(
        "our scales are not the paper's; they stand for the paper's scales with "
        "the same ratios (" +
        map + ")");
  } else {
    t.notes.push_back(
        "our scales are not the paper's and not in its ratios (100K : 1M : 3M); "
        "no paper values");
  }
  for (size_t i = 0; i < scales.size(); ++i) {
    t.columns.push_back(ScaleLabel(scales[i]));
    t.column_scales.push_back(static_cast<double>(scales[i]));
  }
  t.notes.push_back("values: mAUC, the plain mean of AUC over Table 3's " +
                    std::to_string(cross.size()) + " cross-domain columns (Sec. 5.3)");
  for (const std::string& m : PaperMethodOrder()) {
    const std::string name = PaperMethodName(m);
    const PaperRow* pr = pt ? pt->Row(name) : nullptr;
    TableRow row;
    row.label = name;
    std::vector<const ResultGroup*> cands = MainCandidates(groups, m);
    for (size_t i = 0; i < scales.size(); ++i) {
      const ResultGroup* g = PickRow(cands, name, scales[i], &t.notes);
      Cell c = MeanCell(g, &ResultGroup::auc, cross);
      if (g) row.seeds = std::max(row.seeds, g->seeds);
      if (pr && paper_col[i]) {
        auto it = pr->values.find(*paper_col[i]);
        if (it != pr->values.end()) c.paper = it->second;
      }
      row.cells.push_back(c);
    }
    t.rows.push_back(std::move(row));
  }
  MarkBest(&t);
  PartialNote(&t);
  return t;
}

}  // namespace

std::vector<ResultGroup> GroupSeeds(const std::vector<TrialResult>& trials) {
  struct Acc {
    ResultGroup g;
    std::map<std::string, Accum> auc, acc;
  };
  std::map<std::string, Acc> groups;
  for (const TrialResult& t : trials) {
    nlohmann::json key = t.config;
    key.erase("seed");
    const bool is_probe = t.config.contains("probe") && t.config["probe"].is_object();
    if (is_probe) key["probe"].erase("of");
    const std::string k = key.dump();
    Acc& a = groups[k];
    if (a.g.seeds == 0) {
      a.g.config_key = k;
      a.g.method = t.method;
      a.g.scale = t.scale;
      a.g.is_probe = is_probe;
      if (is_probe) {
        const auto& p = t.config["probe"];
        if (p.contains("encoder_method") && p["encoder_method"].is_string()) {
          a.g.probe_encoder = p["encoder_method"].get<std::string>();
        }
      }
      if (t.method == "sd2") {
        for (const char* s : {"clam", "ld_face", "ld_env"}) a.g.ablation[s] = true;
      }
      if (t.config.contains("ablation") && t.config["ablation"].is_object()) {
        for (const auto& [name, v] : t.config["ablation"].items()) {
          if (v.is_boolean()) a.g.ablation[name] = v.get<bool>();
        }
      }
    }
    ++a.g.seeds;
    a.g.newest = std::max(a.g.newest, t.ended_at);
    for (const auto& [set, m] : t.evals) {
      if (m.auc) {
        a.auc[set].sum += *m.auc;
        ++a.auc[set].count;
      }
      a.acc[set].sum += m.acc;
      ++a.acc[set].count;
    }
  }
  std::vector<ResultGroup> out;
  for (auto& [k, a] : groups) {
    for (const auto& [set, s] : a.auc) a.g.auc[set] = s.sum / s.count;
    for (const auto& [set, s] : a.acc) a.g.acc[set] = s.sum / s.count;
    out.push_back(std::move(a.g));
  }
  return out;
}

std::string ScaleLabel(int64_t scale) {
  char buf[32];
  auto fmt = [&](double v, const char* unit) {
    if (std::fabs(v - std::round(v)) < 1e-9) {
      std::snprintf(buf, sizeof buf, "%lld%s", static_cast<long long>(std::llround(v)), unit);
    } else {
      std::snprintf(buf, sizeof buf, "%.1f%s", v, unit);
    }
    return std::string(buf);
  };
  if (scale >= 1000000) return fmt(static_cast<double>(scale) / 1e6, "M");
  if (scale >= 1000) return fmt(static_cast<double>(scale) / 1e3, "K");
  return std::to_string(scale);
}

Table BuildTable(int number, const std::vector<ResultGroup>& groups, const PaperData& paper) {
  switch (number) {
    case 4:
      return ProbeTable(groups, paper);
    case 5:
      return AblationTable(groups, paper);
    case 6:
      return ScaleTable(groups, paper);
    default:
      return MethodTable(number, groups, paper);
  }
}

}  // namespace sd2::results
