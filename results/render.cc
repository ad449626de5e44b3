#include "results/render.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace sd2::results {
namespace {

constexpr const char* kDash = "\u2013";  // –

std::string Fixed2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  return s == "-0.00" ? "0.00" : s;
}

std::string Signed2(double v) {
  std::string s = Fixed2(v);
  return s[0] == '-' ? s : "+" + s;
}

std::string Title(const Table& t) { return "Table " + std::to_string(t.number) + ": " + t.caption; }

const char* kLegend =
    "Cells: ours (paper, \u0394 = ours \u2212 paper), in percent; best of ours in bold; \u2013 = "
    "no result.";

// --- Markdown ----------------------------------------------------------------------------

std::string MdCell(const Cell& c) {
  std::string s;
  if (c.ours) {
    s = Fixed2(*c.ours) + (c.partial ? "*" : "");
    if (c.best) s = "**" + s + "**";
  } else {
    s = kDash;
  }
  if (c.paper) {
    s += " (" + Fixed2(*c.paper);
    if (auto d = c.Delta()) s += ", \u0394 " + Signed2(*d);
    s += ")";
  }
  return s;
}

std::string EscapeMd(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '|') out += '\\';
    out += ch;
  }
  return out;
}

std::string RenderMarkdown(const Table& t) {
  std::ostringstream os;
  os << "### " << EscapeMd(Title(t)) << "\n\n" << kLegend << "\n\n";
  std::vector<std::string> head;
  for (const auto& s : t.switch_columns) head.push_back(s);
  if (t.switch_columns.empty()) head.push_back("Method");
  for (const auto& c : t.columns) head.push_back(c);
  os << "|";
  for (const auto& h : head) os << " " << EscapeMd(h) << " |";
  os << "\n|";
  for (size_t i = 0; i < head.size(); ++i)
    os << (i < head.size() - t.columns.size() ? " :--- |" : " ---: |");
  os << "\n";
  for (const TableRow& r : t.rows) {
    os << "|";
    for (const auto& s : r.switches) os << " " << s << " |";
    if (t.switch_columns.empty()) os << " " << EscapeMd(r.label) << " |";
    for (const Cell& c : r.cells) os << " " << MdCell(c) << " |";
    os << "\n";
  }
  if (!t.notes.empty()) {
    os << "\n";
    for (const auto& n : t.notes) os << "- " << EscapeMd(n) << "\n";
  }
  return os.str();
}

// --- LaTeX -------------------------------------------------------------------------------

std::string EscapeTex(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const char ch = s[i];
    switch (ch) {
      case '&':
      case '%':
      case '$':
      case '#':
      case '_':
      case '{':
      case '}':
        out += '\\';
        out += ch;
        break;
      case '~':
        out += "\\textasciitilde{}";
        break;
      case '^':
        out += "\\textasciicircum{}";
        break;
      case '\\':
        out += "\\textbackslash{}";
        break;
      default:
        out += ch;
    }
  }
  // Unicode we emit ourselves.
  auto replace = [&](const std::string& from, const std::string& to) {
    for (size_t p = out.find(from); p != std::string::npos; p = out.find(from, p + to.size())) {
      out.replace(p, from.size(), to);
    }
  };
  replace("\u2013", "--");
  replace("\u2713", "\\checkmark{}");
  replace("\u0394", "$\\Delta$");
  replace("\u2212", "$-$");
  replace("->", "$\\rightarrow$");
  return out;
}

std::string TexCell(const Cell& c) {
  std::string s;
  if (c.ours) {
    s = Fixed2(*c.ours) + (c.partial ? "*" : "");
    if (c.best) s = "\\textbf{" + s + "}";
  } else {
    s = "--";
  }
  if (c.paper) {
    s += " {\\scriptsize(" + Fixed2(*c.paper);
    if (auto d = c.Delta()) s += ", $" + Signed2(*d) + "$";
    s += ")}";
  }
  return s;
}

