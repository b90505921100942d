#include "server/requests.h"

#include <nlohmann/json.hpp>

#include "util/paths.h"

namespace doppel::server {

using json = nlohmann::json;

std::optional<int64_t> ParseId(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::string RouteOf(const std::string& path) {
  static const char* const kFixed[] = {"/healthz",        "/metrics",       "/review",
                                       "/api/v1/uploads", "/api/v1/lookup", "/api/v1/clusters"};
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
    if (!j[name].is_number_integer())
      return InvalidArgument(std::string(name) + " must be a file id (a number)");
    *slot = j[name].get<int64_t>();
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

Result<HashLookupRequest> ParseHashLookup(const std::string& pdq_hex, std::optional<int> radius,
                                          int default_radius) {
  auto h = PdqHash::FromHex(pdq_hex);
  if (!h) return InvalidArgument("'pdq' must be 64 hex digits (or send a picture as 'image')");
  HashLookupRequest r{*h, radius.value_or(default_radius)};
  if (r.radius < 0 || r.radius > 128) return InvalidArgument("radius must be 0..128");
  return r;
}

Result<HashLookupRequest> ParseHashLookupJson(const std::string& body, int default_radius) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("pdq") || !j["pdq"].is_string())
    return InvalidArgument("send {\"pdq\": \"64 hex digits\"} or a multipart picture");
  std::optional<int> radius;
  if (j.contains("radius")) {
    if (!j["radius"].is_number_integer()) return InvalidArgument("radius must be 0..128");
    const int64_t r = j["radius"].get<int64_t>();
    if (r < 0 || r > 128) return InvalidArgument("radius must be 0..128");
    radius = int(r);
  }
  return ParseHashLookup(j["pdq"].get<std::string>(), radius, default_radius);
}

Result<std::map<std::string, std::string>> UploadFields(
    const std::vector<std::pair<std::string, std::string>>& text_parts) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : text_parts) {
    if (name == "image" || name == "source") continue;
    if (name.empty() || name.size() > 64 || value.size() > 4096)
      return InvalidArgument("metadata field '" + DisplayPath(name.substr(0, 64)) +
                             "' is empty or too long (names up to 64 bytes, values up to 4096)");
    if (out.size() >= 64 && !out.count(name)) return InvalidArgument("at most 64 metadata fields");
    out[name] = value;
  }
  return out;
}

}  // namespace doppel::server
