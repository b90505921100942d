// The upload gate (include/doppel/gate.h): a live copy of the catalogue's
// fingerprints with a PDQ index, and the check-and-insert of an upload.
#include "doppel/gate.h"

#include <fcntl.h>
#include <malloc.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <shared_mutex>
#include <unordered_map>

#include "doppel/index.h"
#include "util/paths.h"
#include "util/sha256.h"

namespace doppel {
namespace {

// Candidates handed to Compare per lookup: the closest ones by PDQ distance.
// Compare aligns thumbnails (milliseconds), so this bounds a lookup's cost
// even for a picture close to thousands of others (a plain sky).
constexpr size_t kMaxCandidates = 48;
// Above this many files the wide "similar" radius is skipped (a brute-force
// scan per query), as `doppel match` does.
constexpr size_t kWideSearchLimit = 200'000;

struct DigestKey {
  size_t operator()(const Digest& d) const {
    size_t h;
    std::memcpy(&h, d.data(), sizeof h);
    return h;
  }
};

std::string ExtensionFor(const std::string& format) {
  if (format == "jpeg") return "jpg";
  if (format == "tiff") return "tif";
  if (format == "heif") return "heic";
  if (format == "png" || format == "webp" || format == "gif" || format == "jxl") return format;
  return "img";
}

int KindRank(MatchKind k) { return int(k); }

// A descriptor that closes itself.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Writes bytes to ROOT/REL atomically (temporary file, fsync, rename),
// creating folders as needed. REL is built by the gate, never by a client.
// Every component below ROOT is created and opened relative to its parent
// with O_NOFOLLOW: a symbolic link planted inside the Source (say
// uploads/2026 -> /etc) is refused, never followed. ROOT itself is the
// administrator's configured folder and may be a link.
Status WriteFileAtomically(const std::string& root, const std::string& rel, const uint8_t* data,
                           size_t size) {
  const std::string path = JoinPath(root, rel);
  std::error_code ec;
  std::filesystem::create_directories(root, ec);  // the held folder may not exist yet
  Fd dir(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.fd < 0) return IOError(root + ": cannot open folder: " + std::strerror(errno));
  std::string walked = root;
  size_t pos = 0;
  for (size_t slash; (slash = rel.find('/', pos)) != std::string::npos; pos = slash + 1) {
    const std::string comp = rel.substr(pos, slash - pos);
    walked = JoinPath(walked, comp);
    if (::mkdirat(dir.fd, comp.c_str(), 0755) != 0 && errno != EEXIST)
      return IOError(walked + ": cannot create folder: " + std::strerror(errno) +
                     "; nothing was stored");
    const int next =
        ::openat(dir.fd, comp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      const int err = errno;
      struct stat st {};
      if ((err == ELOOP || err == ENOTDIR) &&
          ::fstatat(dir.fd, comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
        return IOError(walked +
                       ": is a symbolic link; the gate never writes through a link inside a "
                       "folder it stores into; remove the link; nothing was stored");
      return IOError(walked + ": cannot open folder: " + std::strerror(err) +
                     "; nothing was stored");
    }
    ::close(dir.fd);
    dir.fd = next;
  }
  const std::string name = rel.substr(pos);
  static std::atomic<uint64_t> counter{0};
  const std::string tmp =
      name + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  Fd fd(::openat(dir.fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (fd.fd < 0) return IOError(path + ": cannot create: " + std::strerror(errno));
  auto fail = [&](Status s) {
    ::unlinkat(dir.fd, tmp.c_str(), 0);
    return s;
  };
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd.fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      if (err == ENOSPC) return fail(DiskFull(path + ": no space left; nothing was stored"));
      return fail(IOError(path + ": cannot write: " + std::strerror(err)));
    }
    done += size_t(n);
  }
  const int closed = ::fsync(fd.fd) == 0 ? ::close(fd.fd) : -1;
  fd.fd = -1;
  if (closed != 0) return fail(IOError(path + ": cannot flush to disk: " + std::strerror(errno)));
  // renameat replaces a link planted at the final name; it does not follow it.
  if (::renameat(dir.fd, tmp.c_str(), dir.fd, name.c_str()) != 0) {
    const int err = errno;
    return fail(IOError(path + ": cannot rename into place: " + std::strerror(err)));
  }
  return Status::OK();
}

// Removes a file written for a request that then failed (see Ingest).
class WrittenFile {
 public:
  void Set(std::string path) { path_ = std::move(path); }
  void Keep() { path_.clear(); }
  ~WrittenFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }

 private:
  std::string path_;
};

// JSON text that never throws: bytes that are not UTF-8 become U+FFFD.
std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool IsZero(const PdqHash& h) { return h == PdqHash{}; }

}  // namespace

const char* UploadOutcomeName(UploadOutcome o) {
  switch (o) {
    case UploadOutcome::kAccepted:
      return "accepted";
    case UploadOutcome::kRejected:
      return "rejected";
    case UploadOutcome::kAlias:
      return "alias";
    case UploadOutcome::kHeld:
      return "held";
  }
  return "?";
}

Digest ApiTokenDigest(const std::string& token) { return Sha256::Of(token.data(), token.size()); }

Result<NewApiKey> CreateApiKey(Catalogue& catalogue, const std::string& source,
                               const std::string& role, const std::string& label) {
  uint8_t raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1)
    return Internal("cannot draw random bytes for an API key (OpenSSL)");
  static const char* const kHex = "0123456789abcdef";
  std::string token = "dpl_";
  for (uint8_t b : raw) {
    token += kHex[b >> 4];
    token += kHex[b & 15];
  }
  DOPPEL_ASSIGN_OR_RETURN(ApiKey key,
                          catalogue.AddApiKey(source, role, ApiTokenDigest(token), label));
  return NewApiKey{std::move(key), std::move(token)};
}

struct Gate::Impl {
  GateOptions options;
  std::string catalogue_path;

