// The HTTP front end (docs/api.md): routes, authentication, limits, metrics.
// httplib's exceptions and nlohmann::json's are caught here and become JSON
// errors; nothing from a request is ever used as a file-system path.
#include "server/server.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <list>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <semaphore>
#include <thread>
#include <unordered_map>

#include "doppel/catalogue.h"
#include "doppel/fingerprint.h"
#include "doppel/policy.h"
#include "doppel/rendition.h"
#include "server/requests.h"
#include "util/paths.h"

namespace doppel::server {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kJson = "application/json";

// --- Errors ---

void SendError(httplib::Response& res, int http, const std::string& code,
               const std::string& message) {
  res.status = http;
  res.set_content(json{{"error", {{"code", code}, {"message", message}}}}.dump(), kJson);
}

void SendJson(httplib::Response& res, int http, const json& body) {
  res.status = http;
  res.set_content(body.dump(), kJson);
}

// A library Status as an HTTP error.
void SendStatus(httplib::Response& res, const Status& s) {
  switch (s.code()) {
    case StatusCode::kNotFound:
      return SendError(res, 404, "not_found", s.message());
    case StatusCode::kInvalidArgument:
      return SendError(res, 400, "invalid_argument", s.message());
    case StatusCode::kCorruption:
      return SendError(res, 422, "unreadable_image", s.message());
    case StatusCode::kUnsupported:
      return SendError(res, 422, "unsupported_format", s.message());
    case StatusCode::kTooLarge:
      return SendError(res, 422, "too_many_pixels", s.message());
    case StatusCode::kCancelled:
      return SendError(res, 422, "decode_too_slow", s.message());
    case StatusCode::kBusy:
      return SendError(res, 503, "busy", s.message());
    case StatusCode::kDiskFull:
      return SendError(res, 507, "disk_full", s.message());
    case StatusCode::kAlreadyExists:
      return SendError(res, 409, "already_exists", s.message());
    default:
      return SendError(res, 500, "internal", s.message());
  }
}

// --- Metrics (Prometheus text format 0.0.4) ---

constexpr double kBuckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                               0.25,  0.5,    1,     2.5,  5,     10};
constexpr size_t kNumBuckets = sizeof(kBuckets) / sizeof(kBuckets[0]);

struct Histogram {
  uint64_t counts[kNumBuckets + 1] = {};  // last: +Inf
  double sum = 0;
  uint64_t n = 0;
};

class Metrics {
 public:
  void Record(const std::string& route, const std::string& method, int code, double seconds) {
    std::lock_guard lk(mu_);
    ++requests_[{route, method, code}];
    Histogram& h = latency_[route];
    size_t b = 0;
    while (b < kNumBuckets && seconds > kBuckets[b]) ++b;
    ++h.counts[b];
    h.sum += seconds;
    ++h.n;
  }
  std::string Render(size_t index_size, int decodes_in_flight) const {
    std::string out;
    out += "# HELP doppel_http_requests_total HTTP requests by route, method and status code.\n";
    out += "# TYPE doppel_http_requests_total counter\n";
    std::lock_guard lk(mu_);
    for (const auto& [k, v] : requests_)
      out += "doppel_http_requests_total{route=\"" + std::get<0>(k) + "\",method=\"" +
             std::get<1>(k) + "\",code=\"" + std::to_string(std::get<2>(k)) + "\"} " +
             std::to_string(v) + "\n";
    out +=
        "# HELP doppel_http_request_duration_seconds Time from request start to response, by "
        "route.\n";
    out += "# TYPE doppel_http_request_duration_seconds histogram\n";
    for (const auto& [route, h] : latency_) {
      uint64_t cum = 0;
      for (size_t b = 0; b <= kNumBuckets; ++b) {
        cum += h.counts[b];
        char le[32];
        if (b < kNumBuckets)
          std::snprintf(le, sizeof le, "%g", kBuckets[b]);
        else
          std::snprintf(le, sizeof le, "+Inf");
        out += "doppel_http_request_duration_seconds_bucket{route=\"" + route + "\",le=\"" + le +
               "\"} " + std::to_string(cum) + "\n";
      }
      char sum[64];
      std::snprintf(sum, sizeof sum, "%.6f", h.sum);
      out += "doppel_http_request_duration_seconds_sum{route=\"" + route + "\"} " + sum + "\n";
      out += "doppel_http_request_duration_seconds_count{route=\"" + route + "\"} " +
             std::to_string(h.n) + "\n";
    }
    out +=
        "# HELP doppel_index_files Files in the live PDQ index.\n# TYPE doppel_index_files gauge\n";
    out += "doppel_index_files " + std::to_string(index_size) + "\n";
    out +=
        "# HELP doppel_decodes_in_flight Pictures being decoded now.\n# TYPE "
        "doppel_decodes_in_flight gauge\n";
    out += "doppel_decodes_in_flight " + std::to_string(decodes_in_flight) + "\n";
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
};

// --- Catalogue connections: one per thread that needs one, reused ---

class CataloguePool {
 public:
  explicit CataloguePool(std::string path) : path_(std::move(path)) {}
  class Lease {
   public:
    Lease(CataloguePool* pool, std::unique_ptr<Catalogue> c) : pool_(pool), cat_(std::move(c)) {}
    Lease(Lease&&) = default;
    ~Lease() {
      if (cat_) pool_->Return(std::move(cat_));
    }
    Catalogue* operator->() { return cat_.get(); }
    Catalogue& operator*() { return *cat_; }

