#include "imaging/decoder.h"
#include "doppel/rendition.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vips/vips.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

#include "doppel/local_words.h"
#include "util/sha256.h"

namespace doppel {
namespace {

constexpr int kSquash = 512;  // the reference tool's resampling size
constexpr int kStripRows = 64;

// Owns a GObject reference.
struct VipsRef {
  VipsImage* img = nullptr;
  VipsRef() = default;
  explicit VipsRef(VipsImage* i) : img(i) {}
  VipsRef(const VipsRef&) = delete;
  VipsRef& operator=(const VipsRef&) = delete;
  VipsRef(VipsRef&& o) noexcept : img(o.img) { o.img = nullptr; }
  VipsRef& operator=(VipsRef&& o) noexcept {
    std::swap(img, o.img);
    return *this;
  }
  ~VipsRef() {
    if (img) g_object_unref(img);
  }
};
struct RegionRef {
  VipsRegion* r = nullptr;
  explicit RegionRef(VipsImage* img) : r(vips_region_new(img)) {}
  ~RegionRef() {
    if (r) g_object_unref(r);
  }
};

// libvips' error buffer is process-wide: take and clear it in one step, and
// keep only its last line (the most specific one).
std::string TakeVipsError() {
  char* raw = vips_error_buffer_copy();
  std::string s = raw ? raw : "";
  g_free(raw);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  auto nl = s.rfind('\n');
  if (nl != std::string::npos) s = s.substr(nl + 1);
  return s.empty() ? "libvips reported an unspecified error" : s;
}

Status VipsFailure(const std::string& what) {
  std::string msg = TakeVipsError();
  // Map libvips/libjpeg wording to our codes so the catalogue can group them.
  StatusCode code = StatusCode::kCorruption;
  if (msg.find("out of memory") != std::string::npos) code = StatusCode::kTooLarge;
  return Status(code, what + ": " + msg);
}

struct LoaderInfo {
  const char* prefix;  // loader nickname prefix
  const char* format;
};
// libvips names loaders by GType name ("VipsForeignLoadJpegBuffer", ...).
// Only these are accepted: every other loader is refused, trusted or not.
constexpr LoaderInfo kLoaders[] = {
    {"VipsForeignLoadJpeg", "jpeg"}, {"VipsForeignLoadPng", "png"},
    {"VipsForeignLoadTiff", "tiff"}, {"VipsForeignLoadWebp", "webp"},
    {"VipsForeignLoadNsgif", "gif"}, {"VipsForeignLoadHeif", "heif"},
    {"VipsForeignLoadJxl", "jxl"},
};

const char* FormatOfLoader(const char* loader) {
  if (!loader) return nullptr;
  for (const auto& l : kLoaders)
    if (std::strncmp(loader, l.prefix, std::strlen(l.prefix)) == 0) return l.format;
  return nullptr;
}

int BitDepth(VipsBandFormat f) {
  switch (f) {
    case VIPS_FORMAT_UCHAR:
    case VIPS_FORMAT_CHAR:
      return 8;
    case VIPS_FORMAT_USHORT:
    case VIPS_FORMAT_SHORT:
      return 16;
    case VIPS_FORMAT_UINT:
    case VIPS_FORMAT_INT:
    case VIPS_FORMAT_FLOAT:
      return 32;
    case VIPS_FORMAT_DOUBLE:
    case VIPS_FORMAT_COMPLEX:
      return 64;
    default:
      return 0;
  }
}

// The input's bytes, mapped read-only when it is a file (header parsing only
// touches the pages it reads).
class InputBytes {
 public:
  explicit InputBytes(const DecodeInput& in) {
    if (in.data) {
      data_ = in.data;
      size_ = in.size;
      return;
    }
    const int fd = ::open(in.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
      void* m = ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      if (m != MAP_FAILED) {
        map_ = m;
        data_ = static_cast<const uint8_t*>(m);
        size_ = size_t(st.st_size);
      }
    }
    ::close(fd);
  }
  ~InputBytes() {
    if (map_) ::munmap(map_, size_);
  }
  InputBytes(const InputBytes&) = delete;
  InputBytes& operator=(const InputBytes&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* map_ = nullptr;
};

struct JpegLayout {
  bool progressive = false;
  int scans = 0;
  int components = 0;
  int64_t coefficient_bytes = 0;  // libjpeg's whole-picture coefficient buffer
};

// Walks a JPEG's markers the way libjpeg does (fill and extraneous bytes
// skipped, entropy-coded data stepped over) up to EOI. Counting stops one past
// kMaxJpegScans: that is enough to refuse the file.
JpegLayout ParseJpegLayout(const uint8_t* p, size_t n) {
  JpegLayout out;
  bool have_sof = false;
  size_t i = 2;  // after SOI
  while (i + 4 <= n && out.scans <= kMaxJpegScans) {
    if (p[i] != 0xFF || p[i + 1] == 0xFF) {
      ++i;
      continue;
    }
    const uint8_t m = p[i + 1];
    if (m == 0xD9) break;  // EOI
    if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) {
      i += 2;
      continue;
    }
    const size_t len = (size_t(p[i + 2]) << 8) | p[i + 3];
    if (len < 2) break;
    const uint8_t* seg = p + i + 4;
    const size_t seg_len = std::min(len - 2, n - (i + 4));
    const bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
    if (sof && !have_sof && seg_len >= 6) {
      have_sof = true;
      out.progressive = (m & 0x03) == 0x02;  // C2, C6, CA, CE
      const int64_t H = (int64_t(seg[1]) << 8) | seg[2], W = (int64_t(seg[3]) << 8) | seg[4];
      out.components = seg[5];
      int hmax = 1, vmax = 1;
      std::vector<std::pair<int, int>> sampling;
      for (int c = 0; c < out.components && 6 + 3 * size_t(c) + 1 < seg_len; ++c) {
        const uint8_t hv = seg[6 + 3 * c + 1];
        const int h = std::clamp(hv >> 4, 1, 4), v = std::clamp(hv & 15, 1, 4);
        sampling.emplace_back(h, v);
        hmax = std::max(hmax, h);
        vmax = std::max(vmax, v);
      }
      // Per component: blocks across and down, padded to whole MCUs; 64
      // coefficients of 2 bytes each.
      const int64_t mcu_x = (W + 8 * hmax - 1) / (8 * hmax),
                    mcu_y = (H + 8 * vmax - 1) / (8 * vmax);
      for (const auto& [h, v] : sampling) out.coefficient_bytes += mcu_x * h * mcu_y * v * 128;
    }
    i += 2 + len;
    if (m == 0xDA) {
      ++out.scans;
      // Entropy-coded data runs to the next marker that is neither a stuffed
      // zero nor a restart marker.
      while (i + 1 < n) {
        const void* ff = std::memchr(p + i, 0xFF, n - i);
        if (!ff) {
          i = n;
          break;
        }
        i = size_t(static_cast<const uint8_t*>(ff) - p);
        if (i + 1 >= n) break;
        const uint8_t c = p[i + 1];
        if (c == 0xFF) {
          ++i;
        } else if (c == 0x00 || (c >= 0xD0 && c <= 0xD7)) {
          i += 2;
        } else {
          break;
        }
      }
    }
  }
  return out;
}

uint32_t ReadU16(const uint8_t* p, bool le) { return le ? p[0] | (p[1] << 8) : (p[0] << 8) | p[1]; }
uint32_t ReadU32(const uint8_t* p, bool le) {
  return le ? uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) |
                  (uint32_t(p[3]) << 24)
            : (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) |
                  uint32_t(p[3]);
}

// Rows of tiles libvips' TIFF loader holds at once for page 1: TileLength of
// the first IFD (a tile is decoded whole), 0 for a striped file (libvips
// reads strips scanline by scanline: a 16,000 x 16,000 single-strip file
// peaks at 85 MB), -1 when the IFD cannot be read here (BigTIFF, damaged):
// the caller then assumes the whole page.
int64_t TiffTileRows(const uint8_t* p, size_t n) {
  if (n < 8) return -1;
  const bool le = p[0] == 'I';
  if (ReadU16(p + 2, le) != 42) return -1;
  const size_t ifd = ReadU32(p + 4, le);
  if (ifd + 2 > n) return -1;
  const size_t count = ReadU16(p + ifd, le);
  int64_t tile_length = 0;
  for (size_t k = 0; k < count && ifd + 2 + 12 * (k + 1) <= n; ++k) {
    const uint8_t* e = p + ifd + 2 + 12 * k;
    const uint32_t tag = ReadU16(e, le), type = ReadU16(e + 2, le);
    const int64_t value = type == 3 ? ReadU16(e + 8, le) : type == 4 ? ReadU32(e + 8, le) : -1;
    if (tag == 323 && value > 0) tile_length = value;
  }
  return tile_length;
}

// Opens page 1 lazily (header only until pixels are asked for).
Result<VipsRef> Open(const DecodeInput& in, const char* format, int jpeg_shrink) {
  VipsImage* img = nullptr;
  const bool is_jpeg = std::strcmp(format, "jpeg") == 0;
  // fail_on=truncated: a truncated or corrupt file is an error, not a grey
  // bottom half silently hashed as if it were the picture.
  if (in.data) {
    if (is_jpeg)
      img = vips_image_new_from_buffer(in.data, in.size, "", "access", VIPS_ACCESS_SEQUENTIAL,
                                       "fail_on", VIPS_FAIL_ON_TRUNCATED, "shrink", jpeg_shrink,
                                       "autorotate", FALSE, nullptr);
    else
      img = vips_image_new_from_buffer(in.data, in.size, "", "access", VIPS_ACCESS_SEQUENTIAL,
                                       "fail_on", VIPS_FAIL_ON_TRUNCATED, nullptr);
  } else {
    if (is_jpeg)
      img = vips_image_new_from_file(in.path.c_str(), "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                     VIPS_FAIL_ON_TRUNCATED, "shrink", jpeg_shrink, "autorotate",
                                     FALSE, nullptr);
    else
      img = vips_image_new_from_file(in.path.c_str(), "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                     VIPS_FAIL_ON_TRUNCATED, nullptr);
  }
  if (!img) return VipsFailure("cannot read image header");
  return VipsRef(img);
}

// Turns any decoded image into 8-bit sRGB (3 bands) or 8-bit grey (1 band),
// alpha composited over white. Every step is a point operation, so it streams.
Result<VipsRef> ToDisplayRgb(VipsImage* raw) {
  VipsRef cur;
  g_object_ref(raw);
  cur.img = raw;
  // `out` by reference: it is read after the operation in the first argument ran.
  auto step = [&](int rc, VipsImage*& out, const char* what) -> Status {
    if (rc != 0) return VipsFailure(std::string("cannot convert colours (") + what + ")");
    cur = VipsRef(out);
    return Status::OK();
  };
  VipsInterpretation interp = vips_image_guess_interpretation(cur.img);
  const bool grey = interp == VIPS_INTERPRETATION_B_W || interp == VIPS_INTERPRETATION_GREY16;
  const VipsInterpretation target = grey ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB;
  if (interp != target || cur.img->BandFmt != VIPS_FORMAT_UCHAR) {
    VipsImage* out = nullptr;
    if (interp == target) {
      // Same space, wider samples (e.g. float sRGB): scale into 0..255.
      DOPPEL_RETURN_IF_ERROR(
          step(vips_cast(cur.img, &out, VIPS_FORMAT_UCHAR, nullptr), out, "cast"));
    } else {
      DOPPEL_RETURN_IF_ERROR(step(vips_colourspace(cur.img, &out, target, nullptr), out,
                                  vips_enum_nick(VIPS_TYPE_INTERPRETATION, interp)));
      if (cur.img->BandFmt != VIPS_FORMAT_UCHAR) {
        DOPPEL_RETURN_IF_ERROR(
            step(vips_cast(cur.img, &out, VIPS_FORMAT_UCHAR, nullptr), out, "cast"));
      }
    }
  }
  if (vips_image_hasalpha(cur.img)) {
    const int colour_bands = cur.img->Bands - 1;
    double white[4] = {255, 255, 255, 255};
    VipsArrayDouble* bg = vips_array_double_new(white, std::min(colour_bands, 4));
    VipsImage* out = nullptr;
    int rc = vips_flatten(cur.img, &out, "background", bg, nullptr);
    vips_area_unref(VIPS_AREA(bg));
    DOPPEL_RETURN_IF_ERROR(step(rc, out, "flatten alpha"));
  }
  if (cur.img->Bands != 1 && cur.img->Bands != 3) {
    VipsImage* out = nullptr;
    const int n = cur.img->Bands >= 3 ? 3 : 1;
    DOPPEL_RETURN_IF_ERROR(
        step(vips_extract_band(cur.img, &out, 0, "n", n, nullptr), out, "bands"));
  }
  return cur;
}

// libvips reports damage inside a JPEG's entropy-coded data only as
// warnings (fail_on=truncated lets them through, fail_on=warning also rejects
// harmless ones such as "extraneous bytes before marker"). Decoding runs in
// the calling thread, so each decode collects its own warnings here and
// rejects the file on the ones that mean the picture is damaged.
thread_local std::vector<std::string>* t_warnings = nullptr;

// The first warning that means lost or garbled picture data, if any.
const std::string* DamageIn(const std::vector<std::string>& list) {
  static const char* const kDamage[] = {
      "premature end of data segment",  // libjpeg JWRN_HIT_MARKER
      "bad Huffman code",               // JWRN_HUFF_BAD_CODE
      "bad arithmetic code",            // JWRN_ARITH_BAD_CODE
      "instead of RST",                 // JWRN_MUST_RESYNC
      "Premature end of JPEG file",     // JWRN_JPEG_EOF
      "Inconsistent progression",       // JWRN_BOGUS_PROGRESSION
  };
  for (const auto& w : list)
    for (const char* d : kDamage)
      if (w.find(d) != std::string::npos) return &w;
  return nullptr;
}

struct DecodeWarnings {
  std::vector<std::string> list;
  DecodeWarnings() { t_warnings = &list; }
  ~DecodeWarnings() { t_warnings = nullptr; }
  DecodeWarnings(const DecodeWarnings&) = delete;
  DecodeWarnings& operator=(const DecodeWarnings&) = delete;
  const std::string* Damage() const { return DamageIn(list); }
};

}  // namespace

Status InitVips() {
  static std::once_flag once;
  static Status status;
  std::call_once(once, [] {
    if (VIPS_INIT("doppel") != 0) {
      status = Internal("cannot initialise libvips: " + TakeVipsError());
      return;
    }
    vips_cache_set_max(0);    // every file is decoded once: caching only costs memory
    vips_concurrency_set(1);  // doppel parallelises across files, not inside one
    vips_block_untrusted_set(
        TRUE);  // ImageMagick, PDF, SVG, ... loaders are not for untrusted bytes
    // libvips 8.14 still flags its JPEG XL loader untrusted because it is
    // young; libjxl is fuzzed continuously upstream and archives do hold JXL.
    vips_operation_block_set("VipsForeignLoadJxl", FALSE);
    // The library never prints: libvips' warnings go to the decoding
    // thread's collector instead of the console (see DecodeWarnings).
    g_log_set_handler(
        "VIPS", GLogLevelFlags(G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO),
        [](const gchar*, GLogLevelFlags, const gchar* message, gpointer) {
          if (t_warnings && message && t_warnings->size() < 16) t_warnings->emplace_back(message);
        },
        nullptr);
  });
  return status;
}

void ApplyOrientation(std::vector<float>& px, int& w, int& h, int orientation) {
  if (orientation <= 1 || orientation > 8) return;
  const int W = w, H = h;
  const bool swap = orientation >= 5;
  const int ow = swap ? H : W, oh = swap ? W : H;
  std::vector<float> out(px.size());
  for (int y = 0; y < oh; ++y) {
    for (int x = 0; x < ow; ++x) {
      int sx = x, sy = y;  // source pixel in stored orientation
      switch (orientation) {
        case 2:
          sx = W - 1 - x;
          sy = y;
          break;
        case 3:
          sx = W - 1 - x;
          sy = H - 1 - y;
          break;
        case 4:
          sx = x;
          sy = H - 1 - y;
          break;
        case 5:
          sx = y;
          sy = x;
          break;
        case 6:
          sx = y;
          sy = H - 1 - x;
          break;
        case 7:
          sx = W - 1 - y;
          sy = H - 1 - x;
          break;
        case 8:
          sx = W - 1 - y;
          sy = x;
          break;
      }
      out[size_t(y) * ow + x] = px[size_t(sy) * W + sx];
    }
  }
  px.swap(out);
  w = ow;
  h = oh;
}

// Bytes each loader holds per pixel of page 1 when it decodes the whole page
// at once, measured as peak RSS over a large flat picture minus the process'
// baseline (docs/benchmarks.md, "Hostile inputs"); rounded up.
constexpr int64_t kGifBytesPerPixel = 8;    // measured 4.8: libnsgif's RGBA frame, libvips' copy
constexpr int64_t kWebpBytesPerPixel = 10;  // measured 7.8: libwebp's ARGB planes, the RGBA output
constexpr int64_t kHeifBytesPerPixel = 10;  // measured 7.4 (8-bit): libheif's planes, the output
constexpr int64_t kJxlBytesPerPixel = 16;   // measured 14.9: libjxl's float planes, the output

namespace {

// The allowlisted format of the input, or why it is refused.
Result<const char*> FindFormat(const DecodeInput& in) {
  const char* loader = in.data ? vips_foreign_find_load_buffer(in.data, in.size)
                               : vips_foreign_find_load(in.path.c_str());
  const char* format = FormatOfLoader(loader);
  if (!format) {
    vips_error_clear();
    if (loader)
      return Unsupported(std::string("image format not handled by doppel (libvips loader ") +
                         loader + ")");
    return Unsupported("not a recognised image format");
  }
  return format;
}

DecodeCost CostOf(const DecodeInput& in, const char* format, VipsImage* header) {
  DecodeCost cost;
  cost.format = format;
  cost.width = header->Xsize;
  cost.height = header->Ysize;
  const int64_t W = cost.width, H = cost.height, pixels = W * H;
  const int64_t sample = std::max(1, BitDepth(header->BandFmt) / 8);
  const int64_t pixel_bytes = int64_t(header->Bands) * sample;
  if (cost.format == "jpeg") {
    InputBytes bytes(in);
    const JpegLayout layout = ParseJpegLayout(bytes.data(), bytes.size());
    cost.jpeg_scans = layout.scans;
    // One scan that holds every component streams MCU row by MCU row;
    // progressive or multi-scan files make libjpeg keep every coefficient.
    cost.full_frame = layout.progressive || layout.scans > 1;
    cost.bytes = cost.full_frame ? layout.coefficient_bytes : W * 16 * pixel_bytes * 2;
  } else if (cost.format == "png") {
    int interlaced = 0;
    if (vips_image_get_typeof(header, "interlaced"))
      vips_image_get_int(header, "interlaced", &interlaced);
    cost.full_frame = interlaced != 0;  // Adam7 is decoded into one whole-page buffer
    cost.bytes = cost.full_frame ? pixels * pixel_bytes : W * 2 * pixel_bytes;
  } else if (cost.format == "tiff") {
    InputBytes bytes(in);
    int64_t rows = bytes.data() ? TiffTileRows(bytes.data(), bytes.size()) : -1;
    if (rows < 0) rows = H;
    if (rows == 0) rows = kStripRows;  // striped: our own strips
    cost.full_frame = rows >= H;
    // A row of decoded tiles (or strip of scanlines) and libvips' copy of it.
    cost.bytes = W * std::min(rows, H) * pixel_bytes * 2;
  } else {
    cost.full_frame = true;
    const int64_t per_pixel = cost.format == "gif"    ? kGifBytesPerPixel
                              : cost.format == "webp" ? kWebpBytesPerPixel
                              : cost.format == "heif" ? kHeifBytesPerPixel * sample
                                                      : kJxlBytesPerPixel;
    cost.bytes = pixels * per_pixel;
  }
  return cost;
}

}  // namespace

Result<std::string> SniffFormat(const DecodeInput& in) {
  DOPPEL_RETURN_IF_ERROR(InitVips());
  DOPPEL_ASSIGN_OR_RETURN(const char* format, FindFormat(in));
  return std::string(format);
}

Result<DecodeCost> EstimateDecodeCost(const DecodeInput& in) {
  DOPPEL_RETURN_IF_ERROR(InitVips());
  DOPPEL_ASSIGN_OR_RETURN(const char* format, FindFormat(in));
  DOPPEL_ASSIGN_OR_RETURN(VipsRef header, Open(in, format, 1));
  return CostOf(in, format, header.img);
}

Status CheckDecodeCost(const DecodeCost& cost, const DecodeInput& in) {
  const std::string size = std::to_string(cost.width) + " x " + std::to_string(cost.height);
  if (in.max_pixels > 0 && int64_t(cost.width) * cost.height > in.max_pixels)
    return TooLarge(size + " pixels exceeds the limit of " + std::to_string(in.max_pixels) +
                    " pixels (raise --max-pixels to accept it)");
  if (cost.jpeg_scans > kMaxJpegScans)
    return TooLarge("JPEG with more than " + std::to_string(kMaxJpegScans) +
                    " scans; refused before decoding (each scan re-reads the whole picture)");
  if (in.max_decode_bytes > 0 && cost.bytes > in.max_decode_bytes) {
    const int64_t mib = 1 << 20;
    return TooLarge(size + " " + cost.format + (cost.format == "jpeg" ? " (progressive)" : "") +
                    " needs about " + std::to_string((cost.bytes + mib - 1) / mib) +
                    " MiB to decode, over the limit of " +
                    std::to_string(in.max_decode_bytes / mib) +
                    " MiB; refused before decoding (raise --max-decode-mb to accept it)");
  }
  return Status::OK();
}

namespace {
Result<DecodedImage> DecodeUnchecked(const DecodeInput& in);
}  // namespace

Result<DecodedImage> DecodeForPdq(const DecodeInput& in) {
  DecodeWarnings warnings;
  // Every libvips object of the decode is released inside: some loaders
  // report what went wrong only when they are closed.
  Result<DecodedImage> out = DecodeUnchecked(in);
  if (!out.ok()) return out;
  if (const std::string* damage = warnings.Damage()) {
    std::string what = *damage;
    if (what.rfind("VipsJpeg: ", 0) == 0) what = what.substr(10);
    while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
    return Corruption("damaged image data: " + what);
  }
  return out;
}

namespace {
Result<DecodedImage> DecodeUnchecked(const DecodeInput& in) {
  DOPPEL_ASSIGN_OR_RETURN(const char* format, FindFormat(in));
  DecodedImage out;
  out.info.format = format;
  DOPPEL_ASSIGN_OR_RETURN(VipsRef header, Open(in, format, 1));
  // Everything the decode will cost is checked from the header first: a
  // refused file never reaches a loader's pixel code.
  DOPPEL_RETURN_IF_ERROR(CheckDecodeCost(CostOf(in, format, header.img), in));
  const int W = header.img->Xsize, H = header.img->Ysize;
  out.info.width = W;
  out.info.height = H;
  out.info.bands = header.img->Bands;
  out.info.bit_depth = BitDepth(header.img->BandFmt);
  out.info.has_alpha = vips_image_hasalpha(header.img);
  out.info.colourspace =
      vips_enum_nick(VIPS_TYPE_INTERPRETATION, vips_image_guess_interpretation(header.img));
  int pages = 1;
  if (vips_image_get_typeof(header.img, VIPS_META_N_PAGES) &&
      vips_image_get_int(header.img, VIPS_META_N_PAGES, &pages) == 0)
    out.info.pages = std::max(1, pages);
  out.info.orientation = vips_image_get_orientation(header.img);
  if (out.info.orientation < 1 || out.info.orientation > 8) out.info.orientation = 1;

  const bool squash = W > kSquash || H > kSquash;
  // JPEG shrink-on-load: the largest DCT scale that keeps both sides >= 512
  // (docs/fingerprints.md; median 0 bits from a full decode). Never when
  // hashing pixels: that needs the full-size samples.
  int shrink = 1;
  if (std::strcmp(format, "jpeg") == 0 && squash && !in.hash_pixels) {
    for (int s : {8, 4, 2})
      if ((std::min(W, H) + s - 1) / s >= kSquash) {
        shrink = s;
        break;
      }
  }
  VipsRef raw;
  if (shrink > 1) {
    DOPPEL_ASSIGN_OR_RETURN(raw, Open(in, format, shrink));
  } else {
    raw = std::move(header);
  }
  DOPPEL_ASSIGN_OR_RETURN(VipsRef rgb, ToDisplayRgb(raw.img));

  const int w = rgb.img->Xsize, h = rgb.img->Ysize, bands = rgb.img->Bands;
  const int tw = squash ? kSquash : w, th = squash ? kSquash : h;
  std::vector<int> cols(tw), rows(th);
  for (int x = 0; x < tw; ++x) cols[x] = squash ? int(double(x) * w / kSquash) : x;
  for (int y = 0; y < th; ++y) rows[y] = squash ? int(double(y) * h / kSquash) : y;

  out.luma.assign(size_t(tw) * th, 0.0f);
  RegionRef region(rgb.img);
  std::optional<RegionRef> raw_region;
  Sha256 pixel_hash;
  if (in.hash_pixels) {
    raw_region.emplace(raw.img);
    // Header first, so images of other shapes or sample types never collide.
    const int64_t header_fields[4] = {raw.img->Xsize, raw.img->Ysize, raw.img->Bands,
                                      raw.img->BandFmt};
    pixel_hash.Update(header_fields, sizeof header_fields);
  }
  // Area averages on a 64 x 64 grid (what PDQ's blur and decimation
  // approximate, without aliasing), and the 4 x 4 chroma grid from every
  // fourth pixel of every fourth row (plenty for 16 cells).
  constexpr int kSmooth = 64;
  const bool smooth = w >= kSmooth && h >= kSmooth;
  std::vector<double> area(smooth ? size_t(kSmooth) * kSmooth : 0);
  std::vector<float> area_row(smooth ? kSmooth : 0);
  std::vector<int> colbin(smooth ? w : 0), chroma_col(w);
  for (int x = 0; x < w; ++x) {
    if (smooth) colbin[x] = int(int64_t(x) * kSmooth / w);
    chroma_col[x] = int(int64_t(x) * 4 / w);
  }
  std::array<double, 48> chroma_acc{};  // Cb, Cr, count per cell
  // The local-feature rendition: area averages keeping the aspect.
  const double local_scale = std::min(1.0, double(kLocalSide) / std::max(w, h));
  const int loc_w = std::max(1, int(std::lround(w * local_scale)));
  const int loc_h = std::max(1, int(std::lround(h * local_scale)));
  const bool want_local = std::min(loc_w, loc_h) >= 16;
  std::vector<double> local_area(want_local ? size_t(loc_w) * loc_h : 0);
  std::vector<float> local_row(want_local ? loc_w : 0);
  std::vector<int> local_col(want_local ? w : 0);
  for (int x = 0; want_local && x < w; ++x) local_col[x] = int(int64_t(x) * loc_w / w);
  int next_row = 0;  // index into rows[]
  for (int y0 = 0; y0 < h; y0 += kStripRows) {
    if (in.cancelled && in.cancelled()) return Cancelled("stopped on request");
    // Damage is final: stop now instead of decoding the rest of a picture
    // that will be refused (a truncated file declaring a huge size would
    // otherwise be "decoded" to its last row). DecodeForPdq reports it.
    if (t_warnings && DamageIn(*t_warnings)) return DecodedImage{};
    VipsRect rect{0, y0, w, std::min(kStripRows, h - y0)};
    if (raw_region) {
      // Pull the raw strip first: the converted strip then reads the same rows
      // from libvips' sequential line cache instead of decoding them twice.
      if (vips_region_prepare(raw_region->r, &rect) != 0)
        return VipsFailure("cannot decode pixels");
      const size_t line = VIPS_IMAGE_SIZEOF_LINE(raw.img);
      for (int y = rect.top; y < rect.top + rect.height; ++y)
        pixel_hash.Update(VIPS_REGION_ADDR(raw_region->r, 0, y), line);
    }
    if (vips_region_prepare(region.r, &rect) != 0) return VipsFailure("cannot decode pixels");
    for (int y = rect.top; y < rect.top + rect.height; ++y) {
      const auto* line = reinterpret_cast<const uint8_t*>(VIPS_REGION_ADDR(region.r, 0, y));
      if (smooth) {
        // One row into float bins, then into the double grid: exact enough,
        // and the inner loop stays short.
        std::fill(area_row.begin(), area_row.end(), 0.0f);
        if (bands == 3)
          for (int x = 0; x < w; ++x) {
            const uint8_t* p = line + 3 * x;
            area_row[colbin[x]] += 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
          }
        else
          for (int x = 0; x < w; ++x) area_row[colbin[x]] += line[x];
        double* arow = &area[size_t(int64_t(y) * kSmooth / h) * kSmooth];
        for (int bx = 0; bx < kSmooth; ++bx) arow[bx] += area_row[bx];
      }
      if (want_local) {
        std::fill(local_row.begin(), local_row.end(), 0.0f);
        if (bands == 3)
          for (int x = 0; x < w; ++x) {
            const uint8_t* p = line + 3 * x;
            local_row[local_col[x]] += 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
          }
        else
          for (int x = 0; x < w; ++x) local_row[local_col[x]] += line[x];
        double* lrow = &local_area[size_t(int64_t(y) * loc_h / h) * loc_w];
        for (int bx = 0; bx < loc_w; ++bx) lrow[bx] += local_row[bx];
      }
      if (bands == 3 && (y & 3) == 0) {
        double* crow = &chroma_acc[size_t(int64_t(y) * 4 / h) * 12];
        for (int x = 0; x < w; x += 4) {
          const uint8_t* p = line + 3 * x;
          double* c = crow + 3 * chroma_col[x];
          c[0] += -0.168736 * p[0] - 0.331264 * p[1] + 0.5 * p[2];
          c[1] += 0.5 * p[0] - 0.418688 * p[1] - 0.081312 * p[2];
          c[2] += 1;
        }
      }
    }
    while (next_row < th && rows[next_row] < rect.top + rect.height) {
      const int sy = rows[next_row];
      float* dst = &out.luma[size_t(next_row) * tw];
      const auto* line = reinterpret_cast<const uint8_t*>(VIPS_REGION_ADDR(region.r, 0, sy));
      if (bands == 3) {
        for (int x = 0; x < tw; ++x) {
          const uint8_t* p = line + 3 * cols[x];
          dst[x] = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
        }
      } else {
        for (int x = 0; x < tw; ++x) dst[x] = line[cols[x]];
      }
      ++next_row;
    }
  }
  if (next_row < th) return Corruption("decoder returned fewer rows than the header promised");
  if (in.hash_pixels) out.pixel_digest = pixel_hash.Finish();
  int sw = kSmooth, sh = kSmooth;
  if (smooth) {
    // Bin sizes: how many source columns/rows fell in each bin.
    std::vector<int> ncol(kSmooth, 0), nrow(kSmooth, 0);
    for (int x = 0; x < w; ++x) ++ncol[colbin[x]];
    for (int y = 0; y < h; ++y) ++nrow[int(int64_t(y) * kSmooth / h)];
    out.smooth.resize(area.size());
    for (int by = 0; by < kSmooth; ++by)
      for (int bx = 0; bx < kSmooth; ++bx)
        out.smooth[size_t(by) * kSmooth + bx] =
            float(area[size_t(by) * kSmooth + bx] / (double(ncol[bx]) * nrow[by]));
  } else {
    out.smooth = out.luma;  // a tiny picture: every pixel is a sample
    sw = tw;
    sh = th;
  }
  std::vector<float> cb(16), cr(16);
  for (int k = 0; k < 16; ++k) {
    const double n = chroma_acc[3 * k + 2];
    cb[k] = n > 0 ? float(chroma_acc[3 * k] / n) : 0.0f;
    cr[k] = n > 0 ? float(chroma_acc[3 * k + 1] / n) : 0.0f;
  }
  if (want_local) {
    std::vector<int> ncol(loc_w, 0), nrow(loc_h, 0);
    for (int x = 0; x < w; ++x) ++ncol[local_col[x]];
    for (int y = 0; y < h; ++y) ++nrow[int(int64_t(y) * loc_h / h)];
    out.local.resize(local_area.size());
    for (int by = 0; by < loc_h; ++by)
      for (int bx = 0; bx < loc_w; ++bx) {
        const double n = double(ncol[bx]) * nrow[by];
        out.local[size_t(by) * loc_w + bx] =
            n > 0 ? float(local_area[size_t(by) * loc_w + bx] / n) : 0;
      }
    int ow = loc_w, oh = loc_h;
    ApplyOrientation(out.local, ow, oh, out.info.orientation);
    out.local_width = ow;
    out.local_height = oh;
  }
  int lw = tw, lh = th;
  ApplyOrientation(out.luma, lw, lh, out.info.orientation);
  ApplyOrientation(out.smooth, sw, sh, out.info.orientation);
  out.smooth_width = sw;
  out.smooth_height = sh;
  int gw = 4, gh = 4;
  ApplyOrientation(cb, gw, gh, out.info.orientation);
  gw = gh = 4;
  ApplyOrientation(cr, gw, gh, out.info.orientation);
  for (int k = 0; k < 16; ++k) {
    out.chroma[2 * k] = cb[k];
    out.chroma[2 * k + 1] = cr[k];
  }
  out.luma_width = lw;
  out.luma_height = lh;
  return out;
}

}  // namespace

// --- Renditions (doppel/rendition.h) ---

namespace {

Result<Rendition> Render(const DecodeInput& in, const RenditionOptions& opt) {
  DOPPEL_RETURN_IF_ERROR(InitVips());
  if (opt.max_side < 1 || opt.max_side > 8192)
    return InvalidArgument("rendition size must be 1..8192 pixels");
  DOPPEL_ASSIGN_OR_RETURN(const char* format, FindFormat(in));
  Rendition r;
  r.format = format;
  {
    DOPPEL_ASSIGN_OR_RETURN(VipsRef header, Open(in, format, 1));
    r.source_width = header.img->Xsize;
    r.source_height = header.img->Ysize;
    DecodeInput limits = in;
    limits.max_pixels = opt.max_pixels;
    limits.max_decode_bytes = opt.max_decode_bytes;
    DOPPEL_RETURN_IF_ERROR(CheckDecodeCost(CostOf(in, format, header.img), limits));
  }
  DecodeWarnings warnings;
  // JPEG shrink-on-load as far as keeps the longest side >= max_side, then a
  // filtered resize (streams top to bottom), then orientation on the small image.
  int shrink = 1;
  if (std::strcmp(format, "jpeg") == 0)
    for (int f : {8, 4, 2})
      if (std::max(r.source_width, r.source_height) / f >= opt.max_side) {
        shrink = f;
        break;
      }
  DOPPEL_ASSIGN_OR_RETURN(VipsRef raw, Open(in, format, shrink));
  DOPPEL_ASSIGN_OR_RETURN(VipsRef rgb, ToDisplayRgb(raw.img));
  const int longest = std::max(rgb.img->Xsize, rgb.img->Ysize);
  if (longest > opt.max_side) {
    VipsImage* out = nullptr;
    if (vips_resize(rgb.img, &out, double(opt.max_side) / longest, nullptr) != 0)
      return VipsFailure("cannot decode picture");
    rgb = VipsRef(out);
  }
  {
    // Materialise the small picture before rotating (rotation needs random access).
    VipsImage* mem = vips_image_copy_memory(rgb.img);
    if (!mem) return VipsFailure("cannot decode picture");
    rgb = VipsRef(mem);
    VipsImage* out = nullptr;
    if (vips_autorot(rgb.img, &out, nullptr) != 0) return VipsFailure("cannot apply orientation");
    rgb = VipsRef(out);
  }
  if (opt.grey && rgb.img->Bands == 3) {
    VipsImage* out = nullptr;
    if (vips_colourspace(rgb.img, &out, VIPS_INTERPRETATION_B_W, nullptr) != 0)
      return VipsFailure("cannot convert to grey");
    rgb = VipsRef(out);
  }
  size_t n = 0;
  void* mem = vips_image_write_to_memory(rgb.img, &n);
  if (!mem) return VipsFailure("cannot decode picture");
  if (const std::string* bad = warnings.Damage()) {
    g_free(mem);
    return Corruption("damaged image data: " + *bad);
  }
  r.width = rgb.img->Xsize;
  r.height = rgb.img->Ysize;
  r.bands = rgb.img->Bands;
  const uint8_t* p = static_cast<const uint8_t*>(mem);
  r.pixels.assign(p, p + n);
  g_free(mem);
  if (r.pixels.size() != size_t(r.width) * r.height * r.bands)
    return Internal("unexpected rendition layout");
  return r;
}

}  // namespace

Result<Rendition> RenderFile(const std::string& path, const RenditionOptions& options) {
  DecodeInput in;
  in.path = path;
  return Render(in, options);
}

Result<Rendition> RenderBuffer(const uint8_t* data, size_t size, const RenditionOptions& options) {
  if (!data || size == 0) return InvalidArgument("empty image data");
  DecodeInput in;
  in.data = data;
  in.size = size;
  return Render(in, options);
}

Result<std::string> EncodeJpeg(const Rendition& r, int quality) {
  DOPPEL_RETURN_IF_ERROR(InitVips());
  if (r.width <= 0 || r.height <= 0 || (r.bands != 1 && r.bands != 3) ||
      r.pixels.size() != size_t(r.width) * r.height * r.bands)
    return InvalidArgument("not a valid rendition");
  VipsImage* img = vips_image_new_from_memory(r.pixels.data(), r.pixels.size(), r.width, r.height,
                                              r.bands, VIPS_FORMAT_UCHAR);
  if (!img) return VipsFailure("cannot wrap rendition");
  VipsRef ref(img);
  void* buf = nullptr;
  size_t len = 0;
  if (vips_jpegsave_buffer(img, &buf, &len, "Q", std::clamp(quality, 1, 100), "strip", TRUE,
                           nullptr) != 0)
    return VipsFailure("cannot encode JPEG");
  std::string out(static_cast<const char*>(buf), len);
  g_free(buf);
  return out;
}

}  // namespace doppel
