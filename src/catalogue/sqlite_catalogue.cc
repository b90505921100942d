// SQLite catalogue. Every public method is one transaction; statements are
// prepared once per connection. SQLite's own errors are mapped to Status here
// and nowhere else.
#include "catalogue/sqlite_catalogue.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "catalogue/catalogue_rows.h"
#include "doppel/local_words.h"
#include "doppel_version.h"
#include "util/paths.h"

namespace doppel {
namespace {

using namespace catalogue_rows;  // NOLINT(google-build-using-namespace)

// Migration k takes the schema from version k to k+1. Never edit a released
// migration: add a new one (docs/catalogue.md).
const char* const kMigrations[] = {
    // 0 -> 1
    R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE sources(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  root TEXT NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL);
CREATE TABLE scans(
  id INTEGER PRIMARY KEY,
  source_id INTEGER NOT NULL REFERENCES sources(id),
  status TEXT NOT NULL,
  started_at TEXT NOT NULL,
  heartbeat_at INTEGER NOT NULL,
  finished_at TEXT,
  pid INTEGER, host TEXT, tool_version TEXT,
  files_listed INTEGER, files_unchanged INTEGER, files_read INTEGER, files_failed INTEGER,
  files_vanished INTEGER, files_missing INTEGER, files_moved INTEGER, bytes_read INTEGER);
CREATE INDEX scans_source ON scans(source_id, status);
CREATE TABLE files(
  id INTEGER PRIMARY KEY,
  source_id INTEGER NOT NULL REFERENCES sources(id),
  path BLOB NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('ok', 'error', 'missing')),
  error_kind TEXT, error TEXT,
  sha256 BLOB, content_hash BLOB, content_kind TEXT,
  format TEXT, width INTEGER, height INTEGER, bands INTEGER, bit_depth INTEGER,
  pages INTEGER, orientation INTEGER, has_alpha INTEGER, colourspace TEXT,
  first_seen_scan INTEGER, last_seen_scan INTEGER,
  read_at TEXT, missing_since TEXT,
  UNIQUE (source_id, path));
CREATE INDEX files_sha256 ON files(sha256);
CREATE INDEX files_content ON files(content_hash);
CREATE INDEX files_seen ON files(source_id, last_seen_scan);
CREATE TABLE fingerprints(
  file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
  pipeline INTEGER NOT NULL,
  pdq BLOB NOT NULL,
  quality INTEGER NOT NULL,
  dihedral BLOB NOT NULL);
CREATE TABLE metadata(
  file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
  capture_time TEXT, capture_time_source TEXT,
  make TEXT, model TEXT, artist TEXT, copyright TEXT,
  gps_lat REAL, gps_lon REAL, gps_alt REAL,
  title TEXT, keywords TEXT, warnings TEXT);
)sql",
    // 1 -> 2: signatures for the matcher's finer check, pairs, clusters.
    R"sql(
CREATE TABLE signatures(
  file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
  version INTEGER NOT NULL,
  smooth_pdq BLOB NOT NULL, smooth_quality INTEGER NOT NULL, smooth_dihedral BLOB NOT NULL,
  thumb BLOB NOT NULL,
  chroma BLOB NOT NULL,
  trim_left REAL NOT NULL, trim_top REAL NOT NULL, trim_right REAL NOT NULL, trim_bottom REAL NOT NULL,
  trimmed_pdq BLOB, trimmed_quality INTEGER, inner_thumb BLOB);
CREATE TABLE matches(
  file_a INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  file_b INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('exact', 'metadata', 'near', 'similar')),
  distance INTEGER NOT NULL,
  transform TEXT NOT NULL,
  correlation REAL NOT NULL,
  reason TEXT NOT NULL,
  matched_at TEXT NOT NULL,
  PRIMARY KEY (file_a, file_b),
  CHECK (file_a < file_b));
CREATE INDEX matches_b ON matches(file_b);
CREATE TABLE match_state(
  file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
  matched_at TEXT NOT NULL);
CREATE TABLE clusters(
  id INTEGER PRIMARY KEY,
  master_file_id INTEGER NOT NULL UNIQUE REFERENCES files(id),
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL);
CREATE TABLE cluster_members(
  file_id INTEGER PRIMARY KEY REFERENCES files(id),
  cluster_id INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
  relation TEXT NOT NULL,
  distance INTEGER NOT NULL,
  position INTEGER NOT NULL);
CREATE INDEX cluster_members_cluster ON cluster_members(cluster_id);
)sql",
    // 2 -> 3: the audit trail (append-only, PREMIS-style) and people's review decisions.
    R"sql(
CREATE TABLE events(
  id INTEGER PRIMARY KEY,
  event_type TEXT NOT NULL,
  event_time TEXT NOT NULL,
  agent TEXT NOT NULL,
  object TEXT NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'warning')),
  detail TEXT NOT NULL,
  operation TEXT);
CREATE INDEX events_object ON events(object);
CREATE INDEX events_operation ON events(operation);
CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
  BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
  BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TABLE review_decisions(
  id INTEGER PRIMARY KEY,
  cluster_id INTEGER NOT NULL,
  file_id INTEGER,
  decision TEXT NOT NULL CHECK (decision IN ('confirm', 'reject', 'choose_master')),
  master_file_id INTEGER,
  members TEXT NOT NULL,
  reviewer TEXT NOT NULL,
  decided_at TEXT NOT NULL,
  note TEXT NOT NULL);
CREATE INDEX review_decisions_cluster ON review_decisions(cluster_id, id);
)sql",
    // --- Replacement (docs/plan.md, docs/release.md) ---
    // 3 -> 4: masters' consolidated metadata and immutable releases.
    R"sql(
CREATE TABLE consolidated_metadata(
  master_file_id INTEGER PRIMARY KEY,
  cluster_id INTEGER NOT NULL,
  document TEXT NOT NULL,
  updated_at TEXT NOT NULL);
CREATE TABLE releases(
  id INTEGER PRIMARY KEY,
  version TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  manifest TEXT NOT NULL);
CREATE TRIGGER releases_immutable_update BEFORE UPDATE ON releases
  BEGIN SELECT RAISE(ABORT, 'releases are immutable'); END;
CREATE TRIGGER releases_immutable_delete BEFORE DELETE ON releases
  BEGIN SELECT RAISE(ABORT, 'releases are immutable'); END;
)sql",
    // --- Upload gate (docs/api.md) ---
    // 4 -> 5: API keys, per-source upload policy, aliases and held uploads.
    R"sql(
CREATE TABLE api_keys(
  id INTEGER PRIMARY KEY,
  source_id INTEGER NOT NULL REFERENCES sources(id),
  role TEXT NOT NULL CHECK (role IN ('uploader', 'reviewer', 'admin')),
  token_sha256 BLOB NOT NULL UNIQUE,
  label TEXT NOT NULL,
  created_at TEXT NOT NULL,
  revoked_at TEXT);
CREATE TABLE upload_policies(
  source_id INTEGER PRIMARY KEY REFERENCES sources(id),
  policy TEXT NOT NULL CHECK (policy IN ('reject', 'alias', 'hold')),
  updated_at TEXT NOT NULL);
CREATE TABLE uploads(
  id INTEGER PRIMARY KEY,
  source_id INTEGER NOT NULL REFERENCES sources(id),
  outcome TEXT NOT NULL CHECK (outcome IN ('alias', 'held')),
  sha256 BLOB NOT NULL,
  master_file_id INTEGER NOT NULL REFERENCES files(id),
  kind TEXT NOT NULL,
  distance INTEGER NOT NULL,
  reason TEXT NOT NULL,
  held_path TEXT,
  client_name TEXT NOT NULL,
  fields TEXT NOT NULL,
  key_id INTEGER,
  created_at TEXT NOT NULL);
CREATE INDEX uploads_source ON uploads(source_id, outcome, id);
)sql",
    // --- Local-word candidates (docs/matching.md) ---
    // 5 -> 6: each file's local words, with the extractor's version.
    R"sql(
CREATE TABLE local_words(
  file_id INTEGER PRIMARY KEY REFERENCES files(id),
  version INTEGER NOT NULL,
  words BLOB NOT NULL);
)sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSchemaVersion);

