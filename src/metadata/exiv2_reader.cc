#include "metadata/exiv2_reader.h"

#include "util/paths.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <exiv2/exiv2.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace doppel {

namespace {

// The XMP toolkit inside exiv2 keeps global state; exiv2 serialises access to
// it through this callback when images are read from several threads.
std::mutex g_xmp_mutex;
void XmpLock(void* data, bool lock) {
  auto* m = static_cast<std::mutex*>(data);
  if (lock)
    m->lock();
  else
    m->unlock();
}

// Exif ASCII and legacy IPTC text are often Latin-1 (or Windows-1252); the
// catalogue and JSON output need valid UTF-8, so bytes that are not UTF-8 are
// read as Latin-1, which maps every byte to a character.
std::string ToUtf8(std::string s) {
  if (IsValidUtf8(s)) return s;
  std::string out;
  out.reserve(s.size() * 2);
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      out.push_back(ch);
    } else {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

// Trims whitespace and the NUL padding cameras put in fixed-size fields.
std::string Clean(std::string s) {
  auto junk = [](char c) { return c == '\0' || c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  size_t b = 0, e = s.size();
  while (b < e && junk(s[b])) ++b;
  while (e > b && junk(s[e - 1])) --e;
  s = s.substr(b, e - b);
  // An interior NUL would truncate the value in C APIs downstream.
  s.erase(std::remove(s.begin(), s.end(), '\0'), s.end());
  return ToUtf8(std::move(s));
}

// Value text for warnings: bounded and printable.
std::string Quote(const std::string& raw) {
  std::string s = raw.size() > 64 ? raw.substr(0, 64) + "..." : raw;
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  }
  return "'" + ToUtf8(s) + "'";
}

const Exiv2::Exifdatum* FindExif(const Exiv2::ExifData& exif, const char* key) {
  auto it = exif.findKey(Exiv2::ExifKey(key));
  return it == exif.end() ? nullptr : &*it;
}
const Exiv2::Xmpdatum* FindXmp(const Exiv2::XmpData& xmp, const char* key) {
  auto it = xmp.findKey(Exiv2::XmpKey(key));
  return it == xmp.end() ? nullptr : &*it;
}

std::string ExifText(const Exiv2::ExifData& exif, const char* key) {
  const Exiv2::Exifdatum* d = FindExif(exif, key);
  return d ? Clean(d->toString()) : std::string();
}

// Items of an XMP array (bag/seq), or the one value of a simple property.
std::vector<std::string> XmpItems(const Exiv2::XmpData& xmp, const char* key) {
  std::vector<std::string> items;
  const Exiv2::Xmpdatum* d = FindXmp(xmp, key);
  if (!d) return items;
  const Exiv2::Value& v = d->value();
  if (dynamic_cast<const Exiv2::XmpArrayValue*>(&v)) {
    for (long i = 0; i < v.count(); ++i) {
      std::string item = Clean(v.toString(i));
      if (!item.empty()) items.push_back(std::move(item));
    }
  } else {
    std::string item = Clean(v.toString());
    if (!item.empty()) items.push_back(std::move(item));
  }
  return items;
}

// A lang-alt property (dc:title, dc:rights): the x-default text, else the first.
std::string XmpLangAlt(const Exiv2::XmpData& xmp, const char* key) {
  const Exiv2::Xmpdatum* d = FindXmp(xmp, key);
  if (!d) return {};
  if (const auto* alt = dynamic_cast<const Exiv2::LangAltValue*>(&d->value())) {
    auto it = alt->value_.find("x-default");
    if (it == alt->value_.end()) it = alt->value_.begin();
    return it == alt->value_.end() ? std::string() : Clean(it->second);
  }
  std::string s = d->toString();
  constexpr std::string_view kPrefix = "lang=\"x-default\" ";
  if (s.compare(0, kPrefix.size(), kPrefix) == 0) s.erase(0, kPrefix.size());
  return Clean(std::move(s));
}

std::vector<std::string> IptcAll(const Exiv2::IptcData& iptc, const char* key) {
  std::vector<std::string> out;
  for (const Exiv2::Iptcdatum& d : iptc) {
    if (d.key() != key) continue;
    std::string s = Clean(d.toString());
    if (!s.empty()) out.push_back(std::move(s));
  }
  return out;
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += "; ";
    out += s;
  }
  return out;
}

// ---- Dates ---------------------------------------------------------------

struct Cursor {
  std::string_view s;
  size_t i = 0;
  bool done() const { return i >= s.size(); }
  bool Peek(char c) const { return i < s.size() && s[i] == c; }
  bool Accept(const char* set) {
    // strchr would match the terminator for a NUL byte.
    if (i < s.size() && s[i] != '\0' && std::strchr(set, s[i])) {
      ++i;
      return true;
    }
    return false;
  }
  // Exactly `n` digits.
  bool Digits(int n, int* out) {
    int v = 0;
    for (int k = 0; k < n; ++k) {
      if (i >= s.size() || s[i] < '0' || s[i] > '9') return false;
      v = v * 10 + (s[i++] - '0');
    }
    *out = v;
    return true;
  }
};

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysIn(int y, int m) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Parses "+hh:mm", "-hhmm", "Z" into "+hh:mm"; nullopt if malformed.
std::optional<std::string> ParseOffset(Cursor& c) {
  if (c.Accept("Z")) return std::string("+00:00");
  if (!c.Peek('+') && !c.Peek('-')) return std::nullopt;
  const char sign = c.s[c.i++];
  int h = 0, m = 0;
  if (!c.Digits(2, &h)) return std::nullopt;
  c.Accept(":");
  if (!c.done() && !c.Digits(2, &m)) return std::nullopt;
  if (h > 14 || m > 59) return std::nullopt;
  char buf[16];  // room for any int, so -Wformat-truncation is satisfied
  std::snprintf(buf, sizeof buf, "%c%02d:%02d", sign, h, m);
  return std::string(buf);
}

// Accepts the Exif form "YYYY:MM:DD HH:MM:SS", ISO 8601 / XMP forms
// ("YYYY-MM-DDTHH:MM[:SS][.fff][Z|+hh:mm]", date only) and IPTC's digit runs;
// returns "YYYY-MM-DDTHH:MM:SS[.fff][+hh:mm]", or "YYYY-MM-DD" when the source
// has no time (inventing midnight would state a time nobody recorded).
// nullopt for anything else, including the all-zero and blank placeholders
// cameras write when their clock is unset.
std::optional<std::string> NormaliseDateTime(std::string_view text) {
  Cursor c{text};
  int y = 0, mo = 0, d = 0;
  if (!c.Digits(4, &y)) return std::nullopt;
  c.Accept(":-");
  if (!c.Digits(2, &mo)) return std::nullopt;
  c.Accept(":-");
  if (!c.Digits(2, &d)) return std::nullopt;
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > DaysIn(y, mo)) return std::nullopt;
  char buf[64];  // room for any int, so -Wformat-truncation is satisfied
  if (c.done()) {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", y, mo, d);
    return std::string(buf);
  }
  if (!c.Accept(" T")) return std::nullopt;
  int h = 0, mi = 0, s = 0;
  if (!c.Digits(2, &h)) return std::nullopt;
  c.Accept(":");
  if (!c.Digits(2, &mi)) return std::nullopt;
  if (c.Accept(":") || (!c.done() && c.s[c.i] >= '0' && c.s[c.i] <= '9')) {
    if (!c.Digits(2, &s)) return std::nullopt;
  }
  // 24:00:00 is ISO's end of day; no camera writes it on purpose.
  if (h > 23 || mi > 59 || s > 60) return std::nullopt;
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", y, mo, d, h, mi, s);
  std::string out = buf;
  if (c.Accept(".,")) {
    std::string frac;
    while (!c.done() && c.s[c.i] >= '0' && c.s[c.i] <= '9') frac.push_back(c.s[c.i++]);
    if (frac.empty()) return std::nullopt;
    frac.resize(3, '0');
    out += "." + frac;
  }
  if (!c.done()) {
    std::optional<std::string> offset = ParseOffset(c);
    if (!offset || !c.done()) return std::nullopt;
    out += *offset;
  }
  return out;
}

