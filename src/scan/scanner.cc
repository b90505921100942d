// The scan pipeline for one Source:
//   1. walk: compare every file with the catalogue; unchanged ones are only
//      marked seen, the rest go to a spool file (so memory does not grow with
//      the collection) and are counted for the ETA;
//   2. mark files the walk did not see as missing (never deleted);
//   3. read the spool with N workers; one committer thread stores outcomes in
//      small transactions (every 250 ms), so a killed scan loses at most the
//      files in flight and the next scan skips everything committed.
#include <strings.h>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "doppel/scan.h"
#include "scan/walker.h"
#include "util/parallel.h"
#include "util/paths.h"

namespace doppel {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// Work items spooled to an unlinked temporary file.
class Spool {
 public:
  Spool() : f_(std::tmpfile()) {}
  ~Spool() {
    if (f_) std::fclose(f_);
  }
  bool ok() const { return f_ != nullptr; }
  bool Put(const WalkEntry& e) {
    uint32_t n = uint32_t(e.rel.size());
    return std::fwrite(&n, sizeof n, 1, f_) == 1 && std::fwrite(e.rel.data(), 1, n, f_) == n &&
           std::fwrite(&e.size, sizeof e.size, 1, f_) == 1 &&
           std::fwrite(&e.mtime_ns, sizeof e.mtime_ns, 1, f_) == 1;
  }
  void Rewind() { std::rewind(f_); }
  bool Get(WalkEntry& e) {
    uint32_t n;
    if (std::fread(&n, sizeof n, 1, f_) != 1) return false;
    e.rel.resize(n);
    return std::fread(e.rel.data(), 1, n, f_) == n &&
           std::fread(&e.size, sizeof e.size, 1, f_) == 1 &&
           std::fread(&e.mtime_ns, sizeof e.mtime_ns, 1, f_) == 1;
  }

