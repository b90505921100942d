// The catalogue: every Source, every file seen in it, its fingerprints,
// metadata and per-file errors, and the history of scans.
//
// One interface, several backends: SQLite (embedded, WAL) today, PostgreSQL
// for many workers later. Methods speak the archive's language, not SQL, so a
// backend is free to implement each one as it sees fit. All methods are
// transactional: on failure nothing of the call is kept. A Catalogue object is
// used by one thread at a time; open one per thread that needs one.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "doppel/model.h"
#include "doppel/status.h"

namespace doppel {

struct Source {
  int64_t id = 0;
  std::string name;        // short, unique: "urbanisme", "apur"
  std::string root;        // absolute path of the collection's folder
  int priority = 0;        // higher = more authoritative (used by master policy)
  std::string created_at;  // UTC ISO 8601
};

enum class FileStatus { kOk, kError, kMissing };
const char* FileStatusName(FileStatus s);

// What the catalogue knows of one path, enough to decide whether to read it again.
struct FileState {
  int64_t id = 0;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  FileStatus status = FileStatus::kOk;
  bool stale = false;  // fingerprinted by an older doppel: missing newer fingerprints
};

// The outcome of reading one file during a scan.
struct FileOutcome {
  std::string path;  // relative to the source root; raw bytes (may be non-UTF-8)
  int64_t size = 0;
  int64_t mtime_ns = 0;
  std::optional<ImageRecord> record;  // set on success
  Status error;                       // set (non-OK) on failure
};

// What CommitOutcomes did with a batch.
struct CommitCounts {
  int64_t added = 0;    // new paths
  int64_t updated = 0;  // known paths re-read (changed, previously failed or missing)
  int64_t moved = 0;    // new paths recognised by SHA-256 as a missing file moved/renamed
  int64_t failed = 0;   // outcomes recorded as errors
};

struct ScanCounts {
  int64_t files_listed = 0;     // regular image files found by the walk
  int64_t files_unchanged = 0;  // same path, size and mtime: not read again
  int64_t files_read = 0;       // read and fingerprinted successfully
  int64_t files_failed = 0;     // read, but recorded as errors
  int64_t files_vanished = 0;   // listed, then gone before they could be read
  int64_t files_missing = 0;    // known to the catalogue, no longer on disk
  int64_t files_moved = 0;      // recognised by SHA-256 at a new path
  int64_t bytes_read = 0;
};

struct SourceStats {
  Source source;
  int64_t files_ok = 0, files_error = 0, files_missing = 0;
  int64_t bytes_ok = 0;
  std::string last_scan_at;      // finished_at of the last scan, or empty
  std::string last_scan_status;  // "completed", "cancelled", "interrupted", ...
};

struct CatalogueStats {
  std::vector<SourceStats> sources;
  std::vector<std::pair<std::string, int64_t>> formats;      // format -> files (ok)
  std::vector<std::pair<std::string, int64_t>> error_kinds;  // kind -> files
  int64_t exact_groups = 0, exact_redundant_files = 0, exact_redundant_bytes = 0;
  int64_t content_groups = 0, content_redundant_files = 0;
  int schema_version = 0;
};

// One file as listings print it.
struct FileEntry {
  int64_t id = 0;
  std::string source;
  std::string path;  // relative, raw bytes
  int64_t size = 0;
  FileStatus status = FileStatus::kOk;
  std::string error_kind, error;
  std::string format;
  int width = 0, height = 0;
  std::string capture_time;
};

// Files sharing a digest: "exact" (SHA-256 of the bytes) or "content" (same
// picture, different metadata: same content hash, different SHA-256).
struct DigestGroup {
  std::string kind;  // "exact" | "content"
  Digest digest{};
  std::vector<FileEntry> files;
};

// One entry of the audit trail, in the spirit of a PREMIS event: what
// happened (type), when (UTC), who or what did it (agent, with the software
// version), to what (object: "file:12", "cluster:4", "source:apur",
// "plan:2026-11-22T...", "release:1.0"), how it ended, and the details (JSON).
// Events are append-only: the catalogue refuses to change or delete one.
struct Event {
  int64_t id = 0;
  std::string type;   // "scan", "match", "review decision", "plan", "apply", "undo", "upload",
                      // "release", ...
  std::string time;   // UTC ISO 8601; filled in when empty
  std::string agent;  // "doppel 0.1.0" (filled in when empty) or "person NAME"
  std::string object;
  std::string outcome;    // "success" (default when empty), "failure" or "warning"
  std::string detail;     // JSON object or plain words
  std::string operation;  // groups the events of one operation (an apply's id); may be empty
};

struct EventFilter {
  int64_t after_id = 0;   // events with a larger id
  std::string type;       // empty = any
  std::string object;     // empty = any
  std::string operation;  // empty = any
  int limit = 0;          // 0 = all
};

// "doppel 0.1.0 (user@host)": the software agent of events this process records.
std::string SoftwareAgent();

// A person's decision about a cluster (file_id empty) or about one member of
// it (file_id set: e.g. "this one is not a duplicate"). Decisions are never
// overwritten: the latest one per (cluster, file) is in force. `members` are
// the file ids the person saw, so a decision about a cluster that has changed
// since can be recognised as stale.
struct ReviewDecision {
  int64_t id = 0;
  int64_t cluster_id = 0;
  std::optional<int64_t> file_id;
  std::string decision;        // "confirm" | "reject" | "choose_master"
  int64_t master_file_id = 0;  // choose_master: the chosen file; else the master shown (0 = none)
  std::vector<int64_t> members;
  std::string reviewer;
  std::string decided_at;  // filled in when empty
  std::string note;
};

// A cluster as the review left it. The one rule for which decision is in
// force, used by the plan, the report and the review page.
struct ReviewedCluster {
  const ReviewDecision* decision = nullptr;  // the cluster-wide decision in force, if any
  bool rejected = false;                     // "not duplicates": nothing in it is retired
  bool confirmed = false;                    // a person confirmed it or chose its master
  int64_t master = 0;  // the reviewer's choice if it is still a member, else the matcher's
  std::vector<int64_t> members;  // the members nobody rejected, master first
  // Members a reviewer said are not duplicates, with that decision.
  std::vector<std::pair<int64_t, const ReviewDecision*>> left_out;
};

// The review decisions in force: the latest per (cluster, file), and per
// cluster the latest one about the whole cluster. Holds the decisions it
// points into.
class ReviewDecisions {
 public:
  // `all` as ListDecisions returns them (oldest first).
  explicit ReviewDecisions(std::vector<ReviewDecision> all);
  const ReviewDecision* ForCluster(int64_t cluster_id) const;
  const ReviewDecision* ForMember(int64_t cluster_id, int64_t file_id) const;
  ReviewedCluster Apply(const Cluster& cluster) const;