  // Guarded by mu: readers share it, Add takes it exclusively.
  mutable std::shared_mutex mu;
  // A deque: appending never moves the (large) records already there, so an
  // accepted upload does not briefly double the memory.
  std::deque<MatchInput> files;
  std::unordered_map<int64_t, uint32_t> by_id;
  std::unordered_map<Digest, std::vector<uint32_t>, DigestKey> by_sha, by_content;
  PdqIndex index;
  std::vector<uint32_t> owner;  // index entry -> position in files
  // Clustered file -> its cluster's master, as of the last load or refresh.
  std::unordered_map<int64_t, int64_t> master_of;

  // Serialises check-and-insert; guards `cat` (a Catalogue is single-thread).
  std::mutex ingest_mu;
  std::unique_ptr<Catalogue> cat;
  int64_t last_match_event = 0;  // guarded by ingest_mu

  // Reads the clusters' masters; caller holds ingest_mu (for `cat`).
  Status LoadMasters() {
    DOPPEL_ASSIGN_OR_RETURN(std::vector<Cluster> clusters, cat->LoadClusters());
    cat->ReleaseSnapshot();
    std::unordered_map<int64_t, int64_t> m;
    for (const Cluster& c : clusters)
      for (const ClusterMember& x : c.members) m[x.file_id] = c.master_file_id;
    std::unique_lock lk(mu);
    master_of = std::move(m);
    return Status::OK();
  }

  // The id of the latest `match` event; caller holds ingest_mu.
  Result<int64_t> LatestMatchEvent() {
    EventFilter f;
    f.type = "match";
    f.after_id = last_match_event;
    DOPPEL_ASSIGN_OR_RETURN(std::vector<Event> events, cat->ListEvents(f));
    cat->ReleaseSnapshot();
    return events.empty() ? last_match_event : events.back().id;
  }

  // Appends one file to the maps and the index; caller holds mu exclusively.
  void AddLocked(MatchInput m) {
    const uint32_t i = uint32_t(files.size());
    by_id[m.file_id] = i;
    by_sha[m.fingerprints.sha256].push_back(i);
    by_content[m.fingerprints.content_hash].push_back(i);
    const Fingerprints& f = m.fingerprints;
    index.Add(f.pdq.hash);
    owner.push_back(i);
    // The smooth hash is absent (zero) for records without a signature.
    if (!IsZero(f.signature.smooth.hash) && !(f.signature.smooth.hash == f.pdq.hash)) {
      index.Add(f.signature.smooth.hash);
      owner.push_back(i);
    }
    if (f.signature.trimmed) {
      index.Add(f.signature.trimmed->hash);
      owner.push_back(i);
    }
    files.push_back(std::move(m));
  }

