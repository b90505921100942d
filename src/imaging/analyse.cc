// AnalyseFile/AnalyseBuffer: one read of the file, every fingerprint from it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "doppel/fingerprint.h"
#include "doppel/signature.h"
#include "imaging/content_hash.h"
#include "imaging/decoder.h"
#include "metadata/exiv2_reader.h"
#include "util/sha256.h"

namespace doppel {
namespace {

constexpr size_t kStreamChunk = 1 << 20;

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

std::string HeadDescription(const uint8_t* data, size_t size) {
  std::string s = "starts with bytes";
  char buf[8];
  for (size_t i = 0; i < std::min<size_t>(size, 8); ++i) {
    std::snprintf(buf, sizeof buf, " %02x", data[i]);
    s += buf;
  }
  return s;
}

// The shared tail: decode, PDQ, content hash, metadata.
Result<ImageRecord> Finish(ImageRecord rec, ContentHashKind kind, const Digest* structural,
                           DecodeInput decode_in, const AnalyseOptions& opt, const uint8_t* head,
                           size_t head_size) {
  decode_in.max_pixels = opt.max_pixels;
  decode_in.hash_pixels = kind == ContentHashKind::kPixels;
  decode_in.cancelled = opt.cancelled;
  auto decoded = DecodeForPdq(decode_in);
  if (!decoded.ok()) {
    if (decoded.status().code() == StatusCode::kUnsupported && kind == ContentHashKind::kPixels)
      return Unsupported(decoded.status().message() + " (" + HeadDescription(head, head_size) + ")");
    return decoded.status();
  }
  DecodedImage& d = decoded.value();
  rec.info = d.info;
  rec.fingerprints.pdq = PdqFromLuminance(d.luma.data(), d.luma_width, d.luma_height);
  rec.fingerprints.signature =
      ComputeSignature(d.luma.data(), d.luma_width, d.luma_height, d.smooth.data(), d.smooth_width,
                       d.smooth_height, d.chroma);
  rec.fingerprints.pdq_pipeline = kPdqPipelineVersion;
  rec.fingerprints.content_kind = kind;
  rec.fingerprints.content_hash =
      CombineContentHash(kind, d.info.orientation, structural ? *structural : d.pixel_digest);
  if (opt.read_metadata) {
    rec.metadata = decode_in.data ? ReadMetadataFromBuffer(decode_in.data, decode_in.size)
                                  : ReadMetadataFromFile(decode_in.path);
  }
  return rec;
}

}  // namespace

Status InitImaging() {
  DOPPEL_RETURN_IF_ERROR(InitVips());
  InitExiv2();
  return Status::OK();
}

Result<ImageRecord> AnalyseBuffer(const uint8_t* data, size_t size, const AnalyseOptions& opt) {
  if (size == 0) return Corruption("empty file (0 bytes)");
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
                opt, data, size);
}

Result<ImageRecord> AnalyseFile(const std::string& path, const AnalyseOptions& opt) {
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
      if (n == 0) return Changed("file shrank while being read (" + std::to_string(got) + " of " + std::to_string(size) + " bytes)");
      got += size_t(n);
    }
    if (opt.cancelled && opt.cancelled()) return Cancelled("stopped on request");
    result = AnalyseBuffer(buf.data(), buf.size(), opt);
    if (buf.capacity() > size_t(opt.max_buffered_bytes)) std::vector<uint8_t>().swap(buf);
  } else {
    // Too large to hold: stream once for the byte hashes, then let libvips
    // stream the decode from the file.
    std::vector<uint8_t> chunk(kStreamChunk);
    Sha256 sha;
    ssize_t n = 0;
    size_t got = 0;
    uint8_t head[16] = {};
    size_t head_size = 0;
    std::unique_ptr<StructuralHasher> hasher;
    ContentHashKind kind = ContentHashKind::kPixels;
    while ((n = ::read(f.fd, chunk.data(), chunk.size())) != 0) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno("read failed after " + std::to_string(got) + " bytes");
      if (got == 0) {
        head_size = std::min<size_t>(size_t(n), sizeof head);
        std::memcpy(head, chunk.data(), head_size);
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
    result = Finish(std::move(rec), kind, hasher ? &structural : nullptr, in, opt, head, head_size);
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