class Stmt {
 public:
  Stmt() = default;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(s_); }
  sqlite3_stmt* s_ = nullptr;

  void Reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  void Bind(int i, int v) { sqlite3_bind_int64(s_, i, v); }
  void Bind(int i, double v) { sqlite3_bind_double(s_, i, v); }
  void Bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
  }
  void Bind(int i, const char* v) { sqlite3_bind_text(s_, i, v, -1, SQLITE_TRANSIENT); }
  void BindBlob(int i, const std::string& v) {
    sqlite3_bind_blob(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int i, const void* p, size_t n) {
    sqlite3_bind_blob(s_, i, p, int(n), SQLITE_TRANSIENT);
  }
  void BindNull(int i) { sqlite3_bind_null(s_, i); }
  void BindOptText(int i, const std::string& v) { v.empty() ? BindNull(i) : Bind(i, v); }
  void BindOpt(int i, const std::optional<double>& v) { v ? Bind(i, *v) : BindNull(i); }

  int64_t Int(int c) const { return sqlite3_column_int64(s_, c); }
  double Real(int c) const { return sqlite3_column_double(s_, c); }
  bool IsNull(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  std::string Text(int c) const {
    const void* p = sqlite3_column_blob(s_, c);
    int n = sqlite3_column_bytes(s_, c);
    return p ? std::string(static_cast<const char*>(p), size_t(n)) : std::string();
  }
};

class SqliteCatalogue final : public Catalogue {
 public:
  SqliteCatalogue(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  ~SqliteCatalogue() override {
    stmts_.clear();
    sqlite3_close_v2(db_);
  }

  Status Init(const CatalogueOptions& options);

  int SchemaVersion() const override { return version_; }
  std::string Location() const override { return path_; }

  Result<Source> AddSource(const std::string& name, const std::string& root, int priority) override;
  Result<std::vector<Source>> ListSources() override;
  Result<Source> GetSource(const std::string& name) override;
  Result<int64_t> BeginScan(int64_t source_id) override;
  Status Heartbeat(int64_t scan_id) override;
  Status FinishScan(int64_t scan_id, const std::string& status, const ScanCounts& c) override;
  Result<std::optional<FileState>> LookupFile(int64_t source_id, const std::string& path) override;
  Status MarkSeen(int64_t scan_id, const std::vector<int64_t>& ids) override;
  Result<int64_t> MarkUnseenMissing(int64_t source_id, int64_t scan_id,
                                    const std::vector<std::string>& keep_prefixes) override;
  Result<CommitCounts> CommitOutcomes(int64_t source_id, int64_t scan_id,
                                      const std::vector<FileOutcome>& outcomes) override;
  Result<CatalogueStats> Stats() override;
  Result<std::vector<DigestGroup>> DigestGroups(const std::string& kind, int limit) override;
  Result<std::vector<FileEntry>> ListFiles(std::optional<FileStatus> status,
                                           const std::string& source, int limit) override;
  Result<ImageRecord> GetRecord(int64_t file_id) override;
  Result<std::vector<MatchInput>> LoadMatchInputs() override;
  Status ForEachLocalWords(
      const std::function<void(int64_t, std::span<const uint32_t>)>& visit) override;
  Status SaveMatches(const std::vector<Match>& found, const std::vector<int64_t>& now_matched,
                     bool forget_previous) override;
  Result<std::vector<Match>> LoadMatches() override;
  Status SaveClusters(std::vector<Cluster>& clusters) override;
  Result<std::vector<Cluster>> LoadClusters() override;
  Result<int64_t> AppendEvent(const Event& e) override;
  Result<std::vector<Event>> ListEvents(const EventFilter& filter) override;
  Result<int64_t> RecordDecision(const ReviewDecision& d) override;
  Result<std::vector<ReviewDecision>> ListDecisions(std::optional<int64_t> cluster_id) override;
  // --- Replacement ---
  Status SaveConsolidatedMetadata(const std::vector<StoredMetadata>& docs) override;
  Result<std::vector<StoredMetadata>> LoadConsolidatedMetadata() override;
  Result<int64_t> AddRelease(const ReleaseRecord& release, const Event& event) override;
  Result<std::vector<ReleaseRecord>> ListReleases() override;

  // --- Upload gate (docs/api.md) ---
  Result<ApiKey> AddApiKey(const std::string& source, const std::string& role,
                           const Digest& token_sha256, const std::string& label) override;
  Result<std::optional<ApiKey>> FindApiKey(const Digest& token_sha256) override;
  Result<std::vector<ApiKey>> ListApiKeys() override;
  Status RevokeApiKey(int64_t id) override;
  Status SetUploadPolicy(const std::string& source, const std::string& policy) override;
  Result<std::string> GetUploadPolicy(const std::string& source) override;
  Result<int64_t> AddUploadedFile(int64_t source_id, const std::string& path, const ImageRecord& r,
                                  const std::string& event_detail) override;
  Result<int64_t> AddUpload(const UploadRecord& u, const std::string& event_detail) override;
  Result<std::vector<UploadRecord>> ListUploads(const std::string& source,
                                                const std::string& outcome, int limit) override;
  void ReleaseSnapshot() override {
    for (auto& [sql, st] : stmts_) sqlite3_reset(st->s_);
  }

 private:
  Status Error(int rc, const std::string& what) const {
    std::string msg = "catalogue " + path_ + ": " + what + ": " + sqlite3_errmsg(db_);
    switch (rc & 0xFF) {
      case SQLITE_FULL:
        return DiskFull(msg + " (free space, then run the command again: committed work is kept)");
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
        return Busy(msg + " (another process holds the catalogue; try again)");
      case SQLITE_CORRUPT:
      case SQLITE_NOTADB:
        return Corruption(msg);
      case SQLITE_READONLY:
        return IOError(msg +
                       " (the catalogue is read-only for this user; this command writes to "
                       "it: run it as the catalogue's owner or make the file writable)");
      case SQLITE_IOERR:
      case SQLITE_CANTOPEN:
      case SQLITE_PERM:
        return IOError(msg);
      default:
        return Internal(msg);
    }
  }
  Status Exec(const char* sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    sqlite3_free(err);
    if (rc != SQLITE_OK) return Error(rc, "cannot run statement");
    return Status::OK();
  }
  // A cached prepared statement, reset and with bindings cleared.
  Result<Stmt*> Prepare(const char* sql) {
    auto& slot = stmts_[sql];
    if (!slot) {
      slot = std::make_unique<Stmt>();
      int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &slot->s_, nullptr);
      if (rc != SQLITE_OK) {
        Status st = Error(rc, "cannot prepare statement");
        stmts_.erase(sql);
        return st;
      }
    } else {
      slot->Reset();
    }
    return slot.get();
  }
  // Steps a statement that returns no rows (or whose rows are ignored).
  Status Run(Stmt* s, const char* what) {
    int rc;
    while ((rc = sqlite3_step(s->s_)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) return Error(rc, what);
    return Status::OK();
  }
  // Steps once; returns true for a row, false when done.
  Result<bool> Step(Stmt* s, const char* what) {
    int rc = sqlite3_step(s->s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return Error(rc, what);
  }

  // RAII transaction: rolls back unless committed.
  class Txn {
   public:
    explicit Txn(SqliteCatalogue* c) : c_(c) {}
    Status Begin() {
      // A one-row read that stopped at its row keeps its statement open, and
      // with it a read snapshot: a write started on that snapshot fails
      // (SQLITE_BUSY_SNAPSHOT) once another process has written. No statement
      // is mid-iteration when a write begins, so end them all first.
      c_->ReleaseSnapshot();
      Status s = c_->Exec("BEGIN IMMEDIATE");
      active_ = s.ok();
      return s;
    }
    Status Commit() {
      Status s = c_->Exec("COMMIT");
      if (s.ok()) active_ = false;
      return s;
    }
    ~Txn() {
      if (active_) c_->Exec("ROLLBACK").ok();
    }

   private:
    SqliteCatalogue* c_;
    bool active_ = false;
  };

  Status Migrate();
  // Read-only opens: the schema must already be this version's.
  Status CheckSchemaReadOnly();
  // Appends one event inside the caller's transaction.
  Result<int64_t> InsertEvent(const Event& e);
  Status StoreOutcome(int64_t source_id, int64_t scan_id, const FileOutcome& o,
                      CommitCounts& counts);
  Result<std::vector<FileEntry>> FilesWhere(const char* sql,
                                            const std::function<void(Stmt*)>& bind);

  sqlite3* db_;
  std::string path_;
  int version_ = 0;
  std::map<std::string, std::unique_ptr<Stmt>> stmts_;
};

Status SqliteCatalogue::Init(const CatalogueOptions& options) {
  sqlite3_busy_timeout(db_, 15000);
  sqlite3_extended_result_codes(db_, 1);
  // WAL: readers (the server, `doppel stats`) never block the scanner's
  // writer; synchronous=NORMAL in WAL mode keeps the file consistent after a
  // crash or kill -9 (a power cut may lose only the last transactions).
  if (options.read_only) {
    // No journal-mode change and no migration: both write to the file.
    DOPPEL_RETURN_IF_ERROR(Exec("PRAGMA foreign_keys=ON"));
    return CheckSchemaReadOnly();
  }
  if (sqlite3_db_readonly(db_, "main") == 1)
    return IOError("catalogue " + path_ +
                   " is read-only for this user and this command writes to it; run it as the "
                   "catalogue's owner or make the file and its folder writable (commands that only "
                   "read, such as `doppel stats`, work as they are)");
  DOPPEL_RETURN_IF_ERROR(Exec("PRAGMA journal_mode=WAL"));
  DOPPEL_RETURN_IF_ERROR(Exec("PRAGMA synchronous=NORMAL"));
  DOPPEL_RETURN_IF_ERROR(Exec("PRAGMA foreign_keys=ON"));
  if (options.sqlite_max_pages > 0) {
    std::string p = "PRAGMA max_page_count=" + std::to_string(options.sqlite_max_pages);
    DOPPEL_RETURN_IF_ERROR(Exec(p.c_str()));
  }
  return Migrate();
}

Status SqliteCatalogue::CheckSchemaReadOnly() {
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * t, Prepare("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'"));
  DOPPEL_ASSIGN_OR_RETURN(bool row, Step(t, "cannot read schema"));
  if (!row || t->Int(0) == 0)
    return InvalidArgument("catalogue " + path_ + ": this SQLite file is not a doppel catalogue");
  DOPPEL_ASSIGN_OR_RETURN(Stmt * v, Prepare("SELECT value FROM meta WHERE key='schema_version'"));
  DOPPEL_ASSIGN_OR_RETURN(bool got, Step(v, "cannot read schema version"));
  if (!got) return Corruption("catalogue " + path_ + ": meta table has no schema_version");
  const int version = std::atoi(v->Text(0).c_str());
  DOPPEL_RETURN_IF_ERROR(CheckSchemaVersion(path_, version, /*read_only=*/true));
  version_ = version;
  return Status::OK();
}

Status SqliteCatalogue::Migrate() {
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * t, Prepare("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'"));
  DOPPEL_ASSIGN_OR_RETURN(bool row, Step(t, "cannot read schema"));
  const bool has_meta = row && t->Int(0) > 0;
  int version = 0;
  if (has_meta) {
    DOPPEL_ASSIGN_OR_RETURN(Stmt * v, Prepare("SELECT value FROM meta WHERE key='schema_version'"));
    DOPPEL_ASSIGN_OR_RETURN(bool got, Step(v, "cannot read schema version"));
    if (!got) return Corruption("catalogue " + path_ + ": meta table has no schema_version");
    version = std::atoi(v->Text(0).c_str());
  } else {
    DOPPEL_ASSIGN_OR_RETURN(Stmt * any, Prepare("SELECT count(*) FROM sqlite_master"));
    DOPPEL_ASSIGN_OR_RETURN(bool r2, Step(any, "cannot read schema"));
    if (r2 && any->Int(0) > 0)
      return InvalidArgument("catalogue " + path_ + ": this SQLite file is not a doppel catalogue");
  }
  DOPPEL_RETURN_IF_ERROR(CheckSchemaVersion(path_, version, /*read_only=*/false));
  for (int v = version; v < kSchemaVersion; ++v) {
    DOPPEL_RETURN_IF_ERROR(Exec(kMigrations[v]));
    std::string set = "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', '" +
                      std::to_string(v + 1) + "')";
    DOPPEL_RETURN_IF_ERROR(Exec(set.c_str()));
  }
  if (version == 0) {
    std::string created = "INSERT OR REPLACE INTO meta(key, value) VALUES ('created_at', '" +
                          UtcNow() + "'), ('created_by', 'doppel " DOPPEL_VERSION "')";
    DOPPEL_RETURN_IF_ERROR(Exec(created.c_str()));
  }
  version_ = kSchemaVersion;
  return txn.Commit();
}

Result<Source> SqliteCatalogue::AddSource(const std::string& name, const std::string& root,
                                          int priority) {
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * s,
      Prepare("INSERT INTO sources(name, root, priority, created_at) VALUES (?, ?, ?, ?)"));
  Source src{0, name, root, priority, UtcNow()};
  s->Bind(1, name);
  s->Bind(2, root);
  s->Bind(3, priority);
  s->Bind(4, src.created_at);
  int rc = sqlite3_step(s->s_);
  if ((rc & 0xFF) == SQLITE_CONSTRAINT)
    return AlreadyExists("source '" + name + "' already exists in catalogue " + path_);
  if (rc != SQLITE_DONE) return Error(rc, "cannot add source");
  src.id = sqlite3_last_insert_rowid(db_);
  DOPPEL_RETURN_IF_ERROR(txn.Commit());
  return src;
}

