// doppel: the command-line front end. It parses, calls the library, prints
// and chooses the exit code; all the work is in libdoppel.
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_map>

#include "cli/common.h"
#include "cli/output.h"
#include "cli/progress.h"
#include "doppel/calibrate.h"
#include "doppel/catalogue.h"
#include "doppel/fingerprint.h"
#include "doppel/geometry.h"
#include "doppel/index.h"
#include "doppel/match.h"
#include "doppel/rendition.h"
#include "doppel/scan.h"
#include "doppel_version.h"
#include "util/csv.h"
#include "util/parallel.h"
#include "util/paths.h"

namespace doppel::cli {
namespace {

using nlohmann::json;

std::string Hex(const Digest& d) { return DigestHex(d); }
// Unknown dimensions (files that could not be read) print as empty cells.
std::string Dimension(int v) { return v > 0 ? std::to_string(v) : ""; }

json MetadataJson(const ImageMetadata& m) {
  json j = json::object();
  auto put = [&](const char* k, const std::string& v) {
    if (!v.empty()) j[k] = v;
  };
  put("capture_time", m.capture_time);
  put("capture_time_source", m.capture_time_source);
  put("make", m.make);
  put("model", m.model);
  put("artist", m.artist);
  put("copyright", m.copyright);
  if (m.gps_latitude) j["gps_latitude"] = *m.gps_latitude;
  if (m.gps_longitude) j["gps_longitude"] = *m.gps_longitude;
  if (m.gps_altitude) j["gps_altitude"] = *m.gps_altitude;
  put("title", m.title);
  if (!m.keywords.empty()) j["keywords"] = m.keywords;
  if (!m.warnings.empty()) j["warnings"] = m.warnings;
  return j;
}

json RecordJson(const ImageRecord& r) {
  const auto& f = r.fingerprints;
  json dih = json::object();
  for (int k = 1; k < 8; ++k) dih[DihedralName(Dihedral(k))] = f.pdq.dihedral[k].ToHex();
  return json{{"sha256", Hex(f.sha256)},
              {"content_hash", Hex(f.content_hash)},
              {"content_kind", ContentHashKindName(f.content_kind)},
              {"pdq", f.pdq.hash.ToHex()},
              {"quality", f.pdq.quality},
              {"pdq_pipeline", f.pdq_pipeline},
              {"dihedral", dih},
              {"format", r.info.format},
              {"width", r.info.width},
              {"height", r.info.height},
              {"bands", r.info.bands},
              {"bit_depth", r.info.bit_depth},
              {"pages", r.info.pages},
              {"orientation", r.info.orientation},
              {"has_alpha", r.info.has_alpha},
              {"colourspace", r.info.colourspace},
              {"file_size", r.file_size},
              {"metadata", MetadataJson(r.metadata)}};
}

// ---------------------------------------------------------------- init / source

int CmdInit(const Globals& g) {
  auto cat = Open(g, Access::kCreate);
  if (!cat.ok()) return Fail(cat.status());
  if (!g.quiet)
    std::printf("catalogue %s ready (schema version %d)\n", (*cat)->Location().c_str(),
                (*cat)->SchemaVersion());
  return kExitOk;
}

int CmdSourceAdd(const Globals& g, const std::string& name, const std::string& path, int priority) {
  if (name.empty() || name.size() > 64 ||
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
          std::string::npos)
    return Fail(InvalidArgument(
        "source name '" + name +
        "' must be 1-64 letters, digits, '-', '_' or '.' (e.g. urbanisme, apur-2023)"));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return Fail(InvalidArgument("source folder " + DisplayPath(path) +
                                " does not exist or is not a folder"));
  char resolved[PATH_MAX];
  if (!realpath(path.c_str(), resolved))
    return Fail(IOError("cannot resolve " + DisplayPath(path)));
  auto cat = Open(g);
  if (!cat.ok()) return Fail(cat.status());
  auto src = (*cat)->AddSource(name, resolved, priority);
  if (!src.ok() && src.status().code() == StatusCode::kAlreadyExists) {
    // Re-running a setup script is fine; registering a name twice for two
    // different folders is not.
    auto existing = (*cat)->GetSource(name);
    if (existing.ok() && existing->root == resolved && existing->priority == priority) {
      if (!g.quiet)
        std::printf("source %s already registered at %s\n", name.c_str(),
                    DisplayPath(existing->root).c_str());
      return kExitOk;
    }
    if (existing.ok())
      return Fail(AlreadyExists("source '" + name + "' is already registered at " +
                                DisplayPath(existing->root) + " (priority " +
                                std::to_string(existing->priority) + "); choose another name"));
  }
  if (!src.ok()) return Fail(src.status());
  if (!g.quiet)
    std::printf("source %s -> %s (priority %d)\n", src->name.c_str(),
                DisplayPath(src->root).c_str(), src->priority);
  return kExitOk;
}

int CmdSourceList(const Globals& g, bool as_json) {
  auto cat = Open(g, Access::kRead);
  if (!cat.ok()) return Fail(cat.status());
  auto list = (*cat)->ListSources();
  if (!list.ok()) return Fail(list.status());
  if (as_json) {
    json a = json::array();
    for (const auto& s : *list)
      a.push_back({{"name", s.name},
                   {"root", DisplayPath(s.root)},
                   {"priority", s.priority},
                   {"created_at", s.created_at}});
    std::cout << a.dump(2) << "\n";
    return kExitOk;
  }
  if (list->empty()) {
    std::printf("no sources yet; add one with: doppel source add NAME PATH\n");
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows{{"NAME", "PRIORITY", "ROOT"}};
  for (const auto& s : *list)
    rows.push_back({s.name, std::to_string(s.priority), DisplayPath(s.root)});
  std::cout << Table(rows);
  return kExitOk;
}

// ---------------------------------------------------------------- scan

// --max-decode-mb of scan and hash (0 = no limit).
int64_t g_max_decode_mb = kDefaultMaxDecodeBytes >> 20;

int CmdScan(const Globals& g, const std::vector<std::string>& sources, int jobs, bool follow,
            bool retry, bool all_files, int64_t max_pixels, bool as_json) {
  auto cat = Open(g);
  if (!cat.ok()) return Fail(cat.status());
  InstallSigint();
  ScanOptions o;
  o.sources = sources;
  o.jobs = jobs;
  o.follow_symlinks = follow;
  o.retry_errors = retry;
  o.all_files = all_files;
  o.analyse.max_pixels = max_pixels;
  o.analyse.max_decode_bytes = g_max_decode_mb << 20;
  o.cancel = &g_cancel;
  ScanProgressView view(!g.quiet && !as_json);
  o.progress = [&](const ScanProgress& p) { view.Update(p); };
  auto res = ScanSources(**cat, o);
  view.Finish();
  if (!res.ok()) return Fail(res.status());
  const ScanSummary& s = *res;
  bool any_failed_source = false;
  for (const auto& r : s.sources) any_failed_source |= r.status == "failed";

  if (as_json) {
    json j = {{"cancelled", s.cancelled}, {"problems_total", s.problems_total}};
    j["sources"] = json::array();
    for (const auto& r : s.sources) {
      const auto& c = r.counts;
      j["sources"].push_back({{"source", r.source},
                              {"scan_id", r.scan_id},
                              {"status", r.status},
                              {"error", r.error},
                              {"seconds", r.seconds},
                              {"files_listed", c.files_listed},
                              {"files_unchanged", c.files_unchanged},
                              {"files_read", c.files_read},
                              {"files_failed", c.files_failed},
                              {"files_vanished", c.files_vanished},
                              {"files_missing", c.files_missing},
                              {"files_moved", c.files_moved},
                              {"bytes_read", c.bytes_read}});
    }
    j["problems"] = json::array();
    for (const auto& p : s.problems)
      j["problems"].push_back({{"source", p.source},
                               {"path", DisplayPath(p.path)},
                               {"kind", p.kind},
                               {"message", p.message}});
    std::cout << j.dump(2) << "\n";
  } else if (!g.quiet) {
    std::vector<std::vector<std::string>> rows{{"SOURCE", "STATUS", "LISTED", "UNCHANGED", "READ",
                                                "FAILED", "MISSING", "MOVED", "DATA", "TIME"}};
    for (const auto& r : s.sources) {
      const auto& c = r.counts;
      rows.push_back({r.source, r.status, std::to_string(c.files_listed),
                      std::to_string(c.files_unchanged), std::to_string(c.files_read),
                      std::to_string(c.files_failed), std::to_string(c.files_missing),
                      std::to_string(c.files_moved), HumanBytes(c.bytes_read),
                      HumanDuration(r.seconds)});
    }
    std::cout << Table(rows);
    for (const auto& r : s.sources)
      if (!r.error.empty()) std::printf("\nsource %s: %s\n", r.source.c_str(), r.error.c_str());
    if (!s.problems.empty()) {
      std::printf(
          "\n%lld file(s) could not be read; each is recorded in the catalogue and was skipped:\n",
          (long long)s.problems_total);
      size_t shown = 0;
      for (const auto& p : s.problems) {
        if (++shown > 50) {
          std::printf("  ... and %lld more: doppel files --status error\n",
                      (long long)(s.problems_total - 50));
          break;
        }
        std::printf("  %s/%s: %s (%s)\n", p.source.c_str(), DisplayPath(p.path).c_str(),
                    p.message.c_str(), p.kind.c_str());
      }
    }
    if (s.cancelled)
      std::printf("\nscan interrupted: finished files are kept; run the same command to resume\n");
  }
  if (s.cancelled) return kExitInterrupted;
  if (any_failed_source) return kExitFailure;
  return s.problems_total > 0 ? kExitPartial : kExitOk;
}

// ---------------------------------------------------------------- hash

int CmdHash(const std::vector<std::string>& files, int jobs, bool as_json, int64_t max_pixels,
            CsvMode csv) {
  Status init = InitImaging();
  if (!init.ok()) return Fail(init);
  InstallSigint();
  AnalyseOptions o;
  o.max_pixels = max_pixels;
  o.max_decode_bytes = g_max_decode_mb << 20;
  o.cancelled = [] { return g_cancel.load(); };
  const size_t n = files.size();
  std::vector<std::optional<Result<ImageRecord>>> results(n);
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<size_t> next{0};
  jobs = ResolveJobs(jobs);
  // Workers run at most `window` files ahead of the printer, so memory stays
  // bounded however many files are named.
  const size_t window = size_t(jobs) * 8;
  size_t printed = 0;
  std::vector<std::thread> pool;
  pool.reserve(size_t(jobs));
  for (int t = 0; t < jobs; ++t) {
    pool.emplace_back([&] {
      for (;;) {
        size_t i;
        {
          std::unique_lock lk(mu);
          cv.wait(lk, [&] { return next.load() < printed + window || next.load() >= n; });
          i = next.fetch_add(1);
        }
        if (i >= n) return;
        auto r = AnalyseFile(files[i], o);
        std::lock_guard lk(mu);
        results[i].emplace(std::move(r));
        cv.notify_all();
      }
    });
  }
  int failures = 0;
  for (size_t i = 0; i < n; ++i) {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return results[i].has_value(); });
    Result<ImageRecord> r = std::move(*results[i]);
    results[i].reset();
    printed = i + 1;
    cv.notify_all();
    lk.unlock();
    const std::string shown = DisplayPath(files[i]);
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kCancelled) break;
      ++failures;
      if (as_json)
        std::cout << json{{"file", shown},
                          {"error",
                           {{"kind", StatusCodeName(r.status().code())},
                            {"message", r.status().message()}}}}
                         .dump()
                  << "\n";
      std::fprintf(stderr, "doppel: %s: %s; skipped\n", shown.c_str(),
                   r.status().message().c_str());
      continue;
    }
    if (as_json) {
      json j = RecordJson(*r);
      j["file"] = shown;
      std::cout << j.dump() << "\n";
    } else {
      // The PDQ reference tool's line (FILE runs to the end of the line, never
      // quoted); by default a FILE a spreadsheet would run gets a leading '.
      std::printf("%s,%d,%s\n", r->fingerprints.pdq.hash.ToHex().c_str(),
                  r->fingerprints.pdq.quality, CsvTail(shown, csv).c_str());
    }
    std::fflush(stdout);
  }
  {
    std::lock_guard lk(mu);
    next = n;
    printed = n;
    cv.notify_all();
  }
  for (auto& t : pool) t.join();
  if (g_cancel) return kExitInterrupted;
  return failures ? kExitPartial : kExitOk;
}

