// Renderers of a Report: one self-contained HTML page (inline CSS, SVG charts
// drawn here, thumbnails as data: URIs), a CSV table and versioned JSON.
// docs/report.md describes the layouts.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "doppel/report.h"
#include "util/csv.h"

namespace doppel {
namespace {

std::string Bytes(int64_t b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  double v = double(b);
  int u = 0;
  while (std::fabs(v) >= 1000 && u < 5) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%lld B", (long long)b);
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

std::string Num(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// Thousands separated by a thin space, for people.
std::string Count(int64_t n) {
  std::string s = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += "\u2009";
    out += s[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string Base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v =
        uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8 | uint8_t(in[i + 2]);
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += k[(v >> 6) & 63];
    out += k[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8;
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += k[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string H(const std::string& s) { return HtmlEscape(s); }

// RFC 4180 quoting. Text that a spreadsheet would run as a formula (a camera
// or author tag beginning with = + - @) gets a leading apostrophe; numbers
// are left alone.

// ------------------------------------------------------------------ SVG charts

// Members shown as figures per cluster when no thumbnail was asked for.
constexpr size_t kFiguresPerCluster = 6;

constexpr const char* kColours[] = {"#c0392b", "#e67e22", "#27ae60", "#2c7fb8", "#8e44ad"};

// Horizontal grouped bars: one group per label, one bar per series.
std::string BarChart(const std::string& title, const std::vector<std::string>& labels,
                     const std::vector<std::string>& series,
                     const std::vector<std::vector<double>>& values,
                     const std::function<std::string(double)>& fmt) {
  const int label_w = 170, bar_w = 420, value_w = 110, bar_h = 14, gap = 12;
  const int legend_h = 24;
  const int group_h = int(series.size()) * bar_h + gap;
  const int width = label_w + bar_w + value_w;
  const int height = legend_h + int(labels.size()) * group_h + 4;
  double max = 0;
  for (const auto& row : values)
    for (double v : row) max = std::max(max, v);
  std::string s = "<svg class=\"chart\" role=\"img\" width=\"" + std::to_string(width) +
                  "\" height=\"" + std::to_string(height) + "\" viewBox=\"0 0 " +
                  std::to_string(width) + " " + std::to_string(height) + "\"><title>" + H(title) +
                  "</title>";
  int x = label_w;
  for (size_t k = 0; k < series.size(); ++k) {
    s += "<rect x=\"" + std::to_string(x) + "\" y=\"4\" width=\"12\" height=\"12\" fill=\"" +
         kColours[k % 5] + "\"/><text x=\"" + std::to_string(x + 16) + "\" y=\"14\">" +
         H(series[k]) + "</text>";
    x += 16 + int(series[k].size()) * 7 + 18;
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    const int y0 = legend_h + int(i) * group_h;
    s += "<text x=\"" + std::to_string(label_w - 8) + "\" y=\"" +
         std::to_string(y0 + int(series.size()) * bar_h / 2 + 4) + "\" text-anchor=\"end\">" +
         H(labels[i]) + "</text>";
    for (size_t k = 0; k < series.size(); ++k) {
      const double v = k < values[i].size() ? values[i][k] : 0;
      const int w = max > 0 ? int(std::lround(v / max * bar_w)) : 0;
      const int y = y0 + int(k) * bar_h;
      s += "<rect x=\"" + std::to_string(label_w) + "\" y=\"" + std::to_string(y) + "\" width=\"" +
           std::to_string(std::max(w, v > 0 ? 1 : 0)) + "\" height=\"" + std::to_string(bar_h - 2) +
           "\" fill=\"" + kColours[k % 5] + "\"><title>" +
           H(labels[i] + ", " + series[k] + ": " + fmt(v)) + "</title></rect>";
      s += "<text class=\"v\" x=\"" + std::to_string(label_w + w + 4) + "\" y=\"" +
           std::to_string(y + bar_h - 3) + "\">" + H(fmt(v)) + "</text>";
    }
  }
  return s + "</svg>";
}

std::string ProgressBar(const Progress& p) {
  const int w = 600, h = 22;
  const int64_t total = p.clusters;
  const double f = total > 0 ? double(p.resolved) / double(total) : 0;
  const int done = int(std::lround(f * w));
  return "<svg class=\"chart\" role=\"img\" width=\"" + std::to_string(w) + "\" height=\"" +
         std::to_string(h) + "\" viewBox=\"0 0 " + std::to_string(w) + " " + std::to_string(h) +
         "\"><title>" +
         H(std::to_string(p.resolved) + " of " + std::to_string(total) + " clusters resolved") +
         "</title><rect x=\"0\" y=\"0\" width=\"" + std::to_string(w) + "\" height=\"" +
         std::to_string(h) + "\" fill=\"#ddd\"/><rect x=\"0\" y=\"0\" width=\"" +
         std::to_string(done) + "\" height=\"" + std::to_string(h) +
         "\" fill=\"#27ae60\"/><text x=\"8\" y=\"16\">" + Num(f * 100, 1) + " %</text></svg>";
}

const char* kCss = R"(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:2em auto;max-width:1100px;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #c0392b;padding-bottom:.2em;margin-top:2em}
.meta{color:#666}
.cards{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ddd;border-radius:6px;padding:.8em 1.2em;min-width:180px}
.card b{display:block;font-size:1.5em}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}
.chart text{font:12px system-ui,sans-serif;fill:#222}.chart text.v{fill:#555}
.heat td{min-width:3.5em}
.ok{color:#1e8449;font-weight:bold}.late{color:#c0392b;font-weight:bold}
.clusters{display:flex;flex-direction:column;gap:1.2em}
.cluster .files{display:flex;flex-wrap:wrap;gap:.6em}
figure{margin:0;width:170px;font-size:12px;overflow-wrap:anywhere}
figure img{display:block;max-width:160px;max-height:160px;border:1px solid #ccc}
figure.master img{border:3px solid #27ae60}
.placeholder{width:160px;height:120px;background:repeating-linear-gradient(45deg,#eee,#eee 8px,#f8f8f8 8px,#f8f8f8 16px);
 border:1px dashed #aaa;display:flex;align-items:center;justify-content:center;color:#888}
.note{color:#a04000}
footer{margin-top:3em;color:#888;font-size:12px}
@media print{.cards{gap:.5em}h2{break-after:avoid}}
)";

}  // namespace

std::string HtmlEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
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
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string RenderReportHtml(const Report& r) {
  std::string h;
  h.reserve(64 << 10);
  h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
       "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
       "<title>doppel report: duplicate images</title><style>";
  h += kCss;
  h += "</style></head><body>\n";
  h += "<header><h1>Duplicate images: storage and progress</h1><p class=\"meta\">Catalogue " +
       H(r.catalogue) + ", report made " + H(r.generated_at) + " by doppel " + H(r.doppel_version) +
       ".</p></header>\n";

  // Summary.
  const Progress& p = r.progress;
  h += "<section id=\"summary\"><div class=\"cards\">";
  h += "<div class=\"card\">Held in duplicates<b>" + H(Bytes(r.totals.duplicate_bytes)) + "</b>" +
       H(Count(r.totals.duplicate_files)) + " files</div>";
  h += "<div class=\"card\">Reclaimed<b>" + H(Bytes(r.totals.reclaimed_bytes)) + "</b>" +
       H(Count(r.totals.retired_files)) + " files retired</div>";
  h += "<div class=\"card\">Clusters resolved<b>" + H(Count(p.resolved)) + " / " +
       H(Count(p.clusters)) + "</b>" + H(Count(p.pending)) + " pending</div>";
  h += "<div class=\"card\">Estimated finish<b>" +
       H(p.estimated_finish.empty() ? "no estimate" : p.estimated_finish) + "</b>";
  if (p.on_track)
    h += *p.on_track ? "<span class=\"ok\">on track</span> for " + H(p.deadline)
         : p.estimated_finish.empty()
             ? "<span class=\"late\">no rate yet</span> to meet " + H(p.deadline)
             : "<span class=\"late\">behind</span> deadline " + H(p.deadline);
  else
    h += "no deadline given";
  h += "</div></div></section>\n";

  // Departments.
  h += "<section id=\"departments\"><h2>Storage per department</h2>";
  std::vector<std::string> labels;
  std::vector<std::vector<double>> values;
  for (const auto& d : r.departments) {
    labels.push_back(d.source);
    values.push_back(
        {double(d.duplicate_bytes), double(d.exact_redundant_bytes), double(d.reclaimed_bytes)});
  }
  if (!labels.empty())
    h += BarChart("Storage held in duplicates and reclaimed, per department", labels,
                  {"held in duplicates", "identical copies", "reclaimed"}, values,
                  [](double v) { return Bytes(int64_t(v)); });
  h += "<table><tr><th class=\"l\">Department</th><th>Files</th><th>Size</th><th>Duplicate "
       "files</th>"
       "<th>Held in duplicates</th><th>Identical copies</th><th>Their size</th><th>Retired "
       "files</th>"
       "<th>Reclaimed</th></tr>";
  auto dept_row = [&](const DepartmentFigures& d, bool total) {
    const std::string td = total ? "<th" : "<td", etd = total ? "</th>" : "</td>";
    h += "<tr>" + td + " class=\"l\">" + H(d.source) + etd;
    for (const std::string& cell :
         {Count(d.files), Bytes(d.bytes), Count(d.duplicate_files), Bytes(d.duplicate_bytes),
          Count(d.exact_redundant_files), Bytes(d.exact_redundant_bytes), Count(d.retired_files),
          Bytes(d.reclaimed_bytes)})
      h += td + ">" + H(cell) + etd;
    h += "</tr>";
  };
  for (const auto& d : r.departments) dept_row(d, false);
  dept_row(r.totals, true);
  h += "</table><p class=\"meta\">Held in duplicates: files that are not their cluster's master, "
       "not rejected by a "
       "reviewer and not yet retired. Identical copies: files with the same bytes as another, one "
       "copy kept per "
       "group. Reclaimed: bytes freed by the replacement (doppel apply), net of "
       "undos.</p></section>\n";

  // Overlap heat map.
  h += "<section id=\"overlap\"><h2>Pictures held in common</h2><p class=\"meta\">Each cell counts "
       "the clusters "
       "(pictures) with copies in both departments; the diagonal counts pictures held twice or "
       "more within one "
       "department.</p>";
  const auto& o = r.overlap;
  int64_t max = 0;
  for (const auto& row : o.clusters)
    for (int64_t v : row) max = std::max(max, v);
  h += "<table class=\"heat\"><tr><th></th>";
  for (const auto& s : o.sources) h += "<th>" + H(s) + "</th>";
  h += "</tr>";
  for (size_t i = 0; i < o.sources.size(); ++i) {
    h += "<tr><th class=\"l\">" + H(o.sources[i]) + "</th>";
    for (size_t j = 0; j < o.sources.size(); ++j) {
      const int64_t v = o.clusters[i][j];
      const double a = max > 0 ? double(v) / double(max) : 0;
      h += "<td style=\"background:rgba(192,57,43," + Num(a * 0.85, 2) +
           ");color:" + (a > 0.55 ? "#fff" : "#222") + "\" title=\"" +
           H(o.sources[i] + " and " + o.sources[j] + ": " + std::to_string(v)) + "\">" + Count(v) +
           "</td>";
    }
    h += "</tr>";
  }
  h += "</table></section>\n";

  // Grouped counts.
  h += "<section id=\"groups\"><h2>Counts before and after duplicates are removed</h2><p "
       "class=\"meta\">Before: "
       "every fingerprinted file. After: one file per cluster (its master); the other members are "
       "not "
       "counted.</p>";
  for (const auto& g : r.groupings) {
    h += "<h3>By " + H(g.field) + "</h3>";
    const size_t shown = std::min<size_t>(g.groups.size(), 25);
    std::vector<std::string> gl;
    std::vector<std::vector<double>> gv;
    for (size_t i = 0; i < shown; ++i) {
      gl.push_back(g.groups[i].value);
      gv.push_back({double(g.groups[i].before), double(g.groups[i].after)});
    }
    if (!gl.empty())
      h += BarChart("Files by " + g.field + ", before and after", gl, {"before", "after"}, gv,
                    [](double v) { return Count(int64_t(v)); });
    if (shown < g.groups.size())
      h += "<p class=\"meta\">The chart shows the first " + std::to_string(shown) + " of " +
           std::to_string(g.groups.size()) + " values; the table has them all.</p>";
    h += "<table><tr><th class=\"l\">" + H(g.field) +
         "</th><th>Before</th><th>After</th><th>Removed</th></tr>";
    for (const auto& c : g.groups)
      h += "<tr><td class=\"l\">" + H(c.value) + "</td><td>" + Count(c.before) + "</td><td>" +
           Count(c.after) + "</td><td>" + Count(c.before - c.after) + "</td></tr>";
    h += "</table>";
  }
  h += "</section>\n";

  // Progress.
  h += "<section id=\"progress\"><h2>Progress</h2>" + ProgressBar(p) + "<table>";
  auto prow = [&](const std::string& k, const std::string& v) {
    h += "<tr><th class=\"l\">" + H(k) + "</th><td class=\"l\">" + v + "</td></tr>";
  };
  prow("Clusters", H(Count(p.clusters)));
  prow("Resolved", H(Count(p.resolved)) + " (" + H(Count(p.resolved_retired)) +
                       " by retiring duplicates, " + H(Count(p.resolved_rejected)) +
                       " rejected by a reviewer)");
  prow("Pending", H(Count(p.pending)));
  prow("Files retired", H(Count(p.files_retired)));
  prow("Applies", p.first_apply.empty() ? "none yet" : H(p.first_apply) + " to " + H(p.last_apply));
  prow("Rate", p.first_apply.empty() ? "none yet"
                                     : H(Num(p.rate_per_day, 2)) + " clusters per day (over " +
                                           H(Num(p.span_days, 2)) + " days)");
  prow("Estimated finish", p.estimated_finish.empty()
                               ? "no estimate (nothing resolved yet)"
                               : H(p.estimated_finish) + " (" + H(Count(p.days_needed)) +
                                     " days from " + H(p.today) + ")");
  if (p.on_track)
    prow("Deadline",
         H(p.deadline) + ": " +
             (*p.on_track                  ? "<span class=\"ok\">on track</span>"
              : p.estimated_finish.empty() ? "<span class=\"late\">not on track: no rate yet</span>"
                                           : "<span class=\"late\">behind</span>"));
  h += "</table></section>\n";

  // Largest clusters.
  h += "<section id=\"clusters\"><h2>Largest clusters</h2><div class=\"clusters\">";
  for (const auto& c : r.largest_clusters) {
    const std::string state = c.status == "rejected"   ? "rejected by a reviewer: not duplicates"
                              : c.status == "resolved" ? "resolved: every copy retired"
                                                       : "pending";
    h += "<div class=\"cluster\"><h3>Cluster " + std::to_string(c.id) + ": " + Count(c.members) +
         " files, " + H(Bytes(c.duplicate_bytes)) + " in copies besides the master (" + H(state) +
         ")</h3><div class=\"files\">";
    // Pictures for the first members (those BuildReport rendered or tried
    // to), then the rest as a plain list so a big cluster stays readable.
    std::vector<const Thumbnail*> rest;
    size_t shown = 0;
    for (const auto& t : c.files) {
      const std::string caption = t.source + "/" + t.path;
      if (shown >= kFiguresPerCluster && t.jpeg.empty() && t.note.empty()) {
        rest.push_back(&t);
        continue;
      }
      ++shown;
      h += std::string("<figure") + (t.master ? " class=\"master\"" : "") + ">";
      if (!t.jpeg.empty())
        h += "<img alt=\"" + H(caption) + "\" src=\"data:image/jpeg;base64," + Base64(t.jpeg) +
             "\">";
      else if (!t.note.empty())
        h += "<div class=\"placeholder\">no picture</div>";
      h += "<figcaption>" + std::string(t.master ? "<b>master</b> " : "") +
           (t.retired ? "<i>retired</i> " : "") + H(caption) + " (" + H(Bytes(t.size)) + ")";
      if (!t.note.empty()) h += "<br><span class=\"note\">" + H(t.note) + "</span>";
      h += "</figcaption></figure>";
    }
    h += "</div>";
    if (!rest.empty()) {
      h += "<p class=\"meta\">Also in this cluster: ";
      for (size_t i = 0; i < rest.size() && i < 50; ++i)
        h += std::string(i ? "; " : "") + (rest[i]->retired ? "<i>retired</i> " : "") +
             H(rest[i]->source + "/" + rest[i]->path);
      if (rest.size() > 50) h += "; and " + Count(int64_t(rest.size() - 50)) + " more";
      h += ".</p>";
    }
    h += "</div>";
  }
  if (r.largest_clusters.empty()) h += "<p>No clusters (run doppel match first).</p>";
  h += "</div></section>\n";

  if (!r.notes.empty()) {
    h += "<section id=\"notes\"><h2>Notes</h2><ul>";
    for (const auto& n : r.notes) h += "<li>" + H(n) + "</li>";
    h += "</ul></section>\n";
  }
  h += "<footer>doppel report format " + std::to_string(r.format_version) +
       ". How each figure is computed: docs/report.md.</footer>\n</body></html>\n";
  return h;
}

std::string RenderReportCsv(const Report& r) {
  std::string out = "section,key,subkey,value\n";
  auto row = [&](const std::string& a, const std::string& b, const std::string& c,
                 const std::string& d) {
    out += CsvCell(a) + "," + CsvCell(b) + "," + CsvCell(c) + "," + CsvCell(d) + "\n";
  };
  row("report", "format_version", "", std::to_string(r.format_version));
  row("report", "generated_at", "", r.generated_at);
  row("report", "doppel_version", "", r.doppel_version);
  row("report", "catalogue", "", r.catalogue);
  auto dept = [&](const DepartmentFigures& d) {
    for (const auto& [k, v] : std::vector<std::pair<const char*, int64_t>>{
             {"files", d.files},
             {"bytes", d.bytes},
             {"duplicate_files", d.duplicate_files},
             {"duplicate_bytes", d.duplicate_bytes},
             {"exact_redundant_files", d.exact_redundant_files},
             {"exact_redundant_bytes", d.exact_redundant_bytes},
             {"retired_files", d.retired_files},
             {"reclaimed_bytes", d.reclaimed_bytes}})
      row("department", d.source, k, std::to_string(v));
  };
  for (const auto& d : r.departments) dept(d);
  dept(r.totals);
  for (size_t i = 0; i < r.overlap.sources.size(); ++i)
    for (size_t j = 0; j < r.overlap.sources.size(); ++j)
      row("overlap", r.overlap.sources[i], r.overlap.sources[j],
          std::to_string(r.overlap.clusters[i][j]));
  for (const auto& g : r.groupings)
    for (const auto& c : g.groups) {
      row("group:" + g.field, c.value, "before", std::to_string(c.before));
      row("group:" + g.field, c.value, "after", std::to_string(c.after));
    }
  const Progress& p = r.progress;
  row("progress", "clusters", "", std::to_string(p.clusters));
  row("progress", "resolved", "", std::to_string(p.resolved));
  row("progress", "resolved_retired", "", std::to_string(p.resolved_retired));
  row("progress", "resolved_rejected", "", std::to_string(p.resolved_rejected));
  row("progress", "pending", "", std::to_string(p.pending));
  row("progress", "files_retired", "", std::to_string(p.files_retired));
  row("progress", "first_apply", "", p.first_apply);
  row("progress", "last_apply", "", p.last_apply);
  row("progress", "span_days", "", Num(p.span_days, 4));
  row("progress", "rate_per_day", "", Num(p.rate_per_day, 4));
  row("progress", "days_needed", "", std::to_string(p.days_needed));
  row("progress", "today", "", p.today);
  row("progress", "estimated_finish", "", p.estimated_finish);
  row("progress", "deadline", "", p.deadline);
  row("progress", "on_track", "", p.on_track ? (*p.on_track ? "true" : "false") : "");
  for (const auto& c : r.largest_clusters) {
    const std::string id = std::to_string(c.id);
    row("cluster", id, "members", std::to_string(c.members));
    row("cluster", id, "duplicate_bytes", std::to_string(c.duplicate_bytes));
    row("cluster", id, "status", c.status);
  }
  for (size_t i = 0; i < r.notes.size(); ++i) row("note", std::to_string(i + 1), "", r.notes[i]);
  return out;
}

std::string RenderReportJson(const Report& r) {
  using json = nlohmann::ordered_json;  // fields in the documented order
  auto dept = [](const DepartmentFigures& d) {
    return json{{"source", d.source},
                {"files", d.files},
                {"bytes", d.bytes},
                {"duplicate_files", d.duplicate_files},
                {"duplicate_bytes", d.duplicate_bytes},
                {"exact_redundant_files", d.exact_redundant_files},
                {"exact_redundant_bytes", d.exact_redundant_bytes},
                {"retired_files", d.retired_files},
                {"reclaimed_bytes", d.reclaimed_bytes}};
  };
  json j = {{"format", "doppel-report"},
            {"version", r.format_version},
            {"generated_at", r.generated_at},
            {"doppel_version", r.doppel_version},
            {"catalogue", r.catalogue}};
  j["departments"] = json::array();
  for (const auto& d : r.departments) j["departments"].push_back(dept(d));
  j["totals"] = dept(r.totals);
  j["overlap"] = {{"sources", r.overlap.sources}, {"clusters", r.overlap.clusters}};
  j["groupings"] = json::array();
  for (const auto& g : r.groupings) {
    json groups = json::array();
    for (const auto& c : g.groups)
      groups.push_back({{"value", c.value}, {"before", c.before}, {"after", c.after}});
    j["groupings"].push_back({{"field", g.field}, {"groups", groups}});
  }
  const Progress& p = r.progress;
  j["progress"] = {
      {"clusters", p.clusters},
      {"resolved", p.resolved},
      {"resolved_retired", p.resolved_retired},
      {"resolved_rejected", p.resolved_rejected},
      {"pending", p.pending},
      {"files_retired", p.files_retired},
      {"first_apply", p.first_apply.empty() ? json(nullptr) : json(p.first_apply)},
      {"last_apply", p.last_apply.empty() ? json(nullptr) : json(p.last_apply)},
      {"span_days", p.span_days},
      {"rate_per_day", p.rate_per_day},
      {"days_needed", p.days_needed},
      {"today", p.today},
      {"estimated_finish", p.estimated_finish.empty() ? json(nullptr) : json(p.estimated_finish)},
      {"deadline", p.deadline.empty() ? json(nullptr) : json(p.deadline)},
      {"on_track", p.on_track ? json(*p.on_track) : json(nullptr)}};
  j["largest_clusters"] = json::array();
  for (const auto& c : r.largest_clusters) {
    json files = json::array();
    for (const auto& t : c.files) {
      json f = {{"file_id", t.file_id}, {"source", t.source}, {"path", t.path},
                {"size", t.size},       {"master", t.master}, {"retired", t.retired}};
      if (!t.note.empty()) f["note"] = t.note;
      files.push_back(f);
    }
    j["largest_clusters"].push_back({{"id", c.id},
                                     {"members", c.members},
                                     {"duplicate_bytes", c.duplicate_bytes},
                                     {"status", c.status},
                                     {"files", files}});
  }
  j["notes"] = r.notes;
  // Metadata text is UTF-8 as the files gave it; replace what is not.
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace doppel
