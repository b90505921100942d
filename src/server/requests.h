// What the server reads from requests itself (httplib parses HTTP and
// multipart): ids in paths, JSON bodies, upload form fields. Pure functions,
// no exceptions, fuzzed by fuzz/upload_fuzz.cc.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "doppel/pdq.h"
#include "doppel/status.h"

namespace doppel::server {

// A positive decimal id of at most 18 digits, or nullopt.
std::optional<int64_t> ParseId(std::string_view s);

// The route a path belongs to ("/api/v1/images/{id}", ...; "other"), for
// metric labels: bounded, whatever the path.
std::string RouteOf(const std::string& path);

// POST /api/v1/clusters/{id}/decisions.
struct DecisionRequest {
  std::string decision;  // not checked here: RecordDecision refuses unknown ones
  std::optional<int64_t> master_id;
  std::optional<int64_t> file_id;
  std::string note;  // at most 2000 bytes
};
Result<DecisionRequest> ParseDecisionBody(const std::string& body);

// POST /api/v1/lookup with JSON {"pdq": HEX, "radius": N}.
struct HashLookupRequest {
  PdqHash hash;
  int radius = 31;
};
Result<HashLookupRequest> ParseHashLookup(const std::string& pdq_hex, std::optional<int> radius,
                                          int default_radius);
Result<HashLookupRequest> ParseHashLookupJson(const std::string& body, int default_radius);

// The metadata fields of an upload form: every text part except `image` and
// `source`. Names up to 64 bytes, values up to 4096, at most 64 fields.
Result<std::map<std::string, std::string>> UploadFields(
    const std::vector<std::pair<std::string, std::string>>& text_parts);

}  // namespace doppel::server