// ---------------------------------------------------------------- stats / exact / files

int CmdStats(const Globals& g, bool as_json) {
  auto cat = Open(g, Access::kRead);
  if (!cat.ok()) return Fail(cat.status());
  auto st = (*cat)->Stats();
  if (!st.ok()) return Fail(st.status());
  const auto& s = *st;
  if (as_json) {
    json j = {{"catalogue", (*cat)->Location()}, {"schema_version", s.schema_version}};
    j["sources"] = json::array();
    for (const auto& ss : s.sources)
      j["sources"].push_back({{"name", ss.source.name},
                              {"root", DisplayPath(ss.source.root)},
                              {"priority", ss.source.priority},
                              {"files_ok", ss.files_ok},
                              {"files_error", ss.files_error},
                              {"files_missing", ss.files_missing},
                              {"bytes_ok", ss.bytes_ok},
                              {"last_scan_at", ss.last_scan_at},
                              {"last_scan_status", ss.last_scan_status}});
    j["formats"] = json::object();
    for (const auto& [k, v] : s.formats) j["formats"][k] = v;
    j["errors"] = json::object();
    for (const auto& [k, v] : s.error_kinds) j["errors"][k] = v;
    j["exact_duplicates"] = {{"groups", s.exact_groups},
                             {"redundant_files", s.exact_redundant_files},
                             {"redundant_bytes", s.exact_redundant_bytes}};
    j["same_content_different_metadata"] = {{"groups", s.content_groups},
                                            {"redundant_files", s.content_redundant_files}};
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::printf("catalogue %s (schema v%d)\n\n", (*cat)->Location().c_str(), s.schema_version);
  std::vector<std::vector<std::string>> rows{
      {"SOURCE", "PRIORITY", "IMAGES", "SIZE", "ERRORS", "MISSING", "LAST SCAN"}};
  int64_t tf = 0, tb = 0, te = 0, tm = 0;
  for (const auto& ss : s.sources) {
    rows.push_back(
        {ss.source.name, std::to_string(ss.source.priority), std::to_string(ss.files_ok),
         HumanBytes(ss.bytes_ok), std::to_string(ss.files_error), std::to_string(ss.files_missing),
         ss.last_scan_at.empty() ? "never" : ss.last_scan_at + " (" + ss.last_scan_status + ")"});
    tf += ss.files_ok;
    tb += ss.bytes_ok;
    te += ss.files_error;
    tm += ss.files_missing;
  }
  rows.push_back({"total", "", std::to_string(tf), HumanBytes(tb), std::to_string(te),
                  std::to_string(tm), ""});
  std::cout << Table(rows);
  if (!s.formats.empty()) {
    std::printf("\nformats:");
    for (const auto& [k, v] : s.formats) std::printf(" %s %lld", k.c_str(), (long long)v);
    std::printf("\n");
  }
  if (!s.error_kinds.empty()) {
    std::printf("errors:");
    for (const auto& [k, v] : s.error_kinds) std::printf(" %s %lld", k.c_str(), (long long)v);
    std::printf("  (list them: doppel files --status error)\n");
  }
  std::printf("\nexact duplicates (same bytes): %lld groups, %lld redundant files, %s\n",
              (long long)s.exact_groups, (long long)s.exact_redundant_files,
              HumanBytes(s.exact_redundant_bytes).c_str());
  std::printf("same picture, different metadata: %lld groups, %lld redundant files\n",
              (long long)s.content_groups, (long long)s.content_redundant_files);
  return kExitOk;
}

int CmdExact(const Globals& g, const std::string& format, const std::string& kind, int limit) {
  auto cat = Open(g, Access::kRead);
  if (!cat.ok()) return Fail(cat.status());
  std::vector<std::string> kinds =
      kind == "all" ? std::vector<std::string>{"exact", "content"} : std::vector<std::string>{kind};
  std::vector<DigestGroup> groups;
  for (const auto& k : kinds) {
    auto r = (*cat)->DigestGroups(k, limit);
    if (!r.ok()) return Fail(r.status());
    for (auto& grp : *r) groups.push_back(std::move(grp));
  }
  if (format == "json") {
    json a = json::array();
    for (const auto& grp : groups) {
      json files = json::array();
      for (const auto& f : grp.files)
        files.push_back({{"id", f.id},
                         {"source", f.source},
                         {"path", DisplayPath(f.path)},
                         {"size", f.size},
                         {"format", f.format},
                         {"width", f.width},
                         {"height", f.height},
                         {"capture_time", f.capture_time}});
      a.push_back({{"kind", grp.kind}, {"digest", Hex(grp.digest)}, {"files", files}});
    }
    std::cout << a.dump(2) << "\n";
  } else if (format == "csv") {
    std::cout << CsvLine({"group", "kind", "digest", "source", "path", "size", "format", "width",
                          "height", "capture_time"},
                         g.csv);
    int gi = 0;
    for (const auto& grp : groups) {
      ++gi;
      for (const auto& f : grp.files)
        std::cout << CsvLine({std::to_string(gi), grp.kind, Hex(grp.digest), f.source,
                              DisplayPath(f.path), std::to_string(f.size), f.format,
                              std::to_string(f.width), std::to_string(f.height), f.capture_time},
                             g.csv);
    }
  } else {
    if (groups.empty()) std::printf("no exact or metadata-only duplicates in the catalogue\n");
    int gi = 0;
    for (const auto& grp : groups) {
      std::printf("%s group %d: %zu files, %s %s\n",
                  grp.kind == "exact" ? "exact" : "same picture, other metadata:", ++gi,
                  grp.files.size(), grp.kind == "exact" ? "sha256" : "content",
                  Hex(grp.digest).substr(0, 16).c_str());
      for (const auto& f : grp.files)
        std::printf("  %-12s %s  (%s, %dx%d%s%s)\n", f.source.c_str(), DisplayPath(f.path).c_str(),
                    HumanBytes(f.size).c_str(), f.width, f.height,
                    f.capture_time.empty() ? "" : ", taken ", f.capture_time.c_str());
    }
  }
  return kExitOk;
}

int CmdFiles(const Globals& g, const std::string& status, const std::string& source,
             const std::string& format, int limit) {
  std::optional<FileStatus> fs;
  if (status == "ok")
    fs = FileStatus::kOk;
  else if (status == "error")
    fs = FileStatus::kError;
  else if (status == "missing")
    fs = FileStatus::kMissing;
  auto cat = Open(g, Access::kRead);
  if (!cat.ok()) return Fail(cat.status());
  auto files = (*cat)->ListFiles(fs, source, limit);
  if (!files.ok()) return Fail(files.status());
  if (format == "json") {
    json a = json::array();
    for (const auto& f : *files)
      a.push_back({{"id", f.id},
                   {"source", f.source},
                   {"path", DisplayPath(f.path)},
                   {"size", f.size},
                   {"status", FileStatusName(f.status)},
                   {"error_kind", f.error_kind},
                   {"error", f.error},
                   {"format", f.format},
                   {"width", f.width},
                   {"height", f.height},
                   {"capture_time", f.capture_time}});
    std::cout << a.dump(2) << "\n";
  } else if (format == "csv") {
    std::cout << CsvLine({"id", "source", "path", "size", "status", "error_kind", "error", "format",
                          "width", "height", "capture_time"},
                         g.csv);
    for (const auto& f : *files)
      std::cout << CsvLine({std::to_string(f.id), f.source, DisplayPath(f.path),
                            std::to_string(f.size), FileStatusName(f.status), f.error_kind, f.error,
                            f.format, Dimension(f.width), Dimension(f.height), f.capture_time},
                           g.csv);
  } else {
    std::vector<std::vector<std::string>> rows{{"SOURCE", "PATH", "STATUS", "SIZE", "DETAIL"}};
    for (const auto& f : *files)
      rows.push_back({f.source, DisplayPath(f.path), FileStatusName(f.status), HumanBytes(f.size),
                      f.status == FileStatus::kError ? f.error_kind + ": " + f.error
                      : f.format.empty()             ? ""
                                         : f.format + " " + std::to_string(f.width) + "x" +
                                               std::to_string(f.height)});
    std::cout << Table(rows);
  }
  return kExitOk;
}

// ---------------------------------------------------------------- match-hashes

// Reads one hash per line: HEX, HEX,ID, or the PDQ tool's HEX,QUALITY,FILE.
// Returns false (after a message) if the file cannot be read at all.
bool ReadHashList(const std::string& path, std::vector<PdqHash>& hashes,
                  std::vector<std::string>& ids, int& bad_lines) {
  FILE* f = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
  if (!f) {
    std::fprintf(stderr, "doppel: cannot open hash list %s: %s\n", DisplayPath(path).c_str(),
                 std::strerror(errno));
    return false;
  }
  char* line = nullptr;
  size_t cap = 0;
  ssize_t len;
  long lineno = 0;
  while ((len = getline(&line, &cap, f)) >= 0) {
    ++lineno;
    std::string_view v(line, size_t(len));
    while (!v.empty() && (v.back() == '\n' || v.back() == '\r' || v.back() == ' '))
      v.remove_suffix(1);
    if (v.empty() || v.front() == '#') continue;
    auto hash = PdqHash::FromHex(v.substr(0, std::min<size_t>(64, v.size())));
    if (!hash || (v.size() > 64 && v[64] != ',')) {
      if (++bad_lines <= 10)
        std::fprintf(
            stderr,
            "doppel: %s:%ld: not a PDQ hash (64 hex digits, optionally ,ID); line skipped\n",
            DisplayPath(path).c_str(), lineno);
      continue;
    }
    std::string id = v.size() > 65 ? std::string(v.substr(65)) : std::to_string(lineno);
    // The PDQ tool's own output (HEX,QUALITY,FILE): the file is the id.
    if (auto comma = id.find(',');
        comma != std::string::npos && comma <= 3 && id.find_first_not_of("0123456789") == comma)
      id = id.substr(comma + 1);
    hashes.push_back(*hash);
    ids.push_back(std::move(id));
  }
  std::free(line);
  if (f != stdin) std::fclose(f);
  return true;
}

int CmdMatchHashes(const std::string& path, int radius, const std::string& method, int jobs,
                   bool stats, CsvMode csv) {
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  std::vector<PdqHash> hashes;
  std::vector<std::string> ids;
  int bad = 0;
  if (!ReadHashList(path, hashes, ids, bad)) return kExitFailure;
  if (bad > 10) std::fprintf(stderr, "doppel: ... %d malformed lines in all, skipped\n", bad);
  auto t1 = Clock::now();
  PdqIndex index;
  index.Build(std::move(hashes));
  auto t2 = Clock::now();
  struct Pair {
    uint32_t a, b;
    int d;
  };
  std::vector<Pair> pairs;
  const auto m = method == "mih"     ? PdqIndex::Method::kMultiIndex
                 : method == "brute" ? PdqIndex::Method::kBruteForce
                                     : PdqIndex::Method::kAuto;
  jobs = ResolveJobs(jobs);
  index.SelfJoin(
      radius, jobs,
      [&](uint32_t a, uint32_t b, int d) {
        pairs.push_back({a, b, d});
      },
      m);
  auto t3 = Clock::now();
  std::sort(pairs.begin(), pairs.end(),
            [](const Pair& x, const Pair& y) { return std::tie(x.a, x.b) < std::tie(y.a, y.b); });
  std::string out;
  out.reserve(1 << 20);
  for (const Pair& p : pairs) {
    out += CsvCell(ids[p.a], csv);
    out += ',';
    out += CsvCell(ids[p.b], csv);
    out += ',';
    out += std::to_string(p.d);
    out += '\n';
    if (out.size() > (1 << 20)) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  if (stats) {
    auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    std::fprintf(
        stderr,
        "match-hashes: %zu hashes, %zu pairs within %d; read %.2f s, index %.2f s, join %.2f s; "
        "index %.1f MB (%.0f bytes/hash)\n",
        index.size(), pairs.size(), radius, secs(t0, t1), secs(t1, t2), secs(t2, t3),
        index.MemoryBytes() / 1e6,
        index.size() ? double(index.MemoryBytes()) / double(index.size()) : 0.0);
  }
  return bad ? kExitPartial : kExitOk;
}

// ---------------------------------------------------------------- match / clusters / pairs /
// explain

int CmdMatch(const Globals& g, MatchRunOptions o, bool as_json) {
  auto cat = Open(g);
  if (!cat.ok()) return Fail(cat.status());
  InstallSigint();
  o.cancel = &g_cancel;
  const bool tty = isatty(STDERR_FILENO) && !g.quiet && !as_json;
  auto start = std::chrono::steady_clock::now();
  o.progress = [&](const std::string& phase, int64_t done, int64_t total) {
    if (!tty) return;
    const double t =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double eta = done > 0 ? t * double(total - done) / double(done) : 0;
    std::fprintf(stderr, "\r\033[K%s: %lld/%lld files, %.0f files/s, ETA %s", phase.c_str(),
                 (long long)done, (long long)total, t > 0 ? done / t : 0.0,
                 HumanDuration(eta).c_str());
  };
  auto r = MatchCatalogue(**cat, o);
  if (tty) std::fprintf(stderr, "\r\033[K");
  if (!r.ok()) {
    if (r.status().code() == StatusCode::kCancelled) {
      std::fprintf(stderr, "doppel: %s\n", r.status().message().c_str());
      return kExitInterrupted;
    }
    return Fail(r.status());
  }
  const MatchSummary& s = *r;
  if (as_json) {
    std::cout << json{{"files", s.files},
                      {"new_files", s.new_files},
                      {"exact", s.pairs[0]},
                      {"metadata", s.pairs[1]},
                      {"near", s.pairs[2]},
                      {"similar", s.pairs[3]},
                      {"clusters", s.clusters},
                      {"clustered_files", s.clustered_files},
                      {"geometry_checked", s.geometry_checked},
                      {"geometry_unreadable", s.geometry_unreadable},
                      {"local_candidates", s.local_candidates},
                      {"checks_skipped", s.checks_skipped},
                      {"max_checks_per_file", o.geometry_per_file},
                      {"seconds", s.seconds}}
                     .dump(2)
              << "\n";
  } else if (!g.quiet) {
    std::printf("compared %lld new file(s) with %lld catalogued in %s\n", (long long)s.new_files,
                (long long)s.files, HumanDuration(s.seconds).c_str());
    std::printf(
        "new pairs: %lld exact, %lld same picture with other metadata, %lld near copies, %lld "
        "similar (for review)\n",
        (long long)s.pairs[0], (long long)s.pairs[1], (long long)s.pairs[2], (long long)s.pairs[3]);
    std::printf(
        "%lld clusters hold %lld files (see: doppel clusters; doppel pairs --kind similar)\n",
        (long long)s.clusters, (long long)s.clustered_files);
    if (s.geometry_checked > 0)
      std::printf("%lld candidate pairs checked with local features%s\n",
                  (long long)s.geometry_checked,
                  s.geometry_unreadable > 0
                      ? (", " + std::to_string(s.geometry_unreadable) +
                         " file(s) could not be read again: hashes decided their pairs")
                            .c_str()
                      : "");
    if (s.checks_skipped > 0)
      std::printf(
          "%lld candidate pair(s) NOT checked: their files reached --max-checks-per-file %d "
          "(raise it, or 0 for no limit, and run doppel match --rematch)\n",
          (long long)s.checks_skipped, o.geometry_per_file);
  }
  return kExitOk;
}

// Files of the catalogue by id, with their absolute paths.
struct FileIndex {
  std::unordered_map<int64_t, MatchInput> by_id;
  std::map<std::string, std::string> roots;
  std::string Path(const MatchInput& m) const {
    auto it = roots.find(m.source);
    return DisplayPath(JoinPath(it == roots.end() ? "" : it->second, m.path));
  }
};

Result<FileIndex> LoadFileIndex(Catalogue& cat) {
  FileIndex fi;
  DOPPEL_ASSIGN_OR_RETURN(auto files, cat.LoadMatchInputs());
  for (auto& f : files) fi.by_id[f.file_id] = std::move(f);
  DOPPEL_ASSIGN_OR_RETURN(auto sources, cat.ListSources());
  for (const auto& s : sources) fi.roots[s.name] = s.root;
  return fi;
}

int CmdClusters(const Globals& g, const std::string& format, const std::string& source,
                const std::string& kind, int min_size) {
  auto cat = Open(g, Access::kRead);
  if (!cat.ok()) return Fail(cat.status());
  auto clusters = (*cat)->LoadClusters();
  if (!clusters.ok()) return Fail(clusters.status());
  auto fi = LoadFileIndex(**cat);
  if (!fi.ok()) return Fail(fi.status());
  std::optional<MatchKind> want_kind;
  if (!kind.empty()) want_kind = ParseMatchKind(kind);
  // Files may have changed or vanished since the last `doppel match`: show
  // only members still fingerprinted (the next match run rebuilds clusters).
  for (Cluster& c : *clusters)
    c.members.erase(
        std::remove_if(c.members.begin(), c.members.end(),
                       [&](const ClusterMember& m) { return !fi->by_id.count(m.file_id); }),
        c.members.end());
  std::vector<const Cluster*> shown;
  for (const Cluster& c : *clusters) {
    if (c.members.size() < 2) continue;
    if (int(c.members.size()) < min_size) continue;
    bool has_source = source.empty(), has_kind = !want_kind;
    for (const auto& m : c.members) {
      auto it = fi->by_id.find(m.file_id);
      if (it != fi->by_id.end() && it->second.source == source) has_source = true;
      if (want_kind && !m.master && m.relation == *want_kind) has_kind = true;
    }
    if (has_source && has_kind) shown.push_back(&c);
  }
  auto member_fields = [&](const Cluster& c, const ClusterMember& m) {
    const MatchInput& f = fi->by_id.at(m.file_id);
    return std::vector<std::string>{std::to_string(c.id),
                                    m.master ? "master" : "member",
                                    m.master ? "" : MatchKindName(m.relation),
                                    m.master ? "" : std::to_string(m.distance),
                                    f.source,
                                    fi->Path(f),
                                    f.info.format,
                                    std::to_string(f.info.width),
                                    std::to_string(f.info.height),
                                    std::to_string(f.file_size),
                                    f.metadata.capture_time};
  };
  if (format == "csv") {
    std::cout << CsvLine({"cluster", "role", "relation", "distance", "source", "path", "format",
                          "width", "height", "size", "capture_time"},
                         g.csv);
    for (const Cluster* c : shown)
      for (const auto& m : c->members) std::cout << CsvLine(member_fields(*c, m), g.csv);
  } else if (format == "json") {
    json a = json::array();
    for (const Cluster* c : shown) {
      json members = json::array();
      for (const auto& m : c->members) {
        const MatchInput& f = fi->by_id.at(m.file_id);
        json j = {{"file_id", m.file_id},
                  {"role", m.master ? "master" : "member"},
                  {"source", f.source},
                  {"path", fi->Path(f)},
                  {"format", f.info.format},
                  {"width", f.info.width},
                  {"height", f.info.height},
                  {"size", f.file_size},
                  {"capture_time", f.metadata.capture_time}};
        if (!m.master) {
          j["relation"] = MatchKindName(m.relation);
          j["distance"] = m.distance;
        }
        members.push_back(j);
      }
      a.push_back({{"id", c->id}, {"master_file_id", c->master_file_id}, {"members", members}});
    }
    std::cout << a.dump(2) << "\n";
  } else {
    if (shown.empty()) std::printf("no clusters (run doppel match first)\n");
    for (const Cluster* c : shown) {
      std::printf("cluster %lld: %zu files\n", (long long)c->id, c->members.size());
      for (const auto& m : c->members) {
        const MatchInput& f = fi->by_id.at(m.file_id);
        std::string rel = m.master ? "master" : std::string(MatchKindName(m.relation));
        if (!m.master && m.relation == MatchKind::kNear) rel += " " + std::to_string(m.distance);
        std::printf("  %-12s %-10s %s  (%s %dx%d, %s)\n", rel.c_str(), f.source.c_str(),
                    fi->Path(f).c_str(), f.info.format.c_str(), f.info.width, f.info.height,
                    HumanBytes(f.file_size).c_str());
      }
    }
  }
  return kExitOk;
}

int CmdPairs(const Globals& g, const std::string& format, const std::string& kind) {
  auto cat = Open(g, Access::kRead);
  if (!cat.ok()) return Fail(cat.status());
  auto matches = (*cat)->LoadMatches();
  if (!matches.ok()) return Fail(matches.status());
  auto fi = LoadFileIndex(**cat);
  if (!fi.ok()) return Fail(fi.status());
  std::optional<MatchKind> want;
  if (!kind.empty()) want = ParseMatchKind(kind);
  json a = json::array();
  if (format == "csv")
    std::cout << CsvLine({"path_a", "path_b", "kind", "distance", "transform", "correlation",
                          "source_a", "source_b", "reason"},
                         g.csv);
  for (const Match& m : *matches) {
    if (want && m.kind != *want) continue;
    const MatchInput& x = fi->by_id.at(m.file_a);
    const MatchInput& y = fi->by_id.at(m.file_b);
    char corr[16];
    std::snprintf(corr, sizeof corr, "%.3f", m.correlation);
    if (format == "csv") {
      std::cout << CsvLine(
          {fi->Path(x), fi->Path(y), MatchKindName(m.kind), std::to_string(m.distance), m.transform,
           corr, x.source, y.source, m.reason},
          g.csv);
    } else {
      a.push_back({{"path_a", fi->Path(x)},
                   {"path_b", fi->Path(y)},
                   {"kind", MatchKindName(m.kind)},
                   {"distance", m.distance},
                   {"transform", m.transform},
                   {"correlation", m.correlation},
                   {"source_a", x.source},
                   {"source_b", y.source},
                   {"reason", m.reason}});
    }
  }
  if (format == "json") std::cout << a.dump(2) << "\n";
  return kExitOk;
}

int CmdExplain(const std::string& file_a, const std::string& file_b, const MatchOptions& mo,
               bool use_geometry, bool as_json) {
  Status init = InitImaging();
  if (!init.ok()) return Fail(init);
  MatchInput in[2];
  const std::string* paths[2] = {&file_a, &file_b};
  for (int k = 0; k < 2; ++k) {
    auto r = AnalyseFile(*paths[k], AnalyseOptions{});
    if (!r.ok()) {
      std::fprintf(stderr, "doppel: %s: %s\n", DisplayPath(*paths[k]).c_str(),
                   r.status().message().c_str());
      return kExitFailure;
    }
    in[k] = MatchInputFrom(*r, k + 1);
  }
  // The geometric check, as `doppel match` would run it.
  std::optional<GeometricCheck> geometry;
  if (use_geometry) {
    RenditionOptions ro;
    ro.max_side = kGeometrySide;
    ro.grey = true;
    auto ra = RenderFile(file_a, ro);
    auto rb = RenderFile(file_b, ro);
    if (ra.ok() && rb.ok()) {
      auto fa = ExtractFeatures(*ra);
      auto fb = ExtractFeatures(*rb);
      if (fa.ok() && fb.ok()) geometry = VerifyGeometry(**fa, **fb, mo.geometry);
    }
  }
  Explanation e = Explain(in[0], in[1], mo, geometry ? &*geometry : nullptr);
  if (as_json) {
    json j = {{"file_a", DisplayPath(file_a)},
              {"file_b", DisplayPath(file_b)},
              {"evidence", e.lines},
              {"verdict", e.verdict}};
    if (e.match) {
      j["kind"] = MatchKindName(e.match->kind);
      j["distance"] = e.match->distance;
      j["transform"] = e.match->transform;
      j["correlation"] = e.match->correlation;
      j["automatic"] = IsAutomatic(e.match->kind);
    } else {
      j["kind"] = nullptr;
    }
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::printf("A = %s\nB = %s\n\n", DisplayPath(file_a).c_str(), DisplayPath(file_b).c_str());
  for (const auto& l : e.lines) std::printf("  %s\n", l.c_str());
  std::printf("\nverdict: %s\n", e.verdict.c_str());
  return kExitOk;
}

// ---------------------------------------------------------------- calibrate

int CmdCalibrate(const std::string& csv_path, const MatchOptions& base, int jobs, bool as_json) {
  auto labelled = ReadLabelledPairs(csv_path);
  if (!labelled.ok()) return Fail(labelled.status());
  for (size_t i = 0; i < labelled->skipped.size() && i < 10; ++i)
    std::fprintf(stderr, "doppel: %s\n", labelled->skipped[i].c_str());
  CalibrateOptions co;
  co.match = base;
  co.jobs = jobs;
  auto cal = Calibrate(labelled->pairs, co);
  if (!cal.ok()) return Fail(cal.status().WithContext(DisplayPath(csv_path)));
  for (const auto& u : cal->unreadable)
    std::fprintf(stderr, "doppel: %s; its pairs are skipped\n", u.c_str());
  const ThresholdFigures* best = &cal->rows[size_t(cal->recommended)];
  const bool precise = cal->meets_precision_goal;
  if (as_json) {
    json a = json::array();
    for (const ThresholdFigures& r : cal->rows)
      a.push_back({{"threshold", r.threshold},
                   {"tp", r.tp},
                   {"fp", r.fp},
                   {"fn", r.fn},
                   {"tn", r.tn},
                   {"precision", r.precision()},
                   {"recall", r.recall()},
                   {"f1", r.f1()}});
    std::cout << json{{"pairs", cal->pairs},
                      {"thresholds", a},
                      {"recommended", best->threshold},
                      {"meets_precision_goal", precise}}
                     .dump(2)
              << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> table{
      {"THRESHOLD", "PRECISION", "RECALL", "F1", "TP", "FP", "FN", "TN"}};
  for (const ThresholdFigures& r : cal->rows) {
    if (r.threshold % 4 != 3 && &r != best) continue;
    char p[16], rc[16], f[16];
    std::snprintf(p, sizeof p, "%.4f", r.precision());
    std::snprintf(rc, sizeof rc, "%.4f", r.recall());
    std::snprintf(f, sizeof f, "%.4f", r.f1());
    table.push_back({std::to_string(r.threshold) + (&r == best ? " *" : ""), p, rc, f,
                     std::to_string(r.tp), std::to_string(r.fp), std::to_string(r.fn),
                     std::to_string(r.tn)});
  }
  const int64_t same_picture = best->tp + best->fn;
  std::printf("%zu labelled pairs (%lld the same picture)\n\n", cal->pairs,
              static_cast<long long>(same_picture));
  std::cout << Table(table);
  std::printf("\nrecommended: --threshold %d (%s; precision %.4f, recall %.4f)\n", best->threshold,
              precise ? "the most recall with precision >= 0.995"
                      : "no threshold reaches precision 0.995: best F1",
              best->precision(), best->recall());
  return kExitOk;
}

const char* kMainFooter = R"(Examples:
  doppel init                                   create doppel.db here
  doppel source add urbanisme /srv/urbanisme --priority 10
  doppel scan --jobs 2                          scan every source (incremental)
  doppel stats                                  what the catalogue holds
  doppel exact                                  exact and metadata-only duplicates
  doppel match                                  near copies and clusters
  doppel clusters                               groups of copies with their masters
  doppel explain a.jpg b.tif                    why two files are (not) duplicates
  doppel hash photo.jpg                         PDQ like the reference tool
  doppel plan -o plan.json                      which copy to keep, which to retire, why
  doppel apply plan.json --action quarantine --quarantine-dir /srv/q
  doppel undo OPERATION_ID                      put everything back as it was
  doppel release 1.0                            manifest, redirects, change notice
  doppel trash purge --older-than 90            empty the trash kept for undo
  doppel report -o report.html                  storage, overlap, progress (offline page)
  doppel serve --listen 127.0.0.1:8080          upload gate and review page

The catalogue is --db PATH, else $DOPPEL_DB, else ./doppel.db; only `init`
creates it, and commands that only read open it read-only. A PostgreSQL
catalogue: --db postgresql://user@host/dbname (createdb it, then `init`).
CSV output is for spreadsheets: a cell starting with = + - @ (a formula) gets
a leading '. --csv-raw writes cells exactly as stored, for programs.
Exit codes: 0 ok, 1 failure, 2 usage error, 3 done but some files could not be
read (recorded in the catalogue), 130 interrupted (finished work is kept).
Documentation: docs/cli.md (every command), docs/matching.md, docs/api.md.)";

int Main(int argc, char** argv) {
  CLI::App app{"doppel " DOPPEL_VERSION
               " - find and replace duplicate images across an archive's departments",
               "doppel"};
  app.footer(kMainFooter);
  app.set_version_flag("--version", "doppel " DOPPEL_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // --db and --quiet work before or after the command
  Globals g;
  if (const char* env = std::getenv("DOPPEL_DB"); env && *env) g.db = env;
  app.add_option("--db", g.db,
                 "catalogue: a SQLite file (default ./doppel.db or $DOPPEL_DB) or a "
                 "postgresql://user@host/dbname URI");
  app.add_flag("-q,--quiet", g.quiet, "print only errors and requested data");
  bool csv_raw = false;
  app.add_flag(
      "--csv-raw", csv_raw,
      "CSV for programs: cells exactly as stored (by default a cell a spreadsheet would run "
      "as a formula, = + - @ ..., gets a leading ')");

  auto* init = app.add_subcommand("init", "create (or upgrade) the catalogue");
  init->footer("Example:\n  doppel --db /srv/doppel/archive.db init");

  auto* source =
      app.add_subcommand("source", "register and list Sources (departments' collections)");
  source->require_subcommand(1);
  std::string src_name, src_path;
  int src_priority = 0;
  auto* sadd = source->add_subcommand("add", "register a department's folder as a Source");
  sadd->add_option("NAME", src_name, "short unique name, e.g. urbanisme")->required();
  sadd->add_option("PATH", src_path, "the collection's folder")->required();
  sadd->add_option("--priority", src_priority,
                   "authority when choosing masters: higher wins (default 0)");
  sadd->footer(
      "Examples:\n  doppel source add urbanisme /srv/urbanisme --priority 10\n  doppel source add "
      "apur /mnt/apur");
  bool json_out = false;
  auto* slist = source->add_subcommand("list", "list registered Sources");
  slist->add_flag("--json", json_out, "JSON output");
  slist->footer("Example:\n  doppel source list --json");

  auto* scan =
      app.add_subcommand("scan", "fingerprint new and changed files of Sources into the catalogue");
  std::vector<std::string> scan_sources;
  int jobs = 0;
  bool follow = false, retry = false, all_files = false;
  int64_t max_pixels = 1'000'000'000;
  scan->add_option("SOURCE", scan_sources, "sources to scan (default: all)");
  scan->add_option("-j,--jobs", jobs, "parallel readers (default: one per core)")
      ->check(CLI::Range(0, 256));
  scan->add_flag("--follow-symlinks", follow, "follow symbolic links (loops are detected)");
  scan->add_flag("--retry-errors", retry, "read again files that failed before, even if unchanged");
  scan->add_flag("--all-files", all_files, "consider every file, not only image extensions");
  scan->add_option("--max-pixels", max_pixels,
                   "refuse images larger than this (decompression bombs)")
      ->check(CLI::PositiveNumber);
  scan->add_option(
          "--max-decode-mb", g_max_decode_mb,
          "refuse images whose decoder would need more memory, from the header (0 = no limit)")
      ->check(CLI::NonNegativeNumber);
  scan->add_flag("--json", json_out, "print the summary as JSON");
  scan->footer(
      "Examples:\n  doppel scan                     all sources, one reader per core\n"
      "  doppel scan urbanisme apur --jobs 2\n  doppel scan --retry-errors      after repairing "
      "broken files\n\n"
      "Unchanged files (same path, size and modification time) are not read again.\n"
      "Ctrl-C stops after the files in progress; run the same command to resume.\n"
      "Exit codes: 0 ok, 1 failure, 3 some files unreadable (recorded), 130 interrupted.");

  auto* hash = app.add_subcommand("hash", "print fingerprints of files (no catalogue needed)");
  std::vector<std::string> hash_files;
  hash->add_option("FILE", hash_files, "image files")->required();
  hash->add_option("-j,--jobs", jobs, "parallel readers (default: one per core)")
      ->check(CLI::Range(0, 256));
  hash->add_flag("--json", json_out,
                 "one JSON object per line with every fingerprint and the metadata");
  hash->add_option("--max-pixels", max_pixels, "refuse images larger than this")
      ->check(CLI::PositiveNumber);
  hash->add_option(
          "--max-decode-mb", g_max_decode_mb,
          "refuse images whose decoder would need more memory, from the header (0 = no limit)")
      ->check(CLI::NonNegativeNumber);
  hash->footer(
      "Output: one line per file, PDQHEX,QUALITY,FILE, as the PDQ reference tool prints it, "
      "except\n"
      "that a FILE a spreadsheet would run as a formula (=, +, -, @ ...) gets a leading ' unless "
      "--csv-raw.\n\n"
      "Examples:\n"
      "  doppel --csv-raw hash *.jpg      exactly the reference tool's lines\n"
      "  doppel hash photo.jpg scans/*.tif\n  doppel hash --json photo.jpg | jq .sha256");

  auto* stats = app.add_subcommand(
      "stats", "summarise the catalogue: sources, formats, errors, exact duplicates");
  stats->add_flag("--json", json_out, "JSON output");
  stats->footer("Examples:\n  doppel stats\n  doppel stats --json");

  auto* exact =
      app.add_subcommand("exact", "list files with identical bytes or identical pictures");
  std::string format = "table", kind = "all";
  int limit = 0;
  exact->add_option("--format", format, "table, csv or json")
      ->check(CLI::IsMember({"table", "csv", "json"}));
  exact
      ->add_option("--kind", kind,
                   "exact (same bytes), content (same picture, other metadata) or all")
      ->check(CLI::IsMember({"exact", "content", "all"}));
  exact->add_option("--limit", limit, "at most this many groups per kind (default: all)");
  exact->footer("Examples:\n  doppel exact\n  doppel exact --format csv > exact.csv");

  auto* files =
      app.add_subcommand("files", "list catalogued files, e.g. the ones that could not be read");
  std::string status, fsource;
  files->add_option("--status", status, "ok, error or missing")
      ->check(CLI::IsMember({"ok", "error", "missing"}));
  files->add_option("--source", fsource, "only this source");
  files->add_option("--format", format, "table, csv or json")
      ->check(CLI::IsMember({"table", "csv", "json"}));
  files->add_option("--limit", limit, "at most this many rows");
  files->footer(
      "Examples:\n  doppel files --status error\n  doppel files --source apur --format csv > "
      "apur.csv");

  auto* mh = app.add_subcommand("match-hashes",
                                "every pair of PDQ hashes within a radius, from a hash list");
  std::string mh_file, mh_method = "auto";
  int radius = 31;
  bool mh_stats = false;
  mh->add_option("FILE", mh_file,
                 "one PDQ hash per line: HEX, HEX,ID or HEX,QUALITY,FILE ('-' = stdin)")
      ->required();
  mh->add_option("-r,--radius", radius, "Hamming radius (default 31, PDQ's published threshold)")
      ->check(CLI::Range(0, 256));
  mh->add_option("--method", mh_method,
                 "auto (default), mih (multi-index hashing) or brute (SIMD scan)")
      ->check(CLI::IsMember({"auto", "mih", "brute"}));
  mh->add_option("-j,--jobs", jobs, "threads (default: one per core)")->check(CLI::Range(0, 256));
  mh->add_flag("--stats", mh_stats, "print timings and index memory to stderr");
  mh->footer(
      "Output: ID_A,ID_B,DISTANCE per pair (IDs are the ,ID column, or line numbers), in input "
      "order.\n"
      "An ID a spreadsheet would run as a formula gets a leading ' unless --csv-raw.\n\n"
      "Examples:\n  doppel match-hashes hashes.txt --radius 31 > pairs.csv\n"
      "  doppel hash photos/*.jpg | doppel match-hashes - --radius 20");

  MatchOptions mo;
  bool use_geometry = true;
  auto add_match_options = [&](CLI::App* c) {
    c->add_flag("!--no-geometry", use_geometry,
                "skip the check of undecided pairs with local features (faster, misses crops)");
    c->add_option("--threshold", mo.threshold, "PDQ bits for a near copy (default 31)")
        ->check(CLI::Range(0, 128));
    c->add_option("--min-correlation", mo.min_correlation,
                  "finer check for near copies (default 0.90)")
        ->check(CLI::Range(-1.0, 1.0));
    c->add_option("--min-quality", mo.min_quality,
                  "PDQ quality below which a match is only 'similar' (default 50)")
        ->check(CLI::Range(0, 100));
    c->add_flag("!--no-dihedral", mo.dihedral, "do not match rotated or mirrored copies");
    c->add_option("--min-shared-words", mo.min_shared_words,
                  "local words two files far apart by their hashes must share to be checked "
                  "with local features (default 4)")
        ->check(CLI::Range(1, 1200));
  };
  auto* match = app.add_subcommand(
      "match", "find exact, metadata-only, near and similar copies across all sources");
  bool rematch = false;
  MatchRunOptions run;
  add_match_options(match);
  match->add_option("-j,--jobs", jobs, "threads (default: one per core)")
      ->check(CLI::Range(0, 256));
  match
      ->add_option("--max-checks-per-file", run.geometry_per_file,
                   "candidate pairs checked with local features per file, strongest evidence "
                   "first (default 32; 0 = no limit); pairs left out are counted in the summary")
      ->check(CLI::Range(0, 1000000));
  match->add_flag("!--no-local-words", run.local_candidates,
                  "propose candidates from the global hashes only, not from shared local words");

  match->add_flag("--rematch", rematch, "forget earlier results and compare every file again");
  match->add_flag("--json", json_out, "print the summary as JSON");
  match->footer(
      "Only files not matched before are compared (with everything); --rematch after changing "
      "options.\n\n"
      "Examples:\n  doppel match\n  doppel match --threshold 24 --rematch\n  doppel clusters "
      "--min-size 3");

  auto* clusters =
      app.add_subcommand("clusters", "list groups of copies, each with its master candidate");
  std::string ckind;
  int min_size = 2;
  format = "table";
  clusters->add_option("--format", format, "table, csv or json")
      ->check(CLI::IsMember({"table", "csv", "json"}));
  clusters->add_option("--source", fsource, "only clusters with a file in this source");
  clusters
      ->add_option("--kind", ckind,
                   "only clusters with a member of this kind (exact, metadata, near)")
      ->check(CLI::IsMember({"exact", "metadata", "near"}));
  clusters->add_option("--min-size", min_size,
                       "only clusters of at least this many files (default 2)");
  clusters->footer(
      "Examples:\n  doppel clusters\n  doppel clusters --source apur --format csv > "
      "apur-clusters.csv");

  auto* pairs = app.add_subcommand("pairs", "list every matched pair with its evidence");
  std::string pformat = "csv", pkind;
  pairs->add_option("--format", pformat, "csv (default) or json")
      ->check(CLI::IsMember({"csv", "json"}));
  pairs->add_option("--kind", pkind, "exact, metadata, near or similar")
      ->check(CLI::IsMember({"exact", "metadata", "near", "similar"}));
  pairs->footer(
      "Columns: path_a,path_b,kind,distance,transform,correlation,source_a,source_b,reason\n\n"
      "Examples:\n  doppel pairs > pairs.csv\n  doppel pairs --kind similar --format json");

  auto* explain = app.add_subcommand("explain", "say why two files are (or are not) duplicates");
  std::string ea, eb;
  explain->add_option("FILE_A", ea, "first image")->required();
  explain->add_option("FILE_B", eb, "second image")->required();
  add_match_options(explain);
  explain->add_flag("--json", json_out, "JSON output");
  explain->footer("Example:\n  doppel explain archives/vue_0311.tif urbanisme/IMG_0311.jpg");

  auto* calibrate = app.add_subcommand(
      "calibrate", "precision and recall at each threshold on your own labelled pairs");
  std::string cal_file;
  calibrate
      ->add_option("--pairs", cal_file, "CSV of path_a,path_b,same (same: 1/0, true/false, yes/no)")
      ->required();
  calibrate->add_option("-j,--jobs", jobs, "threads (default: one per core)")
      ->check(CLI::Range(0, 256));
  calibrate->add_flag("--json", json_out, "JSON output");
  calibrate->footer(
      "Relative paths are relative to the CSV's folder. Every other rule (finer check, quality, "
      "colour)\n"
      "stays as configured; only the PDQ threshold varies (0..64).\n\n"
      "Example:\n  doppel calibrate --pairs reviewed-pairs.csv");

  // Command groups defined in their own files (cli/common.h).
  std::vector<CommandRunner> modules;
  modules.push_back(RegisterReplaceCommands(app, g));
  modules.push_back(RegisterReportCommands(app, g));
  modules.push_back(RegisterServeCommands(app, g));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr,
                 "doppel: %s\nRun 'doppel --help' (or 'doppel COMMAND --help') for usage.\n",
                 e.what());
    return kExitUsage;
  }

  if (csv_raw) g.csv = CsvMode::kRaw;
  if (*init) return CmdInit(g);
  if (*sadd) return CmdSourceAdd(g, src_name, src_path, src_priority);
  if (*slist) return CmdSourceList(g, json_out);
  if (*scan) return CmdScan(g, scan_sources, jobs, follow, retry, all_files, max_pixels, json_out);
  if (*hash) return CmdHash(hash_files, jobs, json_out, max_pixels, g.csv);
  if (*stats) return CmdStats(g, json_out);
  if (*exact) return CmdExact(g, format, kind, limit);
  if (*files) return CmdFiles(g, status, fsource, format, limit);
  if (*mh) return CmdMatchHashes(mh_file, radius, mh_method, jobs, mh_stats, g.csv);
  if (*match) {
    run.match = mo;
    run.jobs = jobs;
    run.rematch_all = rematch;
    run.geometry = use_geometry;
    return CmdMatch(g, run, json_out);
  }
  if (*clusters) return CmdClusters(g, format, fsource, ckind, min_size);
  if (*pairs) return CmdPairs(g, pformat, pkind);
  if (*explain) return CmdExplain(ea, eb, mo, use_geometry, json_out);
  if (*calibrate) return CmdCalibrate(cal_file, mo, jobs, json_out);
  for (const auto& run : modules)
    if (std::optional<int> rc = run()) return *rc;
  return kExitUsage;
}

}  // namespace
}  // namespace doppel::cli

int main(int argc, char** argv) { return doppel::cli::Main(argc, argv); }
