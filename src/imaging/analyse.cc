// AnalyseFile/AnalyseBuffer: one read of the file, every fingerprint from it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "doppel/fingerprint.h"
#include "doppel/local_words.h"
#include "doppel/signature.h"
#include "imaging/content_hash.h"
#include "imaging/decoder.h"
#include "metadata/exiv2_reader.h"
#include "util/sha256.h"

namespace doppel {
namespace {

constexpr size_t kStreamChunk = 1 << 20;
constexpr size_t kHeadBytes = 4096;  // enough for every allowlisted format's signature

int64_t MtimeNs(const struct stat& st) {
  return int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

Status Errno(const std::string& what) {
  const int e = errno;
  if (e == ENOSPC) return DiskFull(what + ": " + std::strerror(e));
  return IOError(what + ": " + std::strerror(e));
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// The shared tail: decode, PDQ, content hash, metadata. Error text never
// quotes the file's bytes: a file may be private (a link followed into
// someone's home folder) while the catalogue's error column is not.
Result<ImageRecord> Finish(ImageRecord rec, ContentHashKind kind, const Digest* structural,
                           DecodeInput decode_in, const AnalyseOptions& opt) {
  decode_in.max_pixels = opt.max_pixels;
  decode_in.max_decode_bytes = opt.max_decode_bytes;
  decode_in.hash_pixels = kind == ContentHashKind::kPixels;
  decode_in.cancelled = opt.cancelled;
  auto decoded = DecodeForPdq(decode_in);
  if (!decoded.ok()) return decoded.status();
  DecodedImage& d = decoded.value();
  rec.info = d.info;
  rec.fingerprints.pdq = PdqFromLuminance(d.luma.data(), d.luma_width, d.luma_height);
  rec.fingerprints.signature =
      ComputeSignature(d.luma.data(), d.luma_width, d.luma_height, d.smooth.data(), d.smooth_width,
                       d.smooth_height, d.chroma);
  rec.fingerprints.pdq_pipeline = kPdqPipelineVersion;
  rec.fingerprints.local_words = ComputeLocalWords(d.local.data(), d.local_width, d.local_height);
  rec.fingerprints.content_kind = kind;
  rec.fingerprints.content_hash =
      CombineContentHash(kind, d.info.orientation, structural ? *structural : d.pixel_digest);
  if (opt.read_metadata) {
    rec.metadata = decode_in.data ? ReadMetadataFromBuffer(decode_in.data, decode_in.size)
                                  : ReadMetadataFromFile(decode_in.path);
  }
  return rec;
}

// The first bytes decide whether a file is worth reading at all: formats
// doppel does not decode are refused before anything is hashed. Plain
// signatures, not libvips' sniffers: those may need more than the head (a
// TIFF's first IFD can sit at the end of the file).
Status CheckMagic(const uint8_t* p, size_t n) {
  auto starts = [&](const char* sig, size_t len, size_t at = 0) {
    return n >= at + len && std::memcmp(p + at, sig, len) == 0;
  };
  // Signatures hold NUL bytes on purpose; `starts` takes their length.
  // NOLINTBEGIN(bugprone-string-literal-with-embedded-nul)
  const bool known = starts("\xFF\xD8\xFF", 3) ||                    // JPEG
                     starts("\x89PNG\r\n\x1A\n", 8) ||               // PNG
                     starts("II*\0", 4) || starts("MM\0*", 4) ||     // TIFF
                     starts("II+\0", 4) || starts("MM\0+", 4) ||     // BigTIFF
                     starts("GIF87a", 6) || starts("GIF89a", 6) ||   // GIF
                     (starts("RIFF", 4) && starts("WEBP", 4, 8)) ||  // WebP
                     starts("ftyp", 4, 4) ||                         // HEIF, AVIF
                     starts("\xFF\x0A", 2) ||                        // JPEG XL codestream
                     starts("\0\0\0\x0CJXL \r\n\x87\n", 12);         // JPEG XL container
  // NOLINTEND(bugprone-string-literal-with-embedded-nul)
  if (!known) return Unsupported("not a recognised image format");
  return Status::OK();
}

}  // namespace

Status InitImaging() {
  DOPPEL_RETURN_IF_ERROR(InitVips());
  InitExiv2();
  return Status::OK();
}

Result<ImageRecord> AnalyseBuffer(const uint8_t* data, size_t size, const AnalyseOptions& opt) {
  if (size == 0) return Corruption("empty file (0 bytes)");
  DOPPEL_RETURN_IF_ERROR(CheckMagic(data, std::min<size_t>(size, kHeadBytes)));
  ImageRecord rec;
  rec.file_size = int64_t(size);
  rec.fingerprints.sha256 = Sha256::Of(data, size);
  const ContentHashKind kind = DetectContentHashKind(data, size);
  Digest structural{};
  if (kind != ContentHashKind::kPixels) {
    auto hasher = MakeStructuralHasher(kind);
    hasher->Update(data, size);
    DOPPEL_ASSIGN_OR_RETURN(structural, hasher->Finish());
  }
  DecodeInput in;
  in.data = data;
  in.size = size;
  return Finish(std::move(rec), kind, kind == ContentHashKind::kPixels ? nullptr : &structural, in,
                opt);
}

Result<ImageRecord> AnalyseFile(const std::string& path, const AnalyseOptions& opt) {
  // Only regular files are opened: opening a FIFO can block (and wakes its
  // writer), a device may never end.
  struct stat kind {};
  if (::stat(path.c_str(), &kind) == 0 && !S_ISREG(kind.st_mode))
    return Unsupported(S_ISFIFO(kind.st_mode) ? "a named pipe (FIFO), not a picture; not opened"
                                              : "not a regular file; not opened");
  Fd f;
  // O_NONBLOCK: a FIFO named like an image must not hang the scan.
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (f.fd < 0) {
    if (errno == ENOENT) return NotFound("no such file (moved or deleted before it could be read)");
    return Errno("cannot open");
  }
  struct stat before {};
  if (::fstat(f.fd, &before) != 0) return Errno("cannot stat");
  if (!S_ISREG(before.st_mode)) return Unsupported("not a regular file");
  if (before.st_size == 0) return Corruption("empty file (0 bytes)");

  const int64_t size = before.st_size;
  // The signature first: a huge (or sparse) file named like a picture is
  // refused without being read in full.
  uint8_t head[kHeadBytes];
  ssize_t head_n;
  do {
    head_n = ::pread(f.fd, head, sizeof head, 0);
  } while (head_n < 0 && errno == EINTR);
  if (head_n < 0) return Errno("read failed at the start of the file");
  DOPPEL_RETURN_IF_ERROR(CheckMagic(head, size_t(head_n)));
  ImageRecord rec;
  Result<ImageRecord> result = Internal("unset");
  if (size <= opt.max_buffered_bytes) {
    // One read; every consumer works from memory. The buffer is per thread and
    // reused, so a scan's memory is jobs x the largest buffered file.
    thread_local std::vector<uint8_t> buf;
    buf.resize(size_t(size));
    size_t got = 0;
    while (got < size_t(size)) {
      ssize_t n = ::pread(f.fd, buf.data() + got, size_t(size) - got, off_t(got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno("read failed after " + std::to_string(got) + " bytes");
      if (n == 0)
        return Changed("file shrank while being read (" + std::to_string(got) + " of " +
                       std::to_string(size) + " bytes)");
      got += size_t(n);
    }
    if (opt.cancelled && opt.cancelled()) return Cancelled("stopped on request");
    result = AnalyseBuffer(buf.data(), buf.size(), opt);
    if (buf.capacity() > size_t(opt.max_buffered_bytes)) std::vector<uint8_t>().swap(buf);
  } else {
    // Too large to hold: check the header's decode cost first, then stream once for the byte hashes
    // and let libvips stream the decode.
    DecodeInput header_in;
    header_in.path = path;
    header_in.max_pixels = opt.max_pixels;
    header_in.max_decode_bytes = opt.max_decode_bytes;
    DOPPEL_ASSIGN_OR_RETURN(DecodeCost cost, EstimateDecodeCost(header_in));
    DOPPEL_RETURN_IF_ERROR(CheckDecodeCost(cost, header_in));
    std::vector<uint8_t> chunk(kStreamChunk);
    Sha256 sha;
    ssize_t n = 0;
    size_t got = 0;
    std::unique_ptr<StructuralHasher> hasher;
    ContentHashKind kind = ContentHashKind::kPixels;
    while ((n = ::read(f.fd, chunk.data(), chunk.size())) != 0) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno("read failed after " + std::to_string(got) + " bytes");
      if (got == 0) {
        kind = DetectContentHashKind(chunk.data(), size_t(n));
        if (kind != ContentHashKind::kPixels) hasher = MakeStructuralHasher(kind);
      }
      sha.Update(chunk.data(), size_t(n));
      if (hasher) hasher->Update(chunk.data(), size_t(n));
      got += size_t(n);
      if (opt.cancelled && opt.cancelled()) return Cancelled("stopped on request");
    }
    if (int64_t(got) != size) return Changed("file size changed while being read");
    rec.file_size = size;
    rec.fingerprints.sha256 = sha.Finish();
    Digest structural{};
    if (hasher) {
      DOPPEL_ASSIGN_OR_RETURN(structural, hasher->Finish());
    }
    DecodeInput in;
    in.path = path;
    result = Finish(std::move(rec), kind, hasher ? &structural : nullptr, in, opt);
  }
  if (!result.ok()) return result;
  if (opt.test_after_read) opt.test_after_read(path);

  struct stat after {};
  if (::fstat(f.fd, &after) != 0) return Errno("cannot stat");
  if (after.st_size != before.st_size || MtimeNs(after) != MtimeNs(before))
    return Changed("file changed while being read; it will be read again by the next scan");
  result->file_size = size;
  result->mtime_ns = MtimeNs(before);
  return result;
}

}  // namespace doppel
