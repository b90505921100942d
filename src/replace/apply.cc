// Applying and undoing plans under a write-ahead journal (docs/journal.md).
//
// Every action is a short list of file-system steps. Before a step is taken
// its "start" record is on disk (fdatasync); after, its "done" record. Every
// step is written so that running it again after a crash at any point
// finishes it (or finds it finished) without harm: that is what makes resume
// and undo safe after a kill -9.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <thread>

#include "doppel/replace.h"
#include "replace/json_util.h"
#include "replace/replace_int.h"
#include "util/paths.h"

namespace doppel {

// ---------------------------------------------------------------- journal
// format

uint32_t Crc32(const std::string& bytes) {
  static uint32_t table[256] = {};
  static bool init = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)init;
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : bytes) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::string JournalLine(const nlohmann::json& record) {
  const std::string text = DumpJson(record);
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08x", Crc32(text));
  return std::string(crc) + " " + text + "\n";
}

Result<JournalState> ReadJournal(Env& env, const std::string& path) {
  DOPPEL_ASSIGN_OR_RETURN(std::string text, env.ReadFile(path));
  JournalState st;
  size_t pos = 0;
  int64_t line_no = 0;
  bool bad_seen = false;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    const bool complete = nl != std::string::npos;
    std::string line = text.substr(pos, complete ? nl - pos : std::string::npos);
    pos = complete ? nl + 1 : text.size();
    ++line_no;
    bool good = complete && line.size() > 9 && line[8] == ' ';
    nlohmann::json r;
    if (good) {
      char want[16];
      std::snprintf(want, sizeof want, "%08x", Crc32(line.substr(9)));
      good = line.compare(0, 8, want) == 0;
      if (good) {
        r = nlohmann::json::parse(line.substr(9), nullptr, false);
        good = r.is_object();
      }
    }
    if (!good) {
      bad_seen = true;
      continue;
    }
    if (bad_seen)
      return Corruption(path + ": record " + std::to_string(line_no - 1) +
                        " is damaged but later records are intact; the journal "
                        "cannot be trusted "
                        "(keep it, and compare the files with `doppel audit "
                        "--operation ID`)");
    ++st.records;
    st.valid_bytes = pos;
    try {
      const std::string type = r.at("type").get<std::string>();
      if (type == "begin") {
        const int v = r.at("journal_version").get<int>();
        if (v > kJournalVersion)
          return Unsupported(path + ": journal version " + std::to_string(v) +
                             " is newer than this doppel (" + std::to_string(kJournalVersion) +
                             "); upgrade doppel");
        st.begin = r;
      } else if (type == "planned") {
        st.planned.push_back(r);
      } else if (type == "ready") {
        st.ready = true;
      } else if (type == "action") {
        st.started[r.at("index").get<int>()] = r;
      } else if (type == "skip") {
        st.finished[r.at("index").get<int>()] = "skipped";
      } else if (type == "step") {
        if (r.at("state") == "done")
          st.steps_done[r.at("index").get<int>()] = r.at("step").get<int>() + 1;
      } else if (type == "done") {
        st.finished[r.at("index").get<int>()] = "done";
      } else if (type == "commit") {
        st.committed = true;
      } else if (type == "undo-begin") {
        st.undo_begun = true;
        st.undo_operation = r.at("undo_operation").get<std::string>();
      } else if (type == "undo-step") {
        if (r.at("state") == "done")
          st.undo_steps_done[r.at("index").get<int>()] = r.at("step").get<int>() + 1;
      } else if (type == "undone") {
        st.undone[r.at("index").get<int>()] = r.at("outcome").get<std::string>();
      } else if (type == "undo-commit") {
        st.undo_committed = true;
      }
    } catch (const nlohmann::json::exception& e) {
      return Corruption(path + ": record " + std::to_string(line_no) +
                        " is malformed: " + e.what());
    }
  }
  st.torn_tail = bad_seen;
  if (st.begin.is_null() && st.records > 0)
    return Corruption(path + ": the journal has no begin record");
  return st;
}

Status RepairJournal(Env& env, const std::string& path, const JournalState& st) {
  if (!st.torn_tail) return Status::OK();
  DOPPEL_ASSIGN_OR_RETURN(std::string text, env.ReadFile(path));
  return env.WriteFileDurably(path, text.substr(0, st.valid_bytes));
}

// ---------------------------------------------------------------- helpers

std::string StateDir(const Catalogue& catalogue) { return catalogue.Location() + ".replace"; }

namespace {

std::string Parent(const std::string& p) {
  size_t s = p.rfind('/');
  if (s == std::string::npos) return ".";
  if (s == 0) return "/";
  return p.substr(0, s);
}

std::string JournalDir(const Catalogue& c) { return StateDir(c) + "/journal"; }
std::string JournalPath(const Catalogue& c, const std::string& op) {
  return JournalDir(c) + "/" + op + ".journal";
}

bool Under(const std::string& path, const std::string& dir) {
  if (dir.empty()) return false;
  std::string d = dir.back() == '/' ? dir : dir + "/";
  return path.compare(0, d.size(), d) == 0;
}

// An action as the journal records it: everything a step needs.
struct Act {
  int index = 0;
  PlannedAction a;
  ActionKind kind = ActionKind::kQuarantine;
  std::string keep;  // where the original bytes go
  std::string tmp;   // where a link is made before it replaces the file
  int64_t reclaimed = 0;
};

// Runs one operation's actions (apply) or their reversal (undo).
class Runner {
 public:
  Runner(Catalogue& cat, const ApplyOptions& o, std::string op)
      : cat_(cat),
        o_(o),
        env_(o.env ? *o.env : *Env::Default()),
        op_(std::move(op)),
        journal_(JournalPath(cat, op_)) {}

  Status Append(const nlohmann::json& record) {
    return env_.AppendDurably(journal_, JournalLine(record));
  }