Result<std::vector<Source>> SqliteCatalogue::ListSources() {
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * s, Prepare("SELECT id, name, root, priority, created_at FROM sources ORDER BY name"));
  std::vector<Source> out;
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot list sources"));
    if (!row) break;
    out.push_back({s->Int(0), s->Text(1), s->Text(2), int(s->Int(3)), s->Text(4)});
  }
  return out;
}

Result<Source> SqliteCatalogue::GetSource(const std::string& name) {
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * s, Prepare("SELECT id, name, root, priority, created_at FROM sources WHERE name = ?"));
  s->Bind(1, name);
  DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot read source"));
  if (!row) return NotFound("no source named '" + name + "' (see `doppel source list`)");
  return Source{s->Int(0), s->Text(1), s->Text(2), int(s->Int(3)), s->Text(4)};
}

Result<int64_t> SqliteCatalogue::BeginScan(int64_t source_id) {
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  // A scan whose process stopped renewing its lease was killed: say so.
  DOPPEL_ASSIGN_OR_RETURN(Stmt * stale,
                          Prepare("UPDATE scans SET status = 'interrupted' WHERE source_id = ? AND "
                                  "status = 'running' AND heartbeat_at < ?"));
  stale->Bind(1, source_id);
  stale->Bind(2, NowSeconds() - kLeaseSeconds);
  DOPPEL_RETURN_IF_ERROR(Run(stale, "cannot update stale scans"));
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  // On this host we need not wait for the lease: a scan whose process is gone
  // was killed (kill -9, power cut of the shell...). Resume at once.
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * mine,
      Prepare("SELECT id, pid FROM scans WHERE source_id = ? AND status = 'running' AND host = ?"));
  mine->Bind(1, source_id);
  mine->Bind(2, std::string(host));
  std::vector<int64_t> dead;
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(bool row, Step(mine, "cannot read scans"));
    if (!row) break;
    if (ProcessIsGone(mine->Int(1))) dead.push_back(mine->Int(0));
  }
  for (int64_t id : dead) {
    DOPPEL_ASSIGN_OR_RETURN(Stmt * mark,
                            Prepare("UPDATE scans SET status = 'interrupted' WHERE id = ?"));
    mark->Bind(1, id);
    DOPPEL_RETURN_IF_ERROR(Run(mark, "cannot update stale scans"));
  }
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * live,
      Prepare(
          "SELECT id, pid, host FROM scans WHERE source_id = ? AND status = 'running' LIMIT 1"));
  live->Bind(1, source_id);
  DOPPEL_ASSIGN_OR_RETURN(bool busy, Step(live, "cannot read scans"));
  if (busy) return ScanBusy(live->Int(0), live->Int(1), live->Text(2));
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * ins,
      Prepare(
          "INSERT INTO scans(source_id, status, started_at, heartbeat_at, pid, host, tool_version) "
          "VALUES (?, 'running', ?, ?, ?, ?, ?)"));
  ins->Bind(1, source_id);
  ins->Bind(2, UtcNow());
  ins->Bind(3, NowSeconds());
  ins->Bind(4, int64_t(getpid()));
  ins->Bind(5, std::string(host));
  ins->Bind(6, "doppel " DOPPEL_VERSION);
  DOPPEL_RETURN_IF_ERROR(Run(ins, "cannot record scan"));
  int64_t id = sqlite3_last_insert_rowid(db_);
  DOPPEL_RETURN_IF_ERROR(txn.Commit());
  return id;
}

Status SqliteCatalogue::Heartbeat(int64_t scan_id) {
  DOPPEL_ASSIGN_OR_RETURN(Stmt * s, Prepare("UPDATE scans SET heartbeat_at = ? WHERE id = ?"));
  s->Bind(1, NowSeconds());
  s->Bind(2, scan_id);
  return Run(s, "cannot renew scan lease");
}

Status SqliteCatalogue::FinishScan(int64_t scan_id, const std::string& status,
                                   const ScanCounts& c) {
  DOPPEL_ASSIGN_OR_RETURN(Stmt * s,
                          Prepare("UPDATE scans SET status = ?, finished_at = ?, files_listed = ?, "
                                  "files_unchanged = ?, files_read = ?, "
                                  "files_failed = ?, files_vanished = ?, files_missing = ?, "
                                  "files_moved = ?, bytes_read = ? WHERE id = ?"));
  s->Bind(1, status);
  s->Bind(2, UtcNow());
  s->Bind(3, c.files_listed);
  s->Bind(4, c.files_unchanged);
  s->Bind(5, c.files_read);
  s->Bind(6, c.files_failed);
  s->Bind(7, c.files_vanished);
  s->Bind(8, c.files_missing);
  s->Bind(9, c.files_moved);
  s->Bind(10, c.bytes_read);
  s->Bind(11, scan_id);
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  DOPPEL_RETURN_IF_ERROR(Run(s, "cannot record end of scan"));
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * src,
      Prepare("SELECT s.name FROM scans c JOIN sources s ON s.id = c.source_id WHERE c.id = ?"));
  src->Bind(1, scan_id);
  DOPPEL_ASSIGN_OR_RETURN(bool row, Step(src, "cannot read scan"));
  const Event e = ScanFinishedEvent(scan_id, row ? src->Text(0) : std::string("?"), status, c);
  DOPPEL_RETURN_IF_ERROR(InsertEvent(e).status());
  return txn.Commit();
}

