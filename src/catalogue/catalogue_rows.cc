#include "catalogue/catalogue_rows.h"

#include "doppel/local_words.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <nlohmann/json.hpp>

#include "doppel/digest.h"
#include "doppel/local_words.h"
#include "util/paths.h"

namespace doppel::catalogue_rows {

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string HostName() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return host;
}

FileStatus ParseFileStatus(const std::string& s) {
  if (s == "error") return FileStatus::kError;
  if (s == "missing") return FileStatus::kMissing;
  return FileStatus::kOk;
}

bool ProcessIsGone(int64_t pid) {
  return pid_t(pid) != getpid() && ::kill(pid_t(pid), 0) != 0 && errno == ESRCH;
}

Status ScanBusy(int64_t scan_id, int64_t pid, const std::string& host) {
  return Busy("scan #" + std::to_string(scan_id) + " of this source is running in process " +
              std::to_string(pid) + " on " + host +
              "; wait for it to finish (a killed scan's lease expires after " +
              std::to_string(kLeaseSeconds) + " s)");
}

bool IsStale(FileStatus status, int64_t signature_version, int64_t local_words_version) {
  return status == FileStatus::kOk &&
         (signature_version < kSignatureVersion || local_words_version != kLocalWordsVersion);
}

ContentHashKind ParseContentKind(const std::string& s) {
  return s == "jpeg-segments" ? ContentHashKind::kJpegSegments
         : s == "png-chunks"  ? ContentHashKind::kPngChunks
                              : ContentHashKind::kPixels;
}

std::string DihedralBytes(const PdqResult& r) {
  std::string out;
  for (int k = 1; k < 8; ++k) {
    auto b = r.dihedral[k].ToBytes();
    out.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  return out;
}

std::string StringListJson(const std::vector<std::string>& v) {
  return v.empty() ? std::string() : nlohmann::json(v).dump();
}

void ParseStringList(const std::string& json, std::vector<std::string>& out) {
  if (json.empty()) return;
  auto v = nlohmann::json::parse(json, nullptr, false);
  if (v.is_array())
    for (auto& e : v)
      if (e.is_string()) out.push_back(e.get<std::string>());
}

std::vector<int64_t> ParseIdList(const std::string& json) {
  std::vector<int64_t> out;
  auto v = nlohmann::json::parse(json, nullptr, false);
  if (v.is_array())
    for (const auto& m : v)
      if (m.is_number_integer()) out.push_back(m.get<int64_t>());
  return out;
}

Status CheckSchemaVersion(const std::string& location, int version, bool read_only) {
  if (version > kSchemaVersion)
    return Unsupported("catalogue " + location + " has schema version " + std::to_string(version) +
                       ", newer than this doppel understands (" + std::to_string(kSchemaVersion) +
                       "); upgrade doppel");
  if (read_only && version < kSchemaVersion)
    return Unsupported("catalogue " + location + " has schema version " + std::to_string(version) +
                       " and this doppel reads version " + std::to_string(kSchemaVersion) +
                       "; upgrade it once with `doppel --db " + location +
                       " init` (it writes the catalogue), then read it again");
  return Status::OK();
}

Status CheckDecision(const ReviewDecision& d) {
  if (d.decision != "confirm" && d.decision != "reject" && d.decision != "choose_master")
    return InvalidArgument("unknown review decision '" + d.decision +
                           "' (confirm, reject or choose_master)");
  if (d.decision == "choose_master" && d.master_file_id <= 0)
    return InvalidArgument("choose_master needs the chosen file's id");
  if (d.reviewer.empty()) return InvalidArgument("a review decision needs a reviewer");
  return Status::OK();
}

Status CheckRole(const std::string& role) {
  if (role != "uploader" && role != "reviewer" && role != "admin")
    return InvalidArgument("unknown role '" + role + "' (uploader, reviewer or admin)");
  return Status::OK();
}

Status CheckUploadPolicy(const std::string& policy) {
  if (policy != "reject" && policy != "alias" && policy != "hold")
    return InvalidArgument("unknown upload policy '" + policy + "' (reject, alias or hold)");
  return Status::OK();
}

Status CheckUploadOutcome(const std::string& outcome) {
  if (outcome != "alias" && outcome != "held")
    return InvalidArgument("unknown upload outcome '" + outcome + "' (alias or held)");
  return Status::OK();
}

Event ScanFinishedEvent(int64_t scan_id, const std::string& source_name, const std::string& status,
                        const ScanCounts& c) {
  Event e;
  e.type = "scan";
  e.object = "source:" + source_name;
  e.outcome = status == "completed" ? (c.files_failed > 0 ? "warning" : "success") : "failure";
  e.detail = nlohmann::json{{"scan_id", scan_id},
                            {"status", status},
                            {"files_listed", c.files_listed},
                            {"files_read", c.files_read},
                            {"files_unchanged", c.files_unchanged},
                            {"files_failed", c.files_failed},
                            {"files_missing", c.files_missing},
                            {"files_moved", c.files_moved},
                            {"bytes_read", c.bytes_read}}
                 .dump();
  e.operation = "scan:" + std::to_string(scan_id);
  return e;
}

Event DecisionEvent(const ReviewDecision& d, int64_t decision_id, const std::string& at) {
  Event e;
  e.type = "review decision";
  e.time = at;
  e.agent = "person " + d.reviewer;
  e.object =
      d.file_id ? "file:" + std::to_string(*d.file_id) : "cluster:" + std::to_string(d.cluster_id);
  nlohmann::json detail = {{"decision_id", decision_id},
                           {"cluster_id", d.cluster_id},
                           {"decision", d.decision},
                           {"members", d.members}};
  if (d.master_file_id > 0) detail["master_file_id"] = d.master_file_id;
  if (!d.note.empty()) detail["note"] = d.note;
  e.detail = detail.dump();
  return e;
}

Event ApiKeyAddedEvent(const ApiKey& k) {
  Event e;
  e.type = "api key";
  e.object = "key:" + std::to_string(k.id);
  e.detail =
      nlohmann::json{{"action", "add"}, {"source", k.source}, {"role", k.role}, {"label", k.label}}
          .dump();
  return e;
}

Event ApiKeyRevokedEvent(int64_t id) {
  Event e;
  e.type = "api key";
  e.object = "key:" + std::to_string(id);
  e.detail = R"({"action":"revoke"})";
  return e;
}

Event UploadPolicyEvent(const std::string& source, const std::string& policy) {
  Event e;
  e.type = "upload policy";
  e.object = "source:" + source;
  e.detail = nlohmann::json{{"policy", policy}}.dump();
  return e;
}

Event UploadedFileEvent(int64_t file_id, const std::string& detail) {
  Event e;
  e.type = "upload";
  e.object = "file:" + std::to_string(file_id);
  e.detail = detail;
  return e;
}

Event UploadEvent(const UploadRecord& u, const std::string& detail) {
  Event e;
  e.type = "upload";
  e.object = "upload:" + DigestHex(u.sha256);
  e.detail = detail;
  return e;
}

Event WithDefaults(Event e) {
  if (e.time.empty()) e.time = UtcNow();
  if (e.agent.empty()) e.agent = SoftwareAgent();
  if (e.outcome.empty()) e.outcome = "success";
  return e;
}

}  // namespace doppel::catalogue_rows
