// BuildReport: every figure of a report from the catalogue (docs/report.md).
#include "doppel/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "doppel/catalogue.h"
#include "doppel/fingerprint.h"
#include "doppel/rendition.h"
#include "doppel/replace.h"
#include "doppel_version.h"
#include "util/csv.h"
#include "util/paths.h"

namespace doppel {
namespace {

constexpr const char* kNone = "(none)";

// Seconds since the epoch of "YYYY-MM-DD[THH:MM:SS...]" (UTC), or nullopt.
std::optional<int64_t> ParseUtc(const std::string& s) {
  std::tm tm{};
  int y, mo, d, h = 0, mi = 0, sec = 0;
  char tail[2];
  const bool full = s.size() >= 19 && std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d,
                                                  &h, &mi, &sec) == 6;
  const bool date_only =
      !full && s.size() == 10 && std::sscanf(s.c_str(), "%4d-%2d-%2d%1s", &y, &mo, &d, tail) == 3;
  if (!full && !date_only) return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  const time_t t = timegm(&tm);
  // timegm normalises 2026-02-31 to March: refuse dates that do not exist.
  std::tm back{};
  gmtime_r(&t, &back);
  if (back.tm_mday != d || back.tm_mon != mo - 1) return std::nullopt;
  return int64_t(t);
}

std::string DateOf(int64_t t) { return FormatUtc(t, "%Y-%m-%d"); }
std::string TimeOf(int64_t t) { return FormatUtc(t, "%Y-%m-%dT%H:%M:%SZ"); }

int64_t JsonInt(const nlohmann::json& d, const char* key) {
  if (d.is_object() && d.contains(key) && d[key].is_number_integer()) return d[key].get<int64_t>();
  return 0;
}
std::string JsonText(const nlohmann::json& d, const char* key) {
  if (d.is_object() && d.contains(key) && d[key].is_string()) return d[key].get<std::string>();
  return "";
}

// What the audit trail says about one retired file.
struct Retirement {
  int64_t reclaimed_bytes = 0;
  std::string source;  // from the event, else the catalogue's
  int64_t cluster_id = 0;
};

std::string Trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

std::string Camera(const std::string& make, const std::string& model) {
  std::string mk = Trim(make), md = Trim(model);
  if (mk.empty()) return md;
  if (md.empty()) return mk;
  // Many cameras repeat the make in the model ("Canon" / "Canon EOS 5D").
  if (md.size() >= mk.size() && std::equal(mk.begin(), mk.end(), md.begin(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) ==
               std::tolower(static_cast<unsigned char>(b));
      }))
    return md;
  return mk + " " + md;
}

}  // namespace

bool IsBuiltinGroupField(const std::string& f) {
  static const std::set<std::string> kFields = {"source", "format", "year",  "make",
                                                "model",  "camera", "author"};
  return kFields.count(f) > 0;
}