Result<std::optional<FileState>> SqliteCatalogue::LookupFile(int64_t source_id,
                                                             const std::string& path) {
  DOPPEL_ASSIGN_OR_RETURN(Stmt * s, Prepare("SELECT f.id, f.size, f.mtime_ns, f.status, g.version, "
                                            "l.version FROM files f "
                                            "LEFT JOIN signatures g ON g.file_id = f.id "
                                            "LEFT JOIN local_words l ON l.file_id = f.id "
                                            "WHERE f.source_id = ? AND f.path = ?"));
  s->Bind(1, source_id);
  s->BindBlob(2, path);
  DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot look up file"));
  if (!row) return std::optional<FileState>();
  FileState fs{s->Int(0), s->Int(1), s->Int(2), ParseFileStatus(s->Text(3))};
  // Fingerprinted before signatures existed (or by an older version): read again.
  fs.stale = IsStale(fs.status, s->IsNull(4) ? 0 : s->Int(4), s->IsNull(5) ? 0 : s->Int(5));
  return std::optional<FileState>(fs);
}

Status SqliteCatalogue::MarkSeen(int64_t scan_id, const std::vector<int64_t>& ids) {
  if (ids.empty()) return Status::OK();
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  DOPPEL_ASSIGN_OR_RETURN(Stmt * s, Prepare("UPDATE files SET last_seen_scan = ? WHERE id = ?"));
  for (int64_t id : ids) {
    s->Reset();
    s->Bind(1, scan_id);
    s->Bind(2, id);
    DOPPEL_RETURN_IF_ERROR(Run(s, "cannot mark file seen"));
  }
  return txn.Commit();
}

Result<int64_t> SqliteCatalogue::MarkUnseenMissing(int64_t source_id, int64_t scan_id,
                                                   const std::vector<std::string>& keep_prefixes) {
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  // Folders the walk could not read keep their files' last status: we do not
  // know that they are gone.
  std::string sql =
      "UPDATE files SET status = 'missing', missing_since = ? WHERE source_id = ? AND status != "
      "'missing' "
      "AND (last_seen_scan IS NULL OR last_seen_scan != ?)";
  for (size_t i = 0; i < keep_prefixes.size(); ++i)
    sql += " AND substr(path, 1, " + std::to_string(keep_prefixes[i].size()) + ") != ?" +
           std::to_string(i + 4);
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &raw, nullptr);
  Stmt s;
  s.s_ = raw;
  if (rc != SQLITE_OK) return Error(rc, "cannot prepare missing-file update");
  s.Bind(1, UtcNow());
  s.Bind(2, source_id);
  s.Bind(3, scan_id);
  for (size_t i = 0; i < keep_prefixes.size(); ++i) s.BindBlob(int(i + 4), keep_prefixes[i]);
  DOPPEL_RETURN_IF_ERROR(Run(&s, "cannot mark missing files"));
  int64_t n = sqlite3_changes(db_);
  DOPPEL_RETURN_IF_ERROR(txn.Commit());
  return n;
}