 private:
  FILE* f_;
};

// A small bounded multi-producer/multi-consumer queue.
template <typename T>
class Channel {
 public:
  explicit Channel(size_t cap) : cap_(cap) {}
  bool Push(T v) {
    std::unique_lock lk(mu_);
    not_full_.wait(lk, [&] { return q_.size() < cap_ || closed_; });
    if (closed_) return false;
    q_.push_back(std::move(v));
    not_empty_.notify_one();
    return true;
  }
  // Waits up to `timeout`; nullopt on timeout or when closed and drained.
  std::optional<T> Pop(std::chrono::milliseconds timeout, bool* closed_and_empty) {
    std::unique_lock lk(mu_);
    not_empty_.wait_for(lk, timeout, [&] { return !q_.empty() || closed_; });
    *closed_and_empty = q_.empty() && closed_;
    if (q_.empty()) return std::nullopt;
    T v = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return v;
  }
  void Close() {
    std::lock_guard lk(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<T> q_;
  size_t cap_;
  bool closed_ = false;
};

class SourceScanner {
 public:
  SourceScanner(Catalogue& cat, const Source& src, const ScanOptions& opt, ScanSummary& summary,
                int idx, int count)
      : cat_(cat), src_(src), opt_(opt), summary_(summary) {
    progress_.source = src.name;
    progress_.source_index = idx;
    progress_.source_count = count;
  }

  // Non-OK only for catalogue failures that must stop everything.
  Status Run(SourceScanResult& result);

 private:
  bool Cancelled() const {
    return stop_.load(std::memory_order_relaxed) ||
           (opt_.cancel && opt_.cancel->load(std::memory_order_relaxed));
  }
  void Problem(const std::string& path, const std::string& kind, const std::string& message) {
    ++summary_.problems_total;
    if (summary_.problems.size() < ScanSummary::kMaxProblems)
      summary_.problems.push_back({src_.name, path, kind, message});
  }
  void Report(bool force) {
    if (!opt_.progress) return;
    auto now = Clock::now();
    if (!force && now - last_report_ < std::chrono::milliseconds(200)) return;
    last_report_ = now;
    progress_.elapsed_seconds = Seconds(phase_start_);
    opt_.progress(progress_);
  }
  Status ListPhase(int64_t scan_id, ScanCounts& c, Spool& spool, WalkReport& report,
                   std::string& root_error);
  Status ReadPhase(int64_t scan_id, ScanCounts& c, Spool& spool);

  Catalogue& cat_;
  const Source& src_;
  const ScanOptions& opt_;
  ScanSummary& summary_;
  ScanProgress progress_;
  Clock::time_point phase_start_ = Clock::now(), last_report_{};
  std::atomic<bool> stop_{false};
};

Status SourceScanner::ListPhase(int64_t scan_id, ScanCounts& c, Spool& spool, WalkReport& report,
                                std::string& root_error) {
  progress_.phase = ScanProgress::Phase::kListing;
  phase_start_ = Clock::now();
  Status failure;
  std::vector<int64_t> seen;
  auto flush_seen = [&] {
    if (failure.ok() && !seen.empty()) failure = cat_.MarkSeen(scan_id, seen);
    seen.clear();
  };
  WalkOptions wo;
  wo.follow_symlinks = opt_.follow_symlinks;
  wo.all_files = opt_.all_files;
  wo.cancel = opt_.cancel;
  auto walked = Walk(
      src_.root, wo,
      [&](const WalkEntry& e) {
        if (!failure.ok()) return;
        ++c.files_listed;
        ++progress_.files_listed;
        auto known = cat_.LookupFile(src_.id, e.rel);
        if (!known.ok()) {
          failure = known.status();
          return;
        }
        bool unchanged = false;
        if (known.value()) {
          const FileState& fs = *known.value();
          seen.push_back(fs.id);
          unchanged = fs.status != FileStatus::kMissing && !fs.stale && fs.size == e.size &&
                      fs.mtime_ns == e.mtime_ns &&
                      (fs.status == FileStatus::kOk || !opt_.retry_errors);
        }
        if (unchanged) {
          ++c.files_unchanged;
          ++progress_.files_unchanged;
        } else {
          if (!spool.Put(e))
            failure = IOError("cannot write the scan's spool file in the temp folder (disk full?)");
          ++progress_.files_total;
          progress_.bytes_total += e.size;
        }
        if (seen.size() >= 4096) flush_seen();
        Report(false);
      },
      [&](const std::string& rel, const Status& st) {
        Problem(rel, StatusCodeName(st.code()), st.message());
      });
  flush_seen();
  DOPPEL_RETURN_IF_ERROR(failure);
  if (!walked.ok()) {
    root_error =
        walked.status().message() + "; nothing in source '" + src_.name + "' was marked missing";
    return Status::OK();
  }
  report = walked.value();
  return Status::OK();
}

Status SourceScanner::ReadPhase(int64_t scan_id, ScanCounts& c, Spool& spool) {
  progress_.phase = ScanProgress::Phase::kReading;
  phase_start_ = Clock::now();
  Report(true);
  const int jobs = ResolveJobs(opt_.jobs);
  Channel<WalkEntry> work(size_t(jobs) * 4);
  Channel<FileOutcome> done(size_t(jobs) * 64);
  AnalyseOptions aopt = opt_.analyse;
  aopt.cancelled = [this] { return Cancelled(); };

  std::vector<std::thread> workers;
  for (int i = 0; i < jobs; ++i) {
    workers.emplace_back([&] {
      bool closed = false;
      while (!closed) {
        auto item = work.Pop(std::chrono::milliseconds(100), &closed);
        if (!item) continue;
        FileOutcome o;
        o.path = std::move(item->rel);
        o.size = item->size;
        o.mtime_ns = item->mtime_ns;
        if (opt_.test_before_read) opt_.test_before_read(o.path);
        auto r = AnalyseFile(JoinPath(src_.root, o.path), aopt);
        if (r.ok())
          o.record = std::move(r).value();
        else
          o.error = r.status();
        done.Push(std::move(o));
      }
    });
  }

  Status commit_status;
  std::thread committer([&] {
    std::vector<FileOutcome> batch;
    auto last_commit = Clock::now();
    auto last_heartbeat = Clock::now();
    auto commit = [&] {
      if (!commit_status.ok()) return;
      if (batch.empty()) {
        if (Seconds(last_heartbeat) > 20) {
          commit_status = cat_.Heartbeat(scan_id);
          last_heartbeat = Clock::now();
        }
        return;
      }
      auto counts = cat_.CommitOutcomes(src_.id, scan_id, batch);
      last_commit = last_heartbeat = Clock::now();
      if (!counts.ok()) {
        commit_status = counts.status();
        stop_ = true;  // nothing more can be stored: stop reading
        return;
      }
      c.files_moved += counts->moved;
      for (const auto& o : batch) {
        if (o.record) {
          ++c.files_read;
          c.bytes_read += o.size;
        } else if (o.error.code() == StatusCode::kNotFound) {
          ++c.files_vanished;
          Problem(o.path, "vanished", o.error.message());
        } else {
          ++c.files_failed;
          Problem(o.path, StatusCodeName(o.error.code()), o.error.message());
        }
      }
      batch.clear();
    };
    bool closed = false;
    while (!closed) {
      auto o = done.Pop(std::chrono::milliseconds(100), &closed);
      if (o) {
        // Work cut short by a cancel is not an outcome: the next scan redoes it.
        if (!o->record && o->error.code() == StatusCode::kCancelled) continue;
        ++progress_.files_done;
        progress_.bytes_done += o->size;
        if (!o->record && o->error.code() != StatusCode::kNotFound) ++progress_.files_failed;
        batch.push_back(std::move(*o));
      }
      if (batch.size() >= 256 || Seconds(last_commit) > 0.25 || (closed && !batch.empty()))
        commit();
      Report(false);
    }
    commit();
  });

  spool.Rewind();
  WalkEntry e;
  while (!Cancelled() && spool.Get(e)) {
    if (!work.Push(e)) break;
  }
  work.Close();
  for (auto& t : workers) t.join();
  done.Close();
  committer.join();
  Report(true);
  return commit_status;
}

Status SourceScanner::Run(SourceScanResult& result) {
  auto start = Clock::now();
  result.source = src_.name;
  auto scan_id = cat_.BeginScan(src_.id);
  if (!scan_id.ok()) {
    if (scan_id.status().code() != StatusCode::kBusy) return scan_id.status();
    result.status = "failed";
    result.error = scan_id.status().message();
    return Status::OK();
  }
  result.scan_id = *scan_id;
  ScanCounts& c = result.counts;
  Spool spool;
  if (!spool.ok())
    return IOError("cannot create a temporary spool file (check TMPDIR and free space)");

  WalkReport report;
  std::string root_error;
  Status st = ListPhase(*scan_id, c, spool, report, root_error);
  auto finish = [&](const std::string& status) {
    result.status = status;
    result.seconds = Seconds(start);
    Status f = cat_.FinishScan(*scan_id, status, c);
    return st.ok() ? f : st;
  };
  if (!st.ok()) return finish("failed");
  if (!root_error.empty()) {
    result.error = root_error;
    return finish("failed");
  }
  if (report.cancelled || Cancelled()) return finish("cancelled");

  // Only a complete walk may declare files missing.
  auto missing = cat_.MarkUnseenMissing(src_.id, *scan_id, report.unreadable_prefixes);
  if (!missing.ok()) {
    st = missing.status();
    return finish("failed");
  }
  c.files_missing = *missing;

  st = ReadPhase(*scan_id, c, spool);
  if (!st.ok()) return finish("failed");
  return finish(Cancelled() ? "cancelled" : "completed");
}

}  // namespace

bool HasImageExtension(const std::string& name) {
  static const char* const kExt[] = {".jpg",  ".jpeg", ".jpe",  ".png",  ".tif",  ".tiff",
                                     ".webp", ".gif",  ".heic", ".heif", ".avif", ".jxl"};
  for (const char* ext : kExt) {
    size_t n = std::strlen(ext);
    if (name.size() > n && strcasecmp(name.c_str() + name.size() - n, ext) == 0) return true;
  }
  return false;
}

Result<ScanSummary> ScanSources(Catalogue& cat, const ScanOptions& opt) {
  DOPPEL_RETURN_IF_ERROR(InitImaging());
  std::vector<Source> sources;
  if (opt.sources.empty()) {
    DOPPEL_ASSIGN_OR_RETURN(sources, cat.ListSources());
    if (sources.empty())
      return NotFound("no sources registered; add one with `doppel source add NAME PATH`");
  } else {
    for (const auto& name : opt.sources) {
      DOPPEL_ASSIGN_OR_RETURN(Source s, cat.GetSource(name));
      sources.push_back(std::move(s));
    }
  }
  ScanSummary summary;
  for (size_t i = 0; i < sources.size(); ++i) {
    SourceScanResult result;
    SourceScanner scanner(cat, sources[i], opt, summary, int(i) + 1, int(sources.size()));
    Status st = scanner.Run(result);
    summary.sources.push_back(result);
    if (!st.ok()) return st;
    if (result.status == "cancelled") {
      summary.cancelled = true;
      break;
    }
  }
  return summary;
}

}  // namespace doppel