std::string RenderLatex(const Table& t) {
  std::ostringstream os;
  const size_t lead = t.switch_columns.empty() ? 1 : t.switch_columns.size();
  os << "% Table " << t.number << " (sd2 report). Needs \\usepackage{booktabs,amssymb,graphicx}.\n"
     << "\\begin{table}[t]\n\\centering\n\\caption{" << EscapeTex(t.caption)
     << " Ours (paper, $\\Delta$).}\n\\label{tab:sd2-" << t.number
     << "}\n\\resizebox{\\linewidth}{!}{%\n"
     << "\\begin{tabular}{" << std::string(lead, t.switch_columns.empty() ? 'l' : 'c')
     << std::string(t.columns.size(), 'c') << "}\n\\toprule\n";
  std::vector<std::string> head;
  for (const auto& s : t.switch_columns) head.push_back(EscapeTex(s));
  if (t.switch_columns.empty()) head.push_back("Method");
  for (const auto& c : t.columns) head.push_back(EscapeTex(c));
  for (size_t i = 0; i < head.size(); ++i) os << (i ? " & " : "") << head[i];
  os << " \\\\\n\\midrule\n";
  for (const TableRow& r : t.rows) {
    bool first = true;
    auto sep = [&]() -> const char* {
      const char* s = first ? "" : " & ";
      first = false;
      return s;
    };
    for (const auto& s : r.switches) os << sep() << EscapeTex(s);
    if (t.switch_columns.empty()) os << sep() << EscapeTex(r.label);
    for (const Cell& c : r.cells) os << sep() << TexCell(c);
    os << " \\\\\n";
  }
  os << "\\bottomrule\n\\end{tabular}}\n";
  for (const auto& n : t.notes) os << "\\par\\footnotesize " << EscapeTex(n) << "\n";
  os << "\\end{table}\n";
  return os.str();
}

// --- CSV ---------------------------------------------------------------------------------

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + "\"";
}

std::string Num(const std::optional<double>& v) {
  if (!v) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", *v);
  return buf;
}

constexpr const char* kCsvHeader = "table,row,switches,column,ours,paper,delta,best,seeds\n";

std::string CsvRows(const Table& t) {
  std::ostringstream os;
  for (const TableRow& r : t.rows) {
    std::string sw;
    for (size_t i = 0; i < r.switches.size(); ++i) {
      sw += (i ? ";" : "") + t.switch_columns[i] + "=" + (r.switches[i] == "\u2713" ? "1" : "0");
    }
    for (size_t i = 0; i < r.cells.size(); ++i) {
      const Cell& c = r.cells[i];
      os << t.number << "," << CsvField(r.label) << "," << CsvField(sw) << ","
         << CsvField(t.columns[i]) << "," << Num(c.ours) << "," << Num(c.paper) << ","
         << Num(c.Delta()) << "," << (c.best ? 1 : 0) << "," << r.seeds << "\n";
    }
  }
  return os.str();
}

// --- HTML --------------------------------------------------------------------------------

std::string EscapeHtml(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

std::string HtmlCell(const Cell& c) {
  std::string s;
  if (c.ours) {
    s = Fixed2(*c.ours) + (c.partial ? "*" : "");
    if (c.best) s = "<b>" + s + "</b>";
  } else {
    s = kDash;
  }
  if (c.paper) {
    s += " <span class=\"paper\">(" + Fixed2(*c.paper);
    if (auto d = c.Delta()) s += ", &Delta; " + Signed2(*d);
    s += ")</span>";
  }
  return s;
}

std::string RenderHtml(const Table& t) {
  std::ostringstream os;
  os << "<section id=\"table" << t.number << "\">\n<h2>" << EscapeHtml(Title(t)) << "</h2>\n"
     << "<table>\n<thead><tr>";
  for (const auto& s : t.switch_columns) os << "<th>" << EscapeHtml(s) << "</th>";
  if (t.switch_columns.empty()) os << "<th>Method</th>";
  for (const auto& c : t.columns) os << "<th>" << EscapeHtml(c) << "</th>";
  os << "</tr></thead>\n<tbody>\n";
  for (const TableRow& r : t.rows) {
    os << "<tr>";
    for (const auto& s : r.switches) os << "<td class=\"sw\">" << s << "</td>";
    if (t.switch_columns.empty()) os << "<th>" << EscapeHtml(r.label) << "</th>";
    for (const Cell& c : r.cells) os << "<td>" << HtmlCell(c) << "</td>";
    os << "</tr>\n";
  }
  os << "</tbody>\n</table>\n";
  if (!t.notes.empty()) {
    os << "<ul class=\"notes\">\n";
    for (const auto& n : t.notes) os << "<li>" << EscapeHtml(n) << "</li>\n";
    os << "</ul>\n";
  }
  os << "</section>\n";
  return os.str();
}

}  // namespace