Status SqliteCatalogue::StoreOutcome(int64_t source_id, int64_t scan_id, const FileOutcome& o,
                                     CommitCounts& counts) {
  DOPPEL_ASSIGN_OR_RETURN(Stmt * look,
                          Prepare("SELECT id, sha256 FROM files WHERE source_id = ? AND path = ?"));
  look->Bind(1, source_id);
  look->BindBlob(2, o.path);
  DOPPEL_ASSIGN_OR_RETURN(bool exists, Step(look, "cannot look up file"));
  int64_t id = exists ? look->Int(0) : 0;
  const std::string old_sha = exists ? look->Text(1) : std::string();
  if (id &&
      (!o.record ||
       old_sha !=
           std::string(reinterpret_cast<const char*>(o.record->fingerprints.sha256.data()), 32))) {
    // New bytes (or none): what was matched against the old bytes no longer holds.
    for (const char* sql :
         {"DELETE FROM matches WHERE file_a = ?1 OR file_b = ?1",
          "DELETE FROM match_state WHERE file_id = ?1", "DELETE FROM signatures WHERE file_id = ?1",
          "DELETE FROM local_words WHERE file_id = ?1"}) {
      DOPPEL_ASSIGN_OR_RETURN(Stmt * d, Prepare(sql));
      d->Bind(1, id);
      DOPPEL_RETURN_IF_ERROR(Run(d, "cannot forget old matches"));
    }
  }

  if (!o.record && o.error.code() == StatusCode::kNotFound) {
    // Vanished between listing and reading.
    if (id) {
      DOPPEL_ASSIGN_OR_RETURN(Stmt * m,
                              Prepare("UPDATE files SET status = 'missing', missing_since = ?, "
                                      "last_seen_scan = ? WHERE id = ?"));
      m->Bind(1, UtcNow());
      m->Bind(2, scan_id);
      m->Bind(3, id);
      DOPPEL_RETURN_IF_ERROR(Run(m, "cannot mark file missing"));
    }
    return Status::OK();
  }

  if (!id && o.record) {
    // A new path whose bytes equal a missing file of the same source: the
    // file was moved or renamed. Keep its id (and everything tied to it).
    DOPPEL_ASSIGN_OR_RETURN(Stmt * mv,
                            Prepare("SELECT id FROM files WHERE source_id = ? AND sha256 = ? AND "
                                    "status = 'missing' ORDER BY id LIMIT 1"));
    mv->Bind(1, source_id);
    mv->BindBlob(2, o.record->fingerprints.sha256.data(), 32);
    DOPPEL_ASSIGN_OR_RETURN(bool found, Step(mv, "cannot look for moved file"));
    if (found) {
      id = mv->Int(0);
      DOPPEL_ASSIGN_OR_RETURN(
          Stmt * up, Prepare("UPDATE files SET path = ?, missing_since = NULL WHERE id = ?"));
      up->BindBlob(1, o.path);
      up->Bind(2, id);
      DOPPEL_RETURN_IF_ERROR(Run(up, "cannot record moved file"));
      ++counts.moved;
    }
  }
  if (!id) {
    DOPPEL_ASSIGN_OR_RETURN(Stmt * ins,
                            Prepare("INSERT INTO files(source_id, path, size, mtime_ns, status, "
                                    "first_seen_scan, last_seen_scan) "
                                    "VALUES (?, ?, 0, 0, 'error', ?, ?)"));
    ins->Bind(1, source_id);
    ins->BindBlob(2, o.path);
    ins->Bind(3, scan_id);
    ins->Bind(4, scan_id);
    DOPPEL_RETURN_IF_ERROR(Run(ins, "cannot add file"));
    id = sqlite3_last_insert_rowid(db_);
    if (o.record) ++counts.added;
  } else if (o.record) {
    ++counts.updated;
  }

  if (!o.record) {
    ++counts.failed;
    DOPPEL_ASSIGN_OR_RETURN(
        Stmt * e, Prepare("UPDATE files SET size = ?, mtime_ns = ?, status = 'error', error_kind = "
                          "?, error = ?, sha256 = NULL, "
                          "content_hash = NULL, content_kind = NULL, format = NULL, width = NULL, "
                          "height = NULL, bands = NULL, "
                          "bit_depth = NULL, pages = NULL, orientation = NULL, has_alpha = NULL, "
                          "colourspace = NULL, "
                          "last_seen_scan = ?, read_at = ?, missing_since = NULL WHERE id = ?"));
    e->Bind(1, o.size);
    // A file that changed under us must be read again next time, whatever its mtime.
    e->Bind(2, o.error.code() == StatusCode::kChanged ? int64_t(-1) : o.mtime_ns);
    e->Bind(3, StatusCodeName(o.error.code()));
    e->Bind(4, o.error.message());
    e->Bind(5, scan_id);
    e->Bind(6, UtcNow());
    e->Bind(7, id);
    DOPPEL_RETURN_IF_ERROR(Run(e, "cannot record file error"));
    DOPPEL_ASSIGN_OR_RETURN(Stmt * d1, Prepare("DELETE FROM fingerprints WHERE file_id = ?"));
    d1->Bind(1, id);
    DOPPEL_RETURN_IF_ERROR(Run(d1, "cannot clear fingerprints"));
    DOPPEL_ASSIGN_OR_RETURN(Stmt * d0, Prepare("DELETE FROM local_words WHERE file_id = ?"));
    d0->Bind(1, id);
    DOPPEL_RETURN_IF_ERROR(Run(d0, "cannot clear local words"));
    DOPPEL_ASSIGN_OR_RETURN(Stmt * d2, Prepare("DELETE FROM metadata WHERE file_id = ?"));
    d2->Bind(1, id);
    return Run(d2, "cannot clear metadata");
  }

  const ImageRecord& r = *o.record;
  DOPPEL_ASSIGN_OR_RETURN(Stmt * u, Prepare("UPDATE files SET size = ?, mtime_ns = ?, status = "
                                            "'ok', error_kind = NULL, error = NULL, sha256 = ?, "
                                            "content_hash = ?, content_kind = ?, format = ?, width "
                                            "= ?, height = ?, bands = ?, bit_depth = ?, pages = ?, "
                                            "orientation = ?, has_alpha = ?, colourspace = ?, "
                                            "last_seen_scan = ?, read_at = ?, missing_since = NULL "
                                            "WHERE id = ?"));
  u->Bind(1, r.file_size);
  u->Bind(2, r.mtime_ns);
  u->BindBlob(3, r.fingerprints.sha256.data(), 32);
  u->BindBlob(4, r.fingerprints.content_hash.data(), 32);
  u->Bind(5, ContentHashKindName(r.fingerprints.content_kind));
  u->Bind(6, r.info.format);
  u->Bind(7, r.info.width);
  u->Bind(8, r.info.height);
  u->Bind(9, r.info.bands);
  u->Bind(10, r.info.bit_depth);
  u->Bind(11, r.info.pages);
  u->Bind(12, r.info.orientation);
  u->Bind(13, int(r.info.has_alpha));
  u->Bind(14, r.info.colourspace);
  u->Bind(15, scan_id);
  u->Bind(16, UtcNow());
  u->Bind(17, id);
  DOPPEL_RETURN_IF_ERROR(Run(u, "cannot store file"));

  DOPPEL_ASSIGN_OR_RETURN(Stmt * f,
                          Prepare("INSERT OR REPLACE INTO fingerprints(file_id, pipeline, pdq, "
                                  "quality, dihedral) VALUES (?, ?, ?, ?, ?)"));
  f->Bind(1, id);
  f->Bind(2, r.fingerprints.pdq_pipeline);
  auto pdq = r.fingerprints.pdq.hash.ToBytes();
  f->BindBlob(3, pdq.data(), pdq.size());
  f->Bind(4, r.fingerprints.pdq.quality);
  f->BindBlob(5, DihedralBytes(r.fingerprints.pdq));
  DOPPEL_RETURN_IF_ERROR(Run(f, "cannot store fingerprints"));

  const ImageMetadata& m = r.metadata;
  DOPPEL_ASSIGN_OR_RETURN(Stmt * md,
                          Prepare("INSERT OR REPLACE INTO metadata(file_id, capture_time, "
                                  "capture_time_source, make, model, artist, copyright, "
                                  "gps_lat, gps_lon, gps_alt, title, keywords, warnings) VALUES "
                                  "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  md->Bind(1, id);
  md->BindOptText(2, m.capture_time);
  md->BindOptText(3, m.capture_time_source);
  md->BindOptText(4, m.make);
  md->BindOptText(5, m.model);
  md->BindOptText(6, m.artist);
  md->BindOptText(7, m.copyright);
  md->BindOpt(8, m.gps_latitude);
  md->BindOpt(9, m.gps_longitude);
  md->BindOpt(10, m.gps_altitude);
  md->BindOptText(11, m.title);
  md->BindOptText(12, StringListJson(m.keywords));
  md->BindOptText(13, StringListJson(m.warnings));
  DOPPEL_RETURN_IF_ERROR(Run(md, "cannot store metadata"));

  const Signature& g = r.fingerprints.signature;
  DOPPEL_ASSIGN_OR_RETURN(Stmt * sg, Prepare("INSERT OR REPLACE INTO signatures(file_id, version, "
                                             "thumb, trim_left, trim_top, trim_right, trim_bottom, "
                                             "trimmed_pdq, trimmed_quality, inner_thumb, "
                                             "smooth_pdq, smooth_quality, smooth_dihedral, chroma) "
                                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  sg->Bind(1, id);
  sg->Bind(2, kSignatureVersion);
  sg->BindBlob(3, g.thumb.data(), g.thumb.size());
  sg->Bind(4, double(g.trim_left));
  sg->Bind(5, double(g.trim_top));
  sg->Bind(6, double(g.trim_right));
  sg->Bind(7, double(g.trim_bottom));
  if (g.trimmed) {
    auto tb = g.trimmed->hash.ToBytes();
    sg->BindBlob(8, tb.data(), tb.size());
    sg->Bind(9, g.trimmed->quality);
    sg->BindBlob(10, g.inner_thumb.data(), g.inner_thumb.size());
  }
  auto sp = g.smooth.hash.ToBytes();
  sg->BindBlob(11, sp.data(), sp.size());
  sg->Bind(12, g.smooth.quality);
  sg->BindBlob(13, DihedralBytes(g.smooth));
  sg->BindBlob(14, g.chroma.data(), g.chroma.size());
  DOPPEL_RETURN_IF_ERROR(Run(sg, "cannot store signature"));

  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * lw,
      Prepare("INSERT OR REPLACE INTO local_words(file_id, version, words) VALUES (?, ?, ?)"));
  lw->Bind(1, id);
  lw->Bind(2, kLocalWordsVersion);
  const std::vector<uint8_t> words = EncodeLocalWords(r.fingerprints.local_words);
  static const uint8_t kNone = 0;  // a featureless picture: an empty blob, not NULL
  lw->BindBlob(3, words.empty() ? &kNone : words.data(), words.size());
  return Run(lw, "cannot store local words");
}

Result<CommitCounts> SqliteCatalogue::CommitOutcomes(int64_t source_id, int64_t scan_id,
                                                     const std::vector<FileOutcome>& outcomes) {
  CommitCounts counts;
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  for (const auto& o : outcomes)
    DOPPEL_RETURN_IF_ERROR(StoreOutcome(source_id, scan_id, o, counts));
  DOPPEL_RETURN_IF_ERROR(Heartbeat(scan_id));
  DOPPEL_RETURN_IF_ERROR(txn.Commit());
  return counts;
}

Result<CatalogueStats> SqliteCatalogue::Stats() {
  CatalogueStats st;
  st.schema_version = version_;
  DOPPEL_ASSIGN_OR_RETURN(auto sources, ListSources());
  for (auto& src : sources) {
    SourceStats ss;
    ss.source = src;
    DOPPEL_ASSIGN_OR_RETURN(Stmt * s, Prepare("SELECT status, count(*), coalesce(sum(size), 0) "
                                              "FROM files WHERE source_id = ? GROUP BY status"));
    s->Bind(1, src.id);
    for (;;) {
      DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot count files"));
      if (!row) break;
      FileStatus fs = ParseFileStatus(s->Text(0));
      if (fs == FileStatus::kOk) {
        ss.files_ok = s->Int(1);
        ss.bytes_ok = s->Int(2);
      } else if (fs == FileStatus::kError)
        ss.files_error = s->Int(1);
      else
        ss.files_missing = s->Int(1);
    }
    DOPPEL_ASSIGN_OR_RETURN(Stmt * l,
                            Prepare("SELECT coalesce(finished_at, started_at), status FROM scans "
                                    "WHERE source_id = ? ORDER BY id DESC LIMIT 1"));
    l->Bind(1, src.id);
    DOPPEL_ASSIGN_OR_RETURN(bool has_scan, Step(l, "cannot read scans"));
    if (has_scan) {
      ss.last_scan_at = l->Text(0);
      ss.last_scan_status = l->Text(1);
    }
    st.sources.push_back(std::move(ss));
  }
  DOPPEL_ASSIGN_OR_RETURN(Stmt * f, Prepare("SELECT format, count(*) FROM files WHERE status = "
                                            "'ok' GROUP BY format ORDER BY count(*) DESC, format"));
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(bool row, Step(f, "cannot count formats"));
    if (!row) break;
    st.formats.emplace_back(f->Text(0), f->Int(1));
  }
  DOPPEL_ASSIGN_OR_RETURN(Stmt * e, Prepare("SELECT error_kind, count(*) FROM files WHERE status = "
                                            "'error' GROUP BY error_kind ORDER BY count(*) DESC"));
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(bool row, Step(e, "cannot count errors"));
    if (!row) break;
    st.error_kinds.emplace_back(e->Text(0), e->Int(1));
  }
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * x,
      Prepare("SELECT count(*), coalesce(sum(n - 1), 0), coalesce(sum((n - 1) * size), 0) FROM "
              "(SELECT count(*) AS n, max(size) AS size FROM files WHERE status = 'ok' GROUP BY "
              "sha256 HAVING n > 1)"));
  DOPPEL_ASSIGN_OR_RETURN(bool xr, Step(x, "cannot count exact duplicates"));
  if (xr) {
    st.exact_groups = x->Int(0);
    st.exact_redundant_files = x->Int(1);
    st.exact_redundant_bytes = x->Int(2);
  }
  DOPPEL_ASSIGN_OR_RETURN(Stmt * c, Prepare("SELECT count(*), coalesce(sum(d - 1), 0) FROM "
                                            "(SELECT count(DISTINCT sha256) AS d FROM files WHERE "
                                            "status = 'ok' GROUP BY content_hash HAVING d > 1)"));
  DOPPEL_ASSIGN_OR_RETURN(bool cr, Step(c, "cannot count content duplicates"));
  if (cr) {
    st.content_groups = c->Int(0);
    st.content_redundant_files = c->Int(1);
  }
  return st;
}

Result<std::vector<FileEntry>> SqliteCatalogue::FilesWhere(const char* where,
                                                           const std::function<void(Stmt*)>& bind) {
  std::string sql = std::string("SELECT ") + kEntryColumns +
                    " FROM files f JOIN sources s ON s.id = f.source_id LEFT JOIN metadata m ON "
                    "m.file_id = f.id " +
                    where;
  DOPPEL_ASSIGN_OR_RETURN(Stmt * s, Prepare(sql.c_str()));
  bind(s);
  std::vector<FileEntry> out;
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot list files"));
    if (!row) break;
    out.push_back(ReadEntry(*s));
  }
  return out;
}

