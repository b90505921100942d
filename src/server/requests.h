// What the server reads from requests itself (httplib parses HTTP and
// multipart): ids in paths, numbers in query strings and JSON bodies, upload
// form fields. Pure functions, no exceptions, fuzzed by fuzz/upload_fuzz.cc
// and fuzz/query_fuzz.cc.
//
// Every number a request carries is read here, by ParseNumber or JsonNumber,
// with the range the handler needs: no handler does arithmetic on an
// unchecked number (a page near 2^63 once overflowed the page offset).
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

// A decimal number within [min, max] (plain digits, at most 18, an optional
// leading '-' only when min < 0), else kInvalidArgument naming `name`, its
// range and the bytes received (shortened and escaped).
Result<int64_t> ParseNumber(std::string_view text, std::string_view name, int64_t min, int64_t max);

// A positive decimal id of at most 18 digits, or nullopt.
std::optional<int64_t> ParseId(std::string_view s);

// GET /api/v1/clusters?page=N&per_page=M. Absent values take the defaults.
// Bounds: page 1..kMaxPage, per_page 1..kMaxPerPage; offset() never overflows.
struct PageRequest {
  static constexpr int64_t kMaxPage = 1'000'000'000;
  static constexpr int64_t kMaxPerPage = 100;
  int64_t page = 1;
  int64_t per_page = 20;
  int64_t offset() const { return (page - 1) * per_page; }  // <= 10^11
};
Result<PageRequest> ParsePageRequest(const std::optional<std::string>& page,
                                     const std::optional<std::string>& per_page);

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

// POST /api/v1/lookup with JSON {"pdq": HEX, "radius": N} (or multipart
// fields `pdq` and `radius`). The radius is 0..max_radius, the gate's near
// threshold: a wider radius would list arbitrary catalogued files to any key.
struct HashLookupRequest {
  PdqHash hash;
  int radius = 31;
};
Result<HashLookupRequest> ParseHashLookup(const std::string& pdq_hex,
                                          const std::optional<std::string>& radius, int max_radius);
Result<HashLookupRequest> ParseHashLookupJson(const std::string& body, int max_radius);

// The metadata fields of an upload form: every text part except `image` and
// `source`. Names: 1..64 bytes of UTF-8 without control characters; values up
// to 4096 bytes; at most 64 fields. Anything else is kInvalidArgument, before
// the gate writes anything.
Result<std::map<std::string, std::string>> UploadFields(
    const std::vector<std::pair<std::string, std::string>>& text_parts);

}  // namespace doppel::server
