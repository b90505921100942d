// Reports for the people who run a replacement programme: storage held in
// duplicates and reclaimed, per department (Source); which departments hold
// the same pictures; counts by any metadata field before and after duplicates
// are removed; progress and the estimated finish against a deadline.
//
// BuildReport only reads the catalogue (clusters, review decisions and the
// `apply`/`undo` audit events written by the replacement commands) and, for
// thumbnails, the masters' files. The renderers turn a Report into one
// self-contained HTML page, a CSV table or versioned JSON. docs/report.md
// explains how every figure is computed and the CSV and JSON layouts.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "doppel/status.h"

namespace doppel {

class Catalogue;

// Version of the JSON and CSV layouts (docs/report.md). Bumped when a field
// changes meaning or disappears; new fields do not bump it.
inline constexpr int kReportFormatVersion = 1;

// Fields a report can group counts by; anything else must be the field of a
// join table.
// "source", "format", "year" (of capture), "make", "model", "camera" (make and
// model), "author" (EXIF Artist / XMP creator).
bool IsBuiltinGroupField(const std::string& field);

// Values joined to files from a table the user supplies (e.g. path,postcode).
// Keys are a path relative to its source ("streets/a.jpg") or prefixed with
// the source's name ("apur/streets/a.jpg"); the prefixed form wins.
struct JoinTable {
  std::string field;                          // the joined column's name, e.g. "postcode"
  std::map<std::string, std::string> values;  // key -> value
};

// Reads a CSV file with a header row (RFC 4180 quoting, one record per line)
// and keeps the columns `key_column` and `field_column`. Errors name the file
// and the line.
Result<JoinTable> LoadJoinCsv(const std::string& path, const std::string& key_column,
                              const std::string& field_column);

struct ReportOptions {
  // Fields to count by (see IsBuiltinGroupField, or the join table's field).
  std::vector<std::string> group_by = {"source", "format", "year"};
  std::optional<JoinTable> join;
  std::string deadline;       // "YYYY-MM-DD", or empty: no deadline
  std::string today;          // "YYYY-MM-DD" the estimate counts from; empty = today (UTC)
  int largest_clusters = 10;  // clusters listed (biggest first)
  bool thumbnails = false;    // render the listed clusters' files (for HTML)
  int thumbnails_per_cluster = 6;
  int thumbnail_size = 160;  // longest side, pixels
  // Called while thumbnails are rendered: (done, total).
  std::function<void(int64_t done, int64_t total)> progress;
  const std::atomic<bool>* cancel = nullptr;  // kCancelled when set
};

// One department's figures. Bytes are file sizes as catalogued.
struct DepartmentFigures {
  std::string source;
  int64_t files = 0, bytes = 0;  // fingerprinted files held now
  // Non-master members of clusters (not rejected by a reviewer, not retired).
  int64_t duplicate_files = 0, duplicate_bytes = 0;
  // Files with the same bytes as another one, minus one kept copy per group
  // (not retired).
  int64_t exact_redundant_files = 0, exact_redundant_bytes = 0;
  // Files whose latest apply/undo is a successful apply, and the bytes those
  // applies freed.
  int64_t retired_files = 0, reclaimed_bytes = 0;
};

// overlap.clusters[i][j] (i != j): clusters with members in both sources i and
// j; [i][i]: clusters with two or more members in source i.
struct OverlapMatrix {
  std::vector<std::string> sources;
  std::vector<std::vector<int64_t>> clusters;
};

struct GroupCount {
  std::string value;   // "(none)" when the file has no value
  int64_t before = 0;  // every fingerprinted file
  int64_t after = 0;   // one per cluster: non-master members not counted
};
struct Grouping {
  std::string field;
  std::vector<GroupCount> groups;  // biggest first ("year": oldest first)
};

struct Progress {
  int64_t clusters = 0;           // stored clusters, plus vanished ones that were resolved
  int64_t resolved = 0;           // = resolved_retired + resolved_rejected
  int64_t resolved_retired = 0;   // every non-master member retired (or rejected)
  int64_t resolved_rejected = 0;  // rejected by a reviewer as a whole
  int64_t pending = 0;
  int64_t files_retired = 0;
  std::string first_apply, last_apply;  // times of the first and last successful apply
  double span_days = 0;                 // between them, at least 1
  double rate_per_day = 0;              // resolved / span_days
  int64_t days_needed = 0;              // ceil(pending / rate)
  std::string today;                    // the day the estimate counts from
  std::string estimated_finish;         // "YYYY-MM-DD"; empty when there is no rate
  std::string deadline;                 // as asked, or empty
  std::optional<bool> on_track;         // set when a deadline is given
};

// A rendition of one file for the HTML report.
struct Thumbnail {
  int64_t file_id = 0;
  std::string source, path;  // path relative to the source root, printable (DisplayPath)
  int64_t size = 0;
  bool master = false, retired = false;
  std::string jpeg;  // JPEG bytes, empty if the file could not be rendered
  std::string note;  // why there is no picture ("file not found: ...")
};
struct ClusterSummary {
  int64_t id = 0;
  int64_t members = 0;
  int64_t duplicate_bytes = 0;   // non-master members, as catalogued
  std::string status;            // "pending", "resolved" or "rejected"
  std::vector<Thumbnail> files;  // master first; jpeg only with ReportOptions::thumbnails
};

struct Report {
  int format_version = kReportFormatVersion;
  std::string generated_at;  // UTC ISO 8601
  std::string doppel_version;
  std::string catalogue;                       // its location
  std::vector<DepartmentFigures> departments;  // by source name
  DepartmentFigures totals;                    // source "(total)"
  OverlapMatrix overlap;
  std::vector<Grouping> groupings;  // in ReportOptions::group_by order
  Progress progress;
  std::vector<ClusterSummary> largest_clusters;
  std::vector<std::string> notes;  // things a reader should know (unmatched join keys, ...)
};

// Computes every figure from the catalogue, which it only reads, from the
// calling thread. With `thumbnails` it calls InitImaging() and renders the
// listed files; one that cannot be rendered (missing, damaged) gets a note in
// its Thumbnail and never fails the report. Fails with kInvalidArgument for
// an unknown group field or a malformed date, kCancelled when `cancel` is
// set, or the catalogue's error.
Result<Report> BuildReport(Catalogue& catalogue, const ReportOptions& options);

// Renderers (src/report/render.cc). The HTML page is one self-contained file:
// inline CSS and SVG, thumbnails as data: URIs, no script, no external asset.
std::string RenderReportHtml(const Report& report);
std::string RenderReportCsv(const Report& report);   // section,key,subkey,value
std::string RenderReportJson(const Report& report);  // {"format":"doppel-report","version":1,...}

// Text escaped for HTML element content and attribute values (& < > " ').
std::string HtmlEscape(const std::string& text);

}  // namespace doppel