Result<std::vector<DigestGroup>> SqliteCatalogue::DigestGroups(const std::string& kind, int limit) {
  const char* groups_sql;
  const char* members_where;
  if (kind == "exact") {
    groups_sql =
        "SELECT sha256 FROM files WHERE status = 'ok' GROUP BY sha256 HAVING count(*) > 1 "
        "ORDER BY count(*) DESC, max(size) DESC, sha256 LIMIT ?";
    members_where =
        "WHERE f.status = 'ok' AND f.sha256 = ? ORDER BY s.priority DESC, s.name, f.path";
  } else if (kind == "content") {
    groups_sql =
        "SELECT content_hash FROM files WHERE status = 'ok' GROUP BY content_hash "
        "HAVING count(DISTINCT sha256) > 1 ORDER BY count(*) DESC, content_hash LIMIT ?";
    members_where =
        "WHERE f.status = 'ok' AND f.content_hash = ? ORDER BY s.priority DESC, s.name, f.path";
  } else {
    return InvalidArgument("unknown group kind '" + kind + "' (exact or content)");
  }
  DOPPEL_ASSIGN_OR_RETURN(Stmt * g, Prepare(groups_sql));
  g->Bind(1, limit > 0 ? int64_t(limit) : int64_t(-1));
  std::vector<Digest> digests;
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(bool row, Step(g, "cannot group files"));
    if (!row) break;
    Digest d{};
    std::string b = g->Text(0);
    if (b.size() == 32) std::memcpy(d.data(), b.data(), 32);
    digests.push_back(d);
  }
  std::vector<DigestGroup> out;
  for (const Digest& d : digests) {
    DigestGroup grp;
    grp.kind = kind;
    grp.digest = d;
    DOPPEL_ASSIGN_OR_RETURN(
        grp.files, FilesWhere(members_where, [&](Stmt* s) { s->BindBlob(1, d.data(), 32); }));
    out.push_back(std::move(grp));
  }
  return out;
}

Result<std::vector<FileEntry>> SqliteCatalogue::ListFiles(std::optional<FileStatus> status,
                                                          const std::string& source, int limit) {
  return FilesWhere(
      "WHERE (?1 IS NULL OR f.status = ?1) AND (?2 IS NULL OR s.name = ?2) ORDER BY s.name, f.path "
      "LIMIT ?3",
      [&](Stmt* s) {
        if (status)
          s->Bind(1, FileStatusName(*status));
        else
          s->BindNull(1);
        if (!source.empty())
          s->Bind(2, source);
        else
          s->BindNull(2);
        s->Bind(3, limit > 0 ? int64_t(limit) : int64_t(-1));
      });
}

Result<ImageRecord> SqliteCatalogue::GetRecord(int64_t file_id) {
  static const std::string sql = RecordSelect() + "?";
  DOPPEL_ASSIGN_OR_RETURN(Stmt * s, Prepare(sql.c_str()));
  s->Bind(1, file_id);
  DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot read file record"));
  if (!row) return NotFound("no fingerprinted file with id " + std::to_string(file_id));
  return ReadRecord(*s);
}

Result<std::vector<MatchInput>> SqliteCatalogue::LoadMatchInputs() {
  DOPPEL_ASSIGN_OR_RETURN(Stmt * s, Prepare(MatchInputSelect().c_str()));
  std::vector<MatchInput> out;
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot load fingerprints for matching"));
    if (!row) break;
    out.push_back(ReadMatchInput(*s));
  }
  return out;
}

Status SqliteCatalogue::ForEachLocalWords(
    const std::function<void(int64_t, std::span<const uint32_t>)>& visit) {
  DOPPEL_ASSIGN_OR_RETURN(Stmt * s, Prepare("SELECT l.file_id, l.words FROM local_words l JOIN "
                                            "files f ON f.id = l.file_id WHERE f.status = 'ok' "
                                            "AND l.version = ? ORDER BY l.file_id"));
  s->Bind(1, kLocalWordsVersion);
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot read local words"));
    if (!row) break;
    const std::string blob = s->Text(1);
    auto words =
        DecodeLocalWords(std::span(reinterpret_cast<const uint8_t*>(blob.data()), blob.size()));
    if (!words.ok())
      return Corruption("catalogue: local words of file " + std::to_string(s->Int(0)) + ": " +
                        words.status().message() + "; run `doppel scan` again to refresh them");
    visit(s->Int(0), *words);
  }
  return Status::OK();
}

Status SqliteCatalogue::SaveMatches(const std::vector<Match>& found,
                                    const std::vector<int64_t>& now_matched, bool forget_previous) {
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  if (forget_previous) {
    DOPPEL_RETURN_IF_ERROR(Exec("DELETE FROM matches"));
    DOPPEL_RETURN_IF_ERROR(Exec("DELETE FROM match_state"));
  }
  const std::string now = UtcNow();
  DOPPEL_ASSIGN_OR_RETURN(Stmt * ins,
                          Prepare("INSERT OR REPLACE INTO matches(file_a, file_b, kind, distance, "
                                  "transform, correlation, reason, matched_at) "
                                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
  for (const Match& m : found) {
    ins->Reset();
    ins->Bind(1, m.file_a);
    ins->Bind(2, m.file_b);
    ins->Bind(3, MatchKindName(m.kind));
    ins->Bind(4, m.distance);
    ins->Bind(5, m.transform);
    ins->Bind(6, m.correlation);
    ins->Bind(7, m.reason);
    ins->Bind(8, now);
    DOPPEL_RETURN_IF_ERROR(Run(ins, "cannot store a match"));
  }
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * mark,
      Prepare("INSERT OR REPLACE INTO match_state(file_id, matched_at) VALUES (?, ?)"));
  for (int64_t id : now_matched) {
    mark->Reset();
    mark->Bind(1, id);
    mark->Bind(2, now);
    DOPPEL_RETURN_IF_ERROR(Run(mark, "cannot mark a file matched"));
  }
  return txn.Commit();
}

Result<std::vector<Match>> SqliteCatalogue::LoadMatches() {
  DOPPEL_ASSIGN_OR_RETURN(Stmt * s, Prepare(kMatchSelect));
  std::vector<Match> out;
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot load matches"));
    if (!row) break;
    out.push_back(ReadMatch(*s));
  }
  return out;
}

Status SqliteCatalogue::SaveClusters(std::vector<Cluster>& clusters) {
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  std::map<int64_t, int64_t> id_by_master;
  {
    DOPPEL_ASSIGN_OR_RETURN(Stmt * s, Prepare("SELECT id, master_file_id FROM clusters"));
    for (;;) {
      DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot read clusters"));
      if (!row) break;
      id_by_master[s->Int(1)] = s->Int(0);
    }
  }
  DOPPEL_RETURN_IF_ERROR(Exec("DELETE FROM cluster_members"));
  std::set<int64_t> kept;
  const std::string now = UtcNow();
  for (Cluster& c : clusters) {
    auto it = id_by_master.find(c.master_file_id);
    if (it != id_by_master.end()) {
      c.id = it->second;
      DOPPEL_ASSIGN_OR_RETURN(Stmt * u, Prepare("UPDATE clusters SET updated_at = ? WHERE id = ?"));
      u->Bind(1, now);
      u->Bind(2, c.id);
      DOPPEL_RETURN_IF_ERROR(Run(u, "cannot update a cluster"));
    } else {
      DOPPEL_ASSIGN_OR_RETURN(
          Stmt * i,
          Prepare("INSERT INTO clusters(master_file_id, created_at, updated_at) VALUES (?, ?, ?)"));
      i->Bind(1, c.master_file_id);
      i->Bind(2, now);
      i->Bind(3, now);
      DOPPEL_RETURN_IF_ERROR(Run(i, "cannot add a cluster"));
      c.id = sqlite3_last_insert_rowid(db_);
    }
    kept.insert(c.id);
    DOPPEL_ASSIGN_OR_RETURN(Stmt * m,
                            Prepare("INSERT INTO cluster_members(file_id, cluster_id, relation, "
                                    "distance, position) VALUES (?, ?, ?, ?, ?)"));
    int position = 0;
    for (const ClusterMember& mem : c.members) {
      m->Reset();
      m->Bind(5, position++);
      m->Bind(1, mem.file_id);
      m->Bind(2, c.id);
      m->Bind(3, MemberRelation(mem));
      m->Bind(4, mem.distance);
      DOPPEL_RETURN_IF_ERROR(Run(m, "cannot store a cluster member"));
    }
  }
  for (const auto& [master, id] : id_by_master) {
    if (kept.count(id)) continue;
    DOPPEL_ASSIGN_OR_RETURN(Stmt * d, Prepare("DELETE FROM clusters WHERE id = ?"));
    d->Bind(1, id);
    DOPPEL_RETURN_IF_ERROR(Run(d, "cannot drop a cluster"));
  }
  return txn.Commit();
}

Result<std::vector<Cluster>> SqliteCatalogue::LoadClusters() {
  DOPPEL_ASSIGN_OR_RETURN(Stmt * s, Prepare(kClusterSelect));
  std::vector<Cluster> out;
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot load clusters"));
    if (!row) break;
    AddClusterRow(*s, out);
  }
  return out;
}

// --- Audit trail and review decisions ---

