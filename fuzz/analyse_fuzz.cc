// End-to-end fuzzing of what a hostile file reaches: format sniffing, the
// structural content hashers, the libvips decoder adapter (colour conversion,
// strips, orientation), PDQ and the exiv2 adapter, through AnalyseBuffer.
// libvips itself is not instrumented; our code around it is.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "doppel/fingerprint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool ready = doppel::InitImaging().ok();
  if (!ready) std::abort();
  doppel::AnalyseOptions o;
  o.max_pixels = 4'000'000;  // keep each input cheap: bombs are refused from the header
  auto r = doppel::AnalyseBuffer(data, size, o);
  if (r.ok()) {
    const auto& f = r->fingerprints;
    if (f.pdq.quality < 0 || f.pdq.quality > 100) std::abort();
    if (r->info.width <= 0 || r->info.height <= 0) std::abort();
    if (int64_t(r->info.width) * r->info.height > o.max_pixels) std::abort();
  } else if (r.status().message().empty()) {
    std::abort();  // every failure must say what is wrong
  }
  return 0;
}