// Exif keeps sub-seconds and the UTC offset in separate tags.
std::string ExifDateTime(const Exiv2::ExifData& exif, const std::string& normalised,
                         const char* subsec_key, const char* offset_key,
                         std::vector<std::string>& warnings) {
  std::string out = normalised;
  if (out.size() != 19) return out;  // date only, or already has fraction/offset
  const std::string subsec = ExifText(exif, subsec_key);
  if (!subsec.empty()) {
    if (subsec.find_first_not_of("0123456789") == std::string::npos) {
      std::string frac = subsec;
      frac.resize(3, '0');
      out += "." + frac;
    } else {
      warnings.push_back(std::string("ignored invalid ") + subsec_key + " " + Quote(subsec));
    }
  }
  const std::string offset = ExifText(exif, offset_key);
  if (!offset.empty()) {
    Cursor c{offset};
    std::optional<std::string> parsed = ParseOffset(c);
    if (parsed && c.done()) {
      out += *parsed;
    } else {
      warnings.push_back(std::string("ignored invalid ") + offset_key + " " + Quote(offset));
    }
  }
  return out;
}

void ReadCaptureTime(const Exiv2::ExifData& exif, const Exiv2::XmpData& xmp,
                     const Exiv2::IptcData& iptc, ImageMetadata& md) {
  // Tries one source; true when it gave a usable time.
  auto use = [&](const char* key, const std::string& raw,
                 const std::function<std::string(const std::string&)>& finish) {
    if (raw.empty()) return false;
    std::optional<std::string> t = NormaliseDateTime(raw);
    if (!t) {
      md.warnings.push_back(std::string("ignored invalid ") + key + " " + Quote(raw));
      return false;
    }
    md.capture_time = finish ? finish(*t) : *t;
    md.capture_time_source = key;
    return true;
  };
  if (use("Exif.Photo.DateTimeOriginal", ExifText(exif, "Exif.Photo.DateTimeOriginal"),
          [&](const std::string& t) {
            return ExifDateTime(exif, t, "Exif.Photo.SubSecTimeOriginal",
                                "Exif.Photo.OffsetTimeOriginal", md.warnings);
          })) {
    return;
  }
  if (use("Exif.Photo.DateTimeDigitized", ExifText(exif, "Exif.Photo.DateTimeDigitized"),
          [&](const std::string& t) {
            return ExifDateTime(exif, t, "Exif.Photo.SubSecTimeDigitized",
                                "Exif.Photo.OffsetTimeDigitized", md.warnings);
          })) {
    return;
  }
  for (const char* key : {"Xmp.photoshop.DateCreated", "Xmp.xmp.CreateDate"}) {
    const std::vector<std::string> v = XmpItems(xmp, key);
    if (!v.empty() && use(key, v.front(), nullptr)) return;
  }
  const std::vector<std::string> date = IptcAll(iptc, "Iptc.Application2.DateCreated");
  if (!date.empty()) {
    const std::vector<std::string> time = IptcAll(iptc, "Iptc.Application2.TimeCreated");
    use("Iptc.Application2.DateCreated",
        time.empty() ? date.front() : date.front() + "T" + time.front(), nullptr);
  }
}