 private:
  std::vector<ReviewDecision> all_;
  std::map<std::pair<int64_t, int64_t>, size_t> in_force_;  // (cluster, file or 0) -> index
};

// --- Replacement (docs/plan.md, docs/release.md) ---
// A master's consolidated metadata, as a JSON document (docs/plan.md).
struct StoredMetadata {
  int64_t master_file_id = 0;
  int64_t cluster_id = 0;
  std::string document;    // JSON object
  std::string updated_at;  // filled in when empty
};
// A published release: immutable once stored; versions are unique.
struct ReleaseRecord {
  int64_t id = 0;
  std::string version;     // "1.0", as the archivist names it
  std::string created_at;  // filled in when empty
  std::string manifest;    // the JSON manifest (docs/release.md)
};

// --- Upload gate (docs/api.md, docs/catalogue.md v5) ---
// An API key of the HTTP server: a role for one Source. Only the SHA-256 of
// the token is stored; the token itself is shown once, when the key is made.
struct ApiKey {
  int64_t id = 0;
  std::string source;  // the Source it may upload to (admins: any)
  std::string role;    // "uploader" | "reviewer" | "admin"
  std::string label;
  std::string created_at;
  std::string revoked_at;  // empty while the key works
};

// An upload that did not become a file of its own: an alias of an existing
// file (bytes not stored) or held aside for a person to review.
struct UploadRecord {
  int64_t id = 0;
  std::string source;
  std::string outcome;  // "alias" | "held"
  Digest sha256{};
  int64_t master_file_id = 0;  // the catalogued file it duplicates
  std::string kind;            // "exact", "metadata", "near"
  int distance = 0;
  std::string reason;
  std::string held_path;    // held: where the bytes are, relative to the held folder
  std::string client_name;  // the file name the client sent (never used as a path)
  std::string fields;       // client metadata fields, JSON object
  int64_t key_id = 0;
  std::string created_at;  // filled in when empty
};

class Catalogue {
 public:
  virtual ~Catalogue() = default;

