// libFuzzer target: the numbers a request carries (query strings, path ids,
// JSON and multipart fields) go through one parser, server/requests.cc. Whatever
// the bytes it must never crash, throw or overflow (UBSan), and a number it
// accepts is within the range asked for. The first 8 input bytes choose the
// range; the rest is the text.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "server/requests.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace doppel::server;
  int32_t a = 0, b = 0;
  if (size >= 8) {
    std::memcpy(&a, data, 4);
    std::memcpy(&b, data + 4, 4);
    data += 8;
    size -= 8;
  }
  const std::string in(reinterpret_cast<const char*>(data), size);
  // Ranges from the input, extreme ones included.
  int64_t lo = int64_t(a) * (a & 1 ? 1 : 4'294'967'296ll);
  int64_t hi = int64_t(b) * (b & 1 ? 1 : 4'294'967'296ll);
  if (lo > hi) std::swap(lo, hi);
  if (auto n = ParseNumber(in, "n", lo, hi); n.ok()) {
    if (*n < lo || *n > hi) std::abort();
  } else if (n.status().message().find("n must be") != 0) {
    std::abort();  // the message names the parameter first
  }
  if (auto id = ParseId(in); id && (*id < 0 || in.size() > 18)) std::abort();

  // Query strings: page and per_page from the two halves of the text.
  const std::string first = in.substr(0, in.size() / 2), second = in.substr(in.size() / 2);
  if (auto p = ParsePageRequest(first, second); p.ok()) {
    if (p->page < 1 || p->page > PageRequest::kMaxPage || p->per_page < 1 ||
        p->per_page > PageRequest::kMaxPerPage)
      std::abort();
    if (p->offset() < 0 || p->offset() > PageRequest::kMaxPage * PageRequest::kMaxPerPage)
      std::abort();
  }
  if (auto p = ParsePageRequest(std::nullopt, std::nullopt); !p.ok() || p->offset() != 0)
    std::abort();

  // Lookups: the radius never exceeds the server's threshold.
  const int max_radius = int(uint32_t(a) % 129);
  if (auto h = ParseHashLookup(std::string(64, 'a'), in, max_radius); h.ok())
    if (h->radius < 0 || h->radius > max_radius) std::abort();
  if (auto h = ParseHashLookupJson(in, max_radius); h.ok())
    if (h->radius < 0 || h->radius > max_radius) std::abort();
  if (auto d = ParseDecisionBody(in); d.ok())
    for (auto id : {d->master_id, d->file_id})
      if (id && *id < 1) std::abort();
  return 0;
}