// ---- GPS -----------------------------------------------------------------

// Degrees from one to three rationals (degrees, minutes, seconds).
std::optional<double> Sexagesimal(const Exiv2::Value& v) {
  const long n = v.count();
  if (n < 1 || n > 3) return std::nullopt;
  double total = 0, unit = 1;
  for (long i = 0; i < n; ++i) {
    const Exiv2::Rational r = v.toRational(i);
    if (!v.ok() || r.second <= 0 || r.first < 0) return std::nullopt;
    total += static_cast<double>(r.first) / r.second / unit;
    unit *= 60;
  }
  return total;
}

void ReadGps(const Exiv2::ExifData& exif, ImageMetadata& md) {
  auto coordinate = [&](const char* key, const char* ref_key, char positive, char negative,
                        double limit) -> std::optional<double> {
    const Exiv2::Exifdatum* d = FindExif(exif, key);
    if (!d) return std::nullopt;
    std::optional<double> deg = Sexagesimal(d->value());
    const std::string ref = ExifText(exif, ref_key);
    const char r = ref.empty() ? '\0' : ref[0];
    if (!deg || *deg > limit || (r != positive && r != negative)) {
      md.warnings.push_back(std::string("ignored invalid ") + key + " " + Quote(d->toString()) +
                            " (ref " + Quote(ref) + ")");
      return std::nullopt;
    }
    return r == negative ? -*deg : *deg;
  };
  std::optional<double> lat =
      coordinate("Exif.GPSInfo.GPSLatitude", "Exif.GPSInfo.GPSLatitudeRef", 'N', 'S', 90.0);
  std::optional<double> lon =
      coordinate("Exif.GPSInfo.GPSLongitude", "Exif.GPSInfo.GPSLongitudeRef", 'E', 'W', 180.0);
  // Half a position is no position.
  if (lat && lon) {
    md.gps_latitude = lat;
    md.gps_longitude = lon;
  }
  if (const Exiv2::Exifdatum* alt = FindExif(exif, "Exif.GPSInfo.GPSAltitude")) {
    const Exiv2::Rational r = alt->value().toRational(0);
    // Ref 0 (the default when absent) is above sea level, 1 below.
    long ref = 0;
    if (const Exiv2::Exifdatum* d = FindExif(exif, "Exif.GPSInfo.GPSAltitudeRef")) {
      ref = d->value().toLong(0);
    }
    const double metres =
        r.second > 0 && r.first >= 0 ? static_cast<double>(r.first) / r.second : -1;
    // Deepest ocean to well above any aircraft or balloon.
    if (alt->value().ok() && metres >= 0 && metres <= 100000 && (ref == 0 || ref == 1)) {
      md.gps_altitude = ref == 1 ? -metres : metres;
    } else {
      md.warnings.push_back("ignored invalid Exif.GPSInfo.GPSAltitude " + Quote(alt->toString()));
    }
  }
}

