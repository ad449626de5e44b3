// Renderers for the paper's tables (Markdown, LaTeX booktabs, CSV, HTML) and the scaling figure
// (SVG). Output is deterministic text: the same tables give the same bytes, so golden files can
// pin it.
//
//   sd2::results::Table t3 = sd2::results::BuildTable(3, groups, paper);
//   std::cout << sd2::results::Render(t3, sd2::results::Format::kMarkdown);
//   std::string svg = sd2::results::ScalingSvg(sd2::results::BuildTable(6, groups, paper));
//   std::string html = sd2::results::RenderHtmlReport({t3}, svg);
#ifndef SD2_RESULTS_RENDER_H_
#define SD2_RESULTS_RENDER_H_

#include <string>
#include <vector>

#include "common/status.h"
#include "results/tables.h"

namespace sd2::results {

enum class Format { kMarkdown, kLatex, kCsv, kHtml };

// "md" | "markdown" | "latex" | "tex" | "csv" | "html"; InvalidArgument otherwise.
StatusOr<Format> ParseFormat(const std::string& name);
// "md", "tex", "csv", "html".
std::string FileExtension(Format f);

// One table. Markdown/LaTeX cells read "ours (paper, Δ ours-paper)", best of ours in bold,
// "–" where we have no value. CSV is long format, one line per cell, with a header:
// table,row,switches,column,ours,paper,delta,best,seeds. HTML gives a <section> fragment.
std::string Render(const Table& t, Format f);
// CSV of several tables under one header.
std::string RenderCsv(const std::vector<Table>& tables);

// A self-contained HTML page with every table and the inline SVG figure.
std::string RenderHtmlReport(const std::vector<Table>& tables, const std::string& svg);

// The scaling figure from Table 6 (mAUC against training size, log x, one line per method with
// at least one value): a standalone SVG document.
std::string ScalingSvg(const Table& table6);

}  // namespace sd2::results

#endif  // SD2_RESULTS_RENDER_H_
