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
#include <thread>
#include <unordered_map>

#include "doppel/catalogue.h"
#include "doppel/conflicts.h"
#include "doppel/fingerprint.h"
#include "doppel/policy.h"
#include "doppel/rendition.h"
#include "server/admission.h"
#include "server/guarded_http.h"
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
// Requests in line ahead of a picture when it arrived (0: a slot was free).
constexpr double kDepthBuckets[] = {0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
static_assert(sizeof(kDepthBuckets) / sizeof(kDepthBuckets[0]) <= kNumBuckets);

struct Histogram {
  uint64_t counts[kNumBuckets + 1] = {};  // last: +Inf
  double sum = 0;
  uint64_t n = 0;
  template <size_t N>
  void Add(const double (&buckets)[N], double v) {
    size_t b = 0;
    while (b < N && v > buckets[b]) ++b;
    ++counts[b];
    sum += v;
    ++n;
  }
  // Prometheus lines of `name` with `labels` ("" or `route="...",`).
  template <size_t N>
  void Render(std::string& out, const std::string& name, const std::string& labels,
              const double (&buckets)[N]) const {
    uint64_t cum = 0;
    for (size_t b = 0; b <= N; ++b) {
      cum += counts[b];
      char le[32];
      if (b < N)
        std::snprintf(le, sizeof le, "%g", buckets[b]);
      else
        std::snprintf(le, sizeof le, "+Inf");
      out.append(name).append("_bucket{").append(labels).append("le=\"").append(le);
      out.append("\"} ").append(std::to_string(cum)).append("\n");
    }
    const std::string l = labels.empty() ? "" : "{" + labels.substr(0, labels.size() - 1) + "}";
    char sum_s[64];
    std::snprintf(sum_s, sizeof sum_s, "%.6f", sum);
    out += name + "_sum" + l + " " + sum_s + "\n";
    out += name + "_count" + l + " " + std::to_string(n) + "\n";
  }
};

class Metrics {
 public:
  void Record(const std::string& route, const std::string& method, int code, double seconds) {
    std::lock_guard lk(mu_);
    ++requests_[{route, method, code}];
    latency_[route].Add(kBuckets, seconds);
  }
  // A picture that got a decode slot: its wait in line, the requests ahead of
  // it on arrival, and how long it held the slot.
  void RecordDecode(double wait_s, int64_t ahead, double service_s) {
    std::lock_guard lk(mu_);
    decode_wait_.Add(kBuckets, wait_s);
    decode_depth_.Add(kDepthBuckets, double(ahead));
    decode_service_.Add(kBuckets, service_s);
  }
  std::string Render(size_t index_size, const AdmissionQueue::Snapshot& q) const {
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
    for (const auto& [route, h] : latency_)
      h.Render(out, "doppel_http_request_duration_seconds", "route=\"" + route + "\",", kBuckets);
    out +=
        "# HELP doppel_decode_queue_wait_seconds Time a picture waited in line for a decode "
        "slot.\n# TYPE doppel_decode_queue_wait_seconds histogram\n";
    decode_wait_.Render(out, "doppel_decode_queue_wait_seconds", "", kBuckets);
    out +=
        "# HELP doppel_decode_queue_depth Requests in line ahead of a picture when it "
        "arrived.\n# TYPE doppel_decode_queue_depth histogram\n";
    decode_depth_.Render(out, "doppel_decode_queue_depth", "", kDepthBuckets);
    out +=
        "# HELP doppel_decode_service_seconds Time a picture held its decode slot (decode and "
        "fingerprints).\n# TYPE doppel_decode_service_seconds histogram\n";
    decode_service_.Render(out, "doppel_decode_service_seconds", "", kBuckets);
    out +=
        "# HELP doppel_index_files Files in the live PDQ index.\n# TYPE doppel_index_files gauge\n";
    out += "doppel_index_files " + std::to_string(index_size) + "\n";
    out +=
        "# HELP doppel_decodes_in_flight Pictures being decoded now.\n# TYPE "
        "doppel_decodes_in_flight gauge\n";
    out += "doppel_decodes_in_flight " + std::to_string(q.in_service) + "\n";
    out +=
        "# HELP doppel_decode_queue_waiting Pictures waiting in line for a decode slot now.\n"
        "# TYPE doppel_decode_queue_waiting gauge\n";
    out += "doppel_decode_queue_waiting " + std::to_string(q.waiting) + "\n";
    out +=
        "# HELP doppel_decode_queue_limit Pictures that may wait (--decode-queue).\n"
        "# TYPE doppel_decode_queue_limit gauge\n";
    out += "doppel_decode_queue_limit " + std::to_string(q.max_waiting) + "\n";
    out +=
        "# HELP doppel_decode_refused_total Pictures answered 503 at once because the line was "
        "full.\n# TYPE doppel_decode_refused_total counter\n";
    out += "doppel_decode_refused_total " + std::to_string(q.refused) + "\n";
    char est[64];
    std::snprintf(est, sizeof est, "%.6f", q.mean_service_s);
    out +=
        "# HELP doppel_decode_service_estimate_seconds The decode time Retry-After is computed "
        "from (moving average).\n# TYPE doppel_decode_service_estimate_seconds gauge\n";
    out += std::string("doppel_decode_service_estimate_seconds ") + est + "\n";
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  Histogram decode_wait_, decode_depth_, decode_service_;
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
  AdmissionQueue decode_queue;
  DecodeThreads decoders;  // one per slot: a slot holder never waits for a thread
  GuardedHttpServer http;
  int port = 0;
  // Picks up files another process catalogued, once a `doppel match` ran.
  std::thread refresher;
  std::mutex refresh_mu;
  std::condition_variable refresh_cv;
  bool stopping = false;
  static thread_local Clock::time_point request_start;
  // What the decode line did with this thread's current request: for the
  // access log and for Retry-After on a refusal.
  struct DecodeAdmission {
    bool decoded = false;
    int64_t ahead = 0;
    double wait_s = 0, service_s = 0;
    bool refused = false;
    AdmissionQueue::Refusal refusal;
  };
  static thread_local DecodeAdmission admission;

  explicit Impl(const ServerOptions& o)
      : opt(o),
        pool(o.catalogue),
        thumbs(size_t(std::max(1, o.thumbnail_cache))),
        decode_queue(std::clamp(o.decode_slots, 1, 1024), DecodeQueueLimit(o)),
        decoders(std::clamp(o.decode_slots, 1, 1024), std::clamp(o.decode_nice, 0, 19)),
        http(LimitsOf(o)) {}

  static int DecodeQueueLimit(const ServerOptions& o) {
    const int slots = std::clamp(o.decode_slots, 1, 1024);
    return o.decode_queue < 0 ? 4 * slots : std::min(o.decode_queue, 4096);
  }

  static ConnectionLimits LimitsOf(const ServerOptions& o) {
    ConnectionLimits l;
    l.header_timeout_ms = std::max(1, o.header_timeout_s) * 1000;
    l.body_timeout_ms = std::max(1, o.body_timeout_s) * 1000;
    l.read_timeout_ms = std::max(1, o.read_timeout_s) * 1000;
    l.write_timeout_ms = l.read_timeout_ms;
    l.max_per_ip = std::max(0, o.max_connections_per_ip);
    return l;
  }

  // A decode slot in arrival order, or kBusy at once when the line is full
  // (the post-routing handler adds Retry-After). `what` says what was not done.
  Result<AdmissionQueue::Slot> DecodeSlot(const std::string& what) {
    auto slot = decode_queue.Enter(&admission.refusal);
    if (!slot) {
      admission.refused = true;
      const auto q = decode_queue.snapshot();
      return Busy("all " + std::to_string(q.slots) + " decode slots are busy and " +
                  std::to_string(q.max_waiting) + " requests already wait (--decode-queue); " +
                  what + "; retry after " + std::to_string(admission.refusal.retry_after_s) +
                  " s (Retry-After)");
    }
    admission.decoded = true;
    admission.ahead = slot->queued_behind();
    admission.wait_s = slot->wait_seconds();
    return std::move(*slot);
  }
  // Gives the slot back and records its times.
  void EndDecode(AdmissionQueue::Slot& slot, Clock::time_point started) {
    slot.Release();
    admission.service_s = std::chrono::duration<double>(Clock::now() - started).count();
    metrics.RecordDecode(admission.wait_s, admission.ahead, admission.service_s);
  }

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
    DOPPEL_ASSIGN_OR_RETURN(auto slot, DecodeSlot("nothing was decoded or stored"));
    const auto started = Clock::now();
    AnalyseOptions ao;
    ao.max_pixels = opt.max_pixels;
    ao.read_metadata = metadata;
    const auto deadline = Clock::now() + std::chrono::milliseconds(opt.decode_timeout_ms);
    ao.cancelled = [deadline] { return Clock::now() > deadline; };
    // On a decode thread, at its lower priority; this worker waits.
    std::optional<Result<ImageRecord>> decoded;
    decoders.Run([&] {
      decoded.emplace(
          AnalyseBuffer(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), ao));
    });
    EndDecode(slot, started);
    Result<ImageRecord> r = std::move(*decoded);
    if (!r.ok() && r.status().code() == StatusCode::kCancelled)
      return Cancelled("decoding took longer than " + std::to_string(opt.decode_timeout_ms) +
                       " ms (the server's --decode-timeout-ms); the picture was not stored");
    if (!r.ok() && r.status().code() == StatusCode::kTooLarge)
      return TooLarge(r.status().message() + " (the server's limits: --max-pixels " +
                      std::to_string(opt.max_pixels) + ", a decode budget of " +
                      std::to_string(ao.max_decode_bytes >> 20) + " MB per picture)");
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
  void MetadataDecision(const httplib::Request& req, httplib::Response& res);
  void HeldUploads(const httplib::Request& req, httplib::Response& res);
  json ClusterJson(Catalogue& cat, const Cluster& c, bool full);
};

thread_local Clock::time_point Server::Impl::request_start;
thread_local Server::Impl::DecodeAdmission Server::Impl::admission;

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
      std::optional<std::string> radius;
      if (req.has_file("radius")) radius = req.get_file_value("radius").content;
      auto h = ParseHashLookup(req.get_file_value("pdq").content, radius, opt.gate.match.threshold);
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
  // Bounded like the radius: a hash lookup is no way to list the catalogue.
  for (const auto& m : gate->LookupHash(by_hash->hash, by_hash->radius,
                                        size_t(std::max(1, opt.max_lookup_matches))))
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
  auto slot = DecodeSlot("no thumbnail was made");
  if (!slot.ok()) return SendStatus(res, slot.status());
  const auto started = Clock::now();
  RenditionOptions ro;
  ro.max_side = 320;
  ro.max_pixels = std::max<int64_t>(opt.max_pixels, 1'000'000'000);
  std::optional<Result<std::string>> jpeg;  // decoded, reduced and encoded on a decode thread
  decoders.Run([&] {
    auto r = RenderFile(JoinPath(root, f->path), ro);
    if (!r.ok())
      jpeg.emplace(r.status().WithContext(f->source + ":" + DisplayPath(f->path)));
    else
      jpeg.emplace(EncodeJpeg(*r, 80));
  });
  EndDecode(*slot, started);
  if (!jpeg->ok()) return SendStatus(res, jpeg->status());
  thumbs.Put(*id, **jpeg);
  res.set_header("Cache-Control", "private, max-age=3600");
  res.set_content(**jpeg, "image/jpeg");
}

namespace {

// The cluster's consolidated metadata (made by `doppel plan`) with the
// metadata decisions in force (MetadataDecisions, docs/plan.md "Conflicts"):
// the values, the conflicts still open and the decided ones with their
// author. Null when the cluster has none.
json ClusterMetadataJson(Catalogue& cat, int64_t cluster_id) {
  auto docs = cat.LoadConsolidatedMetadata();
  auto decisions = LoadMetadataDecisions(cat);
  if (!docs.ok() || !decisions.ok()) return nullptr;
  for (const StoredMetadata& d : *docs) {
    if (d.cluster_id != cluster_id) continue;
    auto m = ConsolidatedFromJson(d.document);
    if (!m.ok()) return nullptr;
    auto values_json = [](const MetadataConflict& c) {
      json v = json::array();
      for (const auto& [id, value] : c.values) v.push_back({{"file_id", id}, {"value", value}});
      return v;
    };
    json decided = json::array();
    for (const MetadataConflict& c : m->conflicts)
      if (const doppel::MetadataDecision* md = decisions->For(cluster_id, c.field))
        decided.push_back({{"field", c.field},
                           {"value", md->value},
                           {"from_file_id", md->from_file_id},
                           {"author", md->author},
                           {"decided_at", md->decided_at},
                           {"values", values_json(c)}});
    decisions->Apply(*m);
    json fields = json::object();
    for (const auto& [name, v] : m->fields)
      fields[name] = {{"value", v.value}, {"from_file_id", v.from_file_id}};
    json open = json::array();
    for (const MetadataConflict& c : m->conflicts)
      open.push_back({{"field", c.field}, {"values", values_json(c)}});
    return {{"master_file_id", m->master_file_id},
            {"fields", fields},
            {"conflicts", open},
            {"decided", decided}};
  }
  return nullptr;
}

}  // namespace

json Server::Impl::ClusterJson(Catalogue& cat, const Cluster& c, bool full) {
  json members = json::array();
  std::vector<Candidate> cands;  // for the "most information" mark
  std::vector<size_t> cand_member;
  for (const auto& m : c.members) {
    json j;
    auto f = gate->File(m.file_id);
    if (f) {
      cands.push_back({f->file_id,
                       f->source,
                       f->source_priority,
                       f->path,
                       ImageRecord{f->fingerprints, f->info, f->metadata, f->file_size, 0},
                       {}});
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
    const ReviewDecisions in_force(std::move(*decisions));
    if (const ReviewDecision* d = in_force.ForCluster(c.id)) out["decision"] = d->decision;
  }
  if (full) out["metadata"] = ClusterMetadataJson(cat, c.id);
  return out;
}

void Server::Impl::Clusters(const httplib::Request& req, httplib::Response& res) {
  auto key = Authenticate(req, res, Need::kReviewer);
  if (!key) return;
  auto param = [&](const char* name) -> std::optional<std::string> {
    if (!req.has_param(name)) return std::nullopt;
    return req.get_param_value(name);
  };
  auto pr = ParsePageRequest(param("page"), param("per_page"));
  if (!pr.ok()) return SendError(res, 400, "invalid_argument", pr.status().message());
  const int64_t page = pr->page, per_page = pr->per_page;
  auto cat = pool.Get();
  if (!cat.ok()) return SendStatus(res, cat.status());
  auto clusters = (*cat)->LoadClusters();
  if (!clusters.ok()) return SendStatus(res, clusters.status());
  const int64_t total = int64_t(clusters->size());
  json items = json::array();
  for (int64_t i = pr->offset(); i < std::min(total, pr->offset() + per_page); ++i)
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

// POST /api/v1/clusters/{id}/metadata-decisions: a reviewer resolves one
// metadata conflict. ResolveConflict validates everything before its one
// write (an audit event).
void Server::Impl::MetadataDecision(const httplib::Request& req, httplib::Response& res) {
  auto key = Authenticate(req, res, Need::kReviewer);
  if (!key) return;
  auto id = ParseId(req.matches[1].str());
  if (!id) return SendError(res, 404, "not_found", "no cluster with id " + req.matches[1].str());
  static const char* const kShape =
      "send JSON {\"field\": \"title\", \"value\": \"...\"} or {\"field\": \"title\", "
      "\"from\": FILE_ID} (the member whose value to keep); nothing was recorded";
  const json j = json::parse(req.body, nullptr, false);
  if (!j.is_object() || !j.contains("field") || !j["field"].is_string() ||
      j.contains("value") == j.contains("from") ||
      (j.contains("value") && !j["value"].is_string()) ||
      (j.contains("from") && !j["from"].is_number_integer() && !j["from"].is_string()))
    return SendError(res, 400, "invalid_argument", kShape);
  for (const auto& [name, v] : j.items())
    if (name != "field" && name != "value" && name != "from")
      return SendError(res, 400, "invalid_argument",
                       "unknown member '" + DisplayPath(name) + "'; " + kShape);
  MetadataDecisionRequest r;
  r.cluster_id = *id;
  r.field = j["field"].get<std::string>();
  if (j.contains("value")) r.value = j["value"].get<std::string>();
  if (j.contains("from")) {
    if (j["from"].is_string()) {
      r.from = j["from"].get<std::string>();
    } else {
      // A file id: 1..999,999,999,999,999,999 (the range ParseId takes).
      if (!j["from"].is_number_unsigned() || j["from"].get<uint64_t>() == 0 ||
          j["from"].get<uint64_t>() > 999'999'999'999'999'999ULL)
        return SendError(res, 400, "invalid_argument", "from: a file id is a positive integer");
      r.from = std::to_string(j["from"].get<uint64_t>());
    }
    if (r.from.empty()) return SendError(res, 400, "invalid_argument", kShape);
  } else if (r.value.empty()) {
    return SendError(res, 400, "invalid_argument", kShape);
  }
  r.author = "key " + std::to_string(key->id) + (key->label.empty() ? "" : " (" + key->label + ")");
  auto cat = pool.Get();
  if (!cat.ok()) return SendStatus(res, cat.status());
  auto d = ResolveConflict(**cat, r);
  if (!d.ok()) {
    if (d.status().code() == StatusCode::kInvalidArgument)
      return SendError(res, 422, "invalid_decision", d.status().message());
    return SendStatus(res, d.status());
  }
  SendJson(res, 201,
           {{"id", d->event_id},
            {"cluster_id", d->cluster_id},
            {"field", d->field},
            {"value", d->value},
            {"from_file_id", d->from_file_id},
            {"author", d->author}});
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
  // Exclusive use of the port: httplib's default sets SO_REUSEPORT, with which
  // a second `doppel serve` binds the same port and the kernel splits the
  // connections between the two. SO_REUSEADDR alone still allows a restart
  // while old connections linger in TIME_WAIT.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  // Pictures in a decode slot or in line each hold a worker: they get workers
  // of their own, so hash lookups, reviews and /metrics are never stuck behind
  // them (docs/api.md, "Back-pressure").
  const auto q = decode_queue.snapshot();
  const int threads = std::max(1, opt.http_threads) + q.slots + q.max_waiting;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  http.on_refused = [this](const std::string& ip) {
    if (opt.log)
      opt.log(ip + " refused: already " + std::to_string(opt.max_connections_per_ip) +
              " connections (--max-connections-per-ip)");
  };

  // Runs once the headers are read, before httplib reads the body: a request
  // without a working key is answered 401 at once, so strangers cannot make
  // the server read (and hold) large bodies. The handlers check the role
  // afterwards. Outside /api/ nothing takes a body: such a request is refused
  // unread too.
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    request_start = Clock::now();
    admission = DecodeAdmission{};
    auto refuse_unread = [&] {
      res.set_header("Connection", "close");  // the unread body must not be taken for a request
      GuardedHttpServer::CloseAfterResponse();
      return httplib::Server::HandlerResponse::Handled;
    };
    if (req.path.rfind("/api/", 0) == 0) {
      if (!Authenticate(req, res, Need::kAny)) return refuse_unread();
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const bool has_body =
        req.has_header("Transfer-Encoding") ||
        (req.has_header("Content-Length") && req.get_header_value("Content-Length") != "0");
    if (has_body || (req.method != "GET" && req.method != "HEAD")) {
      SendError(res, 404, "not_found",
                "no endpoint " + req.method + " " + DisplayPath(req.path) +
                    " (only GET outside /api/; see docs/api.md); the body was not read");
      return refuse_unread();
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    const double s = std::chrono::duration<double>(Clock::now() - request_start).count();
    metrics.Record(RouteOf(req.path), req.method, res.status, s);
    if (opt.log) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " %d %.1f ms", res.status, s * 1000);
      std::string line = req.remote_addr + " " + req.method + " " + DisplayPath(req.path) + buf;
      char dec[128];
      if (admission.decoded) {
        std::snprintf(dec, sizeof dec, " decode: ahead=%lld wait=%.1f ms service=%.1f ms",
                      static_cast<long long>(admission.ahead), admission.wait_s * 1000,
                      admission.service_s * 1000);
        line += dec;
      } else if (admission.refused) {
        std::snprintf(dec, sizeof dec, " decode: refused position=%lld retry-after=%d s",
                      static_cast<long long>(admission.refusal.position),
                      admission.refusal.retry_after_s);
        line += dec;
      }
      opt.log(line);
    }
    // Requests httplib answers before routing (413, 400) skip the pre-routing
    // handler: they must not inherit this request's decode figures.
    admission = DecodeAdmission{};
  });
  // A picture refused by the full decode line: when to come back, and the
  // worker is freed for others (clients reconnect after the pause anyway).
  http.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    if (admission.refused && res.status == 503) {
      res.set_header("Retry-After", std::to_string(admission.refusal.retry_after_s));
      res.set_header("Connection", "close");
    }
  });
  // Errors httplib answers itself (413 body too large, 400 malformed, 404 no
  // route) get the same JSON shape as ours.
  http.set_error_handler(
      httplib::Server::HandlerWithResponse([this](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        if (GuardedHttpServer::RequestTimedOut()) {
          res.set_header("Connection", "close");
          GuardedHttpServer::CloseAfterResponse();
          SendError(res, 408, "request_timeout",
                    "the request did not arrive in time (headers within " +
                        std::to_string(opt.header_timeout_s) +
                        " s, --header-timeout; body within " + std::to_string(opt.body_timeout_s) +
                        " s, --body-timeout); the connection is closed");
          return httplib::Server::HandlerResponse::Handled;
        }
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
            // What follows an unreadable request cannot be trusted to start
            // the next one.
            res.set_header("Connection", "close");
            GuardedHttpServer::CloseAfterResponse();
            SendError(res, res.status, "bad_request",
                      "the request could not be read (malformed or truncated); the connection "
                      "is closed");
        }
        return httplib::Server::HandlerResponse::Handled;
      }));
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, const std::exception_ptr& ep) {
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
    std::string body = metrics.Render(gate->size(), decode_queue.snapshot());
    body +=
        "# HELP doppel_decode_thread_nice Nice value the decode threads run at (--decode-nice "
        "over the server's own).\n# TYPE doppel_decode_thread_nice gauge\n"
        "doppel_decode_thread_nice " +
        std::to_string(decoders.nice()) + "\n";
    res.set_content(body, "text/plain; version=0.0.4");
  });
  // No inline script may run and no other site may frame the page (a framed
  // review page could be clickjacked into recording decisions).
  static const char* const kReviewCsp =
      "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' blob:; "
      "style-src 'self' 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
      "frame-ancestors 'none'";
  auto page_headers = [](httplib::Response& res) {
    res.set_header("Content-Security-Policy", kReviewCsp);
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
  };
  http.Get("/review", [page_headers](const httplib::Request&, httplib::Response& res) {
    page_headers(res);
    res.set_content(ReviewPageHtml(), "text/html; charset=utf-8");
  });
  http.Get("/review.js", [page_headers](const httplib::Request&, httplib::Response& res) {
    page_headers(res);
    res.set_content(ReviewPageScript(), "text/javascript; charset=utf-8");
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
  http.Post(R"(/api/v1/clusters/(\d+)/metadata-decisions)",
            [this](R q, W s) { MetadataDecision(q, s); });
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

AdmissionQueue& Server::decode_queue() { return impl_->decode_queue; }

}  // namespace doppel::server
