// Progress display for long commands: a one-line bar with rate and ETA on a
// terminal, plain timestamped lines every few seconds otherwise (logs, CI).
#pragma once

#include <cstdint>
#include <string>

#include "doppel/scan.h"

namespace doppel::cli {

class ScanProgressView {
 public:
  // Draws on stderr; `enabled` false makes it silent (--quiet, --json).
  explicit ScanProgressView(bool enabled);
  void Update(const ScanProgress& p);
  void Finish();  // clears the bar line

 private:
  bool enabled_, tty_;
  double last_plain_ = -1e9;
  std::string last_source_;
  int last_phase_ = -1;
  bool drawn_ = false;
};

}  // namespace doppel::cli
