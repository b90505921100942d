// Walks a Source's folder tree: regular files only, raw byte names, symlinks
// not followed unless asked (loops detected either way), unreadable folders
// reported and remembered so nothing under them is declared missing.
// Memory is O(depth), not O(files): entries are handed out as they are read.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "doppel/status.h"

namespace doppel {

struct WalkEntry {
  std::string rel;  // path relative to the root, raw bytes, '/'-separated
  int64_t size = 0;
  int64_t mtime_ns = 0;
};

struct WalkOptions {
  bool follow_symlinks = false;
  bool all_files = false;  // else only names with an image extension
  const std::atomic<bool>* cancel = nullptr;
};

struct WalkReport {
  std::vector<std::string> unreadable_prefixes;  // "dir/" prefixes the walk could not list
  int64_t symlinks_skipped = 0;
  bool cancelled = false;
};

// Calls on_file for each file and on_problem(rel, status) for each folder or
// link that could not be followed. Returns kNotFound/kIOError if the root
// itself cannot be opened (nothing was walked).
Result<WalkReport> Walk(const std::string& root, const WalkOptions& options,
                        const std::function<void(const WalkEntry&)>& on_file,
                        const std::function<void(const std::string&, const Status&)>& on_problem);

}  // namespace doppel
