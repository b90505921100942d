// What the catalogue backends share that is not SQL: the column lists both
// select, how a row of them becomes a record, the audit events a method
// records, the checks on arguments and on the schema version. A backend
// runs the statements; these decide what the rows mean, in one place.
//
// The row readers are templates over the backend's row type, which offers
//   int64_t Int(int col); double Real(int col); bool IsNull(int col);
//   std::string Text(int col);  // text as stored; bytea/BLOB as raw bytes
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "doppel/catalogue.h"

namespace doppel::catalogue_rows {

// The schema version both backends migrate to (docs/catalogue.md).
inline constexpr int kSchemaVersion = 6;
// A scan whose process stopped renewing its lease this long ago was killed.
inline constexpr int kLeaseSeconds = 90;

int64_t NowSeconds();
std::string HostName();
FileStatus ParseFileStatus(const std::string& s);
// A scan lease held by a process of this host that no longer exists.
bool ProcessIsGone(int64_t pid);
// The refusal of a second live scan of one source.
Status ScanBusy(int64_t scan_id, int64_t pid, const std::string& host);
// Fingerprinted by an older doppel (signature or local-words version, 0 =
// none): read it again.
bool IsStale(FileStatus status, int64_t signature_version, int64_t local_words_version);
ContentHashKind ParseContentKind(const std::string& s);
// The seven dihedral variants after the first, concatenated (7 x 32 bytes).
std::string DihedralBytes(const PdqResult& r);
// A JSON array of strings, or empty (stored as NULL) for an empty list.
std::string StringListJson(const std::vector<std::string>& v);
void ParseStringList(const std::string& json, std::vector<std::string>& out);
std::vector<int64_t> ParseIdList(const std::string& json);

// Schema checks, with the messages both backends give.
// `version` 0 = no doppel schema. Fails if newer than this doppel; on a
// read-only open also if older (it cannot be migrated).
Status CheckSchemaVersion(const std::string& location, int version, bool read_only);

// Argument checks.
Status CheckDecision(const ReviewDecision& d);
Status CheckRole(const std::string& role);
Status CheckUploadPolicy(const std::string& policy);
Status CheckUploadOutcome(const std::string& outcome);

// The audit events the catalogue records itself.
Event ScanFinishedEvent(int64_t scan_id, const std::string& source_name, const std::string& status,
                        const ScanCounts& c);
Event DecisionEvent(const ReviewDecision& d, int64_t decision_id, const std::string& at);
Event ApiKeyAddedEvent(const ApiKey& k);
Event ApiKeyRevokedEvent(int64_t id);
Event UploadPolicyEvent(const std::string& source, const std::string& policy);
Event UploadedFileEvent(int64_t file_id, const std::string& detail);
Event UploadEvent(const UploadRecord& u, const std::string& detail);
// Fills an event's defaults: time, agent, outcome.
Event WithDefaults(Event e);

// --- Column lists and their readers ---

// A FileEntry: files f JOIN sources s LEFT JOIN metadata m.
inline constexpr const char* kEntryColumns =
    "f.id, s.name, f.path, f.size, f.status, coalesce(f.error_kind, ''), coalesce(f.error, ''), "
    "coalesce(f.format, ''), coalesce(f.width, 0), coalesce(f.height, 0), coalesce(m.capture_time, "
    "'')";
template <class Row>
FileEntry ReadEntry(const Row& s) {
  FileEntry e;
  e.id = s.Int(0);
  e.source = s.Text(1);
  e.path = s.Text(2);
  e.size = s.Int(3);
  e.status = ParseFileStatus(s.Text(4));
  e.error_kind = s.Text(5);
  e.error = s.Text(6);
  e.format = s.Text(7);
  e.width = int(s.Int(8));
  e.height = int(s.Int(9));
  e.capture_time = s.Text(10);
  return e;
}

inline void CopyBytes(const std::string& b, uint8_t* dst, size_t n) {
  if (b.size() == n) std::memcpy(dst, b.data(), n);
}
template <class Row>
void ReadBlob32(const Row& s, int c, uint8_t* dst) {
  CopyBytes(s.Text(c), dst, 32);
}
template <class Row>
void ReadPdq(const Row& s, int hash_col, int quality_col, int dihedral_col, PdqResult& r) {
  std::string pdq = s.Text(hash_col);
  if (pdq.size() == 32) r.hash = PdqHash::FromBytes(reinterpret_cast<const uint8_t*>(pdq.data()));
  r.quality = int(s.Int(quality_col));
  r.dihedral.fill(r.hash);
  if (dihedral_col < 0) return;
  std::string dih = s.Text(dihedral_col);
  for (int k = 1; k < 8 && dih.size() >= 32 * size_t(k); ++k)
    r.dihedral[k] = PdqHash::FromBytes(reinterpret_cast<const uint8_t*>(dih.data()) + 32 * (k - 1));
}

// The signature's columns (signatures g). The trimmed PDQ is stored without
// its dihedral variants (the matcher compares the trimmed hash as it is).
inline constexpr const char* kSignatureColumns =
    "g.thumb, g.trim_left, g.trim_top, g.trim_right, g.trim_bottom, g.trimmed_pdq, "
    "g.trimmed_quality, g.inner_thumb, g.smooth_pdq, g.smooth_quality, g.smooth_dihedral, g.chroma";
template <class Row>
void ReadSignature(const Row& s, int c, Signature& g) {
  CopyBytes(s.Text(c), g.thumb.data(), g.thumb.size());
  g.trim_left = float(s.Real(c + 1));
  g.trim_top = float(s.Real(c + 2));
  g.trim_right = float(s.Real(c + 3));
  g.trim_bottom = float(s.Real(c + 4));
  if (!s.IsNull(c + 5)) {
    PdqResult t;
    ReadPdq(s, c + 5, c + 6, -1, t);
    g.trimmed = t;
    CopyBytes(s.Text(c + 7), g.inner_thumb.data(), g.inner_thumb.size());
  }
  if (!s.IsNull(c + 8)) ReadPdq(s, c + 8, c + 9, c + 10, g.smooth);
  const std::string chroma = s.Text(c + 11);
  if (chroma.size() == g.chroma.size()) std::memcpy(g.chroma.data(), chroma.data(), chroma.size());
}

// A whole ImageRecord; the backend appends its placeholder for f.id.
inline const std::string& RecordSelect() {
  static const std::string sql =
      "SELECT f.size, f.mtime_ns, f.sha256, f.content_hash, f.content_kind, f.format, f.width, "
      "f.height, f.bands, f.bit_depth, f.pages, f.orientation, f.has_alpha, f.colourspace, "
      "p.pipeline, p.pdq, p.quality, p.dihedral, "
      "m.capture_time, m.capture_time_source, m.make, m.model, m.artist, m.copyright, m.gps_lat, "
      "m.gps_lon, m.gps_alt, m.title, m.keywords, m.warnings, " +
      std::string(kSignatureColumns) +
      " FROM files f JOIN fingerprints p ON p.file_id = f.id LEFT JOIN metadata m ON m.file_id = "
      "f.id LEFT JOIN signatures g ON g.file_id = f.id WHERE f.status = 'ok' AND f.id = ";
  return sql;
}
template <class Row>
ImageRecord ReadRecord(const Row& s) {
  ImageRecord r;
  r.file_size = s.Int(0);
  r.mtime_ns = s.Int(1);
  ReadBlob32(s, 2, r.fingerprints.sha256.data());
  ReadBlob32(s, 3, r.fingerprints.content_hash.data());
  r.fingerprints.content_kind = ParseContentKind(s.Text(4));
  r.info.format = s.Text(5);
  r.info.width = int(s.Int(6));
  r.info.height = int(s.Int(7));
  r.info.bands = int(s.Int(8));
  r.info.bit_depth = int(s.Int(9));
  r.info.pages = int(s.Int(10));
  r.info.orientation = int(s.Int(11));
  r.info.has_alpha = s.Int(12) != 0;
  r.info.colourspace = s.Text(13);
  r.fingerprints.pdq_pipeline = int(s.Int(14));
  ReadPdq(s, 15, 16, 17, r.fingerprints.pdq);
  ImageMetadata& m = r.metadata;
  m.capture_time = s.Text(18);
  m.capture_time_source = s.Text(19);
  m.make = s.Text(20);
  m.model = s.Text(21);
  m.artist = s.Text(22);
  m.copyright = s.Text(23);
  if (!s.IsNull(24)) m.gps_latitude = s.Real(24);
  if (!s.IsNull(25)) m.gps_longitude = s.Real(25);
  if (!s.IsNull(26)) m.gps_altitude = s.Real(26);
  m.title = s.Text(27);
  ParseStringList(s.Text(28), m.keywords);
  ParseStringList(s.Text(29), m.warnings);
  ReadSignature(s, 30, r.fingerprints.signature);
  return r;
}

// Every fingerprinted file, as the matcher needs it, ordered by id.
inline const std::string& MatchInputSelect() {
  static const std::string sql =
      "SELECT f.id, s.name, f.path, s.priority, f.size, f.sha256, f.content_hash, f.format, "
      "f.width, f.height, f.bands, f.bit_depth, f.orientation, p.pdq, p.quality, p.dihedral, "
      "m.capture_time, m.make, m.model, m.gps_lat, m.gps_lon, "
      "CASE WHEN ms.file_id IS NULL THEN 0 ELSE 1 END, " +
      std::string(kSignatureColumns) +
      " FROM files f JOIN sources s ON s.id = f.source_id JOIN fingerprints p ON p.file_id = f.id "
      "LEFT JOIN signatures g ON g.file_id = f.id LEFT JOIN metadata m ON m.file_id = f.id "
      "LEFT JOIN match_state ms ON ms.file_id = f.id WHERE f.status = 'ok' ORDER BY f.id";
  return sql;
}
template <class Row>
MatchInput ReadMatchInput(const Row& s) {
  MatchInput m;
  m.file_id = s.Int(0);
  m.source = s.Text(1);
  m.path = s.Text(2);
  m.source_priority = int(s.Int(3));
  m.file_size = s.Int(4);
  ReadBlob32(s, 5, m.fingerprints.sha256.data());
  ReadBlob32(s, 6, m.fingerprints.content_hash.data());
  m.info.format = s.Text(7);
  m.info.width = int(s.Int(8));
  m.info.height = int(s.Int(9));
  m.info.bands = int(s.Int(10));
  m.info.bit_depth = int(s.Int(11));
  m.info.orientation = int(s.Int(12));
  ReadPdq(s, 13, 14, 15, m.fingerprints.pdq);
  m.metadata.capture_time = s.Text(16);
  m.metadata.make = s.Text(17);
  m.metadata.model = s.Text(18);
  if (!s.IsNull(19)) m.metadata.gps_latitude = s.Real(19);
  if (!s.IsNull(20)) m.metadata.gps_longitude = s.Real(20);
  m.already_matched = s.Int(21) != 0;
  ReadSignature(s, 22, m.fingerprints.signature);
  return m;
}

// A stored match: matches x, ordered by (file_a, file_b).
inline constexpr const char* kMatchSelect =
    "SELECT x.file_a, x.file_b, x.kind, x.distance, x.transform, x.correlation, x.reason FROM "
    "matches x JOIN files a ON a.id = x.file_a JOIN files b ON b.id = x.file_b "
    "WHERE a.status = 'ok' AND b.status = 'ok' ORDER BY x.file_a, x.file_b";
template <class Row>
Match ReadMatch(const Row& s) {
  Match m;
  m.file_a = s.Int(0);
  m.file_b = s.Int(1);
  m.kind = ParseMatchKind(s.Text(2)).value_or(MatchKind::kSimilar);
  m.distance = int(s.Int(3));
  m.transform = s.Text(4);
  m.correlation = s.Real(5);
  m.reason = s.Text(6);
  return m;
}

// Cluster members in order: clusters c JOIN cluster_members m.
inline constexpr const char* kClusterSelect =
    "SELECT c.id, c.master_file_id, m.file_id, m.relation, m.distance FROM clusters c "
    "JOIN cluster_members m ON m.cluster_id = c.id ORDER BY c.id, m.position";
template <class Row>
void AddClusterRow(const Row& s, std::vector<Cluster>& out) {
  if (out.empty() || out.back().id != s.Int(0)) out.push_back(Cluster{s.Int(0), s.Int(1), {}});
  ClusterMember mem;
  mem.file_id = s.Int(2);
  const std::string rel = s.Text(3);
  mem.master = rel == "master";
  mem.relation = ParseMatchKind(rel).value_or(MatchKind::kExact);
  mem.distance = int(s.Int(4));
  out.back().members.push_back(mem);
}
// What cluster_members.relation stores for a member.
inline const char* MemberRelation(const ClusterMember& m) {
  return m.master ? "master" : MatchKindName(m.relation);
}

// Events: id, event_type, event_time, agent, object, outcome, detail, operation.
inline constexpr const char* kEventColumns =
    "id, event_type, event_time, agent, object, outcome, detail, coalesce(operation, '')";
template <class Row>
Event ReadEvent(const Row& s) {
  return Event{s.Int(0),  s.Text(1), s.Text(2), s.Text(3),
               s.Text(4), s.Text(5), s.Text(6), s.Text(7)};
}

inline constexpr const char* kDecisionColumns =
    "id, cluster_id, file_id, decision, master_file_id, members, reviewer, decided_at, note";
template <class Row>
ReviewDecision ReadDecision(const Row& s) {
  ReviewDecision d;
  d.id = s.Int(0);
  d.cluster_id = s.Int(1);
  if (!s.IsNull(2)) d.file_id = s.Int(2);
  d.decision = s.Text(3);
  d.master_file_id = s.IsNull(4) ? 0 : s.Int(4);
  d.members = ParseIdList(s.Text(5));
  d.reviewer = s.Text(6);
  d.decided_at = s.Text(7);
  d.note = s.Text(8);
  return d;
}

inline constexpr const char* kApiKeySelect =
    "SELECT k.id, s.name, k.role, k.label, k.created_at, coalesce(k.revoked_at, '') FROM "
    "api_keys k JOIN sources s ON s.id = k.source_id ";
template <class Row>
ApiKey ReadApiKey(const Row& s) {
  return ApiKey{s.Int(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4), s.Text(5)};
}

inline constexpr const char* kUploadSelect =
    "SELECT u.id, s.name, u.outcome, u.sha256, u.master_file_id, u.kind, u.distance, u.reason, "
    "coalesce(u.held_path, ''), u.client_name, u.fields, coalesce(u.key_id, 0), u.created_at "
    "FROM uploads u JOIN sources s ON s.id = u.source_id ";
template <class Row>
UploadRecord ReadUpload(const Row& s) {
  UploadRecord u;
  u.id = s.Int(0);
  u.source = s.Text(1);
  u.outcome = s.Text(2);
  ReadBlob32(s, 3, u.sha256.data());
  u.master_file_id = s.Int(4);
  u.kind = s.Text(5);
  u.distance = int(s.Int(6));
  u.reason = s.Text(7);
  u.held_path = s.Text(8);
  u.client_name = s.Text(9);
  u.fields = s.Text(10);
  u.key_id = s.Int(11);
  u.created_at = s.Text(12);
  return u;
}

}  // namespace doppel::catalogue_rows