  // --- Steps. Each is idempotent: see the file comment. ---

  Result<bool> IsOurLink(const Act& x, const std::string& path) {
    DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo f, env_.Stat(path));
    if (!f.exists) return false;
    if (x.kind == ActionKind::kSymlink) {
      if (!f.is_symlink) return false;
      DOPPEL_ASSIGN_OR_RETURN(std::string target, env_.ReadLink(path));
      return target == x.a.master_abs_path;
    }
    DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo m, env_.Stat(x.a.master_abs_path));
    return f.is_regular && m.exists && f.dev == m.dev && f.ino == m.ino;
  }

  // Moves src to dst (a new name), across file systems by copy, fsync,
  // verify, then remove. Both must hold `sha` bytes.
  Status Move(const std::string& src, const std::string& dst, const std::string& sha) {
    DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo s, env_.Stat(src));
    DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo d, env_.Stat(dst));
    if (!s.exists) {
      if (d.exists) return Status::OK();  // done before a crash
      return Corruption(DisplayPath(src) + " and " + DisplayPath(dst) +
                        " are both missing; the bytes are gone (see the audit trail)");
    }
    if (d.exists) {
      // A copy across file systems finished but the source was not removed yet.
      DOPPEL_ASSIGN_OR_RETURN(std::string dsha, env_.Sha256Hex(dst));
      if (dsha != sha)
        return Changed(DisplayPath(dst) + " already exists and is not a copy of " +
                       DisplayPath(src) + "; left alone");
      DOPPEL_RETURN_IF_ERROR(env_.Remove(src));
      return env_.SyncDir(Parent(src));
    }
    DOPPEL_ASSIGN_OR_RETURN(std::string ssha, env_.Sha256Hex(src));
    if (ssha != sha)
      return Changed(DisplayPath(src) + " changed (SHA-256 " + ssha.substr(0, 12) + "…, expected " +
                     sha.substr(0, 12) + "…); left alone");
    DOPPEL_RETURN_IF_ERROR(env_.CreateDirs(Parent(dst)));
    Status r = env_.Rename(src, dst);
    if (r.ok()) {
      DOPPEL_RETURN_IF_ERROR(env_.SyncDir(Parent(dst)));
      if (Parent(dst) != Parent(src)) DOPPEL_RETURN_IF_ERROR(env_.SyncDir(Parent(src)));
      return Status::OK();
    }
    if (r.code() != StatusCode::kUnsupported) return r;
    // Different file systems: copy, fsync, verify, rename into place, then
    // remove.
    const std::string part = dst + ".doppel-part";
    DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo p, env_.Stat(part));
    if (p.exists) DOPPEL_RETURN_IF_ERROR(env_.Remove(part));
    DOPPEL_RETURN_IF_ERROR(env_.CopyFile(src, part));
    DOPPEL_RETURN_IF_ERROR(env_.SetMtime(part, s.mtime_ns));
    DOPPEL_ASSIGN_OR_RETURN(std::string psha, env_.Sha256Hex(part));
    if (psha != sha) {
      (void)env_.Remove(part);
      return Corruption(DisplayPath(part) + ": the copy differs from " + DisplayPath(src) +
                        "; nothing removed, try again");
    }
    DOPPEL_RETURN_IF_ERROR(env_.Rename(part, dst));
    DOPPEL_RETURN_IF_ERROR(env_.SyncDir(Parent(dst)));
    DOPPEL_RETURN_IF_ERROR(env_.Remove(src));
    return env_.SyncDir(Parent(src));
  }

  Status MakeLink(const Act& x) {
    DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo t, env_.Stat(x.tmp));
    if (t.exists) {
      DOPPEL_ASSIGN_OR_RETURN(bool ours, IsOurLink(x, x.tmp));
      if (ours) return Status::OK();
      // Someone's own file under that name: never ours to remove.
      return Changed(DisplayPath(x.tmp) + " exists and is not a link doppel made; " + Name(x.a) +
                     " left alone, skipped");
    }
    if (x.kind == ActionKind::kSymlink) return env_.Symlink(x.a.master_abs_path, x.tmp);
    return env_.Link(x.a.master_abs_path, x.tmp);
  }

  // True when the master still holds the bytes the plan saw.
  Result<bool> MasterIntact(const Act& x) {
    DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo m, env_.Stat(x.a.master_abs_path));
    if (!m.exists || !m.is_regular) return false;
    DOPPEL_ASSIGN_OR_RETURN(std::string sha, env_.Sha256Hex(x.a.master_abs_path));
    return sha == x.a.master_sha256;
  }

  // The last step of a link action. The link prepared in step 0 can vanish
  // between a crash and the resume (someone cleaned up `*.doppel-link`); the
  // file's bytes are then only in `keep`. So that a resume always gets
  // through, the step then makes the link again if the master is still the
  // verified one, else puts the kept bytes back and reports the action as
  // skipped (kChanged): never a state that neither resume nor undo can leave.
  Status PutLink(const Act& x) {
    DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo t, env_.Stat(x.tmp));
    if (!t.exists) {
      DOPPEL_ASSIGN_OR_RETURN(bool ours, IsOurLink(x, x.a.abs_path));
      if (ours) return Status::OK();  // renamed before the crash
      DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo f, env_.Stat(x.a.abs_path));
      DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo k, env_.Stat(x.keep));
      if (f.exists) {
        if (!k.exists) {
          // Put back by an earlier run of this step, killed before the skip
          // was recorded.
          return Changed(Name(x.a) + ": the link doppel made vanished and its master changed; " +
                         "the file was put back, skipped");
        }
        return Changed(Name(x.a) + ": the link doppel made vanished and another file took its " +
                       "place; left alone, skipped; the original bytes stay at " +
                       DisplayPath(x.keep));
      }
      DOPPEL_ASSIGN_OR_RETURN(bool intact, MasterIntact(x));
      if (!intact) {
        DOPPEL_RETURN_IF_ERROR(Move(x.keep, x.a.abs_path, x.a.sha256));
        return Changed(Name(x.a) + ": the link doppel made vanished and its master changed; " +
                       "the file was put back, skipped");
      }
      DOPPEL_RETURN_IF_ERROR(MakeLink(x));
    }
    DOPPEL_RETURN_IF_ERROR(env_.Rename(x.tmp, x.a.abs_path));
    return env_.SyncDir(Parent(x.a.abs_path));
  }

  // After a link action was skipped part-way: removes the link it prepared.
  Status RemovePreparedLink(const Act& x) {
    if (x.kind != ActionKind::kHardlink && x.kind != ActionKind::kSymlink) return Status::OK();
    DOPPEL_ASSIGN_OR_RETURN(bool ours, IsOurLink(x, x.tmp));
    if (!ours) return Status::OK();
    DOPPEL_RETURN_IF_ERROR(env_.Remove(x.tmp));
    return env_.SyncDir(Parent(x.tmp));
  }

  Status RemoveLink(const Act& x) {
    DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo f, env_.Stat(x.a.abs_path));
    if (!f.exists) return Status::OK();
    DOPPEL_ASSIGN_OR_RETURN(bool ours, IsOurLink(x, x.a.abs_path));
    if (!ours)
      return Changed(DisplayPath(x.a.abs_path) + " is no longer the link doppel made; left alone");
    DOPPEL_RETURN_IF_ERROR(env_.Remove(x.a.abs_path));
    return env_.SyncDir(Parent(x.a.abs_path));
  }

  int StepCount(const Act& x, bool undo) const {
    switch (x.kind) {
      case ActionKind::kQuarantine:
      case ActionKind::kDelete:
        return 1;
      case ActionKind::kHardlink:
      case ActionKind::kSymlink:
        return undo ? 2 : 3;
      case ActionKind::kRedirectOnly:
        return 0;
    }
    return 0;
  }

  Status RunStep(const Act& x, int step, bool undo) {
    if (o_.test_step_pause_ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(o_.test_step_pause_ms));
    const bool link = x.kind == ActionKind::kHardlink || x.kind == ActionKind::kSymlink;
    if (!undo) {
      if (!link) return Move(x.a.abs_path, x.keep, x.a.sha256);
      if (step == 0) return MakeLink(x);
      if (step == 1) return Move(x.a.abs_path, x.keep, x.a.sha256);
      return PutLink(x);
    }
    if (link && step == 0) return RemoveLink(x);
    return Move(x.keep, x.a.abs_path, x.a.sha256);
  }

  // Runs the steps of one action from `first`, journaling each.
  Status RunSteps(const Act& x, int first, bool undo) {
    const char* type = undo ? "undo-step" : "step";
    for (int s = first; s < StepCount(x, undo); ++s) {
      DOPPEL_RETURN_IF_ERROR(
          Append({{"type", type}, {"index", x.index}, {"step", s}, {"state", "start"}}));
      DOPPEL_RETURN_IF_ERROR(RunStep(x, s, undo));
      DOPPEL_RETURN_IF_ERROR(
          Append({{"type", type}, {"index", x.index}, {"step", s}, {"state", "done"}}));
    }
    return Status::OK();
  }

  // --- Events ---

  std::string Name(const PlannedAction& a) const { return a.source + "/" + DisplayPath(a.path); }

  nlohmann::json ApplyDetail(const Act& x, int64_t reclaimed, const std::string& reason) const {
    return {{"action", ActionKindName(x.kind)},
            {"file_id", x.a.file_id},
            {"master_file_id", x.a.master_file_id},
            {"cluster_id", x.a.cluster_id},
            {"source", x.a.source},
            {"path", DisplayPath(x.a.path)},
            {"sha256", x.a.sha256},
            {"bytes", x.a.bytes},
            {"reclaimed_bytes", reclaimed},
            {"reason", reason},
            {"relation", x.a.relation},
            {"master_source", x.a.master_source},
            {"master_path", DisplayPath(x.a.master_path)},
            {"master_sha256", x.a.master_sha256},
            {"kept_at", DisplayPath(x.keep)}};
  }

  // The event of (operation, file) if one was appended before a crash.
  Result<std::optional<Event>> LoggedEvent(const std::string& type, const std::string& op,
                                           int64_t file_id) {
    EventFilter f;
    f.type = type;
    f.operation = op;
    f.object = "file:" + std::to_string(file_id);
    DOPPEL_ASSIGN_OR_RETURN(std::vector<Event> ev, cat_.ListEvents(f));
    if (ev.empty()) return std::optional<Event>();
    return std::optional<Event>(ev.back());
  }

  Status LogApply(const Act& x, const std::string& outcome, int64_t reclaimed,
                  const std::string& reason) {
    Event e;
    e.type = "apply";
    e.object = "file:" + std::to_string(x.a.file_id);
    e.operation = op_;
    e.outcome = outcome;
    e.detail = DumpJson(ApplyDetail(x, reclaimed, reason));
    return cat_.AppendEvent(e).status();
  }

  // --- Verification right before an action ---

  // Empty when the action may go ahead, else why it is skipped.
  Result<std::string> Verify(const Act& x, const std::set<int64_t>& retired) {
    const PlannedAction& a = x.a;
    if (retired.count(a.file_id)) return Name(a) + " is already retired; skipped";
    if (retired.count(a.master_file_id))
      return Name(a) + ": its master " + a.master_source + "/" + DisplayPath(a.master_path) +
             " is itself retired; skipped (make a new plan)";
    auto rec = cat_.GetRecord(a.file_id);
    if (!rec.ok() || DigestHex(rec->fingerprints.sha256) != a.sha256)
      return Name(a) +
             ": the catalogue no longer has the SHA-256 this plan "
             "saw; skipped (make a new plan)";
    auto mrec = cat_.GetRecord(a.master_file_id);
    if (!mrec.ok() || DigestHex(mrec->fingerprints.sha256) != a.master_sha256)
      return Name(a) +
             ": the catalogue no longer has its master's SHA-256; "
             "skipped (make a new plan)";
    DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo f, env_.Stat(a.abs_path));
    if (!f.exists || !f.is_regular)
      return Name(a) + " is no longer a file; skipped (run `doppel scan`)";
    DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo m, env_.Stat(a.master_abs_path));
    if (!m.exists || !m.is_regular)
      return Name(a) + ": its master " + a.master_source + "/" + DisplayPath(a.master_path) +
             " is missing; the last copy of a picture is never removed, "
             "skipped";
    if (f.dev == m.dev && f.ino == m.ino)
      return Name(a) + " is already a hard link to its master; skipped";
    if (f.size != a.bytes)
      return Name(a) + " changed since the scan (size " + std::to_string(f.size) + ", catalogued " +
             std::to_string(a.bytes) + "); skipped (run `doppel scan`, then plan again)";
    DOPPEL_ASSIGN_OR_RETURN(std::string sha, env_.Sha256Hex(a.abs_path));
    if (sha != a.sha256)
      return Name(a) +
             " changed since the scan (SHA-256 differs); skipped "
             "(run `doppel scan`, then plan again)";
    DOPPEL_ASSIGN_OR_RETURN(std::string msha, env_.Sha256Hex(a.master_abs_path));
    if (msha != a.master_sha256)
      return Name(a) + ": its master " + a.master_source + "/" + DisplayPath(a.master_path) +
             " changed since the scan; the last copy of a picture is never "
             "removed, skipped";
    if (x.kind == ActionKind::kHardlink && f.dev != m.dev)
      return Name(a) +
             " is on another file system than its master; a hard "
             "link is impossible, skipped "
             "(use --action symlink or quarantine)";
    return std::string();
  }

  // --- Apply ---

  Result<ApplyReport> RunApply(const JournalState& js, bool resumed) {
    ApplyReport report;
    report.operation_id = op_;
    DOPPEL_ASSIGN_OR_RETURN(std::vector<RetiredFile> retired_list, RetiredFiles(cat_));
    std::set<int64_t> retired;
    for (const RetiredFile& r : retired_list)
      if (r.operation != op_) retired.insert(r.file_id);
    DOPPEL_ASSIGN_OR_RETURN(std::vector<Source> sources, cat_.ListSources());
    const ActionKind kind = *ParseActionKind(js.begin.at("action").get<std::string>());
    const std::string keep_root = kind == ActionKind::kQuarantine
                                      ? js.begin.at("quarantine_dir").get<std::string>()
                                      : js.begin.at("trash_dir").get<std::string>();
    bool keep_in_tree = false;
    for (const Source& s : sources) keep_in_tree |= Under(keep_root, s.root);
    const int64_t total = int64_t(js.planned.size());
    for (int i = 0; i < int(js.planned.size()); ++i) {
      if (o_.cancel && o_.cancel->load()) return report;
      Act x;
      x.index = i;
      x.kind = kind;
      auto started = js.started.find(i);
      try {
        x.a = ActionFromJson(started != js.started.end() ? started->second : js.planned[i]);
      } catch (const nlohmann::json::exception& e) {
        return Corruption(journal_ + ": action " + std::to_string(i) +
                          " is malformed: " + e.what());
      }
      x.keep = keep_root + "/" + x.a.source + "/" + x.a.path;
      x.tmp = x.a.abs_path + ".doppel-link";
      x.reclaimed = kind == ActionKind::kRedirectOnly                 ? 0
                    : kind == ActionKind::kQuarantine && keep_in_tree ? 0
                                                                      : x.a.bytes;
      ActionOutcome out{x.a.file_id, Name(x.a), "applied", "", 0};
      auto fin = js.finished.find(i);
      if (fin != js.finished.end()) {
        out.outcome = fin->second == "done" ? "applied" : "skipped";
        out.message = "finished before the interruption";
        if (fin->second == "done") out.reclaimed_bytes = x.reclaimed;
        Count(report, out);
        continue;
      }
      if (resumed) {
        // Killed after the event but before the journal said so.
        DOPPEL_ASSIGN_OR_RETURN(std::optional<Event> logged,
                                LoggedEvent("apply", op_, x.a.file_id));
        if (logged) {
          const bool ok = logged->outcome == "success";
          DOPPEL_RETURN_IF_ERROR(Append({{"type", ok ? "done" : "skip"}, {"index", i}}));
          out.outcome = ok ? "applied" : "skipped";
          out.reclaimed_bytes = ok ? x.reclaimed : 0;
          Count(report, out);
          continue;
        }
      }
      int first_step = 0;
      if (started == js.started.end()) {
        DOPPEL_ASSIGN_OR_RETURN(std::string why, Verify(x, retired));
        if (!why.empty()) {
          DOPPEL_RETURN_IF_ERROR(LogApply(x, "warning", 0, why));
          DOPPEL_RETURN_IF_ERROR(Append({{"type", "skip"}, {"index", i}, {"reason", why}}));
          out.outcome = "skipped";
          out.message = why;
          Count(report, out);
          if (o_.progress) o_.progress(i + 1, total, "skipped " + why);
          continue;
        }
        nlohmann::json rec = ActionJson(x.a);
        rec["type"] = "action";
        rec["index"] = i;
        rec["keep"] = PathJson(x.keep);
        rec["tmp"] = PathJson(x.tmp);
        DOPPEL_RETURN_IF_ERROR(Append(rec));
      } else {
        auto sd = js.steps_done.find(i);
        first_step = sd == js.steps_done.end() ? 0 : sd->second;
      }
      Status st = RunSteps(x, first_step, false);
      if (st.code() == StatusCode::kChanged) {
        // The file or its master changed under the action (or its place was
        // taken): the steps left the bytes where the message says; skip it,
        // so the operation can always finish.
        DOPPEL_RETURN_IF_ERROR(RemovePreparedLink(x));
        DOPPEL_RETURN_IF_ERROR(LogApply(x, "warning", 0, st.message()));
        DOPPEL_RETURN_IF_ERROR(Append({{"type", "skip"}, {"index", i}, {"reason", st.message()}}));
        out.outcome = "skipped";
        out.message = st.message();
        Count(report, out);
        if (o_.progress) o_.progress(i + 1, total, "skipped " + st.message());
        continue;
      }
      DOPPEL_RETURN_IF_ERROR(st);
      DOPPEL_RETURN_IF_ERROR(LogApply(x, "success", x.reclaimed, x.a.reason));
      DOPPEL_RETURN_IF_ERROR(Append({{"type", "done"}, {"index", i}}));
      out.reclaimed_bytes = x.reclaimed;
      out.message = x.a.reason;
      Count(report, out);
      if (o_.progress) o_.progress(i + 1, total, std::string(Verb(kind)) + " " + out.name);
    }
    DOPPEL_RETURN_IF_ERROR(Append({{"type", "commit"}, {"time", UtcNow()}}));
    report.complete = true;
    return report;
  }

  static const char* Verb(ActionKind k) {
    switch (k) {
      case ActionKind::kQuarantine:
        return "quarantined";
      case ActionKind::kHardlink:
        return "hard-linked";
      case ActionKind::kSymlink:
        return "symlinked";
      case ActionKind::kDelete:
        return "deleted (kept in the trash)";
      case ActionKind::kRedirectOnly:
        return "redirected";
    }
    return "?";
  }

  static void Count(ApplyReport& r, const ActionOutcome& o) {
    if (o.outcome == "applied" || o.outcome == "undone")
      ++r.applied;
    else
      ++r.skipped;
    r.reclaimed_bytes += o.reclaimed_bytes;
    r.outcomes.push_back(o);
  }

  // --- Undo ---

  Result<ApplyReport> RunUndo(const JournalState& js) {
    ApplyReport report;
    std::string undo_op = js.undo_begun ? js.undo_operation : NewOperationId("undo");
    report.operation_id = undo_op;
    const bool resumed = js.undo_begun;
    if (!js.undo_begun)
      DOPPEL_RETURN_IF_ERROR(
          Append({{"type", "undo-begin"}, {"undo_operation", undo_op}, {"time", UtcNow()}}));
    const ActionKind kind = *ParseActionKind(js.begin.at("action").get<std::string>());
    bool all_undone = true;
    const int64_t total = int64_t(js.started.size());
    int64_t n = 0;
    for (const auto& [i, rec] : js.started) {
      if (o_.cancel && o_.cancel->load()) return report;
      auto fin = js.finished.find(i);
      if (fin == js.finished.end() || fin->second != "done") continue;
      Act x;
      x.index = i;
      x.kind = kind;
      try {
        x.a = ActionFromJson(rec);
        x.keep = PathFromJson(rec.at("keep"));
        x.tmp = PathFromJson(rec.at("tmp"));
      } catch (const nlohmann::json::exception& e) {
        return Corruption(journal_ + ": action " + std::to_string(i) +
                          " is malformed: " + e.what());
      }
      ActionOutcome out{x.a.file_id, Name(x.a), "undone", "", 0};
      auto done = js.undone.find(i);
      if (done != js.undone.end() && done->second == "undone") {
        Count(report, out);
        continue;
      }
      // A file left alone by an earlier run of this undo is tried again.
      const bool retry = done != js.undone.end();
      std::optional<Event> logged;
      if (resumed && !retry) {
        DOPPEL_ASSIGN_OR_RETURN(logged, LoggedEvent("undo", undo_op, x.a.file_id));
      }
      Status st;
      if (!logged) {
        auto sd = js.undo_steps_done.find(i);
        st = RunSteps(x, sd == js.undo_steps_done.end() ? 0 : sd->second, true);
        // Something else now holds the place: leave it, say so, go on.
        if (!st.ok() && st.code() != StatusCode::kChanged) return st;
        Event e;
        e.type = "undo";
        e.object = "file:" + std::to_string(x.a.file_id);
        e.operation = undo_op;
        e.outcome = st.ok() ? "success" : "failure";
        // Bytes freed by the apply that the undo gives back.
        const int64_t reclaimed = ReclaimedOf(x.a.file_id);
        e.detail =
            DumpJson({{"undoes", op_},
                      {"action", ActionKindName(kind)},
                      {"file_id", x.a.file_id},
                      {"bytes", x.a.bytes},
                      {"reclaimed_bytes", reclaimed},
                      {"source", x.a.source},
                      {"path", DisplayPath(x.a.path)},
                      {"sha256", x.a.sha256},
                      {"reason", st.ok() ? "restored from " + DisplayPath(x.keep) : st.message()}});
        DOPPEL_RETURN_IF_ERROR(cat_.AppendEvent(e).status());
      } else if (logged->outcome != "success") {
        st = Changed(logged->detail);
      }
      DOPPEL_RETURN_IF_ERROR(
          Append({{"type", "undone"}, {"index", i}, {"outcome", st.ok() ? "undone" : "left"}}));
      out.outcome = st.ok() ? "undone" : "left";
      out.message = st.ok() ? "" : st.message();
      all_undone &= st.ok();
      Count(report, out);
      if (o_.progress) o_.progress(++n, total, (st.ok() ? "restored " : "left ") + out.name);
    }
    DOPPEL_RETURN_IF_ERROR(Append({{"type", "undo-commit"}, {"time", UtcNow()}}));
    report.complete = all_undone;
    return report;
  }

  void SetReclaimed(std::map<int64_t, int64_t> m) { reclaimed_ = std::move(m); }
  int64_t ReclaimedOf(int64_t file_id) const {
    auto it = reclaimed_.find(file_id);
    return it == reclaimed_.end() ? 0 : it->second;
  }

  const std::string& journal() const { return journal_; }
  Env& env() { return env_; }

 private:
  Catalogue& cat_;
  const ApplyOptions& o_;
  Env& env_;
  std::string op_;
  std::string journal_;
  std::map<int64_t, int64_t> reclaimed_;
};

