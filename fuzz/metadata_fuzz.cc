// libFuzzer target: exiv2 on arbitrary bytes must not crash, hang or leak
// through our adapter, and what the adapter returns must keep its contract.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "metadata/exiv2_reader.h"

namespace {

bool IsUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    if (c < 0x80)
      n = 0;
    else if (c >= 0xC2 && c <= 0xDF)
      n = 1;
    else if (c >= 0xE0 && c <= 0xEF)
      n = 2;
    else if (c >= 0xF0 && c <= 0xF4)
      n = 3;
    else
      return false;
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n + 1;
  }
  return true;
}

// "YYYY-MM-DD", optionally "THH:MM:SS", ".fff", "+hh:mm".
bool IsCaptureTime(const std::string& t) {
  if (t.empty()) return true;
  const std::string shape = "dddd-dd-ddTdd:dd:dd";
  auto matches = [&](size_t from, const std::string& want) {
    if (t.size() < from + want.size()) return false;
    for (size_t i = 0; i < want.size(); ++i) {
      const char c = t[from + i];
      if (want[i] == 'd' ? (c < '0' || c > '9') : c != want[i]) return false;
    }
    return true;
  };
  if (t.size() == 10) return matches(0, shape.substr(0, 10));
  if (!matches(0, shape)) return false;
  size_t at = shape.size();
  if (at < t.size() && t[at] == '.') {
    if (!matches(at, ".ddd")) return false;
    at += 4;
  }
  if (at < t.size()) {
    if (!(matches(at, "+dd:dd") || matches(at, "-dd:dd"))) return false;
    at += 6;
  }
  return at == t.size();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  doppel::InitExiv2();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const doppel::ImageMetadata md = doppel::ReadMetadataFromBuffer(data, size);
  if (!IsCaptureTime(md.capture_time)) std::abort();
  if (md.capture_time.empty() != md.capture_time_source.empty()) std::abort();
  for (const std::string* s : {&md.make, &md.model, &md.artist, &md.copyright, &md.title}) {
    if (!IsUtf8(*s)) std::abort();
  }
  for (const std::string& k : md.keywords) {
    if (k.empty() || !IsUtf8(k)) std::abort();
  }
  for (const std::string& w : md.warnings) {
    if (w.empty() || !IsUtf8(w)) std::abort();
  }
  if (md.gps_latitude.has_value() != md.gps_longitude.has_value()) std::abort();
  if (md.gps_latitude && !(*md.gps_latitude >= -90 && *md.gps_latitude <= 90)) std::abort();
  if (md.gps_longitude && !(*md.gps_longitude >= -180 && *md.gps_longitude <= 180)) std::abort();
  if (md.gps_altitude && !(*md.gps_altitude >= -100000 && *md.gps_altitude <= 100000)) std::abort();
  return 0;
}
