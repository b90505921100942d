// Releases (docs/release.md).
#include "doppel/release.h"

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "doppel/replace.h"
#include "replace/json_util.h"
#include "util/csv.h"
#include "util/paths.h"

namespace doppel {
namespace {

std::string Mb(int64_t bytes) {
  std::ostringstream o;
  o.precision(1);
  o << std::fixed << double(bytes) / 1e6 << " MB";
  return o.str();
}

}  // namespace

Result<ReleaseFiles> MakeRelease(Catalogue& cat, const std::string& version) {
  if (version.empty() || version.find_first_of(" /\\\n") != std::string::npos)
    return InvalidArgument("release version '" + version +
                           "' must be a word such as 1.0 (no spaces or slashes)");
  DOPPEL_ASSIGN_OR_RETURN(std::vector<ReleaseRecord> releases, cat.ListReleases());
  for (const ReleaseRecord& r : releases)
    if (r.version == version)
      return AlreadyExists("release " + version + " was published on " + r.created_at +
                           "; releases are immutable, choose a new version");
  std::set<int64_t> previous_retired;
  std::string previous;
  if (!releases.empty()) {
    previous = releases.back().version;
    auto j = nlohmann::json::parse(releases.back().manifest, nullptr, false);
    if (j.is_object() && j.contains("state"))
      for (const auto& id : j["state"].value("retired_file_ids", nlohmann::json::array()))
        previous_retired.insert(id.get<int64_t>());
  }
  DOPPEL_ASSIGN_OR_RETURN(std::vector<RetiredFile> retired, RetiredFiles(cat));
  DOPPEL_ASSIGN_OR_RETURN(std::vector<StoredMetadata> docs, cat.LoadConsolidatedMetadata());
  std::map<int64_t, const StoredMetadata*> doc_of;
  for (const StoredMetadata& d : docs) doc_of[d.master_file_id] = &d;

  nlohmann::json j;
  j["format"] = "doppel-release";
  j["version"] = kReleaseVersion;
  j["release"] = version;
  j["previous_release"] = previous.empty() ? nlohmann::json(nullptr) : nlohmann::json(previous);
  j["created_at"] = UtcNow();
  j["agent"] = SoftwareAgent();
  nlohmann::json newly = nlohmann::json::array(), restored = nlohmann::json::array();
  std::set<int64_t> now_retired, masters;
  int64_t retired_bytes = 0, newly_bytes = 0;
  std::string csv = "old_path,new_path\n";
  for (const RetiredFile& r : retired) {
    now_retired.insert(r.file_id);
    auto d = nlohmann::json::parse(r.detail, nullptr, false);
    if (!d.is_object()) continue;
    retired_bytes += d.value("bytes", int64_t(0));
    masters.insert(d.value("master_file_id", int64_t(0)));
    if (previous_retired.count(r.file_id)) continue;
    const std::string old_path = d.value("source", "") + "/" + d.value("path", "");
    const std::string new_path = d.value("master_source", "") + "/" + d.value("master_path", "");
    newly.push_back({{"file_id", r.file_id},
                     {"source", d.value("source", "")},
                     {"path", d.value("path", "")},
                     {"sha256", d.value("sha256", "")},
                     {"bytes", d.value("bytes", int64_t(0))},
                     {"action", d.value("action", "")},
                     {"operation", r.operation},
                     {"reason", d.value("reason", "")},
                     {"redirect_to",
                      {{"file_id", d.value("master_file_id", int64_t(0))},
                       {"source", d.value("master_source", "")},
                       {"path", d.value("master_path", "")},
                       {"sha256", d.value("master_sha256", "")}}}});
    newly_bytes += d.value("bytes", int64_t(0));
    csv += CsvLine({old_path, new_path});
  }
  // Files retired in the previous release and restored by an undo since.
  std::vector<std::string> restored_names;
  for (int64_t id : previous_retired) {
    if (now_retired.count(id)) continue;
    EventFilter f;
    f.type = "undo";
    f.object = "file:" + std::to_string(id);
    DOPPEL_ASSIGN_OR_RETURN(std::vector<Event> ev, cat.ListEvents(f));
    nlohmann::json entry = {{"file_id", id}};
    if (!ev.empty()) {
      auto d = nlohmann::json::parse(ev.back().detail, nullptr, false);
      if (d.is_object()) {
        entry["source"] = d.value("source", "");
        entry["path"] = d.value("path", "");
        entry["sha256"] = d.value("sha256", "");
        entry["undoes"] = d.value("undoes", "");
        restored_names.push_back(d.value("source", "") + "/" + d.value("path", ""));
      }
    }
    restored.push_back(entry);
  }
  j["changes"] = {{"retired", newly}, {"restored", restored}};
  nlohmann::json kept = nlohmann::json::array();
  for (int64_t m : masters) {
    if (m == 0) continue;
    nlohmann::json entry = {{"file_id", m}};
    auto it = doc_of.find(m);
    if (it != doc_of.end()) {
      auto md = nlohmann::json::parse(it->second->document, nullptr, false);
      if (!md.is_discarded()) entry["metadata"] = md;
    }
    for (const RetiredFile& r : retired) {
      auto d = nlohmann::json::parse(r.detail, nullptr, false);
      if (d.is_object() && d.value("master_file_id", int64_t(0)) == m) {
        entry["source"] = d.value("master_source", "");
        entry["path"] = d.value("master_path", "");
        entry["sha256"] = d.value("master_sha256", "");
        break;
      }
    }
    kept.push_back(entry);
  }
  j["masters"] = kept;
  j["totals"] = {{"retired_files", now_retired.size()},
                 {"retired_bytes", retired_bytes},
                 {"masters", kept.size()},
                 {"newly_retired", newly.size()},
                 {"newly_retired_bytes", newly_bytes},
                 {"restored", restored.size()}};
  j["state"] = {{"retired_file_ids", now_retired}};

  ReleaseFiles out;
  out.version = version;
  out.manifest_json = DumpJson(j, 2) + "\n";
  out.redirects_csv = csv;
  out.newly_retired = int64_t(newly.size());
  out.restored = int64_t(restored.size());
  std::ostringstream md;
  md << "# Release " << version << "\n\n"
     << "Published " << j["created_at"].get<std::string>()
     << (previous.empty() ? "" : ", since release " + previous) << ".\n\n";
  md << "- " << newly.size() << " duplicate files retired (" << Mb(newly_bytes) << ")"
     << "; each now redirects to the copy that is kept (see redirects.csv).\n";
  md << "- " << restored.size() << " files restored.\n";
  md << "- In all, " << now_retired.size() << " files (" << Mb(retired_bytes)
     << ") are retired in favour of " << kept.size() << " kept masters.\n\n";
  if (!newly.empty()) {
    md << "## Retired files\n\n| Retired file | Use instead | Why "
          "|\n|---|---|---|\n";
    for (const auto& r : newly) {
      std::string why = r.value("reason", "");
      for (char& c : why)
        if (c == '|' || c == '\n') c = ' ';
      md << "| " << r["source"].get<std::string>() << "/" << r["path"].get<std::string>() << " | "
         << r["redirect_to"]["source"].get<std::string>() << "/"
         << r["redirect_to"]["path"].get<std::string>() << " | " << why << " |\n";
    }
    md << "\n";
  }
  if (!restored_names.empty()) {
    md << "## Restored files\n\n";
    for (const std::string& n : restored_names) md << "- " << n << "\n";
    md << "\n";
  }
  out.changes_md = md.str();

  Event e;
  e.type = "release";
  e.object = "release:" + version;
  e.detail = DumpJson({{"release", version},
                       {"previous_release", previous},
                       {"newly_retired", newly.size()},
                       {"restored", restored.size()},
                       {"retired_files", now_retired.size()},
                       {"retired_bytes", retired_bytes}});
  DOPPEL_RETURN_IF_ERROR(
      cat.AddRelease(ReleaseRecord{0, version, "", out.manifest_json}, e).status());
  return out;
}

}  // namespace doppel