  virtual int SchemaVersion() const = 0;
  // Where the catalogue lives, for messages ("doppel.db").
  virtual std::string Location() const = 0;

  // --- Sources ---
  virtual Result<Source> AddSource(const std::string& name, const std::string& root,
                                   int priority) = 0;
  virtual Result<std::vector<Source>> ListSources() = 0;
  virtual Result<Source> GetSource(const std::string& name) = 0;

  // --- Scans ---
  // Starts a scan of a source and returns its id. Fails with kBusy if another
  // live process is scanning the same source; marks scans left "running" by a
  // killed process as "interrupted".
  virtual Result<int64_t> BeginScan(int64_t source_id) = 0;
  // Keeps the scan's lease alive (call at least every 30 s).
  virtual Status Heartbeat(int64_t scan_id) = 0;
  virtual Status FinishScan(int64_t scan_id, const std::string& status,
                            const ScanCounts& counts) = 0;

  virtual Result<std::optional<FileState>> LookupFile(int64_t source_id,
                                                      const std::string& path) = 0;
  // Records that these files were seen unchanged by the scan.
  virtual Status MarkSeen(int64_t scan_id, const std::vector<int64_t>& file_ids) = 0;
  // Marks files of the source that this scan did not see as missing (never
  // deletes them), except under the given path prefixes (folders the walk could
  // not read). Returns how many became missing.
  virtual Result<int64_t> MarkUnseenMissing(int64_t source_id, int64_t scan_id,
                                            const std::vector<std::string>& keep_prefixes) = 0;
  // Stores a batch of outcomes in one transaction. A successful outcome at a
  // path the catalogue does not know, whose SHA-256 equals a missing file's of
  // the same source, moves that file's record to the new path (same id).
  virtual Result<CommitCounts> CommitOutcomes(int64_t source_id, int64_t scan_id,
                                              const std::vector<FileOutcome>& outcomes) = 0;

  // --- Reading ---
  virtual Result<CatalogueStats> Stats() = 0;
  // Groups of files with identical digests, biggest first; limit 0 = all.
  virtual Result<std::vector<DigestGroup>> DigestGroups(const std::string& kind, int limit) = 0;
  // Files with the given status (all if nullopt) in a source (all if empty).
  virtual Result<std::vector<FileEntry>> ListFiles(std::optional<FileStatus> status,
                                                   const std::string& source, int limit) = 0;
  // Full record of one file by id (fingerprints and metadata), if status ok.
  virtual Result<ImageRecord> GetRecord(int64_t file_id) = 0;

  // --- Matching (docs/matching.md) ---
  // Every fingerprinted (status ok) file with what the matcher needs.
  virtual Result<std::vector<MatchInput>> LoadMatchInputs() = 0;
  // Each fingerprinted file's local words (doppel/local_words.h) of the
  // current extractor version, by file id in increasing order; files without
  // them (stale, featureless) are skipped. Streams: nothing is kept.
  virtual Status ForEachLocalWords(
      const std::function<void(int64_t file_id, std::span<const uint32_t> words)>& visit) = 0;
  // Stores pairs found by a match run and marks `now_matched` files as
  // compared. With `forget_previous`, earlier pairs and marks are dropped first.
  virtual Status SaveMatches(const std::vector<Match>& found,
                             const std::vector<int64_t>& now_matched, bool forget_previous) = 0;
  // Every stored pair whose two files are still fingerprinted.
  virtual Result<std::vector<Match>> LoadMatches() = 0;
  // Replaces the clusters. Ids are stable: a cluster whose master was the
  // master of a stored cluster keeps that cluster's id; new ones get new ids.
  // Sets each Cluster::id.
  virtual Status SaveClusters(std::vector<Cluster>& clusters) = 0;
  virtual Result<std::vector<Cluster>> LoadClusters() = 0;

  // --- Audit trail (docs/catalogue.md) ---
  virtual Result<int64_t> AppendEvent(const Event& e) = 0;
  virtual Result<std::vector<Event>> ListEvents(const EventFilter& filter) = 0;