   private:
    CataloguePool* pool_;
    std::unique_ptr<Catalogue> cat_;
  };
  Result<Lease> Get() {
    {
      std::lock_guard lk(mu_);
      if (!free_.empty()) {
        auto c = std::move(free_.back());
        free_.pop_back();
        return Lease(this, std::move(c));
      }
    }
    DOPPEL_ASSIGN_OR_RETURN(auto c, OpenCatalogue(path_, CatalogueOptions{}));
    return Lease(this, std::move(c));
  }

 private:
  void Return(std::unique_ptr<Catalogue> c) {
    c->ReleaseSnapshot();
    std::lock_guard lk(mu_);
    free_.push_back(std::move(c));
  }
  std::string path_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Catalogue>> free_;
};

// --- Thumbnails: small JPEGs, least recently used dropped first ---

class ThumbnailCache {
 public:
  explicit ThumbnailCache(size_t capacity) : capacity_(capacity) {}
  std::optional<std::string> Get(int64_t id) {
    std::lock_guard lk(mu_);
    auto it = map_.find(id);
    if (it == map_.end()) return std::nullopt;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->second;
  }
  void Put(int64_t id, std::string jpeg) {
    std::lock_guard lk(mu_);
    if (map_.count(id)) return;
    order_.emplace_front(id, std::move(jpeg));
    map_[id] = order_.begin();
    while (map_.size() > capacity_) {
      map_.erase(order_.back().first);
      order_.pop_back();
    }
  }

 private:
  size_t capacity_;
  std::mutex mu_;
  std::list<std::pair<int64_t, std::string>> order_;
  std::unordered_map<int64_t, std::list<std::pair<int64_t, std::string>>::iterator> map_;
};

// --- JSON views ---

json MatchJson(const GateMatch& m) {
  return {{"id", m.file_id},
          {"source", m.source},
          {"path", DisplayPath(m.path)},
          {"kind", MatchKindName(m.kind)},
          {"distance", m.distance},
          {"transform", m.transform},
          {"correlation", std::round(m.correlation * 1000) / 1000},
          {"reason", m.reason}};
}

json MetadataJson(const ImageMetadata& m) {
  json j = json::object();
  auto put = [&](const char* k, const std::string& v) {
    if (!v.empty()) j[k] = IsValidUtf8(v) ? v : DisplayPath(v);
  };
  put("capture_time", m.capture_time);
  put("make", m.make);
  put("model", m.model);
  put("artist", m.artist);
  put("copyright", m.copyright);
  put("title", m.title);
  if (m.gps_latitude) j["gps_latitude"] = *m.gps_latitude;
  if (m.gps_longitude) j["gps_longitude"] = *m.gps_longitude;
  if (m.gps_altitude) j["gps_altitude"] = *m.gps_altitude;
  if (!m.keywords.empty()) {
    json k = json::array();
    for (const auto& w : m.keywords) k.push_back(IsValidUtf8(w) ? w : DisplayPath(w));
    j["keywords"] = k;
  }
  return j;
}

json FileJson(const MatchInput& f, const ImageRecord* record) {
  json j = {{"id", f.file_id},
            {"source", f.source},
            {"path", DisplayPath(f.path)},
            {"size", f.file_size},
            {"format", f.info.format},
            {"width", f.info.width},
            {"height", f.info.height},
            {"bit_depth", f.info.bit_depth},
            {"sha256", DigestHex(f.fingerprints.sha256)},
            {"pdq", f.fingerprints.pdq.hash.ToHex()},
            {"pdq_quality", f.fingerprints.pdq.quality}};
  j["metadata"] = MetadataJson(record ? record->metadata : f.metadata);
  return j;
}

}  // namespace

