// Replacing duplicates safely: a plan first (docs/plan.md), then its
// execution under a write-ahead journal (docs/journal.md) that makes a killed
// apply resumable and every operation reversible. Every plan, applied and
// undone action is an audit event in the catalogue.
//
// All file-system access of the destructive path goes through Env, so tests
// can fail any step. Functions here never print; they return a Status or
// Result and report progress through callbacks.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "doppel/catalogue.h"
#include "doppel/policy.h"
#include "doppel/status.h"

namespace doppel {

// ---------------------------------------------------------------- Env
// The file-system calls of the destructive path (LevelDB Env style). Paths
// are raw bytes. Implementations must be usable from one thread at a time.
class Env {
 public:
  virtual ~Env() = default;

  struct FileInfo {
    bool exists = false;
    bool is_regular = false;
    bool is_symlink = false;
    int64_t size = 0;
    int64_t mtime_ns = 0;
    uint64_t dev = 0, ino = 0;
    uint32_t mode = 0;
  };
  // lstat(2); a missing path is {exists = false}, not an error.
  virtual Result<FileInfo> Stat(const std::string& path) = 0;
  // SHA-256 of a regular file's bytes, lower-case hex.
  virtual Result<std::string> Sha256Hex(const std::string& path) = 0;
  virtual Result<std::string> ReadFile(const std::string& path) = 0;
  virtual Result<std::string> ReadLink(const std::string& path) = 0;
  virtual Result<std::vector<std::string>> ListDir(const std::string& dir) = 0;  // names
  // realpath(3): the absolute path with every symlink and ".." resolved; the
  // path must exist. Not pure, so test Envs that only fault mutations need
  // not forward it.
  virtual Result<std::string> RealPath(const std::string& path);

  // --- Mutations: each one is a step fault injection can fail. ---
  // rename(2). Fails with kUnsupported when `from` and `to` are on different
  // file systems (EXDEV): callers then copy.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // Copies bytes and permission bits to a new file `to` (O_EXCL) and fsyncs it.
  virtual Status CopyFile(const std::string& from, const std::string& to) = 0;
  virtual Status Link(const std::string& target,
                      const std::string& at) = 0;  // hard link
  virtual Status Symlink(const std::string& target, const std::string& at) = 0;
  virtual Status Remove(const std::string& path) = 0;  // a file or an empty folder
  virtual Status SetMtime(const std::string& path,
                          int64_t mtime_ns) = 0;           // no symlink follow
  virtual Status CreateDirs(const std::string& path) = 0;  // mkdir -p
  virtual Status SyncDir(const std::string& dir) = 0;      // fsync a folder (renames durable)
  // Appends bytes to a file (created if needed) and fdatasyncs it.
  virtual Status AppendDurably(const std::string& path, const std::string& bytes) = 0;
  virtual Status WriteFileDurably(const std::string& path, const std::string& bytes) = 0;

  // A file being written; each call is a step fault injection can fail.
  // Destroying it without Close() closes the descriptor (the file stays).
  class WritableFile {
   public:
    virtual ~WritableFile() = default;
    virtual Status Append(const std::string& bytes) = 0;
    virtual Status Sync() = 0;  // fsync
    virtual Status Close() = 0;
  };
  // Creates `path`, which must not exist: open(2) with O_CREAT | O_EXCL |
  // O_NOFOLLOW, mode 0644, so nothing at that name -- a symbolic link above
  // all -- is followed or truncated (kAlreadyExists). Not pure: an Env written
  // before it (a test's wrapper) gets the POSIX file and keeps compiling.
  virtual Result<std::unique_ptr<WritableFile>> NewExclusiveFile(const std::string& path);

  // An exclusive advisory lock (flock) on a file, created if needed; kBusy
  // when another process holds it. Released when the object dies.
  class Lock {
   public:
    virtual ~Lock() = default;
  };
  virtual Result<std::unique_ptr<Lock>> LockFile(const std::string& path) = 0;

  // The real POSIX file system. Never deleted.
  static Env* Default();
};

// An Env that forwards every call to another one (LevelDB's EnvWrapper): a
// test's fault-injecting Env derives from it and overrides only the calls it
// faults. Does not own the target.
class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(Env* target = Env::Default()) : target_(target) {}
  Env* target() const { return target_; }

