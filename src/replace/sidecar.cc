// Files doppel writes into the archive's own folders (XMP sidecars): atomic,
// never through a symbolic link, through Env, recorded in the audit trail.
#include <nlohmann/json.hpp>
#include <random>

#include "doppel/replace.h"
#include "replace/json_util.h"
#include "util/paths.h"
#include "util/sha256.h"

namespace doppel {
namespace {

std::string RandomSuffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  uint64_t v = rng();
  std::string s;
  for (int i = 0; i < 12; ++i, v >>= 4) s += kHex[v & 15];
  return s;
}

// The XMP namespace ConsolidatedToXmp declares: a sidecar with it is doppel's.
constexpr const char* kDoppelXmlns = "xmlns:doppel=";

}  // namespace

Status WriteFileAtomically(Env& env, const std::string& path, const std::string& bytes) {
  DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo target, env.Stat(path));
  if (target.exists && target.is_symlink)
    return InvalidArgument(DisplayPath(path) +
                           " is a symbolic link; doppel never writes through one: not written "
                           "(remove the link to let doppel write the file)");
  if (target.exists && !target.is_regular)
    return InvalidArgument(DisplayPath(path) + " is not a regular file: not written");
  // O_EXCL makes the name ours; a collision (or a planted link) is another try.
  std::string tmp;
  std::unique_ptr<Env::WritableFile> file;
  for (int attempt = 0; !file; ++attempt) {
    tmp = path + ".doppel-tmp-" + RandomSuffix();
    auto f = env.NewExclusiveFile(tmp);
    if (f.ok())
      file = std::move(*f);
    else if (f.status().code() != StatusCode::kAlreadyExists || attempt == 8)
      return f.status().WithContext(DisplayPath(path) + " not written");
  }
  Status s = file->Append(bytes);
  if (s.ok()) s = file->Sync();
  if (s.ok()) s = file->Close();
  file.reset();
  if (s.ok()) s = env.Rename(tmp, path);
  if (!s.ok()) {
    // The old file was never touched; only the temporary one is ours to remove.
    (void)env.Remove(tmp);
    return s.WithContext(DisplayPath(path) + " left as it was");
  }
  const size_t slash = path.rfind('/');
  return env.SyncDir(slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash));
}

Result<std::string> WriteXmpSidecar(Catalogue& catalogue, const ConsolidatedMetadata& m, Env* env) {
  if (!env) env = Env::Default();
  const HeldBy* master = nullptr;
  for (const HeldBy& h : m.held_by)
    if (h.master) master = &h;
  if (!master)
    return NotFound("cluster " + std::to_string(m.cluster_id) +
                    ": its consolidated metadata names no master; run `doppel plan` again");
  DOPPEL_ASSIGN_OR_RETURN(Source source, catalogue.GetSource(master->source));
  const std::string path = JoinPath(source.root, master->path) + ".xmp";
  const std::string text = ConsolidatedToXmp(m);

  Event e;
  e.type = "sidecar";
  e.object = "file:" + std::to_string(m.master_file_id);
  nlohmann::json detail = {{"path", PathJson(path)}};
  auto record = [&](const Status& outcome) -> Status {
    if (outcome.ok()) {
      detail["bytes"] = text.size();
      detail["sha256"] = DigestHex(Sha256::Of(text.data(), text.size()));
    } else {
      e.outcome = "failure";
      detail["reason"] = outcome.message();
    }
    e.detail = DumpJson(detail);
    Status logged = catalogue.AppendEvent(e).status();
    if (!logged.ok() && outcome.ok())
      return logged.WithContext(DisplayPath(path) +
                                " was written but not recorded in the audit trail");
    return outcome;
  };

  // Never overwrite a sidecar someone else wrote.
  DOPPEL_ASSIGN_OR_RETURN(Env::FileInfo existing, env->Stat(path));
  if (existing.exists && existing.is_regular) {
    auto old = env->ReadFile(path);
    if (!old.ok()) return record(old.status().WithContext(DisplayPath(path) + " left alone"));
    if (old->find(kDoppelXmlns) == std::string::npos)
      return record(
          AlreadyExists(DisplayPath(path) + " exists and was not written by doppel; left alone"));
  }
  // A crash in an earlier write left its temporary file (MASTER.xmp.doppel-tmp-*,
  // a name only doppel makes): this write finishes that one's work.
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "./" : path.substr(0, slash + 1);
  const std::string stale =
      path.substr(slash == std::string::npos ? 0 : slash + 1) + ".doppel-tmp-";
  if (auto names = env->ListDir(dir); names.ok())
    for (const std::string& n : *names)
      if (n.rfind(stale, 0) == 0) {
        auto info = env->Stat(dir + n);
        if (info.ok() && info->is_regular && !info->is_symlink) (void)env->Remove(dir + n);
      }
  DOPPEL_RETURN_IF_ERROR(record(WriteFileAtomically(*env, path, text)));
  return path;
}

}  // namespace doppel
