// What every command of the CLI shares: exit codes, global options, opening
// the catalogue, reporting a failure, Ctrl-C. Command groups that live in
// their own file (cmd_*.cc) register through the functions at the end.
#pragma once

#include <CLI/CLI.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "doppel/catalogue.h"
#include "doppel/status.h"
#include "util/csv.h"

namespace doppel::cli {

// Exit codes (docs/cli.md).
enum Exit {
  kExitOk = 0,
  kExitFailure = 1,       // the command could not do its job
  kExitUsage = 2,         // bad arguments
  kExitPartial = 3,       // done, but some files could not be read (recorded)
  kExitInterrupted = 130  // Ctrl-C: work done so far is kept
};

struct Globals {
  std::string db = "doppel.db";
  bool quiet = false;
  CsvMode csv = CsvMode::kSpreadsheet;  // --csv-raw: kRaw
};

// Set by the first Ctrl-C (or SIGTERM) once InstallSigint() ran; a second
// Ctrl-C exits at once with kExitInterrupted.
extern std::atomic<bool> g_cancel;
void InstallSigint();

// Prints "doppel: MESSAGE" to stderr and returns the exit code for it.
int Fail(const Status& s);

// What a command does with the catalogue. Only `init` creates one; commands
// that only read open it read-only (docs/catalogue.md), so they work on a
// catalogue the user may not write.
enum class Access { kRead, kWrite, kCreate };
Result<std::unique_ptr<Catalogue>> Open(const Globals& g, Access access = Access::kWrite);

// A command group adds its subcommands to the app and returns a runner that,
// after parsing, runs the chosen command and returns its exit code, or
// nullopt when none of its commands was chosen.
using CommandRunner = std::function<std::optional<int>()>;
CommandRunner RegisterReplaceCommands(CLI::App& app, const Globals& g);  // cmd_replace.cc
CommandRunner RegisterReportCommands(CLI::App& app, const Globals& g);   // cmd_report.cc
CommandRunner RegisterServeCommands(CLI::App& app, const Globals& g);    // cmd_serve.cc

}  // namespace doppel::cli