Result<int64_t> SqliteCatalogue::InsertEvent(const Event& e) {
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * s,
      Prepare(
          "INSERT INTO events(event_type, event_time, agent, object, outcome, detail, operation) "
          "VALUES (?, ?, ?, ?, ?, ?, ?)"));
  const Event full = WithDefaults(e);
  s->Bind(1, full.type);
  s->Bind(2, full.time);
  s->Bind(3, full.agent);
  s->Bind(4, full.object);
  s->Bind(5, full.outcome);
  s->Bind(6, full.detail);
  s->BindOptText(7, full.operation);
  DOPPEL_RETURN_IF_ERROR(Run(s, "cannot append to the audit trail"));
  return int64_t(sqlite3_last_insert_rowid(db_));
}

Result<int64_t> SqliteCatalogue::AppendEvent(const Event& e) {
  if (e.type.empty() || e.object.empty())
    return InvalidArgument("an audit event needs a type and an object");
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  DOPPEL_ASSIGN_OR_RETURN(int64_t id, InsertEvent(e));
  DOPPEL_RETURN_IF_ERROR(txn.Commit());
  return id;
}

Result<std::vector<Event>> SqliteCatalogue::ListEvents(const EventFilter& f) {
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * s, Prepare("SELECT id, event_type, event_time, agent, object, outcome, detail, "
                        "coalesce(operation, '') FROM events "
                        "WHERE id > ? AND (? = '' OR event_type = ?) AND (? = '' OR object = ?) "
                        "AND (? = '' OR operation = ?) ORDER BY id LIMIT ?"));
  s->Bind(1, f.after_id);
  s->Bind(2, f.type);
  s->Bind(3, f.type);
  s->Bind(4, f.object);
  s->Bind(5, f.object);
  s->Bind(6, f.operation);
  s->Bind(7, f.operation);
  s->Bind(8, f.limit > 0 ? int64_t(f.limit) : int64_t(-1));
  std::vector<Event> out;
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot read the audit trail"));
    if (!row) break;
    out.push_back(ReadEvent(*s));
  }
  return out;
}

Result<int64_t> SqliteCatalogue::RecordDecision(const ReviewDecision& d) {
  DOPPEL_RETURN_IF_ERROR(CheckDecision(d));
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  DOPPEL_ASSIGN_OR_RETURN(Stmt * s, Prepare("INSERT INTO review_decisions(cluster_id, file_id, "
                                            "decision, master_file_id, members, reviewer, "
                                            "decided_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
  nlohmann::json members = d.members;
  const std::string at = d.decided_at.empty() ? UtcNow() : d.decided_at;
  s->Bind(1, d.cluster_id);
  d.file_id ? s->Bind(2, *d.file_id) : s->BindNull(2);
  s->Bind(3, d.decision);
  d.master_file_id > 0 ? s->Bind(4, d.master_file_id) : s->BindNull(4);
  s->Bind(5, members.dump());
  s->Bind(6, d.reviewer);
  s->Bind(7, at);
  s->Bind(8, d.note);
  DOPPEL_RETURN_IF_ERROR(Run(s, "cannot record the review decision"));
  const int64_t id = sqlite3_last_insert_rowid(db_);
  DOPPEL_RETURN_IF_ERROR(InsertEvent(DecisionEvent(d, id, at)).status());
  DOPPEL_RETURN_IF_ERROR(txn.Commit());
  return id;
}

Result<std::vector<ReviewDecision>> SqliteCatalogue::ListDecisions(
    std::optional<int64_t> cluster_id) {
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * s, Prepare("SELECT id, cluster_id, file_id, decision, master_file_id, members, "
                        "reviewer, decided_at, note "
                        "FROM review_decisions WHERE (? IS NULL OR cluster_id = ?) ORDER BY id"));
  if (cluster_id) {
    s->Bind(1, *cluster_id);
    s->Bind(2, *cluster_id);
  }
  std::vector<ReviewDecision> out;
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot read review decisions"));
    if (!row) break;
    ReviewDecision d = ReadDecision(*s);
    out.push_back(std::move(d));
  }
  return out;
}

// --- Replacement (docs/plan.md, docs/release.md) ---

Status SqliteCatalogue::SaveConsolidatedMetadata(const std::vector<StoredMetadata>& docs) {
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  const std::string now = UtcNow();
  for (const StoredMetadata& d : docs) {
    // One document per cluster: a new master replaces the previous one's.
    DOPPEL_ASSIGN_OR_RETURN(Stmt * del,
                            Prepare("DELETE FROM consolidated_metadata WHERE cluster_id = ?"));
    del->Bind(1, d.cluster_id);
    DOPPEL_RETURN_IF_ERROR(Run(del, "cannot replace consolidated metadata"));
    DOPPEL_ASSIGN_OR_RETURN(Stmt * s,
                            Prepare("INSERT OR REPLACE INTO consolidated_metadata(master_file_id, "
                                    "cluster_id, document, updated_at) "
                                    "VALUES (?, ?, ?, ?)"));
    s->Bind(1, d.master_file_id);
    s->Bind(2, d.cluster_id);
    s->Bind(3, d.document);
    s->Bind(4, d.updated_at.empty() ? now : d.updated_at);
    DOPPEL_RETURN_IF_ERROR(Run(s, "cannot store consolidated metadata"));
  }
  return txn.Commit();
}

Result<std::vector<StoredMetadata>> SqliteCatalogue::LoadConsolidatedMetadata() {
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * s,
      Prepare("SELECT master_file_id, cluster_id, document, updated_at FROM consolidated_metadata "
              "ORDER BY master_file_id"));
  std::vector<StoredMetadata> out;
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot read consolidated metadata"));
    if (!row) break;
    out.push_back(StoredMetadata{s->Int(0), s->Int(1), s->Text(2), s->Text(3)});
  }
  return out;
}

Result<int64_t> SqliteCatalogue::AddRelease(const ReleaseRecord& r, const Event& e) {
  if (r.version.empty()) return InvalidArgument("a release needs a version");
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * s, Prepare("INSERT INTO releases(version, created_at, manifest) VALUES (?, ?, ?)"));
  s->Bind(1, r.version);
  s->Bind(2, r.created_at.empty() ? UtcNow() : r.created_at);
  s->Bind(3, r.manifest);
  int rc = sqlite3_step(s->s_);
  if ((rc & 0xFF) == SQLITE_CONSTRAINT)
    return AlreadyExists("release " + r.version + " already exists in catalogue " + path_ +
                         " (releases are immutable; choose a new version)");
  if (rc != SQLITE_DONE) return Error(rc, "cannot store the release");
  const int64_t id = sqlite3_last_insert_rowid(db_);
  DOPPEL_RETURN_IF_ERROR(InsertEvent(e).status());
  DOPPEL_RETURN_IF_ERROR(txn.Commit());
  return id;
}

Result<std::vector<ReleaseRecord>> SqliteCatalogue::ListReleases() {
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * s, Prepare("SELECT id, version, created_at, manifest FROM releases ORDER BY id"));
  std::vector<ReleaseRecord> out;
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot read releases"));
    if (!row) break;
    out.push_back(ReleaseRecord{s->Int(0), s->Text(1), s->Text(2), s->Text(3)});
  }
  return out;
}

// --- Upload gate (docs/api.md) ---

Result<ApiKey> SqliteCatalogue::AddApiKey(const std::string& source, const std::string& role,
                                          const Digest& token_sha256, const std::string& label) {
  DOPPEL_RETURN_IF_ERROR(CheckRole(role));
  DOPPEL_ASSIGN_OR_RETURN(Source src, GetSource(source));
  ReleaseSnapshot();  // a pending read must not pin an old snapshot under the write
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  DOPPEL_ASSIGN_OR_RETURN(Stmt * s, Prepare("INSERT INTO api_keys(source_id, role, token_sha256, "
                                            "label, created_at) VALUES (?, ?, ?, ?, ?)"));
  ApiKey k;
  k.source = src.name;
  k.role = role;
  k.label = label;
  k.created_at = UtcNow();
  s->Bind(1, src.id);
  s->Bind(2, role);
  s->BindBlob(3, token_sha256.data(), token_sha256.size());
  s->Bind(4, label);
  s->Bind(5, k.created_at);
  DOPPEL_RETURN_IF_ERROR(Run(s, "cannot store the API key"));
  k.id = sqlite3_last_insert_rowid(db_);
  DOPPEL_RETURN_IF_ERROR(InsertEvent(ApiKeyAddedEvent(k)).status());
  DOPPEL_RETURN_IF_ERROR(txn.Commit());
  return k;
}

Result<std::optional<ApiKey>> SqliteCatalogue::FindApiKey(const Digest& token_sha256) {
  static const std::string sql =
      std::string(kApiKeySelect) + "WHERE k.token_sha256 = ? AND k.revoked_at IS NULL";
  DOPPEL_ASSIGN_OR_RETURN(Stmt * s, Prepare(sql.c_str()));
  s->BindBlob(1, token_sha256.data(), token_sha256.size());
  DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot read API keys"));
  std::optional<ApiKey> k;
  if (row) k = ReadApiKey(*s);
  s->Reset();
  return k;
}