// Operation ids name journal files: letters, digits and dashes only.
Status CheckOperationId(const std::string& op) {
  if (op.empty() || op.size() > 100 ||
      op.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") !=
          std::string::npos)
    return InvalidArgument("'" + op +
                           "' is not an operation id (like op-20261201T213000Z-1a2b; see " +
                           "`doppel audit --type apply`)");
  return Status::OK();
}

// One apply, resume or undo at a time per catalogue.
Result<std::unique_ptr<Env::Lock>> LockState(Env& env, const Catalogue& cat) {
  DOPPEL_RETURN_IF_ERROR(env.CreateDirs(JournalDir(cat)));
  return env.LockFile(StateDir(cat) + "/lock");
}

// Paths and refusal messages below are built once per file or per refusal:
// readable concatenation over saved allocations.
// NOLINTBEGIN(performance-inefficient-string-concatenation)
// Removes empty folders under (and including) dir; leaves anything with files.
void RemoveEmptyTree(Env& env, const std::string& dir) {
  auto names = env.ListDir(dir);
  if (!names.ok()) return;
  for (const std::string& n : *names) {
    auto fi = env.Stat(dir + "/" + n);
    if (fi.ok() && fi->exists && !fi->is_regular && !fi->is_symlink)
      RemoveEmptyTree(env, dir + "/" + n);
  }
  (void)env.Remove(dir);
}