struct Server::Impl {
  ServerOptions opt;
  std::unique_ptr<Gate> gate;
  CataloguePool pool;
  Metrics metrics;
  ThumbnailCache thumbs;
  std::counting_semaphore<1024> decode_slots;
  std::atomic<int> decodes_in_flight{0};
  httplib::Server http;
  int port = 0;
  // Picks up files another process catalogued, once a `doppel match` ran.
  std::thread refresher;
  std::mutex refresh_mu;
  std::condition_variable refresh_cv;
  bool stopping = false;
  static thread_local Clock::time_point request_start;

  explicit Impl(const ServerOptions& o)
      : opt(o),
        pool(o.catalogue),
        thumbs(size_t(std::max(1, o.thumbnail_cache))),
        decode_slots(std::clamp(o.decode_slots, 1, 1024)) {}

  // --- Authentication ---
  enum class Need { kAny, kUploader, kReviewer };
  // The caller's key, or nullopt after answering 401/403.
  std::optional<ApiKey> Authenticate(const httplib::Request& req, httplib::Response& res,
                                     Need need) {
    std::string token = req.get_header_value("X-Api-Key");
    const std::string auth = req.get_header_value("Authorization");
    if (token.empty() && auth.rfind("Bearer ", 0) == 0) token = auth.substr(7);
    if (token.empty()) {
      SendError(res, 401, "unauthenticated",
                "this endpoint needs an API key (header 'Authorization: Bearer TOKEN'; "
                "an administrator makes one with `doppel key add SOURCE --role ROLE`)");
      return std::nullopt;
    }
    auto cat = pool.Get();
    if (!cat.ok()) {
      SendStatus(res, cat.status());
      return std::nullopt;
    }
    auto key = (*cat)->FindApiKey(ApiTokenDigest(token));
    if (!key.ok()) {
      SendStatus(res, key.status());
      return std::nullopt;
    }
    if (!*key) {
      SendError(res, 401, "unauthenticated", "unknown or revoked API key");
      return std::nullopt;
    }
    const ApiKey& k = **key;
    const bool ok = need == Need::kAny || k.role == "admin" ||
                    (need == Need::kUploader && k.role == "uploader") ||
                    (need == Need::kReviewer && k.role == "reviewer");
    if (!ok) {
      SendError(res, 403, "forbidden",
                "key " + std::to_string(k.id) + " has the role '" + k.role + "'; this needs " +
                    (need == Need::kUploader ? "'uploader'" : "'reviewer'") + " (or 'admin')");
      return std::nullopt;
    }
    return k;
  }

  // --- Decoding under the limits ---
  // Lookups skip the metadata (exiv2): matching does not use it.
  Result<ImageRecord> Analyse(const std::string& bytes, bool metadata = true) {
    if (!decode_slots.try_acquire_for(std::chrono::milliseconds(opt.decode_wait_ms)))
      return Busy("all " + std::to_string(opt.decode_slots) +
                  " decode slots are busy; try again shortly");
    ++decodes_in_flight;
    AnalyseOptions ao;
    ao.max_pixels = opt.max_pixels;
    ao.read_metadata = metadata;
    const auto deadline = Clock::now() + std::chrono::milliseconds(opt.decode_timeout_ms);
    ao.cancelled = [deadline] { return Clock::now() > deadline; };
    auto r = AnalyseBuffer(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), ao);
    --decodes_in_flight;
    decode_slots.release();
    if (!r.ok() && r.status().code() == StatusCode::kCancelled)
      return Cancelled("decoding took longer than " + std::to_string(opt.decode_timeout_ms) +
                       " ms (the server's --decode-timeout-ms); the picture was not stored");
    if (!r.ok() && r.status().code() == StatusCode::kTooLarge)
      return TooLarge(r.status().message() + " (the server's --max-pixels is " +
                      std::to_string(opt.max_pixels) + ")");
    return r;
  }

  // The uploaded picture of a multipart request (field "image", or the only file).
  const httplib::MultipartFormData* ImagePart(const httplib::Request& req) {
    auto it = req.files.find("image");
    if (it != req.files.end()) return &it->second;
    for (const auto& [name, part] : req.files)
      if (!part.filename.empty()) return &part;
    return nullptr;
  }

  bool RequireMultipart(const httplib::Request& req, httplib::Response& res) {
    if (!req.is_multipart_form_data()) {
      SendError(res, 415, "unsupported_media_type",
                "send multipart/form-data with the picture in a field named 'image' (got '" +
                    req.get_header_value("Content-Type") + "')");
      return false;
    }
    return true;
  }

  void Routes();
  void Uploads(const httplib::Request& req, httplib::Response& res);
  void Lookup(const httplib::Request& req, httplib::Response& res);
  void Image(const httplib::Request& req, httplib::Response& res);
  void Thumbnail(const httplib::Request& req, httplib::Response& res);
  void Clusters(const httplib::Request& req, httplib::Response& res);
  void ClusterOne(const httplib::Request& req, httplib::Response& res);
  void Decision(const httplib::Request& req, httplib::Response& res);
  void HeldUploads(const httplib::Request& req, httplib::Response& res);
  json ClusterJson(Catalogue& cat, const Cluster& c, bool full);
};