// ---- Everything ----------------------------------------------------------

std::string FirstOf(std::initializer_list<std::string> candidates) {
  for (const std::string& s : candidates) {
    if (!s.empty()) return s;
  }
  return {};
}

void Extract(const Exiv2::Image& image, ImageMetadata& md) {
  const Exiv2::ExifData& exif = image.exifData();
  const Exiv2::XmpData& xmp = image.xmpData();
  const Exiv2::IptcData& iptc = image.iptcData();

  ReadCaptureTime(exif, xmp, iptc, md);
  md.make = ExifText(exif, "Exif.Image.Make");
  md.model = ExifText(exif, "Exif.Image.Model");
  md.artist = FirstOf({ExifText(exif, "Exif.Image.Artist"), Join(XmpItems(xmp, "Xmp.dc.creator")),
                       Join(IptcAll(iptc, "Iptc.Application2.Byline"))});
  md.copyright = FirstOf({ExifText(exif, "Exif.Image.Copyright"), XmpLangAlt(xmp, "Xmp.dc.rights"),
                          Join(IptcAll(iptc, "Iptc.Application2.Copyright"))});
  std::vector<std::string> object_name = IptcAll(iptc, "Iptc.Application2.ObjectName");
  md.title = FirstOf({XmpLangAlt(xmp, "Xmp.dc.title"),
                      object_name.empty() ? std::string() : object_name.front(),
                      ExifText(exif, "Exif.Image.ImageDescription")});
  ReadGps(exif, md);

  std::vector<std::string> keywords = XmpItems(xmp, "Xmp.dc.subject");
  for (std::string& k : IptcAll(iptc, "Iptc.Application2.Keywords"))
    keywords.push_back(std::move(k));
  for (std::string& k : keywords) {
    if (std::find(md.keywords.begin(), md.keywords.end(), k) == md.keywords.end()) {
      md.keywords.push_back(std::move(k));
    }
  }
}