  std::vector<GateMatch> LookupLocked(const MatchInput& probe) const;
};

namespace {

GateMatch ToGateMatch(const MatchInput& f, const Match& m) {
  GateMatch g;
  g.file_id = f.file_id;
  g.source = f.source;
  g.path = f.path;
  g.kind = m.kind;
  g.distance = m.distance;
  g.transform = m.transform;
  g.correlation = m.correlation;
  g.reason = m.reason;
  return g;
}

}  // namespace

std::vector<GateMatch> Gate::Impl::LookupLocked(const MatchInput& probe) const {
  const MatchOptions& o = options.match;
  // Candidate -> smallest PDQ distance seen (identity candidates get -1: first).
  std::unordered_map<uint32_t, int> best;
  auto note = [&](uint32_t i, int d) {
    auto [it, fresh] = best.emplace(i, d);
    if (!fresh && d < it->second) it->second = d;
  };
  for (const auto* map : {&by_sha, &by_content}) {
    auto it =
        map->find(map == &by_sha ? probe.fingerprints.sha256 : probe.fingerprints.content_hash);
    if (it != map->end())
      for (uint32_t i : it->second) note(i, -1);
  }
  QueryScratch scratch;
  std::vector<Neighbour> hits;
  auto collect = [&](const PdqHash& q, int radius) {
    if (files.empty()) return;
    index.Query(q, radius, hits, scratch);
    for (const Neighbour& n : hits) note(owner[n.index], n.distance);
  };
  const Fingerprints& f = probe.fingerprints;
  for (int d = 0; d < (o.dihedral ? 8 : 1); ++d) {
    collect(f.pdq.dihedral[d], o.threshold);
    if (!IsZero(f.signature.smooth.dihedral[d]))
      collect(f.signature.smooth.dihedral[d], o.threshold);
  }
  if (f.signature.trimmed) collect(f.signature.trimmed->hash, o.threshold);
  if (files.size() <= kWideSearchLimit && o.similar_radius > o.threshold) {
    collect(f.pdq.hash, o.similar_radius);
    if (!IsZero(f.signature.smooth.hash)) collect(f.signature.smooth.hash, o.similar_radius);
  }
  std::vector<std::pair<int, uint32_t>> order;
  order.reserve(best.size());
  for (auto [i, d] : best) order.push_back({d, i});
  std::sort(order.begin(), order.end());
  if (order.size() > kMaxCandidates) order.resize(kMaxCandidates);

  std::vector<std::pair<const MatchInput*, GateMatch>> found;
  for (auto [d, i] : order) {
    (void)d;
    const MatchInput& cand = files[i];
    if (auto m = Compare(cand, probe, o)) found.push_back({&cand, ToGateMatch(cand, *m)});
  }
  std::sort(found.begin(), found.end(), [](const auto& x, const auto& y) {
    if (x.second.kind != y.second.kind) return KindRank(x.second.kind) < KindRank(y.second.kind);
    if (x.second.distance != y.second.distance) return x.second.distance < y.second.distance;
    return RanksBefore(*x.first, *y.first);
  });
  std::vector<GateMatch> out;
  out.reserve(found.size());
  for (auto& [_, g] : found) out.push_back(std::move(g));
  return out;
}

Gate::Gate(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Gate::~Gate() = default;

Result<std::unique_ptr<Gate>> Gate::Open(const std::string& catalogue, const GateOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->catalogue_path = catalogue;
  if (impl->options.held_dir.empty()) {
    std::filesystem::path p(catalogue);
    impl->options.held_dir =
        (p.has_parent_path() ? p.parent_path() : std::filesystem::path(".")) / "doppel-held";
  }
  DOPPEL_ASSIGN_OR_RETURN(impl->cat, OpenCatalogue(catalogue, CatalogueOptions{}));
  DOPPEL_ASSIGN_OR_RETURN(impl->last_match_event, impl->LatestMatchEvent());
  DOPPEL_ASSIGN_OR_RETURN(std::vector<MatchInput> files, impl->cat->LoadMatchInputs());
  impl->cat->ReleaseSnapshot();
  {
    std::unique_lock lk(impl->mu);
    impl->by_id.reserve(files.size());
    for (auto& m : files) impl->AddLocked(std::move(m));
  }
  files = {};
  DOPPEL_RETURN_IF_ERROR(impl->LoadMasters());
  malloc_trim(0);  // give the loading copy back to the system
  return std::unique_ptr<Gate>(new Gate(std::move(impl)));
}

size_t Gate::size() const {
  std::shared_lock lk(impl_->mu);
  return impl_->files.size();
}

std::optional<MatchInput> Gate::File(int64_t file_id) const {
  std::shared_lock lk(impl_->mu);
  auto it = impl_->by_id.find(file_id);
  if (it == impl_->by_id.end()) return std::nullopt;
  return impl_->files[it->second];
}

Result<std::vector<GateMatch>> Gate::Lookup(const ImageRecord& record) const {
  const MatchInput probe = MatchInputFrom(record);
  std::shared_lock lk(impl_->mu);
  return impl_->LookupLocked(probe);
}

std::vector<GateMatch> Gate::LookupHash(const PdqHash& hash, int radius, size_t max_results) const {
  std::shared_lock lk(impl_->mu);
  std::unordered_map<uint32_t, int> best;
  if (!impl_->files.empty()) {
    QueryScratch scratch;
    std::vector<Neighbour> hits;
    impl_->index.Query(hash, radius, hits, scratch);
    for (const Neighbour& n : hits) {
      const uint32_t i = impl_->owner[n.index];
      auto [it, fresh] = best.emplace(i, n.distance);
      if (!fresh && n.distance < it->second) it->second = n.distance;
    }
  }
  std::vector<GateMatch> out;
  for (auto [i, d] : best) {
    const MatchInput& f = impl_->files[i];
    GateMatch g;
    g.file_id = f.file_id;
    g.source = f.source;
    g.path = f.path;
    g.distance = d;
    g.transform = "original";
    g.kind = d <= impl_->options.match.threshold ? MatchKind::kNear : MatchKind::kSimilar;
    g.reason = "PDQ " + std::to_string(d) + " bits apart (threshold " +
               std::to_string(impl_->options.match.threshold) +
               "); a hash alone is not checked further";
    out.push_back(std::move(g));
  }
  std::sort(out.begin(), out.end(), [](const GateMatch& x, const GateMatch& y) {
    return x.distance != y.distance ? x.distance < y.distance : x.file_id < y.file_id;
  });
  if (out.size() > max_results) out.resize(max_results);
  return out;
}

Result<UploadResult> Gate::Ingest(const UploadRequest& req, const uint8_t* data, size_t size,
                                  const ImageRecord& record_in) {
  Impl& g = *impl_;
  std::lock_guard ingest(g.ingest_mu);
  g.cat->ReleaseSnapshot();
  // Idle, the connection must hold no snapshot (it would pin the WAL).
  struct Release {
    Catalogue* c;
    ~Release() { c->ReleaseSnapshot(); }
  } release{g.cat.get()};
  DOPPEL_ASSIGN_OR_RETURN(Source src, g.cat->GetSource(req.source));
  ImageRecord record = record_in;
  record.file_size = int64_t(size);
  MatchInput probe = MatchInputFrom(record);
  probe.source = src.name;
  probe.source_priority = src.priority;
  std::vector<GateMatch> matches;
  {
    std::shared_lock lk(g.mu);
    matches = g.LookupLocked(probe);
  }
  UploadResult res;
  res.sha256 = DigestHex(record.fingerprints.sha256);
  auto dup = std::find_if(matches.begin(), matches.end(),
                          [](const GateMatch& m) { return IsAutomatic(m.kind); });
  nlohmann::json fields = nlohmann::json::object();
  // The server refuses names that are not text (requests.cc); the gate still
  // never hands nlohmann::json bytes it would throw on.
  for (const auto& [k, v] : req.fields)
    fields[IsValidUtf8(k) ? k : DisplayPath(k)] = IsValidUtf8(v) ? v : DisplayPath(v);

  if (dup == matches.end()) {
    // Accept: a path that depends only on the day and the bytes.
    const std::string rel = "uploads/" + FormatUtcNow("%Y/%m/%d") + "/" + res.sha256 + "." +
                            ExtensionFor(record.info.format);
    const std::string abs = JoinPath(src.root, rel);
    // Everything the catalogue needs is prepared before the first byte is
    // written; a write whose request then fails is removed (`written`).
    nlohmann::json detail = {{"source", src.name},   {"outcome", "accepted"}, {"path", rel},
                             {"sha256", res.sha256}, {"bytes", size},         {"fields", fields}};
    if (!req.client_name.empty()) detail["client_name"] = DisplayPath(req.client_name);
    if (req.key_id) detail["key_id"] = req.key_id;
    const std::string detail_text = Dump(detail);
    WrittenFile written;
    DOPPEL_RETURN_IF_ERROR(WriteFileAtomically(src.root, rel, data, size));
    written.Set(abs);
    struct stat st {};
    if (::stat(abs.c_str(), &st) == 0)
      record.mtime_ns = int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    auto id = g.cat->AddUploadedFile(src.id, rel, record, detail_text);
    if (!id.ok()) return id.status().WithContext("upload to source " + src.name);
    written.Keep();
    probe.file_id = *id;
    probe.path = rel;
    probe.already_matched = false;
    {
      std::unique_lock lk(g.mu);
      g.AddLocked(std::move(probe));
    }
    res.outcome = UploadOutcome::kAccepted;
    res.file_id = *id;
    res.path = rel;
    res.similar = std::move(matches);
    res.reason = res.similar.empty()
                     ? "no copy of this picture is catalogued"
                     : "no copy of this picture is catalogued; similar pictures are listed";
    return res;
  }

  res.duplicate_of = *dup;
  res.master_file_id = dup->file_id;
  {
    std::shared_lock lk(g.mu);
    auto m = g.master_of.find(dup->file_id);
    if (m != g.master_of.end() && g.by_id.count(m->second)) res.master_file_id = m->second;
  }
  const std::string kind = MatchKindName(dup->kind);
  std::string policy = g.options.policy_override;
  if (policy.empty()) {
    DOPPEL_ASSIGN_OR_RETURN(policy, g.cat->GetUploadPolicy(src.name));
  }
  nlohmann::json detail = {{"source", src.name},
                           {"master_file_id", res.master_file_id},
                           {"matched_file_id", dup->file_id},
                           {"kind", kind},
                           {"distance", dup->distance},
                           {"sha256", res.sha256},
                           {"reason", dup->reason}};
  if (req.key_id) detail["key_id"] = req.key_id;
  const std::string where = dup->source + ":" + DisplayPath(dup->path);
  if (policy == "alias" || policy == "hold") {
    UploadRecord u;
    u.source = src.name;
    u.outcome = policy == "alias" ? "alias" : "held";
    u.sha256 = record.fingerprints.sha256;
    u.master_file_id = dup->file_id;
    u.kind = kind;
    u.distance = dup->distance;
    u.reason = dup->reason;
    u.client_name = IsValidUtf8(req.client_name) ? req.client_name : DisplayPath(req.client_name);
    u.fields = Dump(fields);
    u.key_id = req.key_id;
    detail["outcome"] = u.outcome;
    const std::string detail_text = Dump(detail);
    WrittenFile written;
    if (policy == "hold") {
      u.held_path = src.name + "/" + res.sha256.substr(0, 2) + "/" + res.sha256 + "." +
                    ExtensionFor(record.info.format);
      DOPPEL_RETURN_IF_ERROR(WriteFileAtomically(g.options.held_dir, u.held_path, data, size));
      written.Set(JoinPath(g.options.held_dir, u.held_path));
    }
    auto id = g.cat->AddUpload(u, detail_text);
    if (!id.ok()) return id.status().WithContext("upload to source " + src.name);
    written.Keep();
    res.outcome = policy == "alias" ? UploadOutcome::kAlias : UploadOutcome::kHeld;
    res.upload_id = *id;
    res.reason = policy == "alias"
                     ? "recorded as an alias of file " + std::to_string(dup->file_id) + " (" +
                           where + "): " + dup->reason + "; the bytes were not stored again"
                     : "held for review: it looks like file " + std::to_string(dup->file_id) +
                           " (" + where + "): " + dup->reason;
    return res;
  }
  detail["outcome"] = "rejected";
  Event e;
  e.type = "upload";
  e.object = "upload:" + res.sha256;
  e.detail = Dump(detail);
  DOPPEL_RETURN_IF_ERROR(g.cat->AppendEvent(e).status());
  res.outcome = UploadOutcome::kRejected;
  res.reason = "a copy is already catalogued as file " + std::to_string(dup->file_id) + " (" +
               where + "): " + dup->reason;
  return res;
}

Result<int64_t> Gate::Refresh() {
  Impl& g = *impl_;
  std::lock_guard ingest(g.ingest_mu);
  g.cat->ReleaseSnapshot();
  DOPPEL_ASSIGN_OR_RETURN(std::vector<MatchInput> files, g.cat->LoadMatchInputs());
  g.cat->ReleaseSnapshot();
  int64_t added = 0;
  {
    std::unique_lock lk(g.mu);
    for (auto& m : files) {
      if (g.by_id.count(m.file_id)) continue;
      g.AddLocked(std::move(m));
      ++added;
    }
  }
  DOPPEL_RETURN_IF_ERROR(g.LoadMasters());
  return added;
}

Result<int64_t> Gate::RefreshAfterMatch() {
  {
    std::lock_guard ingest(impl_->ingest_mu);
    DOPPEL_ASSIGN_OR_RETURN(int64_t latest, impl_->LatestMatchEvent());
    if (latest == impl_->last_match_event) return int64_t(0);
    impl_->last_match_event = latest;
  }
  return Refresh();
}

}  // namespace doppel