  Result<FileInfo> Stat(const std::string& path) override { return target_->Stat(path); }
  Result<std::string> Sha256Hex(const std::string& path) override {
    return target_->Sha256Hex(path);
  }
  Result<std::string> ReadFile(const std::string& path) override { return target_->ReadFile(path); }
  Result<std::string> ReadLink(const std::string& path) override { return target_->ReadLink(path); }
  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    return target_->ListDir(dir);
  }
  Result<std::string> RealPath(const std::string& path) override { return target_->RealPath(path); }
  Status Rename(const std::string& from, const std::string& to) override {
    return target_->Rename(from, to);
  }
  Status CopyFile(const std::string& from, const std::string& to) override {
    return target_->CopyFile(from, to);
  }
  Status Link(const std::string& target, const std::string& at) override {
    return target_->Link(target, at);
  }
  Status Symlink(const std::string& target, const std::string& at) override {
    return target_->Symlink(target, at);
  }
  Status Remove(const std::string& path) override { return target_->Remove(path); }
  Status SetMtime(const std::string& path, int64_t mtime_ns) override {
    return target_->SetMtime(path, mtime_ns);
  }
  Status CreateDirs(const std::string& path) override { return target_->CreateDirs(path); }
  Status SyncDir(const std::string& dir) override { return target_->SyncDir(dir); }
  Status AppendDurably(const std::string& path, const std::string& bytes) override {
    return target_->AppendDurably(path, bytes);
  }
  Status WriteFileDurably(const std::string& path, const std::string& bytes) override {
    return target_->WriteFileDurably(path, bytes);
  }
  Result<std::unique_ptr<WritableFile>> NewExclusiveFile(const std::string& path) override {
    return target_->NewExclusiveFile(path);
  }
  Result<std::unique_ptr<Lock>> LockFile(const std::string& path) override {
    return target_->LockFile(path);
  }

 private:
  Env* target_;
};

// ---------------------------------------------------------------- Plan
inline constexpr int kPlanVersion = 1;

enum class ActionKind { kQuarantine, kHardlink, kSymlink, kDelete, kRedirectOnly };
const char* ActionKindName(ActionKind k);  // "quarantine", "hardlink", ...
std::optional<ActionKind> ParseActionKind(const std::string& s);

// One duplicate to retire in favour of its cluster's master.
struct PlannedAction {
  int64_t cluster_id = 0;
  int64_t file_id = 0;
  std::string source, path;  // path relative to the source root, raw bytes
  std::string abs_path;
  std::string sha256;  // hex, as catalogued
  int64_t bytes = 0;
  int64_t mtime_ns = 0;
  std::string relation;  // how it matched the master: "exact", "metadata", "near"
  int64_t master_file_id = 0;
  std::string master_source, master_path, master_abs_path, master_sha256;
  std::string reason;  // plain words
};

struct PlannedCluster {
  int64_t cluster_id = 0;
  int64_t master_file_id = 0;
  std::string master;              // "archives/x.tif"
  std::string basis;               // "review: confirmed by NAME", "exact copies", "automatic
                                   // (unconfirmed)"
  std::string reason;              // "kept archives/x.tif: source 'archives' ranks above
                                   // 'apur' in the policy"
  std::vector<std::string> notes;  // files left out and why
  // Set when the kept copy holds strictly less than a retired one (a policy
  // or a reviewer chose it): "keeps a greyscale copy; the colour original
  // apur/x.jpg is retired" (LesserCopyWarning).
  std::string warning;
  ConsolidatedMetadata metadata;
};

// A cluster not planned, and why.
struct SkippedCluster {
  int64_t cluster_id = 0;
  std::string reason;
};

struct Plan {
  int version = kPlanVersion;
  std::string plan_id;
  std::string created_at;
  std::string catalogue;  // location it was made from
  std::string policy;     // origin of the policy
  bool include_unconfirmed = false;
  std::vector<PlannedCluster> clusters;
  std::vector<PlannedAction> actions;
  std::vector<SkippedCluster> skipped;
  int64_t bytes_to_reclaim = 0;
  int64_t LesserMasters() const;  // clusters with a warning
};

struct PlanOptions {
  MasterPolicy policy;
  bool include_unconfirmed = false;  // also clusters of automatic matches nobody confirmed
};

// Builds a plan from the catalogue's clusters and review decisions, stores the
// planned masters' consolidated metadata and appends a `plan` event.
Result<Plan> MakePlan(Catalogue& catalogue, const PlanOptions& options);

std::string PlanToJson(const Plan& plan);  // pretty JSON (docs/plan.md)
// Parses a plan file's text; `name` is used in messages.
Result<Plan> PlanFromJson(const std::string& text, const std::string& name);

// ---------------------------------------------------------------- Apply / undo
struct ApplyOptions {
  ActionKind action = ActionKind::kQuarantine;
  std::string quarantine_dir;  // empty: StateDir()/quarantine
  Env* env = nullptr;          // null: Env::Default()
  // Called after each action with a line for people ("quarantined apur/x.jpg").
  std::function<void(int64_t done, int64_t total, const std::string& line)> progress;
  const std::atomic<bool>* cancel = nullptr;  // stops between actions; resumable
  int test_step_pause_ms = 0;                 // test hook: sleep before each file-system step
};

struct ActionOutcome {
  int64_t file_id = 0;
  std::string name;     // "apur/x.jpg"
  std::string outcome;  // "applied", "skipped", "undone"
  std::string message;
  int64_t reclaimed_bytes = 0;
};

struct ApplyReport {
  std::string operation_id;
  std::vector<ActionOutcome> outcomes;
  int64_t applied = 0, skipped = 0;
  int64_t reclaimed_bytes = 0;
  bool complete = false;  // false: cancelled; `apply --resume` continues
};

// Where the catalogue keeps journals, the trash and the default quarantine:
// "LOCATION.replace" beside the catalogue file.
std::string StateDir(const Catalogue& catalogue);