Result<JoinTable> LoadJoinCsv(const std::string& path, const std::string& key_column,
                              const std::string& field_column) {
  const std::string name = DisplayPath(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("join table " + name + ": cannot open; check the path given to --join");
  std::string line;
  if (!std::getline(in, line))
    return InvalidArgument("join table " + name +
                           ": empty; it needs a header row such as path,postcode");
  if (line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // spreadsheets write a UTF-8 BOM
  const auto header = SplitCsvLine(line);
  auto column = [&](const std::string& want) -> int {
    for (size_t i = 0; i < header.size(); ++i)
      if (Trim(header[i]) == want) return int(i);
    return -1;
  };
  const int key = column(key_column), field = column(field_column);
  std::string have;
  for (const auto& h : header) have += (have.empty() ? "" : ", ") + Trim(h);
  if (key < 0)
    return InvalidArgument("join table " + name + ": no column '" + key_column +
                           "' (columns: " + have + "); name the key column with --join-key");
  if (field < 0)
    return InvalidArgument("join table " + name + ": no column '" + field_column +
                           "' (columns: " + have + "); name the joined column with --join-field");
  JoinTable t;
  t.field = field_column;
  int lineno = 1;
  while (std::getline(in, line)) {
    ++lineno;
    if (Trim(line).empty() || line == "\r") continue;
    const auto f = SplitCsvLine(line);
    if (int(f.size()) <= std::max(key, field))
      return InvalidArgument("join table " + name + ":" + std::to_string(lineno) + ": " +
                             std::to_string(f.size()) + " fields, expected " +
                             std::to_string(header.size()) +
                             "; fix the line (fields with commas need double quotes)");
    std::string k = f[size_t(key)];
    while (k.rfind("./", 0) == 0) k.erase(0, 2);
    if (k.empty()) continue;
    t.values[k] = Trim(f[size_t(field)]);
  }
  return t;
}

Result<Report> BuildReport(Catalogue& cat, const ReportOptions& opt) {
  for (const auto& f : opt.group_by)
    if (!IsBuiltinGroupField(f) && !(opt.join && opt.join->field == f))
      return InvalidArgument(std::string("cannot group by '")
                                 .append(f)
                                 .append("': use source, format, year, make, model, camera, "
                                         "author, or the field of a join table (--join FILE "
                                         "--join-field ")
                                 .append(f)
                                 .append(")"));
  if (opt.join && IsBuiltinGroupField(opt.join->field))
    return InvalidArgument("the joined column '" + opt.join->field +
                           "' has the name of a built-in field; rename the column in the CSV");
  std::optional<int64_t> deadline, today;
  if (!opt.deadline.empty() && !(deadline = ParseUtc(opt.deadline)))
    return InvalidArgument("deadline '" + opt.deadline + "' is not a date; write it as YYYY-MM-DD");
  if (!opt.today.empty()) {
    if (opt.today.size() != 10 || !(today = ParseUtc(opt.today)))
      return InvalidArgument("today '" + opt.today + "' is not a date; write it as YYYY-MM-DD");
  } else {
    today = ParseUtc(DateOf(int64_t(std::time(nullptr))));
  }

  Report rep;
  rep.generated_at = UtcNow();
  rep.doppel_version = DOPPEL_VERSION;
  rep.catalogue = cat.Location();

  // --- What the catalogue holds.
  DOPPEL_ASSIGN_OR_RETURN(auto sources, cat.ListSources());
  std::sort(sources.begin(), sources.end(),
            [](const Source& a, const Source& b) { return a.name < b.name; });
  std::map<std::string, std::string> roots;
  std::map<std::string, size_t> dept_index;
  for (const auto& s : sources) {
    roots[s.name] = s.root;
    dept_index[s.name] = rep.departments.size();
    rep.departments.push_back(DepartmentFigures{s.name});
    rep.overlap.sources.push_back(s.name);
  }
  auto dept = [&](const std::string& name) -> DepartmentFigures* {
    auto it = dept_index.find(name);
    return it == dept_index.end() ? nullptr : &rep.departments[it->second];
  };
  DOPPEL_ASSIGN_OR_RETURN(auto all_files, cat.ListFiles(std::nullopt, "", 0));
  std::unordered_map<int64_t, const FileEntry*> file_by_id;
  for (const auto& f : all_files) file_by_id[f.id] = &f;
  auto is_ok = [&](int64_t id) {
    auto it = file_by_id.find(id);
    return it != file_by_id.end() && it->second->status == FileStatus::kOk;
  };

  // --- Retired files: the one rule (RetiredFiles), with what each apply event
  // says about the file.
  int64_t unreadable_events = 0;
  DOPPEL_ASSIGN_OR_RETURN(auto retired_list, RetiredFiles(cat, &unreadable_events));
  std::unordered_map<int64_t, Retirement> retired;
  for (const RetiredFile& rf : retired_list) {
    const auto d = nlohmann::json::parse(rf.detail, nullptr, false);
    Retirement r;
    r.reclaimed_bytes = JsonInt(d, "reclaimed_bytes");
    r.source = JsonText(d, "source");
    if (r.source.empty() && file_by_id.count(rf.file_id)) r.source = file_by_id[rf.file_id]->source;
    r.cluster_id = JsonInt(d, "cluster_id");
    retired[rf.file_id] = r;
  }
  // The pace: the first and last successful apply, retired since or not.
  std::optional<int64_t> first_apply, last_apply;
  DOPPEL_ASSIGN_OR_RETURN(auto applies, cat.ListEvents(EventFilter{0, "apply", "", "", 0}));
  for (const Event& e : applies) {
    if (!e.outcome.empty() && e.outcome != "success") continue;
    if (auto t = ParseUtc(e.time)) {
      first_apply = first_apply ? std::min(*first_apply, *t) : *t;
      last_apply = last_apply ? std::max(*last_apply, *t) : *t;
    }
  }
  if (unreadable_events)
    rep.notes.push_back(
        std::to_string(unreadable_events) +
        " apply/undo event(s) name no file (object file:ID or detail file_id) and were ignored");
  std::map<std::string, int64_t> unknown_sources;  // retired files of sources no longer registered
  for (const auto& [file, r] : retired) {
    ++rep.progress.files_retired;
    if (DepartmentFigures* d = dept(r.source)) {
      ++d->retired_files;
      d->reclaimed_bytes += r.reclaimed_bytes;
    } else {
      ++unknown_sources[r.source];
      ++rep.totals.retired_files;
      rep.totals.reclaimed_bytes += r.reclaimed_bytes;
    }
  }
  for (const auto& [source, count] : unknown_sources)
    rep.notes.push_back(std::to_string(count) + " file(s) were retired from source '" + source +
                        "', which the catalogue no longer knows; they count in the total only");

  // --- Review decisions in force.
  DOPPEL_ASSIGN_OR_RETURN(auto decision_list, cat.ListDecisions(std::nullopt));
  const ReviewDecisions decisions(std::move(decision_list));

  // --- Clusters as the replacement sees them: the reviewer's master wins,
  // rejected members are not duplicates, rejected clusters are not either.
  DOPPEL_ASSIGN_OR_RETURN(auto clusters, cat.LoadClusters());
  struct View {
    const Cluster* cluster = nullptr;
    int64_t master = 0;
    bool rejected = false;
    std::vector<int64_t> members;     // not rejected, master first
    std::vector<int64_t> duplicates;  // members but the master
    std::string status;
    int64_t duplicate_bytes = 0;
  };
  std::vector<View> views;
  std::unordered_set<int64_t> stored_ids;
  std::unordered_set<int64_t> duplicate_files;  // non-master members of clusters in force
  std::unordered_set<int64_t> masters;
  for (const Cluster& c : clusters) {
    if (c.members.size() < 2) continue;
    stored_ids.insert(c.id);
    View v;
    v.cluster = &c;
    ReviewedCluster rc = decisions.Apply(c);
    v.master = rc.master;
    v.rejected = rc.rejected;
    v.members = std::move(rc.members);
    v.duplicates.assign(v.members.begin() + 1, v.members.end());
    for (int64_t f : v.duplicates)
      if (file_by_id.count(f)) v.duplicate_bytes += file_by_id[f]->size;
    bool all_retired = true;
    for (int64_t f : v.duplicates) all_retired &= retired.count(f) > 0;
    v.status = v.rejected ? "rejected" : all_retired ? "resolved" : "pending";
    if (!v.rejected) {
      masters.insert(v.master);
      for (int64_t f : v.duplicates) duplicate_files.insert(f);
    }
    views.push_back(std::move(v));
  }

  // Held in duplicates: non-master members still fingerprinted and not retired.
  for (int64_t f : duplicate_files) {
    if (retired.count(f) || !is_ok(f)) continue;
    const FileEntry* e = file_by_id[f];
    if (DepartmentFigures* d = dept(e->source)) {
      ++d->duplicate_files;
      d->duplicate_bytes += e->size;
    }
  }
  // Exact copies: one kept per group of identical bytes (a cluster's master if
  // one is in the group, else the first by source priority, name and path).
  DOPPEL_ASSIGN_OR_RETURN(auto exact, cat.DigestGroups("exact", 0));
  for (const auto& g : exact) {
    std::vector<const FileEntry*> live;
    for (const auto& f : g.files)
      if (!retired.count(f.id)) live.push_back(&f);
    if (live.size() < 2) continue;
    size_t kept = 0;
    for (size_t i = 0; i < live.size(); ++i)
      if (masters.count(live[i]->id)) {
        kept = i;
        break;
      }
    for (size_t i = 0; i < live.size(); ++i) {
      if (i == kept) continue;
      if (DepartmentFigures* d = dept(live[i]->source)) {
        ++d->exact_redundant_files;
        d->exact_redundant_bytes += live[i]->size;
      }
    }
  }
  for (const auto& f : all_files) {
    if (f.status != FileStatus::kOk) continue;
    if (DepartmentFigures* d = dept(f.source)) {
      ++d->files;
      d->bytes += f.size;
    }
  }
  rep.totals.source = "(total)";
  for (const auto& d : rep.departments) {
    rep.totals.files += d.files;
    rep.totals.bytes += d.bytes;
    rep.totals.duplicate_files += d.duplicate_files;
    rep.totals.duplicate_bytes += d.duplicate_bytes;
    rep.totals.exact_redundant_files += d.exact_redundant_files;
    rep.totals.exact_redundant_bytes += d.exact_redundant_bytes;
    rep.totals.retired_files += d.retired_files;
    rep.totals.reclaimed_bytes += d.reclaimed_bytes;
  }

  // --- Overlap: clusters in force with members in two departments.
  const size_t n = rep.overlap.sources.size();
  rep.overlap.clusters.assign(n, std::vector<int64_t>(n, 0));
  for (const View& v : views) {
    if (v.rejected) continue;
    std::map<size_t, int> per_source;
    for (int64_t f : v.members) {
      auto it = file_by_id.find(f);
      if (it == file_by_id.end()) continue;
      auto di = dept_index.find(it->second->source);
      if (di != dept_index.end()) ++per_source[di->second];
    }
    for (const auto& [i, count] : per_source) {
      if (count >= 2) ++rep.overlap.clusters[i][i];
      for (const auto& [j, unused] : per_source)
        if (j != i) ++rep.overlap.clusters[i][j];
    }
  }

  // --- Counts by field, before and after duplicates are removed.
  if (!opt.group_by.empty()) {
    bool need_record = false;
    for (const auto& f : opt.group_by)
      need_record |= f == "make" || f == "model" || f == "camera" || f == "author";
    std::vector<std::map<std::string, GroupCount>> counts(opt.group_by.size());
    int64_t joined = 0;
    std::unordered_set<std::string> used_keys;
    for (const auto& f : all_files) {
      if (f.status != FileStatus::kOk) continue;
      if (opt.cancel && opt.cancel->load()) return Cancelled("report cancelled");
      ImageMetadata meta;
      if (need_record) {
        auto r = cat.GetRecord(f.id);
        if (r.ok()) meta = std::move(r->metadata);
      }
      std::string join_value;
      bool has_join = false;
      if (opt.join) {
        for (const std::string& key : {f.source + "/" + f.path, f.path}) {
          auto it = opt.join->values.find(key);
          if (it == opt.join->values.end()) continue;
          join_value = it->second;
          used_keys.insert(key);
          has_join = true;
          break;
        }
        joined += has_join;
      }
      const bool counted_after = !duplicate_files.count(f.id);
      for (size_t k = 0; k < opt.group_by.size(); ++k) {
        const std::string& field = opt.group_by[k];
        std::string v;
        if (field == "source")
          v = f.source;
        else if (field == "format")
          v = f.format;
        else if (field == "year") {
          v = f.capture_time.substr(0, 4);
          if (v.size() != 4 || v.find_first_not_of("0123456789") != std::string::npos) v.clear();
        } else if (field == "make")
          v = Trim(meta.make);
        else if (field == "model")
          v = Trim(meta.model);
        else if (field == "camera")
          v = Camera(meta.make, meta.model);
        else if (field == "author")
          v = Trim(meta.artist);
        else
          v = join_value;
        if (v.empty()) v = kNone;
        GroupCount& g = counts[k][v];
        g.value = v;
        ++g.before;
        g.after += counted_after;
      }
    }
    for (size_t k = 0; k < opt.group_by.size(); ++k) {
      Grouping g{opt.group_by[k], {}};
      for (auto& [v, c] : counts[k]) g.groups.push_back(c);
      const bool by_value = g.field == "year";
      std::stable_sort(g.groups.begin(), g.groups.end(),
                       [&](const GroupCount& a, const GroupCount& b) {
                         if ((a.value == kNone) != (b.value == kNone))
                           return b.value == kNone;  // "(none)" last
                         if (by_value) return a.value < b.value;
                         return a.before != b.before ? a.before > b.before : a.value < b.value;
                       });
      rep.groupings.push_back(std::move(g));
    }
    if (opt.join) {
      const size_t unused =
          opt.join->values.size() - std::min(opt.join->values.size(), used_keys.size());
      rep.notes.push_back("join table (" + opt.join->field + "): " + std::to_string(joined) +
                          " file(s) matched a row; " + std::to_string(unused) +
                          " row(s) matched no file");
    }
  }

  // --- Progress.
  Progress& p = rep.progress;
  std::unordered_set<int64_t>
      vanished;  // clusters named by retired files' applies, since dropped by `match`
  for (const auto& [file, r] : retired)
    if (r.cluster_id > 0 && !stored_ids.count(r.cluster_id)) vanished.insert(r.cluster_id);
  for (const View& v : views) {
    ++p.clusters;
    if (v.status == "rejected")
      ++p.resolved_rejected;
    else if (v.status == "resolved")
      ++p.resolved_retired;
    else
      ++p.pending;
  }
  p.clusters += int64_t(vanished.size());
  p.resolved_retired += int64_t(vanished.size());
  p.resolved = p.resolved_retired + p.resolved_rejected;
  p.today = DateOf(*today);
  p.deadline = opt.deadline.empty() ? "" : DateOf(*deadline);
  if (first_apply) {
    p.first_apply = TimeOf(*first_apply);
    p.last_apply = TimeOf(*last_apply);
    p.span_days = std::max(1.0, double(*last_apply - *first_apply) / 86400.0);
    p.rate_per_day = double(p.resolved) / p.span_days;
  }
  if (p.pending == 0) {
    p.days_needed = 0;
    p.estimated_finish = last_apply ? DateOf(*last_apply) : p.today;
  } else if (p.rate_per_day > 0) {
    // A tiny tolerance keeps 10 / (10/3 per day) at 3 days, not 4.
    p.days_needed = int64_t(std::ceil(double(p.pending) / p.rate_per_day - 1e-9));
    p.estimated_finish = DateOf(*today + p.days_needed * 86400);
  }
  if (deadline) p.on_track = !p.estimated_finish.empty() && p.estimated_finish <= p.deadline;

  // --- The largest clusters, with thumbnails for the HTML page.
  std::vector<const View*> order;
  order.reserve(views.size());
  for (const View& v : views) order.push_back(&v);
  std::sort(order.begin(), order.end(), [](const View* a, const View* b) {
    if (a->members.size() != b->members.size()) return a->members.size() > b->members.size();
    if (a->duplicate_bytes != b->duplicate_bytes) return a->duplicate_bytes > b->duplicate_bytes;
    return a->cluster->id < b->cluster->id;
  });
  if (int(order.size()) > opt.largest_clusters)
    order.resize(size_t(std::max(0, opt.largest_clusters)));
  int64_t to_render = 0, rendered = 0;
  for (const View* v : order)
    to_render += std::min<int64_t>(int64_t(v->members.size()), opt.thumbnails_per_cluster);
  if (opt.thumbnails && to_render > 0) DOPPEL_RETURN_IF_ERROR(InitImaging());
  for (const View* v : order) {
    ClusterSummary cs;
    cs.id = v->cluster->id;
    cs.members = int64_t(v->members.size());
    cs.duplicate_bytes = v->duplicate_bytes;
    cs.status = v->status;
    for (int64_t f : v->members) {
      Thumbnail t;
      t.file_id = f;
      t.master = f == v->master;
      t.retired = retired.count(f) > 0;
      auto it = file_by_id.find(f);
      if (it != file_by_id.end()) {
        t.source = it->second->source;
        t.path = DisplayPath(it->second->path);
        t.size = it->second->size;
      }
      if (opt.thumbnails && int(cs.files.size()) < opt.thumbnails_per_cluster) {
        if (opt.cancel && opt.cancel->load())
          return Cancelled("report cancelled while rendering thumbnails");
        if (it == file_by_id.end() || !roots.count(t.source)) {
          t.note = "not in the catalogue any more";
        } else {
          const std::string full = JoinPath(roots[t.source], it->second->path);
          RenditionOptions ro;
          ro.max_side = opt.thumbnail_size;
          std::error_code ec;
          if (!std::filesystem::exists(full, ec)) {
            // Quarantined, deleted or on an unmounted share: say so plainly.
            t.note = std::string(t.retired ? "retired; " : "") + "file not found at " +
                     DisplayPath(full);
          } else if (auto r = RenderFile(full, ro); !r.ok()) {
            t.note = "cannot show " + DisplayPath(full) + ": " + r.status().message();
          } else if (auto jpeg = EncodeJpeg(*r, 75); !jpeg.ok()) {
            t.note = "cannot encode the thumbnail of " + DisplayPath(full) + ": " +
                     jpeg.status().message();
          } else {
            t.jpeg = std::move(*jpeg);
          }
        }
        if (opt.progress) opt.progress(++rendered, to_render);
      }
      cs.files.push_back(std::move(t));
    }
    rep.largest_clusters.push_back(std::move(cs));
  }
  return rep;
}

}  // namespace doppel
