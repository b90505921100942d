// Scanning Sources into the catalogue: walk, decide what changed, fingerprint
// in parallel, commit in small transactions (so a killed scan loses at most
// the last fraction of a second and the next scan resumes where it stopped).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "doppel/catalogue.h"
#include "doppel/fingerprint.h"
#include "doppel/status.h"

namespace doppel {

struct ScanProgress {
  enum class Phase { kListing, kReading, kDone };
  Phase phase = Phase::kListing;
  std::string source;
  int source_index = 0, source_count = 0;
  int64_t files_total = 0;  // files that need reading (known after listing)
  int64_t bytes_total = 0;
  int64_t files_done = 0, bytes_done = 0, files_failed = 0;
  int64_t files_listed = 0, files_unchanged = 0;
  double elapsed_seconds = 0;  // in this phase
};

struct FileProblem {
  std::string source;
  std::string path;  // relative, raw bytes
  std::string kind;  // StatusCodeName of the error, or "vanished"
  std::string message;
};

struct SourceScanResult {
  std::string source;
  int64_t scan_id = 0;
  std::string status;  // "completed", "cancelled", "failed"
  ScanCounts counts;
  double seconds = 0;
  std::string error;  // when the whole source failed (root unreachable...)
};

struct ScanSummary {
  std::vector<SourceScanResult> sources;
  std::vector<FileProblem> problems;  // the first kMaxProblems of this run
  int64_t problems_total = 0;
  bool cancelled = false;
  static constexpr size_t kMaxProblems = 1000;
};

struct ScanOptions {
  std::vector<std::string> sources;  // names; empty = every source
  int jobs = 0;                      // worker threads; 0 = one per core
  bool follow_symlinks = false;      // loops are detected and reported either way
  bool retry_errors = false;         // re-read unchanged files that failed before
  bool all_files = false;            // sniff every file, not only image extensions
  AnalyseOptions analyse;
  // Called from the scanning thread a few times a second; must be quick.
  std::function<void(const ScanProgress&)> progress;
  // Set to true (e.g. from a SIGINT handler) to stop soon, keeping finished work.
  const std::atomic<bool>* cancel = nullptr;
  // Fault injection for tests: called by a worker with the relative path just
  // before it opens the file.
  std::function<void(const std::string&)> test_before_read;
};

// Scans the named sources (or all) in order. Per-file problems never fail the
// scan: they are recorded in the catalogue and listed in the summary. The
// Status is non-OK only when the catalogue itself fails (disk full, locked,
// corrupt); what was committed before stays. A source whose root cannot be
// read is reported in its SourceScanResult and nothing in it is marked missing.
Result<ScanSummary> ScanSources(Catalogue& catalogue, const ScanOptions& options);

// True for file names doppel treats as images by default (case-insensitive
// .jpg .jpeg .jpe .png .tif .tiff .webp .gif .heic .heif .avif .jxl).
bool HasImageExtension(const std::string& name);

}  // namespace doppel
