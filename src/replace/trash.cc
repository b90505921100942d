// Emptying the trash: removing retired bytes kept for undo, journaled and
// audited (docs/journal.md, "Purge").
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>

#include "doppel/replace.h"
#include "replace/json_util.h"
#include "replace/replace_int.h"
#include "util/paths.h"

namespace doppel {
namespace {

constexpr int64_t kDay = 24 * 3600;

// What an operation's journal says about purging its trash. The purge
// records follow the operation's own records; ReadJournal ignores them.
struct PurgeState {
  std::string purge_id;  // empty: never purged
  std::string time;
  bool committed = false;
  std::map<int, nlohmann::json> started;  // index -> the purge record
  std::map<int, bool> done;
};

// The journal's purge records, CRC-checked; a torn or damaged line is
// skipped (ReadJournal, run first, decides whether the journal is sound).
Result<PurgeState> ReadPurge(Env& env, const std::string& path) {
  DOPPEL_ASSIGN_OR_RETURN(std::string text, env.ReadFile(path));
  PurgeState st;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;
    const std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.size() <= 9 || line[8] != ' ') continue;
    char want[16];
    std::snprintf(want, sizeof want, "%08x", Crc32(line.substr(9)));
    if (line.compare(0, 8, want) != 0) continue;
    auto r = nlohmann::json::parse(line.substr(9), nullptr, false);
    if (!r.is_object()) continue;
    const std::string type = r.value("type", "");
    if (type == "purge-begin") {
      st.purge_id = r.value("purge_operation", "");
      st.time = r.value("time", "");
    } else if (type == "purge" && r.contains("index")) {
      const int i = r["index"].get<int>();
      if (r.value("state", "") == "done")
        st.done[i] = true;
      else
        st.started[i] = r;
    } else if (type == "purge-commit") {
      st.committed = true;
    }
  }
  return st;
}