Result<std::vector<ApiKey>> SqliteCatalogue::ListApiKeys() {
  static const std::string sql = std::string(kApiKeySelect) + "ORDER BY k.id";
  DOPPEL_ASSIGN_OR_RETURN(Stmt * s, Prepare(sql.c_str()));
  std::vector<ApiKey> out;
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot read API keys"));
    if (!row) break;
    out.push_back(ReadApiKey(*s));
  }
  return out;
}

Status SqliteCatalogue::RevokeApiKey(int64_t id) {
  ReleaseSnapshot();
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  DOPPEL_ASSIGN_OR_RETURN(Stmt * q, Prepare("SELECT revoked_at FROM api_keys WHERE id = ?"));
  q->Bind(1, id);
  DOPPEL_ASSIGN_OR_RETURN(bool row, Step(q, "cannot read API keys"));
  if (!row)
    return NotFound("no API key with id " + std::to_string(id) + " (see `doppel key list`)");
  if (!q->IsNull(0)) return Status::OK();
  DOPPEL_ASSIGN_OR_RETURN(Stmt * s, Prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?"));
  s->Bind(1, UtcNow());
  s->Bind(2, id);
  DOPPEL_RETURN_IF_ERROR(Run(s, "cannot revoke the API key"));
  DOPPEL_RETURN_IF_ERROR(InsertEvent(ApiKeyRevokedEvent(id)).status());
  return txn.Commit();
}

Status SqliteCatalogue::SetUploadPolicy(const std::string& source, const std::string& policy) {
  DOPPEL_RETURN_IF_ERROR(CheckUploadPolicy(policy));
  DOPPEL_ASSIGN_OR_RETURN(Source src, GetSource(source));
  ReleaseSnapshot();  // a pending read must not pin an old snapshot under the write
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  DOPPEL_ASSIGN_OR_RETURN(Stmt * s, Prepare("INSERT OR REPLACE INTO upload_policies(source_id, "
                                            "policy, updated_at) VALUES (?, ?, ?)"));
  s->Bind(1, src.id);
  s->Bind(2, policy);
  s->Bind(3, UtcNow());
  DOPPEL_RETURN_IF_ERROR(Run(s, "cannot store the upload policy"));
  DOPPEL_RETURN_IF_ERROR(InsertEvent(UploadPolicyEvent(src.name, policy)).status());
  return txn.Commit();
}

Result<std::string> SqliteCatalogue::GetUploadPolicy(const std::string& source) {
  DOPPEL_ASSIGN_OR_RETURN(Source src, GetSource(source));
  ReleaseSnapshot();  // a pending read must not pin an old snapshot under the write
  DOPPEL_ASSIGN_OR_RETURN(Stmt * s,
                          Prepare("SELECT policy FROM upload_policies WHERE source_id = ?"));
  s->Bind(1, src.id);
  DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot read the upload policy"));
  std::string policy = row ? s->Text(0) : std::string("reject");
  s->Reset();
  ReleaseSnapshot();
  return policy;
}

Result<int64_t> SqliteCatalogue::AddUploadedFile(int64_t source_id, const std::string& path,
                                                 const ImageRecord& r,
                                                 const std::string& event_detail) {
  ReleaseSnapshot();
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  DOPPEL_ASSIGN_OR_RETURN(Stmt * look,
                          Prepare("SELECT id FROM files WHERE source_id = ? AND path = ?"));
  look->Bind(1, source_id);
  look->BindBlob(2, path);
  DOPPEL_ASSIGN_OR_RETURN(bool exists, Step(look, "cannot look up file"));
  if (exists) return AlreadyExists("the source already has a file at " + DisplayPath(path));
  FileOutcome o;
  o.path = path;
  o.size = r.file_size;
  o.mtime_ns = r.mtime_ns;
  o.record = r;
  CommitCounts counts;
  // Scan id 0: the file was not seen by a scan; the next scan of the source
  // finds it on disk unchanged and marks it seen.
  DOPPEL_RETURN_IF_ERROR(StoreOutcome(source_id, 0, o, counts));
  look->Reset();
  look->Bind(1, source_id);
  look->BindBlob(2, path);
  DOPPEL_ASSIGN_OR_RETURN(bool stored, Step(look, "cannot look up file"));
  if (!stored) return Internal("uploaded file vanished from the catalogue inside its transaction");
  const int64_t id = look->Int(0);
  DOPPEL_RETURN_IF_ERROR(InsertEvent(UploadedFileEvent(id, event_detail)).status());
  DOPPEL_RETURN_IF_ERROR(txn.Commit());
  return id;
}

Result<int64_t> SqliteCatalogue::AddUpload(const UploadRecord& u, const std::string& event_detail) {
  DOPPEL_RETURN_IF_ERROR(CheckUploadOutcome(u.outcome));
  DOPPEL_ASSIGN_OR_RETURN(Source src, GetSource(u.source));
  ReleaseSnapshot();  // a pending read must not pin an old snapshot under the write
  Txn txn(this);
  DOPPEL_RETURN_IF_ERROR(txn.Begin());
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * s,
      Prepare(
          "INSERT INTO uploads(source_id, outcome, sha256, master_file_id, kind, distance, reason, "
          "held_path, "
          "client_name, fields, key_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  s->Bind(1, src.id);
  s->Bind(2, u.outcome);
  s->BindBlob(3, u.sha256.data(), u.sha256.size());
  s->Bind(4, u.master_file_id);
  s->Bind(5, u.kind);
  s->Bind(6, u.distance);
  s->Bind(7, u.reason);
  s->BindOptText(8, u.held_path);
  s->Bind(9, u.client_name);
  s->Bind(10, u.fields.empty() ? std::string("{}") : u.fields);
  u.key_id ? s->Bind(11, u.key_id) : s->BindNull(11);
  s->Bind(12, u.created_at.empty() ? UtcNow() : u.created_at);
  DOPPEL_RETURN_IF_ERROR(Run(s, "cannot record the upload"));
  const int64_t id = sqlite3_last_insert_rowid(db_);
  DOPPEL_RETURN_IF_ERROR(InsertEvent(UploadEvent(u, event_detail)).status());
  DOPPEL_RETURN_IF_ERROR(txn.Commit());
  return id;
}

Result<std::vector<UploadRecord>> SqliteCatalogue::ListUploads(const std::string& source,
                                                               const std::string& outcome,
                                                               int limit) {
  DOPPEL_ASSIGN_OR_RETURN(
      Stmt * s,
      Prepare(
          (std::string(kUploadSelect) +
           "WHERE (? = '' OR s.name = ?) AND (? = '' OR u.outcome = ?) ORDER BY u.id DESC LIMIT ?")
              .c_str()));
  s->Bind(1, source);
  s->Bind(2, source);
  s->Bind(3, outcome);
  s->Bind(4, outcome);
  s->Bind(5, limit > 0 ? int64_t(limit) : int64_t(-1));
  std::vector<UploadRecord> out;
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(bool row, Step(s, "cannot read uploads"));
    if (!row) break;
    UploadRecord u = ReadUpload(*s);
    out.push_back(std::move(u));
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<Catalogue>> OpenSqliteCatalogue(const std::string& path,
                                                       const CatalogueOptions& options) {
  struct stat st {};
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode))
    return InvalidArgument("catalogue " + path + " is a folder; --db names a file");
  // A 0-byte file is what a failed copy or a `touch` leaves: only `init` may
  // turn it into a catalogue, never a command that expected data in it.
  if ((!exists || (S_ISREG(st.st_mode) && st.st_size == 0)) && !options.create_if_missing)
    return NotFound("no catalogue at " + path +
                    "; create it with `doppel init` (or pass --db PATH)");
  sqlite3* db = nullptr;
  const int flags = SQLITE_OPEN_NOMUTEX |
                    (options.read_only ? SQLITE_OPEN_READONLY
                                       : SQLITE_OPEN_READWRITE |
                                             (options.create_if_missing ? SQLITE_OPEN_CREATE : 0));
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc == SQLITE_OK && options.read_only) {
    // A WAL catalogue nobody has open has no -shm file, and a reader who may
    // not create one beside it (a folder it cannot write) cannot read it at
    // all. No -shm means no other connection, so no WAL index to share: read
    // the file as immutable (no locks, no -shm). A writer starting during
    // this short read is not seen; the next command sees its work.
    const int probe =
        sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
    if ((probe & 0xFF) == SQLITE_READONLY || (probe & 0xFF) == SQLITE_CANTOPEN) {
      sqlite3_close_v2(db);
      db = nullptr;
      std::string uri = "file:";
      for (char c : path) {
        if (c == '%')
          uri += "%25";
        else if (c == '?')
          uri += "%3f";
        else if (c == '#')
          uri += "%23";
        else
          uri += c;
      }
      uri += "?immutable=1";
      rc = sqlite3_open_v2(uri.c_str(), &db, flags | SQLITE_OPEN_URI, nullptr);
    }
  }
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return IOError("catalogue " + path + ": cannot open: " + msg);
  }
  auto cat = std::make_unique<SqliteCatalogue>(db, path);
  DOPPEL_RETURN_IF_ERROR(cat->Init(options));
  return std::unique_ptr<Catalogue>(std::move(cat));
}

}  // namespace doppel