StatusOr<Format> ParseFormat(const std::string& name) {
  if (name == "md" || name == "markdown") return Format::kMarkdown;
  if (name == "latex" || name == "tex") return Format::kLatex;
  if (name == "csv") return Format::kCsv;
  if (name == "html") return Format::kHtml;
  return InvalidArgumentError("unknown format '" + name + "' (use md, latex, csv or html)");
}

std::string FileExtension(Format f) {
  switch (f) {
    case Format::kMarkdown:
      return "md";
    case Format::kLatex:
      return "tex";
    case Format::kCsv:
      return "csv";
    case Format::kHtml:
      return "html";
  }
  return "txt";
}

std::string Render(const Table& t, Format f) {
  switch (f) {
    case Format::kMarkdown:
      return RenderMarkdown(t);
    case Format::kLatex:
      return RenderLatex(t);
    case Format::kCsv:
      return std::string(kCsvHeader) + CsvRows(t);
    case Format::kHtml:
      return RenderHtml(t);
  }
  return "";
}

std::string RenderCsv(const std::vector<Table>& tables) {
  std::string out = kCsvHeader;
  for (const Table& t : tables) out += CsvRows(t);
  return out;
}

std::string RenderHtmlReport(const std::vector<Table>& tables, const std::string& svg) {
  std::ostringstream os;
  os << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
     << "<title>sd2 report</title>\n<style>\n"
     << "body{font-family:sans-serif;margin:2em;color:#222}\n"
     << "table{border-collapse:collapse;margin:1em 0;font-size:90%}\n"
     << "th,td{padding:4px 8px;text-align:right;border-bottom:1px solid #ddd}\n"
     << "thead th{border-bottom:2px solid #222;text-align:center}\n"
     << "tbody th{text-align:left}\ntd.sw{text-align:center}\n"
     << ".paper{color:#777;font-size:85%}\n.notes{color:#555;font-size:85%}\n"
     << "</style>\n</head>\n<body>\n<h1>sd2 report</h1>\n<p>" << EscapeHtml(kLegend) << "</p>\n";
  for (const Table& t : tables) os << RenderHtml(t);
  if (!svg.empty()) {
    os << "<section id=\"scaling\">\n<h2>Scaling: mAUC against training size</h2>\n";
    // Inline the SVG without its XML declaration.
    std::string body = svg;
    if (body.rfind("<?xml", 0) == 0) body = body.substr(body.find('\n') + 1);
    os << body << "</section>\n";
  }
  os << "</body>\n</html>\n";
  return os.str();
}

