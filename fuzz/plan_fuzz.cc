// libFuzzer target: the plan reader (docs/plan.md). A plan file is the one
// input of the destructive path that a person can edit, so whatever its bytes
// PlanFromJson must never crash, throw or hang; it must refuse with a message
// naming the file, and what it accepts must keep the reader's contracts
// (paths relative to a Source, no NUL bytes, sane sizes) and write back to a
// plan that reads the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "doppel/replace.h"

namespace {

bool RelativeInside(const std::string& p) {
  if (p.empty() || p.front() == '/') return false;
  const std::string wrapped = "/" + p + "/";
  return wrapped.find("/../") == std::string::npos && wrapped.find("/./") == std::string::npos &&
         wrapped.find("//") == std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto p = doppel::PlanFromJson(text, "fuzz.json");
  if (!p.ok()) {
    if (p.status().message().rfind("fuzz.json: ", 0) != 0) std::abort();  // names the file
    return 0;
  }
  int64_t total = 0;
  for (const doppel::PlannedAction& a : p->actions) {
    if (!RelativeInside(a.path) || !RelativeInside(a.master_path)) std::abort();
    if (a.source.empty() || a.source.find('/') != std::string::npos) std::abort();
    for (const std::string* s : {&a.path, &a.abs_path, &a.master_path, &a.master_abs_path})
      if (s->find('\0') != std::string::npos) std::abort();
    if (a.bytes < 0 || a.sha256.size() != 64 || a.file_id == a.master_file_id) std::abort();
    total += a.bytes;
  }
  if (total != p->bytes_to_reclaim) std::abort();
  auto again = doppel::PlanFromJson(doppel::PlanToJson(*p), "again.json");
  if (!again.ok() || again->actions.size() != p->actions.size()) std::abort();
  for (size_t i = 0; i < p->actions.size(); ++i)
    if (again->actions[i].path != p->actions[i].path ||
        again->actions[i].abs_path != p->actions[i].abs_path)
      std::abort();
  return 0;
}
