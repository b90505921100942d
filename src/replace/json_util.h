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

// Inverse of PathJson; throws nlohmann::json::exception on a malformed value
// (not a string or {"hex"}, odd or non-hex digits, or a NUL byte, which no
// POSIX path holds and which would cut the path short at the system call).
inline std::string PathFromJson(const nlohmann::json& j) {
  auto bad = [](const std::string& why) {
    return nlohmann::json::type_error::create(302, "path " + why, nullptr);
  };
  std::string raw;
  if (j.is_string()) {
    raw = j.get<std::string>();
  } else {
    const std::string h = j.at("hex").get<std::string>();
    if (h.size() % 2 != 0) throw bad("has an odd number of hex digits");
    auto digit = [&](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      throw bad("has a character that is not a hex digit");
    };
    for (size_t i = 0; i < h.size(); i += 2) raw += char(digit(h[i]) * 16 + digit(h[i + 1]));
  }
  if (raw.find('\0') != std::string::npos) throw bad("holds a NUL byte");
  return raw;
}

inline std::string DumpJson(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace doppel
