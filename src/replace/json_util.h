// JSON helpers shared by the plan, journal and release writers: raw-byte
// paths and dumping that never throws on invalid UTF-8.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "util/paths.h"

namespace doppel {

// A raw path as JSON: a string when it is valid UTF-8, else {"hex": "..."}.
inline nlohmann::json PathJson(const std::string& raw) {
  if (IsValidUtf8(raw)) return raw;
  static const char* kHex = "0123456789abcdef";
  std::string h;
  for (unsigned char c : raw) {
    h += kHex[c >> 4];
    h += kHex[c & 15];
  }
  return nlohmann::json{{"hex", h}};
}

// Inverse of PathJson; throws nlohmann::json::exception on a malformed value.
inline std::string PathFromJson(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  const std::string h = j.at("hex").get<std::string>();
  std::string raw;
  for (size_t i = 0; i + 1 < h.size(); i += 2) raw += char(std::stoi(h.substr(i, 2), nullptr, 16));
  return raw;
}

inline std::string DumpJson(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace doppel
