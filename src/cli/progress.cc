#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>

#include "cli/output.h"

namespace doppel::cli {

ScanProgressView::ScanProgressView(bool enabled) : enabled_(enabled), tty_(isatty(STDERR_FILENO)) {}

void ScanProgressView::Update(const ScanProgress& p) {
  if (!enabled_) return;
  const bool listing = p.phase == ScanProgress::Phase::kListing;
  const double t = p.elapsed_seconds;
  const double fps = t > 0 ? p.files_done / t : 0;
  const double mbps = t > 0 ? p.bytes_done / t / 1e6 : 0;
  double eta = -1;
  if (!listing && p.bytes_done > 0 && p.bytes_total > 0)
    eta = t * double(p.bytes_total - p.bytes_done) / double(p.bytes_done);
  char line[512];
  if (listing) {
    std::snprintf(line, sizeof line, "[%d/%d] %s: listing... %lld files (%lld unchanged)",
                  p.source_index, p.source_count, p.source.c_str(), (long long)p.files_listed,
                  (long long)p.files_unchanged);
  } else {
    const double frac = p.bytes_total > 0   ? double(p.bytes_done) / double(p.bytes_total)
                        : p.files_total > 0 ? double(p.files_done) / double(p.files_total)
                                            : 1.0;
    char bar[26];
    int filled = int(frac * 24 + 0.5);
    for (int i = 0; i < 24; ++i) bar[i] = i < filled ? '#' : '.';
    bar[24] = 0;
    std::snprintf(
        line, sizeof line,
        "[%d/%d] %s [%s] %3.0f%% %lld/%lld files, %.1f files/s, %.1f MB/s, ETA %s%s",
        p.source_index, p.source_count, p.source.c_str(), bar, frac * 100, (long long)p.files_done,
        (long long)p.files_total, fps, mbps, eta >= 0 ? HumanDuration(eta).c_str() : "--",
        p.files_failed ? (", " + std::to_string(p.files_failed) + " failed").c_str() : "");
  }
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s", line);
    std::fflush(stderr);
    drawn_ = true;
    return;
  }
  // Not a terminal (a log, CI): one line when reading starts, with what is
  // ahead, then one every 10 seconds; listing only reports if it is slow.
  const bool new_phase = int(p.phase) != last_phase_ || p.source != last_source_;
  if (new_phase) {
    last_phase_ = int(p.phase);
    last_source_ = p.source;
    last_plain_ = 0;
    if (!listing && p.files_total > 0) {
      std::fprintf(stderr, "[%d/%d] %s: %lld files to read (%s), %lld unchanged\n", p.source_index,
                   p.source_count, p.source.c_str(), (long long)p.files_total,
                   HumanBytes(p.bytes_total).c_str(), (long long)p.files_unchanged);
    }
    return;
  }
  if (t - last_plain_ >= 10) {
    std::fprintf(stderr, "%s\n", line);
    last_plain_ = t;
  }
}

void ScanProgressView::Finish() {
  if (enabled_ && tty_ && drawn_) std::fprintf(stderr, "\r\033[K");
  drawn_ = false;
}

}  // namespace doppel::cli
