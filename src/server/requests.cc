#include "server/requests.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "util/paths.h"

namespace doppel::server {

using json = nlohmann::json;

namespace {

// The received text for an error message: at most 32 bytes, escaped.
std::string Shown(std::string_view text) {
  std::string t(text.substr(0, 32));
  return "'" + DisplayPath(t) + (text.size() > 32 ? "...'" : "'");
}

std::string RangeText(std::string_view name, int64_t min, int64_t max) {
  return std::string(name) + " must be a whole number from " + std::to_string(min) + " to " +
         std::to_string(max);
}

// A JSON value as a number within [min, max]; nlohmann's unsigned and
// floating values are refused rather than converted.
Result<int64_t> JsonNumber(const json& v, std::string_view name, int64_t min, int64_t max) {
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(max)))
    return InvalidArgument(RangeText(name, min, max));
  const int64_t n = v.get<int64_t>();
  if (n < min || n > max) return InvalidArgument(RangeText(name, min, max));
  return n;
}

}  // namespace

Result<int64_t> ParseNumber(std::string_view text, std::string_view name, int64_t min,
                            int64_t max) {
  std::string_view digits = text;
  const bool negative = !digits.empty() && digits[0] == '-' && min < 0;
  if (negative) digits.remove_prefix(1);
  // 18 digits cannot overflow int64_t (< 9.22e18).
  bool ok = !digits.empty() && digits.size() <= 18;
  int64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') {
      ok = false;
      break;
    }
    v = v * 10 + (c - '0');
  }
  if (negative) v = -v;
  if (!ok || v < min || v > max)
    return InvalidArgument(RangeText(name, min, max) + " (got " + Shown(text) + ")");
  return v;
}

std::optional<int64_t> ParseId(std::string_view s) {
  auto v = ParseNumber(s, "id", 0, 999'999'999'999'999'999);
  if (!v.ok()) return std::nullopt;
  return *v;
}

Result<PageRequest> ParsePageRequest(const std::optional<std::string>& page,
                                     const std::optional<std::string>& per_page) {
  PageRequest r;
  if (page) {
    DOPPEL_ASSIGN_OR_RETURN(r.page, ParseNumber(*page, "page", 1, PageRequest::kMaxPage));
  }
  if (per_page) {
    DOPPEL_ASSIGN_OR_RETURN(r.per_page,
                            ParseNumber(*per_page, "per_page", 1, PageRequest::kMaxPerPage));
  }
  return r;
}

std::string RouteOf(const std::string& path) {
  static const char* const kFixed[] = {"/healthz",        "/metrics",        "/review",
                                       "/review.js",      "/api/v1/uploads", "/api/v1/lookup",
                                       "/api/v1/clusters"};
  for (const char* f : kFixed)
    if (path == f) return f;
  auto ends = [&](std::string_view suffix) {
    return path.size() >= suffix.size() &&
           path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (path.rfind("/api/v1/images/", 0) == 0)
    return ends("/thumbnail") ? "/api/v1/images/{id}/thumbnail" : "/api/v1/images/{id}";
  if (path.rfind("/api/v1/clusters/", 0) == 0)
    return ends("/decisions") ? "/api/v1/clusters/{id}/decisions" : "/api/v1/clusters/{id}";
  return "other";
}

Result<DecisionRequest> ParseDecisionBody(const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("decision") || !j["decision"].is_string())
    return InvalidArgument(
        "send JSON {\"decision\": \"confirm\" | \"reject\" | \"choose_master\", \"master_id\": N "
        "(choose_master), "
        "\"file_id\": N (optional), \"note\": \"...\"}");
  DecisionRequest d;
  d.decision = j["decision"].get<std::string>();
  for (auto [name, slot] : {std::pair{"master_id", &d.master_id}, {"file_id", &d.file_id}}) {
    if (!j.contains(name)) continue;
    auto v = JsonNumber(j[name], std::string(name) + " (a file id)", 1, 999'999'999'999'999'999);
    if (!v.ok()) return v.status();
    *slot = *v;
  }
  if (d.decision == "choose_master" && !d.master_id)
    return InvalidArgument("choose_master needs master_id, the chosen member's id");
  if (j.contains("note")) {
    if (!j["note"].is_string()) return InvalidArgument("note must be text");
    d.note = j["note"].get<std::string>().substr(0, 2000);
    if (!IsValidUtf8(d.note)) d.note = DisplayPath(d.note);
  }
  return d;
}

namespace {

std::string RadiusName(int max_radius) {
  return "radius (PDQ bits; at most the server's near threshold, " + std::to_string(max_radius) +
         ")";
}

Result<HashLookupRequest> HashWithRadius(const std::string& pdq_hex, int radius) {
  auto h = PdqHash::FromHex(pdq_hex);
  if (!h) return InvalidArgument("'pdq' must be 64 hex digits (or send a picture as 'image')");
  return HashLookupRequest{*h, radius};
}

}  // namespace

Result<HashLookupRequest> ParseHashLookup(const std::string& pdq_hex,
                                          const std::optional<std::string>& radius,
                                          int max_radius) {
  int r = max_radius;
  if (radius) {
    DOPPEL_ASSIGN_OR_RETURN(int64_t v, ParseNumber(*radius, RadiusName(max_radius), 0, max_radius));
    r = int(v);
  }
  return HashWithRadius(pdq_hex, r);
}

Result<HashLookupRequest> ParseHashLookupJson(const std::string& body, int max_radius) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("pdq") || !j["pdq"].is_string())
    return InvalidArgument("send {\"pdq\": \"64 hex digits\"} or a multipart picture");
  int r = max_radius;
  if (j.contains("radius")) {
    DOPPEL_ASSIGN_OR_RETURN(int64_t v,
                            JsonNumber(j["radius"], RadiusName(max_radius), 0, max_radius));
    r = int(v);
  }
  return HashWithRadius(j["pdq"].get<std::string>(), r);
}

Result<std::map<std::string, std::string>> UploadFields(
    const std::vector<std::pair<std::string, std::string>>& text_parts) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : text_parts) {
    if (name == "image" || name == "source") continue;
    if (name.empty() || name.size() > 64 || value.size() > 4096)
      return InvalidArgument("metadata field '" + DisplayPath(name.substr(0, 64)) +
                             "' is empty or too long (names up to 64 bytes, values up to 4096); "
                             "nothing was stored");
    // Names become JSON keys in the audit trail: they must be text.
    const bool control = std::any_of(name.begin(), name.end(),
                                     [](char c) { return uint8_t(c) < 0x20 || c == 0x7f; });
    if (!IsValidUtf8(name) || control)
      return InvalidArgument("metadata field name '" + DisplayPath(name) +
                             "' is not UTF-8 text (or holds control characters); rename the "
                             "field; nothing was stored");
    if (out.size() >= 64 && !out.count(name)) return InvalidArgument("at most 64 metadata fields");
    out[name] = value;
  }
  return out;
}

}  // namespace doppel::server