std::string ScalingSvg(const Table& t6) {
  constexpr double kW = 720, kH = 420, kLeft = 70, kRight = 190, kTop = 40, kBottom = 60;
  static const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                  "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
  const double pw = kW - kLeft - kRight, ph = kH - kTop - kBottom;
  std::ostringstream os;
  char buf[256];
  os << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
     << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kW << "\" height=\"" << kH
     << "\" viewBox=\"0 0 " << kW << " " << kH
     << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
     << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
     << "<text x=\"" << kLeft + pw / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">"
     << "Cross-domain mAUC against training size</text>\n";
  double lo = 1e300, hi = -1e300;
  for (const TableRow& r : t6.rows) {
    for (const Cell& c : r.cells) {
      if (c.ours) lo = std::min(lo, *c.ours), hi = std::max(hi, *c.ours);
    }
  }
  const bool any = lo <= hi;
  if (!any) lo = 50, hi = 100;
  lo = std::floor(lo / 5) * 5;
  hi = std::ceil(hi / 5) * 5;
  if (hi - lo < 5) hi = lo + 5;
  double xmin = 1, xmax = 10;
  if (!t6.column_scales.empty()) {
    xmin = std::log10(t6.column_scales.front());
    xmax = std::log10(t6.column_scales.back());
  }
  if (xmax - xmin < 1e-9) xmin -= 0.5, xmax += 0.5;
  const double pad = 0.08 * (xmax - xmin);
  xmin -= pad;
  xmax += pad;
  auto px = [&](double scale) { return kLeft + (std::log10(scale) - xmin) / (xmax - xmin) * pw; };
  auto py = [&](double v) { return kTop + (hi - v) / (hi - lo) * ph; };
  // Axes, ticks, labels.
  std::snprintf(buf, sizeof buf,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                "stroke=\"#222\"/>\n",
                kLeft, kTop, pw, ph);
  os << buf;
  for (int i = 0; i <= 5; ++i) {
    const double v = lo + (hi - lo) * i / 5.0;
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n",
                  kLeft, kLeft + pw, py(v), py(v), kLeft - 6, py(v) + 4, v);
    os << buf;
  }
  for (size_t i = 0; i < t6.column_scales.size(); ++i) {
    const double x = px(t6.column_scales[i]);
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#222\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                  x, x, kTop + ph, kTop + ph + 5, x, kTop + ph + 20);
    os << buf << EscapeHtml(t6.columns[i]) << "</text>\n";
  }
  std::snprintf(buf, sizeof buf,
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">Training images (log scale)"
                "</text>\n<text transform=\"translate(18 %.1f) rotate(-90)\" "
                "text-anchor=\"middle\">mAUC (%%)</text>\n",
                kLeft + pw / 2, kH - 18, kTop + ph / 2);
  os << buf;
  if (!any) {
    std::snprintf(buf, sizeof buf,
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#777\">no results "
                  "yet</text>\n",
                  kLeft + pw / 2, kTop + ph / 2);
    os << buf;
  }
  // One line per method with data; legend on the right.
  int drawn = 0;
  for (const TableRow& r : t6.rows) {
    std::vector<std::pair<double, double>> pts;
    for (size_t i = 0; i < r.cells.size() && i < t6.column_scales.size(); ++i) {
      if (r.cells[i].ours) pts.push_back({px(t6.column_scales[i]), py(*r.cells[i].ours)});
    }
    if (pts.empty()) continue;
    const char* color = kColors[drawn % 8];
    os << "<g class=\"series\" data-method=\"" << EscapeHtml(r.label) << "\">";
    if (pts.size() > 1) {
      os << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
      for (size_t i = 0; i < pts.size(); ++i) {
        std::snprintf(buf, sizeof buf, "%s%.1f,%.1f", i ? " " : "", pts[i].first, pts[i].second);
        os << buf;
      }
      os << "\"/>";
    }
    for (const auto& p : pts) {
      std::snprintf(buf, sizeof buf, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>",
                    p.first, p.second, color);
      os << buf;
    }
    const double ly = kTop + 10 + 20 * drawn;
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                  "stroke-width=\"2\"/><text x=\"%.1f\" y=\"%.1f\">",
                  kLeft + pw + 15, kLeft + pw + 40, ly, ly, color, kLeft + pw + 46, ly + 4);
    os << buf << EscapeHtml(r.label) << "</text></g>\n";
    ++drawn;
  }
  os << "</svg>\n";
  return os.str();
}

}  // namespace sd2::results
