// sd2ctl report: the paper's Tables 2-8 (and the scaling figure) from a store.
// sd2ctl metrics: AUC/ACC/EER/AP (and video AUC) of a CSV of labels and scores.
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cli/command.h"
#include "common/file_util.h"
#include "common/status.h"
#include "results/metrics.h"
#include "results/paper_data.h"
#include "results/render.h"
#include "results/store_reader.h"
#include "results/tables.h"

namespace sd2::cli {
namespace {

// Parses CLI11 arguments; returns an exit code when the command should stop (help or error).

int Fail(const std::string& cmd, const Status& s) {
  std::cerr << cmd << ": " << s.message() << "\n";
  return ExitCodeFor(s);
}

StatusOr<std::vector<int>> ParseTables(const std::string& spec) {
  std::set<int> out;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    char* end = nullptr;
    errno = 0;
    long n = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || errno != 0 || n < 2 || n > 8) {
      return InvalidArgumentError("--tables: '" + item +
                                  "' is not one of the paper's tables 2,3,4,5,6,7,8");
    }
    out.insert(static_cast<int>(n));
  }
  if (out.empty()) return InvalidArgumentError("--tables: no table given");
  return std::vector<int>(out.begin(), out.end());
}

int RunReport(int argc, char** argv) {
  const std::string cmd = argv[0];
  CLI::App app(
      "Print the paper's Tables 2-8 from the results in a store, with the paper's "
      "reported numbers and the difference beside ours; with --out, write one file per "
      "table plus report.html and scaling.svg.",
      cmd);
  std::string db = "sd2.db", tables_spec = "2,3,4,5,6,7,8", format_name = "md", out_dir, paper_dir;
  app.add_option("--db", db, "SQLite store to read (read-only)")->capture_default_str();
  app.add_option("--tables", tables_spec, "comma-separated table numbers (2-8)")
      ->capture_default_str();
  app.add_option("--format", format_name, "md | latex | csv | html")->capture_default_str();
  app.add_option("--out", out_dir, "directory for table<N>.<ext>, report.html and scaling.svg");
  app.add_option("--paper-data", paper_dir,
                 "directory with reported.toml (default: <bin>/../share/sd2, then the source "
                 "tree's data/paper)");
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;

  StatusOr<std::vector<int>> numbers = ParseTables(tables_spec);
  if (!numbers.ok()) return Fail(cmd, numbers.status());
  StatusOr<results::Format> format = results::ParseFormat(format_name);
  if (!format.ok()) return Fail(cmd, format.status().WithPrefix("--format"));
  StatusOr<std::string> pdir = results::LocatePaperData(paper_dir, "");
  if (!pdir.ok()) return Fail(cmd, pdir.status());
  StatusOr<results::PaperData> paper = results::LoadPaperData(*pdir + "/reported.toml");
  if (!paper.ok()) return Fail(cmd, paper.status());
  StatusOr<std::vector<results::TrialResult>> trials = results::ReadTrialResults(db);
  if (!trials.ok()) {
    Status s = trials.status();
    // A missing database is the user's bad input.
    if (s.code() == StatusCode::kNotFound) s = InvalidArgumentError(s.message());
    return Fail(cmd, s.WithPrefix("--db"));
  }
  const std::vector<results::ResultGroup> groups = results::GroupSeeds(*trials);
  std::vector<results::Table> tables;
  for (int n : *numbers) tables.push_back(results::BuildTable(n, groups, *paper));
  const std::string svg = results::ScalingSvg(results::BuildTable(6, groups, *paper));

  if (out_dir.empty()) {
    switch (*format) {
      case results::Format::kCsv:
        std::cout << results::RenderCsv(tables);
        break;
      case results::Format::kHtml:
        std::cout << results::RenderHtmlReport(tables, svg);
        break;
      default:
        for (size_t i = 0; i < tables.size(); ++i) {
          std::cout << (i ? "\n" : "") << results::Render(tables[i], *format);
        }
    }
    return kExitOk;
  }
  if (Status s = MakeDirs(out_dir); !s.ok()) return Fail(cmd, s);
  std::vector<std::pair<std::string, std::string>> files;
  for (const results::Table& t : tables) {
    std::string text = *format == results::Format::kHtml ? results::RenderHtmlReport({t}, "")
                                                         : results::Render(t, *format);
    files.push_back({"table" + std::to_string(t.number) + "." + results::FileExtension(*format),
                     std::move(text)});
  }
  files.push_back({"report.html", results::RenderHtmlReport(tables, svg)});
  files.push_back({"scaling.svg", svg});
  for (const auto& [name, text] : files) {
    const std::string path = out_dir + "/" + name;
    if (Status s = WriteFileAtomic(path, text); !s.ok()) return Fail(cmd, s);
    std::cout << path << "\n";
  }
  return kExitOk;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.erase(s.begin());
  return s;
}

