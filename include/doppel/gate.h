// The upload gate: stops duplicates at the point of entry. An uploaded
// picture is fingerprinted, compared with everything in the catalogue through
// a live PDQ index, and then accepted as a new file of its Source, or -- when
// it duplicates a catalogued file -- rejected, recorded as an alias of that
// file, or held aside for a person, as the Source's upload policy says
// (docs/api.md).
//
// Thread-safety: every method may be called from any thread at any time.
// Lookups share a reader lock on the index; an ingest serialises the check
// and the insert (so of two concurrent uploads of one picture exactly one is
// accepted) and makes the new file matchable before it returns. The gate
// opens its own catalogue connection for writing; other processes (a CLI
// scan) may use the same SQLite catalogue meanwhile (WAL, busy timeout). Files
// they add become matchable after Refresh() (RefreshAfterMatch() once a
// `doppel match` ran) or a restart.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "doppel/catalogue.h"
#include "doppel/fingerprint.h"
#include "doppel/match.h"
#include "doppel/status.h"

namespace doppel {

struct GateOptions {
  MatchOptions match;
  // Where held uploads are written: HELD_DIR/SOURCE/ab/SHA256.EXT. Empty:
  // "doppel-held" beside the catalogue.
  std::string held_dir;
  // Overrides every Source's stored policy when set ("reject", "alias", "hold").
  std::string policy_override;
};

// One catalogued file an upload duplicates or resembles.
struct GateMatch {
  int64_t file_id = 0;
  std::string source;
  std::string path;  // relative to the source root, raw bytes
  MatchKind kind = MatchKind::kSimilar;
  int distance = 0;  // PDQ bits
  std::string transform;
  double correlation = 0;
  std::string reason;  // in plain words
};

enum class UploadOutcome { kAccepted, kRejected, kAlias, kHeld };
const char* UploadOutcomeName(UploadOutcome o);  // "accepted", "rejected", "alias", "held"

struct UploadRequest {
  std::string source;
  std::string client_name;                    // informative only: never used as a path
  std::map<std::string, std::string> fields;  // client metadata, stored as JSON
  int64_t key_id = 0;                         // the API key that sent it (0: none, e.g. tests)
  std::string agent;                          // who, for the audit trail ("key 3 (apur uploader)")
};

struct UploadResult {
  UploadOutcome outcome = UploadOutcome::kAccepted;
  int64_t file_id = 0;    // accepted: the new file
  int64_t upload_id = 0;  // alias / held: the upload record
  std::string path;       // accepted: where the bytes are, relative to the source root
  std::string sha256;     // hex
  std::optional<GateMatch> duplicate_of;  // the closest catalogued copy (not for accepted)
  // The master of that copy's cluster (`doppel match`), where the copy is a
  // clustered member; else the copy itself. What a portal should link to.
  int64_t master_file_id = 0;
  std::vector<GateMatch> similar;  // accepted: pictures a person might want to compare
  std::string reason;              // plain words
};

// API keys (docs/api.md): a token is "dpl_" and 64 hex digits (32 random
// bytes); the catalogue keeps only its SHA-256.
struct NewApiKey {
  ApiKey key;
  std::string token;  // shown once
};
Result<NewApiKey> CreateApiKey(Catalogue& catalogue, const std::string& source,
                               const std::string& role, const std::string& label);
Digest ApiTokenDigest(const std::string& token);

class Gate {
 public:
  // Opens the catalogue and loads every fingerprinted file into the index.
  static Result<std::unique_ptr<Gate>> Open(const std::string& catalogue,
                                            const GateOptions& options);
  ~Gate();

  // Catalogued files related to a fingerprinted picture, duplicates first
  // (exact, metadata, near, then similar; closer first). Stores nothing.
  Result<std::vector<GateMatch>> Lookup(const ImageRecord& record) const;
  // Catalogued files whose PDQ hash (or a rotation/mirror of it) is within
  // `radius` bits of `hash`, closest first, at most `max_results` of them.
  std::vector<GateMatch> LookupHash(const PdqHash& hash, int radius, size_t max_results) const;

  // Decides what happens to an upload (bytes and their fingerprints) and does
  // it: accepted bytes go to SOURCE_ROOT/uploads/YYYY/MM/DD/SHA256.EXT (the
  // path depends only on the bytes and the day), held bytes to the held
  // folder. On failure nothing is stored (a file written before a failed
  // catalogue transaction is removed).
  Result<UploadResult> Ingest(const UploadRequest& request, const uint8_t* data, size_t size,
                              const ImageRecord& record);

  // Adds catalogued files the index does not know yet (added by another
  // process, e.g. a scan) and reloads which master each clustered file has.
  // Returns how many files were added.
  Result<int64_t> Refresh();
  // Refresh(), but only if a `doppel match` finished since the gate opened or
  // last refreshed (a cheap check of the audit trail); else returns 0.
  Result<int64_t> RefreshAfterMatch();

  size_t size() const;  // files in the index

  // What the gate knows of one indexed file (source, path, dimensions, a
  // subset of metadata), or nullopt.
  std::optional<MatchInput> File(int64_t file_id) const;

 private:
  struct Impl;
  explicit Gate(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace doppel