int64_t ParseUtc(const std::string& iso) {
  std::tm tm{};
  if (std::sscanf(iso.c_str(), "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
    return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return int64_t(timegm(&tm));
}

bool KeepsTrash(const std::string& action) {
  return action == "delete" || action == "hardlink" || action == "symlink";
}

// Removes empty folders under (and including) dir.
void RemoveEmptyFolders(Env& env, const std::string& dir) {
  auto names = env.ListDir(dir);
  if (!names.ok()) return;
  for (const std::string& n : *names) {
    auto fi = env.Stat(dir + "/" + n);
    if (fi.ok() && fi->exists && !fi->is_regular && !fi->is_symlink)
      RemoveEmptyFolders(env, dir + "/" + n);
  }
  (void)env.Remove(dir);
}

std::string FileName(const nlohmann::json& rec) {
  return rec.value("source", "") + "/" + DisplayPath(PathFromJson(rec.at("path")));
}

}  // namespace

Status RefuseIfPurged(Env& env, const std::string& path, const std::string& operation) {
  DOPPEL_ASSIGN_OR_RETURN(PurgeState ps, ReadPurge(env, path));
  if (ps.purge_id.empty()) return Status::OK();
  std::string names;
  size_t n = 0;
  for (const auto& [i, rec] : ps.started) {
    if (++n <= 5) names += (names.empty() ? "" : ", ") + FileName(rec);
  }
  if (n > 5) names += " and " + std::to_string(n - 5) + " more";
  return InvalidArgument(
      "operation " + operation + " cannot be undone: its trash was purged on " + ps.time + " (" +
      ps.purge_id + "), so " + std::to_string(n) + " retired files can no longer be restored: " +
      names + "; nothing was changed, their masters are kept" +
      (ps.committed ? "" : " (the purge was interrupted: run `doppel trash purge` to finish it)"));
}

Result<PurgeReport> PurgeTrash(Catalogue& cat, const PurgeOptions& o) {
  Env& env = o.env ? *o.env : *Env::Default();
  if (o.older_than_days < 0 || o.hold_days < 0)
    return InvalidArgument("--older-than and the hold period must be 0 days or more");
  const std::string journal_dir = StateDir(cat) + "/journal";
  DOPPEL_RETURN_IF_ERROR(env.CreateDirs(journal_dir));
  // One apply, resume, undo or purge at a time (the lock apply.cc takes).
  DOPPEL_ASSIGN_OR_RETURN(std::unique_ptr<Env::Lock> lock, env.LockFile(StateDir(cat) + "/lock"));
  const int64_t now = o.now_unix ? o.now_unix : int64_t(std::time(nullptr));
  PurgeReport report;
  report.purge_id = NewOperationId("purge");
  DOPPEL_ASSIGN_OR_RETURN(std::vector<std::string> names, env.ListDir(journal_dir));
  std::sort(names.begin(), names.end());
  const std::string ext = ".journal";
  for (const std::string& name : names) {
    if (name.size() <= ext.size() || name.compare(name.size() - ext.size(), ext.size(), ext) != 0)
      continue;
    const std::string op = name.substr(0, name.size() - ext.size());
    const std::string path = journal_dir + "/" + name;
    DOPPEL_ASSIGN_OR_RETURN(JournalState js, ReadJournal(env, path));
    if (!js.committed || js.undo_begun || !KeepsTrash(js.begin.value("action", ""))) continue;
    DOPPEL_ASSIGN_OR_RETURN(PurgeState ps, ReadPurge(env, path));
    if (ps.committed) continue;
    const std::string applied_at = js.begin.value("time", "");
    const int64_t age = now - ParseUtc(applied_at);
    // A purge already begun is finished whatever the options say: some of
    // its bytes are gone, the rest must not linger half-kept.
    if (ps.purge_id.empty()) {
      if (age < o.older_than_days * kDay) continue;
      if (age < o.hold_days * kDay) {
        report.held.push_back(op + ": applied " + std::to_string(age / kDay) +
                              " days ago, inside the " + std::to_string(o.hold_days) +
                              "-day hold period; its trash is kept");
        continue;
      }
    }
    DOPPEL_RETURN_IF_ERROR(RepairJournal(env, path, js));
    const std::string purge_id = ps.purge_id.empty() ? report.purge_id : ps.purge_id;
    if (ps.purge_id.empty())
      DOPPEL_RETURN_IF_ERROR(
          env.AppendDurably(path, JournalLine({{"type", "purge-begin"},
                                               {"purge_operation", purge_id},
                                               {"time", UtcNow()},
                                               {"older_than_days", o.older_than_days},
                                               {"hold_days", o.hold_days}})));
    PurgedOperation done{op, applied_at, 0, 0};
    for (const auto& [i, rec] : js.started) {
      auto fin = js.finished.find(i);
      if (fin == js.finished.end() || fin->second != "done" || ps.done.count(i)) continue;
      nlohmann::json r = {{"type", "purge"},
                          {"index", i},
                          {"file_id", rec.value("file_id", int64_t(0))},
                          {"source", rec.value("source", "")},
                          {"path", rec.at("path")},
                          {"keep", rec.at("keep")},
                          {"state", "start"}};
      if (!ps.started.count(i)) DOPPEL_RETURN_IF_ERROR(env.AppendDurably(path, JournalLine(r)));
      const std::string keep = PathFromJson(rec.at("keep"));
      DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo fi, env.Stat(keep));
      int64_t bytes = 0;
      if (fi.exists) {
        bytes = fi.size;
        DOPPEL_RETURN_IF_ERROR(env.Remove(keep).WithContext("purging the trash of " + op));
      }
      // A purge killed after this event and before its `done` record logs
      // it again only if it is not there.
      const int64_t file_id = rec.value("file_id", int64_t(0));
      EventFilter f;
      f.type = "purge";
      f.operation = purge_id;
      f.object = "file:" + std::to_string(file_id);
      DOPPEL_ASSIGN_OR_RETURN(std::vector<Event> logged, cat.ListEvents(f));
      if (logged.empty()) {
        Event e;
        e.type = "purge";
        e.object = f.object;
        e.operation = purge_id;
        e.detail = DumpJson({{"purges", op},
                             {"file_id", file_id},
                             {"source", rec.value("source", "")},
                             {"path", DisplayPath(PathFromJson(rec.at("path")))},
                             {"sha256", rec.value("sha256", "")},
                             {"bytes", rec.value("bytes", int64_t(0))},
                             {"freed_bytes", bytes},
                             {"reason", "kept for undo since " + applied_at +
                                            "; removed by `doppel trash purge`"}});
        DOPPEL_RETURN_IF_ERROR(cat.AppendEvent(e).status());
      }
      r["state"] = "done";
      DOPPEL_RETURN_IF_ERROR(env.AppendDurably(path, JournalLine(r)));
      ++done.files;
      done.bytes += bytes;
      if (o.progress) o.progress("purged " + FileName(rec) + " (kept for " + op + ")");
    }
    DOPPEL_RETURN_IF_ERROR(
        env.AppendDurably(path, JournalLine({{"type", "purge-commit"}, {"time", UtcNow()}})));
    RemoveEmptyFolders(env, js.begin.value("trash_dir", ""));
    report.files += done.files;
    report.bytes += done.bytes;
    report.purged.push_back(std::move(done));
  }
  return report;
}

}  // namespace doppel