std::vector<std::string> SplitCsvLine(const std::string& line) {
  std::vector<std::string> out;
  std::string field;
  std::stringstream ss(line);
  while (std::getline(ss, field, ',')) out.push_back(Trim(field));
  if (!line.empty() && line.back() == ',') out.push_back("");
  return out;
}

struct CsvScores {
  std::vector<int> labels;
  std::vector<double> scores;
  std::vector<std::string> videos;
};

StatusOr<CsvScores> ReadScoresCsv(const std::string& path) {
  SD2_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  std::stringstream in(text);
  std::string line;
  int line_no = 0;
  auto error = [&](const std::string& m) {
    return InvalidArgumentError(path + ":" + std::to_string(line_no) + ": " + m);
  };
  bool have_header = false, with_video = false;
  CsvScores out;
  while (std::getline(in, line)) {
    ++line_no;
    if (Trim(line).empty()) continue;
    std::vector<std::string> f = SplitCsvLine(line);
    if (!have_header) {
      if (f == std::vector<std::string>{"label", "score"}) {
        with_video = false;
      } else if (f == std::vector<std::string>{"label", "score", "video"}) {
        with_video = true;
      } else {
        return error("expected the header 'label,score' or 'label,score,video', got '" +
                     Trim(line) + "'");
      }
      have_header = true;
      continue;
    }
    const size_t want = with_video ? 3 : 2;
    if (f.size() != want) {
      return error("expected " + std::to_string(want) + " fields, got " + std::to_string(f.size()));
    }
    if (f[0] != "0" && f[0] != "1") {
      return error("label '" + f[0] + "' is not 0 (real) or 1 (fake)");
    }
    char* end = nullptr;
    errno = 0;
    const double score = std::strtod(f[1].c_str(), &end);
    if (f[1].empty() || *end != '\0' || errno == ERANGE) {
      return error("score '" + f[1] + "' is not a number");
    }
    if (!std::isfinite(score)) return error("score '" + f[1] + "' is not finite");
    if (with_video && f[2].empty()) return error("empty video id");
    out.labels.push_back(f[0] == "1");
    out.scores.push_back(score);
    if (with_video) out.videos.push_back(f[2]);
  }
  if (!have_header) return InvalidArgumentError(path + ": empty file (no header)");
  if (out.labels.empty()) return InvalidArgumentError(path + ": no samples after the header");
  return out;
}

int RunMetrics(int argc, char** argv) {
  const std::string cmd = argv[0];
  CLI::App app(
      "Compute ROC AUC, ACC (fake when score > 0.5), EER and AP (and the video-level "
      "AUC when a video column is given) of a CSV with the header label,score[,video] "
      "(label 1 = fake, score = probability of fake). Prints one JSON object.",
      cmd);
  std::string input;
  app.add_option("--input", input, "CSV file: label,score[,video]")->required();
  if (auto rc = ParseCommandLine(app, argc, argv)) return *rc;
  StatusOr<CsvScores> data = ReadScoresCsv(input);
  if (!data.ok()) {
    Status s = data.status();
    if (s.code() == StatusCode::kNotFound) s = InvalidArgumentError(s.message());
    return Fail(cmd, s);
  }
  StatusOr<results::Metrics> m = results::ComputeMetrics(data->labels, data->scores, data->videos);
  if (!m.ok()) return Fail(cmd, m.status().WithPrefix(input));
  if (!m->auc) {
    return Fail(cmd, InvalidArgumentError(
                         input + ": AUC, EER and AP are undefined: only one class present (" +
                         std::to_string(m->positives) + " fake, " +
                         std::to_string(m->n - m->positives) + " real samples)"));
  }
  nlohmann::ordered_json j;
  j["n"] = m->n;
  j["auc"] = *m->auc;
  j["acc"] = m->acc;
  j["eer"] = *m->eer;
  j["ap"] = *m->ap;
  if (!data->videos.empty()) {
    if (!m->video_auc) {
      return Fail(cmd,
                  InvalidArgumentError(input + ": video-level AUC is undefined: all videos have "
                                               "the same label"));
    }
    j["video_auc"] = *m->video_auc;
  }
  std::cout << j.dump() << "\n";
  return kExitOk;
}

}  // namespace

SD2_REGISTER_COMMAND("report", "print the paper's Tables 2-8 (md, latex, csv, html) from a store",
                     RunReport);
SD2_REGISTER_COMMAND("metrics", "AUC/ACC/EER/AP of a CSV of labels and scores, as JSON",
                     RunMetrics);

}  // namespace sd2::cli
