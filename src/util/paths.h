// Helpers for paths held as raw bytes (POSIX file names need not be UTF-8).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace doppel {

// Printable, valid UTF-8 form of a raw path: valid UTF-8 passes through,
// invalid bytes and control characters become \xNN. Backslash becomes \\.
std::string DisplayPath(const std::string& raw);

// True if `s` is well-formed UTF-8 (no overlong forms, surrogates or values
// past U+10FFFF).
bool IsValidUtf8(std::string_view s);

// Joins a folder and a relative path with one '/'.
std::string JoinPath(const std::string& dir, const std::string& rel);

// Current UTC time as "YYYY-MM-DDTHH:MM:SSZ".
std::string UtcNow();

// Seconds since the epoch as UTC, in a strftime format (at most 63
// characters out). The one UTC formatter: timestamps, dates, folder names.
std::string FormatUtc(int64_t unix_seconds, const char* format);
// The current time in that format.
std::string FormatUtcNow(const char* format);

}  // namespace doppel
