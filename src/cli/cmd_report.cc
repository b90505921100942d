// The report commands (see docs/cli.md).
#include "cli/common.h"

namespace doppel::cli {

CommandRunner RegisterReportCommands(CLI::App& app, const Globals& g) {
  (void)app;
  (void)g;
  return [] { return std::optional<int>(); };
}

}  // namespace doppel::cli