// `path` as the kernel reaches it: its longest existing prefix resolved by
// realpath(3) (symlinks and ".." followed), the rest appended with "." and
// ".." applied lexically (those folders do not exist yet; apply creates them).
Result<std::string> Resolve(Env& env, const std::string& path) {
  std::string head = path;
  std::vector<std::string> tail;  // the missing components, leaf first
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo fi, env.Stat(head));
    if (fi.exists) break;
    const std::string parent = Parent(head);
    if (parent == head) break;
    const size_t slash = head.rfind('/');
    tail.push_back(slash == std::string::npos ? head : head.substr(slash + 1));
    head = parent;
  }
  DOPPEL_ASSIGN_OR_RETURN(std::string out, env.RealPath(head));
  for (auto it = tail.rbegin(); it != tail.rend(); ++it) {
    if (*it == "." || it->empty()) continue;
    if (*it == "..") {
      out = Parent(out);
      continue;
    }
    out += out == "/" ? *it : "/" + *it;
  }
  return out;
}

bool SameOrUnder(const std::string& path, const std::string& dir) {
  return path == dir || Under(path, dir);
}

// Validates a whole plan against the catalogue before anything is written:
// every action's file and master must be the catalogue's (ids, Sources,
// paths), every folder apply writes in (the file's, the master's, the kept
// copy's) must resolve inside its Source or inside `keep_root`. A plan file
// is only a list of decisions; the paths it acts on come from the catalogue.
Status CheckPlan(Catalogue& cat, Env& env, const Plan& plan, ActionKind kind,
                 const std::string& keep_root) {
  const std::string refused =
      "; the plan was refused and nothing was changed (make a new plan with `doppel plan`)";
  DOPPEL_ASSIGN_OR_RETURN(std::vector<Source> sources, cat.ListSources());
  DOPPEL_ASSIGN_OR_RETURN(std::vector<FileEntry> files, cat.ListFiles(std::nullopt, "", 0));
  std::map<std::string, std::pair<std::string, std::string>> root_of;  // name -> (root, real)
  for (const Source& s : sources) {
    DOPPEL_ASSIGN_OR_RETURN(std::string real, Resolve(env, s.root));
    root_of[s.name] = {s.root, real};
  }
  std::map<int64_t, const FileEntry*> file_of;
  for (const FileEntry& f : files) file_of[f.id] = &f;
  std::string keep_real;
  if (kind != ActionKind::kRedirectOnly) {
    DOPPEL_ASSIGN_OR_RETURN(keep_real, Resolve(env, keep_root));
  }
  std::set<int64_t> retiring, masters;
  for (const PlannedAction& a : plan.actions) {
    retiring.insert(a.file_id);
    masters.insert(a.master_file_id);
  }
  std::set<int64_t> seen;
  for (size_t i = 0; i < plan.actions.size(); ++i) {
    const PlannedAction& a = plan.actions[i];
    const std::string entry = "plan entry " + std::to_string(i) + " (file " +
                              std::to_string(a.file_id) + ", " + a.source + "/" +
                              DisplayPath(a.path) + ")";
    if (!seen.insert(a.file_id).second)
      return InvalidArgument(entry + ": file listed twice" + refused);
    if (masters.count(a.file_id))
      return InvalidArgument(entry + ": the file is also a master in this plan" + refused);
    if (retiring.count(a.master_file_id))
      return InvalidArgument(entry + ": its master (file " + std::to_string(a.master_file_id) +
                             ") is retired by this plan too" + refused);
    // The same checks for the file and its master; `what` names which.
    struct Side {
      const char* what;
      int64_t id;
      const std::string &source, &path, &abs_path;
    };
    for (const Side& side :
         {Side{"file", a.file_id, a.source, a.path, a.abs_path},
          Side{"master", a.master_file_id, a.master_source, a.master_path, a.master_abs_path}}) {
      auto f = file_of.find(side.id);
      if (f == file_of.end())
        return InvalidArgument(entry + ": the catalogue has no file " + std::to_string(side.id) +
                               refused);
      const FileEntry& fe = *f->second;
      auto root = root_of.find(fe.source);
      if (root == root_of.end())
        return InvalidArgument(entry + ": the catalogue has no Source '" + fe.source + "'" +
                               refused);
      const std::string abs = JoinPath(root->second.first, fe.path);
      if (fe.source != side.source || fe.path != side.path || abs != side.abs_path)
        return InvalidArgument(entry + ": the plan's " + side.what + " " + side.source + "/" +
                               DisplayPath(side.path) + " at " + DisplayPath(side.abs_path) +
                               " is not the catalogue's file " + std::to_string(side.id) + " (" +
                               fe.source + "/" + DisplayPath(fe.path) + " at " + DisplayPath(abs) +
                               ")" + refused);
      // Apply writes in the file's folder (renames, links): it must be the
      // Source's, after symlinks and "..".
      DOPPEL_ASSIGN_OR_RETURN(std::string folder, Resolve(env, Parent(abs)));
      if (!SameOrUnder(folder, root->second.second))
        return InvalidArgument(entry + ": the " + side.what + "'s folder " +
                               DisplayPath(Parent(abs)) + " resolves to " + DisplayPath(folder) +
                               ", outside its Source " + fe.source + " (" +
                               DisplayPath(root->second.second) + ")" + refused);
    }
    if (kind != ActionKind::kRedirectOnly) {
      const std::string keep = keep_root + "/" + a.source + "/" + a.path;
      DOPPEL_ASSIGN_OR_RETURN(std::string folder, Resolve(env, Parent(keep)));
      if (!SameOrUnder(folder, keep_real))
        return InvalidArgument(entry + ": its kept copy would go to " + DisplayPath(folder) +
                               ", outside " + DisplayPath(keep_real) + refused);
    }
  }
  return Status::OK();
}

