// Releases (docs/release.md).
#include "doppel/release.h"

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "doppel/conflicts.h"
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
  // What the previous release published: retired file -> redirect target.
  // Version 1 manifests did not record it; their targets were the direct
  // masters, which is what `direct` below holds.
  std::map<int64_t, int64_t> previous_target;
  std::string previous;
  if (!releases.empty()) {
    previous = releases.back().version;
    auto j = nlohmann::json::parse(releases.back().manifest, nullptr, false);
    if (j.is_object() && j.contains("state")) {
      for (const auto& id : j["state"].value("retired_file_ids", nlohmann::json::array()))
        previous_retired.insert(id.get<int64_t>());
      for (const auto& r : j["state"].value("redirects", nlohmann::json::array()))
        if (r.is_array() && r.size() == 2)
          previous_target[r[0].get<int64_t>()] = r[1].get<int64_t>();
    }
  }
  // Names of the files redirected to: today's from the apply events, the
  // previous release's (a target restored or retired since) from its masters.
  struct Named {
    std::string source, path, sha256;
  };
  std::map<int64_t, Named> named;
  if (!releases.empty()) {
    auto j = nlohmann::json::parse(releases.back().manifest, nullptr, false);
    if (j.is_object())
      for (const auto& m : j.value("masters", nlohmann::json::array()))
        if (m.is_object() && m.value("path", nlohmann::json()).is_string())
          named[m.value("file_id", int64_t(0))] = {m.value("source", ""), m.value("path", ""),
                                                   m.value("sha256", "")};
  }
  DOPPEL_ASSIGN_OR_RETURN(std::vector<RetiredFile> retired, RetiredFiles(cat));
  // The masters' metadata with people's decisions on conflicts applied.
  DOPPEL_ASSIGN_OR_RETURN(std::vector<ConsolidatedMetadata> metadata, MetadataInForce(cat));
  std::map<int64_t, const ConsolidatedMetadata*> doc_of;
  for (const ConsolidatedMetadata& d : metadata) doc_of[d.master_file_id] = &d;

  // Every retired file's apply detail, and what the details say about each
  // file they name (itself or its master).
  std::map<int64_t, nlohmann::json> detail_of;
  std::map<int64_t, int64_t> direct;  // retired file -> the master it was retired for
  for (const RetiredFile& r : retired) {
    auto d = nlohmann::json::parse(r.detail, nullptr, false);
    if (!d.is_object()) continue;
    const int64_t master = d.value("master_file_id", int64_t(0));
    detail_of[r.file_id] = d;
    direct[r.file_id] = master;
    named[r.file_id] = {d.value("source", ""), d.value("path", ""), d.value("sha256", "")};
    named[master] = {d.value("master_source", ""), d.value("master_path", ""),
                     d.value("master_sha256", "")};
  }
  // Single hop: a master retired since is followed to the live copy it was
  // retired for, so a portal never redirects to a retired path.
  auto live_target = [&](int64_t id) {
    int64_t t = direct.count(id) ? direct[id] : 0;
    for (size_t hops = 0; direct.count(t) && hops <= direct.size(); ++hops) t = direct[t];
    return t;
  };

  nlohmann::json j;
  j["format"] = "doppel-release";
  j["version"] = kReleaseVersion;
  j["release"] = version;
  j["previous_release"] = previous.empty() ? nlohmann::json(nullptr) : nlohmann::json(previous);
  j["created_at"] = UtcNow();
  j["agent"] = SoftwareAgent();
  nlohmann::json newly = nlohmann::json::array(), restored = nlohmann::json::array(),
                 repointed = nlohmann::json::array(), redirects = nlohmann::json::array();
  std::set<int64_t> now_retired, masters;
  int64_t retired_bytes = 0, newly_bytes = 0;
  std::string csv = "old_path,new_path\n";
  auto target_json = [&](int64_t t) {
    const Named& n = named[t];
    return nlohmann::json{
        {"file_id", t}, {"source", n.source}, {"path", n.path}, {"sha256", n.sha256}};
  };
  for (const RetiredFile& r : retired) {
    auto it = detail_of.find(r.file_id);
    if (it == detail_of.end()) continue;
    const nlohmann::json& d = it->second;
    now_retired.insert(r.file_id);
    retired_bytes += d.value("bytes", int64_t(0));
    const int64_t target = live_target(r.file_id);
    masters.insert(target);
    redirects.push_back({r.file_id, target});
    const std::string old_path = d.value("source", "") + "/" + d.value("path", "");
    const std::string new_path = named[target].source + "/" + named[target].path;
    // Every retired path ever published stays in the list, pointing at the
    // live master directly.
    csv += CsvLine({old_path, new_path});
    if (previous_retired.count(r.file_id)) {
      auto was = previous_target.find(r.file_id);
      const int64_t was_id = was != previous_target.end() ? was->second : direct[r.file_id];
      if (was_id != target)
        repointed.push_back({{"file_id", r.file_id},
                             {"source", d.value("source", "")},
                             {"path", d.value("path", "")},
                             {"was", target_json(was_id)},
                             {"redirect_to", target_json(target)}});
      continue;
    }
    newly.push_back({{"file_id", r.file_id},
                     {"source", d.value("source", "")},
                     {"path", d.value("path", "")},
                     {"sha256", d.value("sha256", "")},
                     {"bytes", d.value("bytes", int64_t(0))},
                     {"action", d.value("action", "")},
                     {"operation", r.operation},
                     {"reason", d.value("reason", "")},
                     {"redirect_to", target_json(target)}});
    newly_bytes += d.value("bytes", int64_t(0));
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
  j["changes"] = {{"retired", newly}, {"restored", restored}, {"repointed", repointed}};
  nlohmann::json kept = nlohmann::json::array();
  for (int64_t m : masters) {
    if (m == 0) continue;
    nlohmann::json entry = target_json(m);
    auto it = doc_of.find(m);
    if (it != doc_of.end()) {
      auto md = nlohmann::json::parse(ConsolidatedToJson(*it->second), nullptr, false);
      if (!md.is_discarded()) entry["metadata"] = md;
    }
    kept.push_back(entry);
  }
  j["masters"] = kept;
  j["totals"] = {{"retired_files", now_retired.size()},
                 {"retired_bytes", retired_bytes},
                 {"masters", kept.size()},
                 {"newly_retired", newly.size()},
                 {"newly_retired_bytes", newly_bytes},
                 {"restored", restored.size()},
                 {"repointed", repointed.size()}};
  j["state"] = {{"retired_file_ids", now_retired}, {"redirects", redirects}};

  ReleaseFiles out;
  out.version = version;
  out.manifest_json = DumpJson(j, 2) + "\n";
  out.redirects_csv = csv;
  out.newly_retired = int64_t(newly.size());
  out.restored = int64_t(restored.size());
  out.repointed = int64_t(repointed.size());
  std::ostringstream md;
  md << "# Release " << version << "\n\n"
     << "Published " << j["created_at"].get<std::string>()
     << (previous.empty() ? "" : ", since release " + previous) << ".\n\n";
  md << "- " << newly.size() << " duplicate files retired (" << Mb(newly_bytes) << ")"
     << "; each now redirects to the copy that is kept (see redirects.csv).\n";
  md << "- " << restored.size() << " files restored; their redirects are withdrawn.\n";
  md << "- " << repointed.size()
     << " earlier redirects repointed: their target was retired or restored since.\n";
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
  if (!repointed.empty()) {
    md << "## Repointed redirects\n\n| Retired file | Redirected to before | Use instead "
          "|\n|---|---|---|\n";
    for (const auto& r : repointed)
      md << "| " << r["source"].get<std::string>() << "/" << r["path"].get<std::string>() << " | "
         << r["was"]["source"].get<std::string>() << "/" << r["was"]["path"].get<std::string>()
         << " | " << r["redirect_to"]["source"].get<std::string>() << "/"
         << r["redirect_to"]["path"].get<std::string>() << " |\n";
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
                       {"repointed", repointed.size()},
                       {"retired_files", now_retired.size()},
                       {"retired_bytes", retired_bytes}});
  DOPPEL_RETURN_IF_ERROR(
      cat.AddRelease(ReleaseRecord{0, version, "", out.manifest_json}, e).status());
  return out;
}

}  // namespace doppel