  // --- Review decisions ---
  // Stores a decision and its audit event in one transaction; returns its id.
  virtual Result<int64_t> RecordDecision(const ReviewDecision& d) = 0;
  // Every decision (of one cluster if given), oldest first.
  virtual Result<std::vector<ReviewDecision>> ListDecisions(std::optional<int64_t> cluster_id) = 0;

  // --- Upload gate (docs/api.md, docs/catalogue.md v5) ---
  // Stores a new API key for `source` (must exist) by the SHA-256 of its token.
  virtual Result<ApiKey> AddApiKey(const std::string& source, const std::string& role,
                                   const Digest& token_sha256, const std::string& label) = 0;
  // The working (not revoked) key with this token hash, or nullopt.
  virtual Result<std::optional<ApiKey>> FindApiKey(const Digest& token_sha256) = 0;
  virtual Result<std::vector<ApiKey>> ListApiKeys() = 0;
  // kNotFound if there is no such key; revoking twice is not an error.
  virtual Status RevokeApiKey(int64_t id) = 0;
  // What the upload gate does with a duplicate for this source: "reject"
  // (the default), "alias" or "hold".
  virtual Status SetUploadPolicy(const std::string& source, const std::string& policy) = 0;
  virtual Result<std::string> GetUploadPolicy(const std::string& source) = 0;
  // Records an accepted upload whose bytes are already at `path` (relative to
  // the source root) as a file of the source, with its fingerprints and an
  // `upload` audit event (detail JSON `event_detail`), in one transaction.
  virtual Result<int64_t> AddUploadedFile(int64_t source_id, const std::string& path,
                                          const ImageRecord& r,
                                          const std::string& event_detail) = 0;
  // Records an alias or a held upload and its `upload` event; returns its id.
  virtual Result<int64_t> AddUpload(const UploadRecord& u, const std::string& event_detail) = 0;
  // Ends the read snapshot that finished queries may still hold, so a
  // long-lived connection (the server's) sees other processes' writes and
  // can start a write transaction. Cheap; call between requests.
  virtual void ReleaseSnapshot() = 0;
  // Aliases and held uploads of a source (all if empty), newest first; outcome "" = both.
  virtual Result<std::vector<UploadRecord>> ListUploads(const std::string& source,
                                                        const std::string& outcome, int limit) = 0;

  // --- Replacement (docs/plan.md, docs/release.md) ---
  // Stores consolidated metadata documents, replacing any earlier one of the
  // same cluster or the same master.
  virtual Status SaveConsolidatedMetadata(const std::vector<StoredMetadata>& docs) = 0;
  // Every stored document, by master file id.
  virtual Result<std::vector<StoredMetadata>> LoadConsolidatedMetadata() = 0;
  // Stores a release and its audit event in one transaction; kAlreadyExists
  // if the version is taken (releases are never replaced). Returns its id.
  virtual Result<int64_t> AddRelease(const ReleaseRecord& release, const Event& event) = 0;
  // Every release, oldest first.
  virtual Result<std::vector<ReleaseRecord>> ListReleases() = 0;
};

struct CatalogueOptions {
  // `doppel init` only: create a missing (or 0-byte) catalogue. Otherwise a
  // missing or empty file is kNotFound ("no catalogue at PATH; create it with
  // `doppel init`"), never silently initialised.
  bool create_if_missing = false;
  // Commands that only read: SQLITE_OPEN_READONLY, no journal-mode change and
  // no migration, so a catalogue the user may not write (a shared archive's
  // copy, a read-only mount) can still be queried. A catalogue that needs a
  // migration is kUnsupported with the hint to upgrade it (`doppel init`).
  bool read_only = false;
  // Test hook: cap the SQLite file at this many pages (simulates a full disk).
  int64_t sqlite_max_pages = 0;
};

// Opens (and, unless read_only, migrates) a catalogue. A catalogue this
// process may not write, opened without read_only, is kIOError naming the
// file and the remedy. `location` is a file path (SQLite) or a
// postgresql:// URI (not available yet: kUnsupported).
Result<std::unique_ptr<Catalogue>> OpenCatalogue(const std::string& location,
                                                 const CatalogueOptions& options);

}  // namespace doppel