thread_local Clock::time_point Server::Impl::request_start;

void Server::Impl::Uploads(const httplib::Request& req, httplib::Response& res) {
  auto key = Authenticate(req, res, Need::kUploader);
  if (!key) return;
  if (!RequireMultipart(req, res)) return;
  const auto* image = ImagePart(req);
  std::string source = req.has_file("source") ? req.get_file_value("source").content : "";
  if (!image || image->content.empty()) {
    SendError(res, 400, "missing_image",
              "no picture in the request (a multipart field named 'image')");
    return;
  }
  if (source.empty()) source = key->source;
  if (key->role != "admin" && source != key->source) {
    SendError(res, 403, "forbidden",
              "key " + std::to_string(key->id) + " may upload to source '" + key->source +
                  "' only, not '" + DisplayPath(source) + "'");
    return;
  }
  UploadRequest ur;
  ur.source = source;
  ur.client_name = image->filename;
  ur.key_id = key->id;
  std::vector<std::pair<std::string, std::string>> text_parts;
  for (const auto& [name, part] : req.files)
    if (part.filename.empty()) text_parts.emplace_back(name, part.content);
  auto fields = UploadFields(text_parts);
  if (!fields.ok()) return SendError(res, 400, "invalid_field", fields.status().message());
  ur.fields = std::move(*fields);
  auto record = Analyse(image->content);
  if (!record.ok()) return SendStatus(res, record.status().WithContext("the uploaded picture"));
  auto r = gate->Ingest(ur, reinterpret_cast<const uint8_t*>(image->content.data()),
                        image->content.size(), *record);
  if (!r.ok()) return SendStatus(res, r.status());
  json body = {
      {"outcome", UploadOutcomeName(r->outcome)}, {"sha256", r->sha256}, {"reason", r->reason}};
  if (r->outcome == UploadOutcome::kAccepted) {
    body["id"] = r->file_id;
    body["source"] = source;
    body["path"] = r->path;
    json sim = json::array();
    for (const auto& m : r->similar) sim.push_back(MatchJson(m));
    body["similar"] = sim;
    res.set_header("Location", "/api/v1/images/" + std::to_string(r->file_id));
    return SendJson(res, 201, body);
  }
  const GateMatch& d = *r->duplicate_of;
  body["master_id"] = r->master_file_id;
  body["matched_id"] = d.file_id;
  body["kind"] = MatchKindName(d.kind);
  body["distance"] = d.distance;
  body["master"] = MatchJson(d);
  if (r->upload_id) body["upload_id"] = r->upload_id;
  SendJson(res, 409, body);
}