// NOLINTEND(performance-inefficient-string-concatenation)
}  // namespace

// ---------------------------------------------------------------- public

Result<ApplyReport> ApplyPlan(Catalogue& cat, const Plan& plan, const ApplyOptions& o) {
  Env& env = o.env ? *o.env : *Env::Default();
  DOPPEL_ASSIGN_OR_RETURN(std::unique_ptr<Env::Lock> lock, LockState(env, cat));
  DOPPEL_ASSIGN_OR_RETURN(std::vector<std::string> pending, PendingOperations(cat, &env));
  if (!pending.empty())
    return Busy("operation " + pending.front() +
                " was interrupted; finish it first with `doppel apply --resume` "
                "(or undo it once resumed)");
  const std::string op = NewOperationId("op");
  const std::string state = StateDir(cat);
  std::string quarantine = o.quarantine_dir.empty() ? state + "/quarantine" : o.quarantine_dir;
  while (quarantine.size() > 1 && quarantine.back() == '/') quarantine.pop_back();
  DOPPEL_RETURN_IF_ERROR(CheckPlan(
      cat, env, plan, o.action,
      o.action == ActionKind::kQuarantine ? quarantine + "/" + op : state + "/trash/" + op));
  // The intent, in one durable write: a torn one is recognised (no "ready")
  // and means nothing was done.
  std::string intent = JournalLine({{"type", "begin"},
                                    {"journal_version", kJournalVersion},
                                    {"operation", op},
                                    {"plan_id", plan.plan_id},
                                    {"action", ActionKindName(o.action)},
                                    {"quarantine_dir", quarantine + "/" + op},
                                    {"trash_dir", state + "/trash/" + op},
                                    {"catalogue", cat.Location()},
                                    {"time", UtcNow()}});
  for (size_t i = 0; i < plan.actions.size(); ++i) {
    nlohmann::json r = ActionJson(plan.actions[i]);
    r["type"] = "planned";
    r["index"] = i;
    intent += JournalLine(r);
  }
  intent += JournalLine({{"type", "ready"}, {"actions", plan.actions.size()}});
  Runner run(cat, o, op);
  DOPPEL_RETURN_IF_ERROR(env.AppendDurably(run.journal(), intent));
  DOPPEL_RETURN_IF_ERROR(env.SyncDir(JournalDir(cat)));
  DOPPEL_ASSIGN_OR_RETURN(JournalState js, ReadJournal(env, run.journal()));
  return run.RunApply(js, false);
}

