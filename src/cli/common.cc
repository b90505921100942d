#include "cli/common.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>

namespace doppel::cli {

std::atomic<bool> g_cancel{false};

namespace {
void OnSigint(int) {
  if (g_cancel.exchange(true)) _exit(kExitInterrupted);  // second Ctrl-C: leave now
  const char msg[] =
      "\ndoppel: stopping after the work in progress (Ctrl-C again to quit at once)\n";
  ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
}
}  // namespace

void InstallSigint() {
  struct sigaction sa {};
  sa.sa_handler = OnSigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int Fail(const Status& s) {
  std::fprintf(stderr, "doppel: %s\n", s.message().c_str());
  return s.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
}

Result<std::unique_ptr<Catalogue>> Open(const Globals& g, Access access) {
  CatalogueOptions o;
  o.create_if_missing = access == Access::kCreate;
  o.read_only = access == Access::kRead;
  return OpenCatalogue(g.db, o);
}

}  // namespace doppel::cli