// Executes a plan: verifies every file (and its master) against the
// catalogue's SHA-256 right before acting, journals each step before taking
// it, appends an `apply` event per action. A failing step stops the
// operation with its Status; the journal keeps what was done, so
// ResumeApply finishes it and Undo reverses it.
Result<ApplyReport> ApplyPlan(Catalogue& catalogue, const Plan& plan, const ApplyOptions& options);

// Operations whose journal is not complete (killed or failed applies).
Result<std::vector<std::string>> PendingOperations(const Catalogue& catalogue, Env* env = nullptr);

// Finishes an interrupted operation (empty id: the only pending one).
// options.action and quarantine_dir are taken from the journal.
Result<ApplyReport> ResumeApply(Catalogue& catalogue, const std::string& operation_id,
                                const ApplyOptions& options);

// Reverses a completed operation: every retired file gets its bytes, path and
// mtime back, each one verified; `undo` events are appended and the journal
// is consumed (removed). Files whose place was taken by something else are
// left alone and reported.
Result<ApplyReport> Undo(Catalogue& catalogue, const std::string& operation_id,
                         const ApplyOptions& options);

// ---------------------------------------------------------------- Trash
// Retired bytes kept for undo (delete, hardlink and symlink keep the file in
// StateDir()/trash/OPERATION) are removed for good once an operation is old
// enough (docs/journal.md, "Purge"). Quarantine folders are the archive's
// own and are never purged.
struct PurgeOptions {
  int64_t older_than_days = 30;  // operations begun at least this many days ago
  // The archive's hold period: an operation younger than this is never
  // purged, whatever older_than_days says; it is reported as held.
  int64_t hold_days = 30;
  Env* env = nullptr;    // null: Env::Default()
  int64_t now_unix = 0;  // 0: the clock (tests set it)
  std::function<void(const std::string& line)> progress;
};

struct PurgedOperation {
  std::string operation;
  std::string applied_at;  // when the apply began (the journal's begin time)
  int64_t files = 0, bytes = 0;
};

struct PurgeReport {
  std::string purge_id;  // "purge-...": the audit events' operation
  std::vector<PurgedOperation> purged;
  std::vector<std::string> held;  // "op-...: applied 3 days ago, inside the 30-day hold ..."
  int64_t files = 0, bytes = 0;
};

// Removes the kept bytes of every committed, not undone operation older than
// options.older_than_days and the hold period. Each removal is journaled in
// the operation's journal (purge-begin, purge start/done, purge-commit) before
// and after it is taken and audited (a `purge` event per file), so a failed
// or killed purge is finished by running it again. Afterwards `Undo` refuses
// the operation and names the files that can no longer be restored.
Result<PurgeReport> PurgeTrash(Catalogue& catalogue, const PurgeOptions& options);

// ---------------------------------------------------------------- Writing files in archives
// Replaces the file at `path` with `bytes` atomically: a new temporary file
// beside it (Env::NewExclusiveFile, a random name), written, fsynced, renamed
// over `path`, then the folder fsynced. Readers see the old bytes or the new
// ones, never a part. On failure `path` is as it was and the temporary file
// is removed. Refuses (kInvalidArgument, nothing written) when `path` is a
// symbolic link -- even a dangling one -- or not a regular file.
Status WriteFileAtomically(Env& env, const std::string& path, const std::string& bytes);

// Writes the XMP sidecar of a planned master: MASTER.xmp beside the master
// file (its source root from the catalogue), holding ConsolidatedToXmp(m),
// through WriteFileAtomically; the master itself is never touched. Refuses,
// leaving the file system as it is: a symbolic link or anything but a regular
// file at MASTER.xmp (kInvalidArgument), a sidecar doppel did not write (one
// without the doppel namespace: kAlreadyExists). Every write and every refusal
// is a `sidecar` event of the audit trail (object "file:MASTER_ID", detail
// {"path", "bytes", "sha256"} or the reason). Returns the sidecar's path.
Result<std::string> WriteXmpSidecar(Catalogue& catalogue, const ConsolidatedMetadata& m,
                                    Env* env = nullptr);

// The one rule for which files are retired, from the audit trail; apply,
// plan, release and the report all use it (docs/catalogue.md). A file is
// retired when, of the `apply` and `undo` events about it with the outcome
// "success" (or none, which means success), the latest (highest event id) is an apply. Failed or
// skipped applies and failed undos changed nothing on disk and do not count. The file an event is
// about is its object "file:ID", else its detail's "file_id".
struct RetiredFile {
  int64_t file_id = 0;
  int64_t event_id = 0;  // the apply that retired it
  std::string operation;
  std::string detail;  // the apply event's JSON detail
  std::string time;    // the apply event's time (UTC)
};
// Sorted by file id. `unattributed`, when given, receives the number of
// successful apply/undo events that name no file (they are ignored).
Result<std::vector<RetiredFile>> RetiredFiles(Catalogue& catalogue,
                                              int64_t* unattributed = nullptr);

}  // namespace doppel