void Server::Impl::Lookup(const httplib::Request& req, httplib::Response& res) {
  auto key = Authenticate(req, res, Need::kAny);
  if (!key) return;
  std::optional<HashLookupRequest> by_hash;
  const httplib::MultipartFormData* image = nullptr;
  if (req.is_multipart_form_data()) {
    image = ImagePart(req);
    if (!image || image->content.empty()) {
      if (!req.has_file("pdq"))
        return SendError(res, 400, "missing_image",
                         "send a picture in a field 'image' or a hash in 'pdq'");
      auto h = ParseHashLookup(req.get_file_value("pdq").content, std::nullopt,
                               opt.gate.match.threshold);
      if (!h.ok()) return SendError(res, 400, "invalid_pdq", h.status().message());
      by_hash = *h;
    }
  } else if (req.get_header_value("Content-Type").rfind("application/json", 0) == 0) {
    auto h = ParseHashLookupJson(req.body, opt.gate.match.threshold);
    if (!h.ok()) return SendError(res, 400, "invalid_pdq", h.status().message());
    by_hash = *h;
  } else {
    return SendError(
        res, 415, "unsupported_media_type",
        "send multipart/form-data with a field 'image' (or 'pdq'), or JSON {\"pdq\": ...}");
  }
  json matches = json::array();
  if (!by_hash) {
    auto record = Analyse(image->content, /*metadata=*/false);
    if (!record.ok()) return SendStatus(res, record.status().WithContext("the picture"));
    auto found = gate->Lookup(*record);
    if (!found.ok()) return SendStatus(res, found.status());
    for (const auto& m : *found) matches.push_back(MatchJson(m));
    bool dup = !found->empty() && IsAutomatic(found->front().kind);
    return SendJson(res, 200,
                    {{"duplicate", dup},
                     {"sha256", DigestHex(record->fingerprints.sha256)},
                     {"pdq", record->fingerprints.pdq.hash.ToHex()},
                     {"matches", matches}});
  }
  for (const auto& m : gate->LookupHash(by_hash->hash, by_hash->radius))
    matches.push_back(MatchJson(m));
  SendJson(res, 200, {{"duplicate", false}, {"pdq", by_hash->hash.ToHex()}, {"matches", matches}});
}

void Server::Impl::Image(const httplib::Request& req, httplib::Response& res) {
  auto key = Authenticate(req, res, Need::kAny);
  if (!key) return;
  auto id = ParseId(req.matches[1].str());
  auto f = id ? gate->File(*id) : std::nullopt;
  if (!f)
    return SendError(res, 404, "not_found",
                     "no catalogued picture with id " + std::string(req.matches[1]));
  auto cat = pool.Get();
  if (!cat.ok()) return SendStatus(res, cat.status());
  auto rec = (*cat)->GetRecord(*id);
  json j = FileJson(*f, rec.ok() ? &*rec : nullptr);
  SendJson(res, 200, j);
}