Result<std::vector<std::string>> PendingOperations(const Catalogue& cat, Env* e) {
  Env& env = e ? *e : *Env::Default();
  DOPPEL_ASSIGN_OR_RETURN(std::vector<std::string> names, env.ListDir(JournalDir(cat)));
  std::vector<std::string> out;
  const std::string ext = ".journal";
  for (const std::string& n : names) {
    if (n.size() <= ext.size() || n.compare(n.size() - ext.size(), ext.size(), ext) != 0) continue;
    DOPPEL_ASSIGN_OR_RETURN(JournalState js, ReadJournal(env, JournalDir(cat) + "/" + n));
    if (!js.committed) out.push_back(n.substr(0, n.size() - ext.size()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<ApplyReport> ResumeApply(Catalogue& cat, const std::string& operation_id,
                                const ApplyOptions& o) {
  Env& env = o.env ? *o.env : *Env::Default();
  if (!operation_id.empty()) DOPPEL_RETURN_IF_ERROR(CheckOperationId(operation_id));
  DOPPEL_ASSIGN_OR_RETURN(std::unique_ptr<Env::Lock> lock, LockState(env, cat));
  std::string op = operation_id;
  if (op.empty()) {
    DOPPEL_ASSIGN_OR_RETURN(std::vector<std::string> pending, PendingOperations(cat, &env));
    if (pending.empty())
      return NotFound("no interrupted operation to resume in " + JournalDir(cat));
    op = pending.front();
  }
  Runner run(cat, o, op);
  DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo fi, env.Stat(run.journal()));
  if (!fi.exists) return NotFound("operation " + op + ": no journal at " + run.journal());
  DOPPEL_ASSIGN_OR_RETURN(JournalState js, ReadJournal(env, run.journal()));
  DOPPEL_RETURN_IF_ERROR(RepairJournal(env, run.journal(), js));
  if (js.committed)
    return InvalidArgument("operation " + op + " is already complete (undo it with `doppel undo " +
                           op + "`)");
  if (!js.ready) {
    // Killed while writing the intent: no file was touched.
    DOPPEL_RETURN_IF_ERROR(env.Remove(run.journal()));
    ApplyReport r;
    r.operation_id = op;
    r.complete = true;
    return r;
  }
  return run.RunApply(js, true);
}

Result<ApplyReport> Undo(Catalogue& cat, const std::string& op, const ApplyOptions& o) {
  Env& env = o.env ? *o.env : *Env::Default();
  DOPPEL_RETURN_IF_ERROR(CheckOperationId(op));
  DOPPEL_ASSIGN_OR_RETURN(std::unique_ptr<Env::Lock> lock, LockState(env, cat));
  Runner run(cat, o, op);
  DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo fi, env.Stat(run.journal()));
  if (!fi.exists) {
    EventFilter f;
    f.type = "undo";
    DOPPEL_ASSIGN_OR_RETURN(std::vector<Event> undos, cat.ListEvents(f));
    for (const Event& e : undos)
      if (e.detail.find("\"undoes\":\"" + op + "\"") != std::string::npos)
        return InvalidArgument("operation " + op +
                               " was already undone (see `doppel audit --operation " + e.operation +
                               "`)");
    return NotFound("operation " + op + ": no journal at " + run.journal() +
                    " (see `doppel audit --type apply`)");
  }
  DOPPEL_ASSIGN_OR_RETURN(JournalState js, ReadJournal(env, run.journal()));
  DOPPEL_RETURN_IF_ERROR(RepairJournal(env, run.journal(), js));
  if (!js.committed)
    return InvalidArgument("operation " + op +
                           " was interrupted; finish it with `doppel apply --resume` first, "
                           "then undo it");
  DOPPEL_RETURN_IF_ERROR(RefuseIfPurged(env, run.journal(), op));  // trash.cc
  // What each file's apply freed, for the undo events.
  std::map<int64_t, int64_t> reclaimed;
  {
    EventFilter f;
    f.type = "apply";
    f.operation = op;
    DOPPEL_ASSIGN_OR_RETURN(std::vector<Event> ev, cat.ListEvents(f));
    for (const Event& e : ev) {
      auto d = nlohmann::json::parse(e.detail, nullptr, false);
      if (d.is_object())
        reclaimed[d.value("file_id", int64_t(0))] = d.value("reclaimed_bytes", int64_t(0));
    }
  }
  run.SetReclaimed(std::move(reclaimed));
  DOPPEL_ASSIGN_OR_RETURN(ApplyReport report, run.RunUndo(js));
  if (report.complete) {
    // Every byte is back: the journal is consumed, the audit trail keeps the
    // story.
    DOPPEL_RETURN_IF_ERROR(env.Remove(run.journal()));
    DOPPEL_RETURN_IF_ERROR(env.SyncDir(JournalDir(cat)));
    RemoveEmptyTree(env, js.begin.value("trash_dir", ""));
    RemoveEmptyTree(env, js.begin.value("quarantine_dir", ""));
  }
  return report;
}

namespace {

// The file an apply/undo event is about: object "file:ID", else the detail's
// "file_id"; 0 when neither names one.
int64_t EventFile(const Event& e) {
  if (e.object.rfind("file:", 0) == 0) {
    int64_t id = 0;
    const char* end = e.object.data() + e.object.size();
    const auto [p, ec] = std::from_chars(e.object.data() + 5, end, id);
    if (ec == std::errc() && p == end && id > 0) return id;
  }
  const auto d = nlohmann::json::parse(e.detail, nullptr, false);
  if (d.is_object() && d.contains("file_id") && d["file_id"].is_number_integer())
    return std::max<int64_t>(0, d["file_id"].get<int64_t>());
  return 0;
}

}  // namespace

Result<std::vector<RetiredFile>> RetiredFiles(Catalogue& cat, int64_t* unattributed) {
  std::vector<Event> trail;
  for (const char* type : {"apply", "undo"}) {
    EventFilter f;
    f.type = type;
    DOPPEL_ASSIGN_OR_RETURN(std::vector<Event> ev, cat.ListEvents(f));
    for (Event& e : ev) trail.push_back(std::move(e));
  }
  std::sort(trail.begin(), trail.end(), [](const Event& a, const Event& b) { return a.id < b.id; });
  std::map<int64_t, RetiredFile> retired;
  int64_t nameless = 0;
  for (Event& e : trail) {
    if (!e.outcome.empty() && e.outcome != "success") continue;  // empty means success
    const int64_t id = EventFile(e);
    if (id <= 0) {
      ++nameless;
      continue;
    }
    if (e.type == "undo")
      retired.erase(id);
    else
      retired[id] =
          RetiredFile{id, e.id, std::move(e.operation), std::move(e.detail), std::move(e.time)};
  }
  if (unattributed) *unattributed = nameless;
  std::vector<RetiredFile> out;
  out.reserve(retired.size());
  for (auto& [id, r] : retired) out.push_back(std::move(r));
  return out;
}

}  // namespace doppel