// Opens with `open`, reads and extracts; every exiv2 failure becomes a warning.
ImageMetadata Read(const std::function<std::unique_ptr<Exiv2::Image>()>& open) {
  InitExiv2();
  ImageMetadata md;
  std::unique_ptr<Exiv2::Image> image;
  try {
    image = open();
    if (!image) return md;
    image->readMetadata();
  } catch (const Exiv2::AnyError& e) {
    // Not an error: doppel reads formats (GIF, HEIF without BMFF, JXL, ...)
    // that exiv2 does not know; they simply have no metadata here.
    if (e.code() != Exiv2::kerFileContainsUnknownImageType &&
        e.code() != Exiv2::kerMemoryContainsUnknownImageType) {
      md.warnings.push_back(std::string("metadata unreadable (exiv2): ") + ToUtf8(e.what()));
    }
    return md;
  } catch (const std::exception& e) {
    md.warnings.push_back(std::string("metadata unreadable (exiv2): ") + ToUtf8(e.what()));
    return md;
  } catch (...) {
    md.warnings.push_back("metadata unreadable (exiv2): unknown exception");
    return md;
  }
  try {
    Extract(*image, md);
  } catch (const std::exception& e) {  // Exiv2::AnyError derives from std::exception
    ImageMetadata failed;
    failed.warnings = std::move(md.warnings);
    failed.warnings.push_back(std::string("metadata unreadable (exiv2): ") + ToUtf8(e.what()));
    return failed;
  } catch (...) {
    ImageMetadata failed;
    failed.warnings = std::move(md.warnings);
    failed.warnings.push_back("metadata unreadable (exiv2): unknown exception");
    return failed;
  }
  return md;
}

}  // namespace

void InitExiv2() {
  static std::once_flag once;
  std::call_once(once, [] {
    Exiv2::LogMsg::setLevel(Exiv2::LogMsg::mute);
    Exiv2::XmpParser::initialize(XmpLock, &g_xmp_mutex);
#ifdef EXV_ENABLE_BMFF
    // HEIF/AVIF/CR3 metadata; off by default in exiv2 0.27.
    Exiv2::enableBMFF(true);
#endif
  });
}

// exiv2 0.27's factory returns std::auto_ptr (deprecated in C++11, kept by
// libstdc++); it is converted to unique_ptr right at the call.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

ImageMetadata ReadMetadataFromBuffer(const uint8_t* data, size_t size) {
  if (size == 0) return {};
  return Read([&] {
    return std::unique_ptr<Exiv2::Image>(
        Exiv2::ImageFactory::open(data, static_cast<long>(size)).release());
  });
}

ImageMetadata ReadMetadataFromFile(const std::string& path) {
  return Read([&] {
    // A FileIo, not ImageFactory::open(path): that one treats "-" as stdin
    // and "http://..." as a URL to download.
    Exiv2::BasicIo::AutoPtr io(new Exiv2::FileIo(path));
    return std::unique_ptr<Exiv2::Image>(Exiv2::ImageFactory::open(io).release());
  });
}

#pragma GCC diagnostic pop

}  // namespace doppel