void Server::Impl::Thumbnail(const httplib::Request& req, httplib::Response& res) {
  auto key = Authenticate(req, res, Need::kAny);
  if (!key) return;
  auto id = ParseId(req.matches[1].str());
  auto f = id ? gate->File(*id) : std::nullopt;
  if (!f)
    return SendError(res, 404, "not_found",
                     "no catalogued picture with id " + std::string(req.matches[1]));
  if (auto hit = thumbs.Get(*id)) {
    res.set_header("Cache-Control", "private, max-age=3600");
    return res.set_content(*hit, "image/jpeg");
  }
  std::string root;
  {
    auto cat = pool.Get();
    if (!cat.ok()) return SendStatus(res, cat.status());
    auto src = (*cat)->GetSource(f->source);
    if (!src.ok()) return SendStatus(res, src.status());
    root = src->root;
  }
  // The path comes from the catalogue, never from the request.
  if (!decode_slots.try_acquire_for(std::chrono::milliseconds(opt.decode_wait_ms)))
    return SendError(res, 503, "busy", "all decode slots are busy; try again shortly");
  ++decodes_in_flight;
  RenditionOptions ro;
  ro.max_side = 320;
  ro.max_pixels = std::max<int64_t>(opt.max_pixels, 1'000'000'000);
  auto r = RenderFile(JoinPath(root, f->path), ro);
  --decodes_in_flight;
  decode_slots.release();
  if (!r.ok())
    return SendStatus(res, r.status().WithContext(f->source + ":" + DisplayPath(f->path)));
  auto jpeg = EncodeJpeg(*r, 80);
  if (!jpeg.ok()) return SendStatus(res, jpeg.status());
  thumbs.Put(*id, *jpeg);
  res.set_header("Cache-Control", "private, max-age=3600");
  res.set_content(*jpeg, "image/jpeg");
}

json Server::Impl::ClusterJson(Catalogue& cat, const Cluster& c, bool full) {
  json members = json::array();
  std::vector<Candidate> cands;  // for the "most information" mark
  std::vector<size_t> cand_member;
  for (const auto& m : c.members) {
    json j;
    auto f = gate->File(m.file_id);
    if (f) {
      cands.push_back({f->file_id, f->source, f->source_priority, f->path,
                       ImageRecord{f->fingerprints, f->info, f->metadata, f->file_size, 0}, {}});
      cand_member.push_back(members.size());
      std::optional<ImageRecord> rec;
      if (full) {
        auto r = cat.GetRecord(m.file_id);
        if (r.ok()) rec = std::move(*r);
      }
      j = FileJson(*f, rec ? &*rec : nullptr);
    } else {
      j = {{"id", m.file_id}};
    }
    j["master"] = m.master;
    j["relation"] = m.master ? "master" : MatchKindName(m.relation);
    j["distance"] = m.distance;
    members.push_back(std::move(j));
  }
  // The policy's own test (docs/policy.md), so the page and the plan agree.
  const std::vector<bool> most = HoldsMostInformation(cands);
  for (size_t i = 0; i < cands.size(); ++i)
    members[cand_member[i]]["most_information"] = bool(most[i]);
  json out = {{"id", c.id},
              {"master_id", c.master_file_id},
              {"size", c.members.size()},
              {"members", members}};
  auto decisions = cat.ListDecisions(c.id);
  if (decisions.ok()) {
    json ds = json::array();
    for (const auto& d : *decisions) {
      json x = {{"id", d.id},
                {"decision", d.decision},
                {"reviewer", d.reviewer},
                {"decided_at", d.decided_at}};
      if (d.file_id) x["file_id"] = *d.file_id;
      if (d.master_file_id) x["master_file_id"] = d.master_file_id;
      if (!d.note.empty()) x["note"] = d.note;
      ds.push_back(std::move(x));
    }
    out["decisions"] = ds;
    // The cluster-level decision in force: the latest one without a file.
    for (auto it = decisions->rbegin(); it != decisions->rend(); ++it)
      if (!it->file_id) {
        out["decision"] = it->decision;
        break;
      }
  }
  return out;
}

void Server::Impl::Clusters(const httplib::Request& req, httplib::Response& res) {
  auto key = Authenticate(req, res, Need::kReviewer);
  if (!key) return;
  int64_t page = 1, per_page = 20;
  if (req.has_param("page")) {
    auto p = ParseId(req.get_param_value("page"));
    if (!p || *p < 1)
      return SendError(res, 400, "invalid_argument", "page must be a number from 1");
    page = *p;
  }
  if (req.has_param("per_page")) {
    auto p = ParseId(req.get_param_value("per_page"));
    if (!p || *p < 1 || *p > 100)
      return SendError(res, 400, "invalid_argument", "per_page must be 1..100");
    per_page = *p;
  }
  auto cat = pool.Get();
  if (!cat.ok()) return SendStatus(res, cat.status());
  auto clusters = (*cat)->LoadClusters();
  if (!clusters.ok()) return SendStatus(res, clusters.status());
  const int64_t total = int64_t(clusters->size());
  json items = json::array();
  for (int64_t i = (page - 1) * per_page; i < std::min(total, page * per_page); ++i)
    items.push_back(ClusterJson(**cat, (*clusters)[size_t(i)], false));
  SendJson(res, 200,
           {{"page", page},
            {"per_page", per_page},
            {"total", total},
            {"pages", (total + per_page - 1) / per_page},
            {"clusters", items}});
}

void Server::Impl::ClusterOne(const httplib::Request& req, httplib::Response& res) {
  auto key = Authenticate(req, res, Need::kReviewer);
  if (!key) return;
  auto id = ParseId(req.matches[1].str());
  auto cat = pool.Get();
  if (!cat.ok()) return SendStatus(res, cat.status());
  auto clusters = (*cat)->LoadClusters();
  if (!clusters.ok()) return SendStatus(res, clusters.status());
  for (const auto& c : *clusters)
    if (id && c.id == *id) return SendJson(res, 200, ClusterJson(**cat, c, true));
  SendError(res, 404, "not_found",
            "no cluster with id " + std::string(req.matches[1]) +
                " (clusters change with `doppel match`)");
}

void Server::Impl::Decision(const httplib::Request& req, httplib::Response& res) {
  auto key = Authenticate(req, res, Need::kReviewer);
  if (!key) return;
  auto id = ParseId(req.matches[1].str());
  auto body = ParseDecisionBody(req.body);
  if (!body.ok()) return SendError(res, 400, "invalid_argument", body.status().message());
  auto cat = pool.Get();
  if (!cat.ok()) return SendStatus(res, cat.status());
  auto clusters = (*cat)->LoadClusters();
  if (!clusters.ok()) return SendStatus(res, clusters.status());
  const Cluster* cluster = nullptr;
  for (const auto& c : *clusters)
    if (id && c.id == *id) cluster = &c;
  if (!cluster)
    return SendError(res, 404, "not_found", "no cluster with id " + std::string(req.matches[1]));
  ReviewDecision d;
  d.cluster_id = cluster->id;
  d.decision = body->decision;
  for (const auto& m : cluster->members) d.members.push_back(m.file_id);
  for (std::optional<int64_t> f : {body->master_id, body->file_id})
    if (f && std::find(d.members.begin(), d.members.end(), *f) == d.members.end())
      return SendError(
          res, 422, "not_a_member",
          "file " + std::to_string(*f) + " is not in cluster " + std::to_string(d.cluster_id));
  d.master_file_id = body->master_id.value_or(cluster->master_file_id);
  d.file_id = body->file_id;
  d.note = body->note;
  d.reviewer =
      "key " + std::to_string(key->id) + (key->label.empty() ? "" : " (" + key->label + ")");
  auto did = (*cat)->RecordDecision(d);
  if (!did.ok()) return SendStatus(res, did.status());
  json out = {{"id", *did},
              {"cluster_id", d.cluster_id},
              {"decision", d.decision},
              {"master_id", d.master_file_id},
              {"reviewer", d.reviewer}};
  if (d.file_id) out["file_id"] = *d.file_id;
  SendJson(res, 201, out);
}

void Server::Impl::HeldUploads(const httplib::Request& req, httplib::Response& res) {
  auto key = Authenticate(req, res, Need::kReviewer);
  if (!key) return;
  std::string outcome = req.has_param("outcome") ? req.get_param_value("outcome") : "";
  if (!outcome.empty() && outcome != "alias" && outcome != "held")
    return SendError(res, 400, "invalid_argument", "outcome must be alias or held");
  auto cat = pool.Get();
  if (!cat.ok()) return SendStatus(res, cat.status());
  std::string source = req.has_param("source") ? req.get_param_value("source") : "";
  auto ups = (*cat)->ListUploads(source, outcome, 200);
  if (!ups.ok()) return SendStatus(res, ups.status());
  json items = json::array();
  for (const auto& u : *ups)
    items.push_back({{"id", u.id},
                     {"source", u.source},
                     {"outcome", u.outcome},
                     {"sha256", DigestHex(u.sha256)},
                     {"master_id", u.master_file_id},
                     {"kind", u.kind},
                     {"distance", u.distance},
                     {"reason", u.reason},
                     {"client_name", u.client_name},
                     {"fields", json::parse(u.fields, nullptr, false)},
                     {"created_at", u.created_at}});
  SendJson(res, 200, {{"uploads", items}});
}

void Server::Impl::Routes() {
  http.set_payload_max_length(size_t(opt.max_body_bytes));
  http.set_read_timeout(opt.read_timeout_s, 0);
  http.set_write_timeout(opt.read_timeout_s, 0);
  http.set_keep_alive_max_count(1000);
  // Headers and body go out in separate writes: without TCP_NODELAY, Nagle and
  // delayed ACKs add ~40 ms to every keep-alive response.
  http.set_tcp_nodelay(true);
  const int threads = std::max(1, opt.http_threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };

  // Runs before httplib reads the body: a request without a working key is
  // answered 401 at once, so strangers cannot make the server read (and
  // hold) large bodies. The handlers check the role afterwards.
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    request_start = Clock::now();
    if (req.path.rfind("/api/", 0) == 0 && !Authenticate(req, res, Need::kAny)) {
      res.set_header("Connection", "close");  // the unread body must not be taken for a request
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    const double s = std::chrono::duration<double>(Clock::now() - request_start).count();
    metrics.Record(RouteOf(req.path), req.method, res.status, s);
    if (opt.log) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " %d %.1f ms", res.status, s * 1000);
      opt.log(req.remote_addr + " " + req.method + " " + DisplayPath(req.path) + buf);
    }
  });
  // Errors httplib answers itself (413 body too large, 400 malformed, 404 no
  // route) get the same JSON shape as ours.
  http.set_error_handler(
      httplib::Server::HandlerWithResponse([this](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        switch (res.status) {
          case 413:
            SendError(res, 413, "body_too_large",
                      "the request is larger than the server's limit of " +
                          std::to_string(opt.max_body_bytes) + " bytes (--max-body-mb)");
            break;
          case 404:
            SendError(res, 404, "not_found", "no such endpoint (see docs/api.md)");
            break;
          case 405:
            SendError(res, 405, "method_not_allowed", "this endpoint does not take that method");
            break;
          default:
            SendError(res, res.status, "bad_request",
                      "the request could not be read (malformed or truncated)");
        }
        return httplib::Server::HandlerResponse::Handled;
      }));
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unexpected error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        SendError(res, 500, "internal", what);
      });

  http.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, {{"status", "ok"}, {"index_files", gate->size()}});
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.Render(gate->size(), decodes_in_flight.load()),
                    "text/plain; version=0.0.4");
  });
  http.Get("/review", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' blob:; style-src 'unsafe-inline'; "
                   "script-src 'unsafe-inline'");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_content(ReviewPageHtml(), "text/html; charset=utf-8");
  });
  http.Get("/",
           [](const httplib::Request&, httplib::Response& res) { res.set_redirect("/review"); });
  http.Get("/favicon.ico",
           [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
  using R = const httplib::Request&;
  using W = httplib::Response&;
  http.Post("/api/v1/uploads", [this](R q, W s) { Uploads(q, s); });
  http.Post("/api/v1/lookup", [this](R q, W s) { Lookup(q, s); });
  http.Get(R"(/api/v1/images/(\d+))", [this](R q, W s) { Image(q, s); });
  http.Get(R"(/api/v1/images/(\d+)/thumbnail)", [this](R q, W s) { Thumbnail(q, s); });
  http.Get("/api/v1/clusters", [this](R q, W s) { Clusters(q, s); });
  http.Get(R"(/api/v1/clusters/(\d+))", [this](R q, W s) { ClusterOne(q, s); });
  http.Post(R"(/api/v1/clusters/(\d+)/decisions)", [this](R q, W s) { Decision(q, s); });
  http.Get("/api/v1/uploads", [this](R q, W s) { HeldUploads(q, s); });
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::Create(const ServerOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  DOPPEL_ASSIGN_OR_RETURN(impl->gate, Gate::Open(options.catalogue, options.gate));
  try {
    impl->Routes();
  } catch (const std::exception& e) {
    return Internal(std::string("cannot set up the HTTP routes: ") + e.what());
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Status Server::Bind() {
  Impl& s = *impl_;
  if (s.opt.port == 0) {
    s.port = s.http.bind_to_any_port(s.opt.host.c_str());
    if (s.port <= 0) return IOError("cannot listen on " + s.opt.host + " (any port)");
  } else {
    if (!s.http.bind_to_port(s.opt.host.c_str(), s.opt.port))
      return IOError("cannot listen on " + s.opt.host + ":" + std::to_string(s.opt.port) +
                     " (address in use or not allowed; choose another with --listen)");
    s.port = s.opt.port;
  }
  return Status::OK();
}

int Server::port() const { return impl_->port; }

Status Server::Run() {
  Impl& s = *impl_;
  if (s.opt.refresh_seconds > 0) {
    s.refresher = std::thread([&s] {
      std::unique_lock lk(s.refresh_mu);
      while (!s.refresh_cv.wait_for(lk, std::chrono::seconds(s.opt.refresh_seconds),
                                    [&s] { return s.stopping; })) {
        lk.unlock();
        auto added = s.gate->RefreshAfterMatch();
        if (s.opt.log && added.ok() && *added > 0)
          s.opt.log("index: " + std::to_string(*added) +
                    " files catalogued by another process added");
        if (s.opt.log && !added.ok())
          s.opt.log("index refresh failed: " + added.status().ToString());
        lk.lock();
      }
    });
  }
  const bool ok = s.http.listen_after_bind();
  {
    std::lock_guard lk(s.refresh_mu);
    s.stopping = true;
  }
  s.refresh_cv.notify_all();
  if (s.refresher.joinable()) s.refresher.join();
  if (!ok) return IOError("the HTTP server stopped unexpectedly");
  return Status::OK();
}

void Server::Stop() { impl_->http.stop(); }

Gate& Server::gate() { return *impl_->gate; }

}  // namespace doppel::server
