// The serve commands (see docs/cli.md).
#include "cli/common.h"

namespace doppel::cli {

CommandRunner RegisterServeCommands(CLI::App& app, const Globals& g) {
  (void)app;
  (void)g;
  return [] { return std::optional<int>(); };
}

}  // namespace doppel::cli
