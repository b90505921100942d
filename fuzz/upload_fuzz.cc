// libFuzzer target: what doppel serve reads from requests itself (ids in
// paths, JSON bodies of decisions and lookups, upload form fields) must never
// crash, throw or hang, whatever the bytes, and must keep its contracts.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "server/requests.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  using namespace doppel::server;

  if (auto id = ParseId(in); id && (*id < 0 || in.size() > 18)) std::abort();
  const std::string route = RouteOf(in);
  if (route != "other" && route.rfind("/", 0) != 0) std::abort();

  if (auto d = ParseDecisionBody(in); d.ok()) {
    if (d->note.size() > 2000 * 4) std::abort();  // DisplayPath may expand bytes to \xNN
    if (d->decision == "choose_master" && !d->master_id) std::abort();
  }
  if (auto h = ParseHashLookupJson(in, 31); h.ok()) {
    if (h->radius < 0 || h->radius > 31) std::abort();  // at most the threshold given
    if (doppel::PdqHash::FromHex(h->hash.ToHex()) != h->hash) std::abort();
  }

  // Form fields: split the input into name=value lines.
  std::vector<std::pair<std::string, std::string>> parts;
  size_t pos = 0;
  while (pos < in.size() && parts.size() < 200) {
    size_t nl = in.find('\n', pos);
    if (nl == std::string::npos) nl = in.size();
    const std::string line = in.substr(pos, nl - pos);
    const size_t eq = line.find('=');
    parts.emplace_back(line.substr(0, eq), eq == std::string::npos ? "" : line.substr(eq + 1));
    pos = nl + 1;
  }
  if (auto f = UploadFields(parts); f.ok()) {
    if (f->size() > 64 || f->count("image") || f->count("source")) std::abort();
    for (const auto& [k, v] : *f)
      if (k.empty() || k.size() > 64 || v.size() > 4096) std::abort();
  }
  return 0;
}
