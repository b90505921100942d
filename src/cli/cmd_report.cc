// The report command (see docs/cli.md and docs/report.md): storage held in
// duplicates and reclaimed per department, overlap between departments,
// counts before and after, progress against a deadline.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "cli/common.h"
#include "doppel/report.h"
#include "util/paths.h"

namespace doppel::cli {
namespace {

struct ReportArgs {
  std::string format = "html";
  std::string output;
  std::string deadline, today;
  std::vector<std::string> group_by;
  std::string join, join_key = "path", join_field;
  int largest = 10;
  bool no_thumbnails = false;
};

// Writes next to the target and renames, so a reader never sees half a report.
Status WriteAtomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out)
      return IOError("cannot write " + DisplayPath(path) + ": cannot create " + DisplayPath(tmp) +
                     " (does the folder exist, and may doppel write there?)");
    out.write(bytes.data(), std::streamsize(bytes.size()));
    out.flush();
    if (!out) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      return IOError("cannot write " + DisplayPath(path) + " (disk full?); nothing was written");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return IOError("cannot write " + DisplayPath(path) + ": " + ec.message());
  }
  return Status::OK();
}

int CmdReport(const Globals& g, const ReportArgs& a) {
  ReportOptions o;
  if (!a.group_by.empty()) o.group_by = a.group_by;
  o.deadline = a.deadline;
  o.today = a.today;
  o.largest_clusters = a.largest;
  o.thumbnails = a.format == "html" && !a.no_thumbnails;
  if (!a.join.empty()) {
    if (a.join_field.empty())
      return Fail(
          InvalidArgument("--join " + DisplayPath(a.join) +
                          " needs --join-field COLUMN: the column to count by (e.g. postcode)"));
    auto t = LoadJoinCsv(a.join, a.join_key, a.join_field);
    if (!t.ok()) return Fail(t.status());
    o.join = std::move(*t);
    // Asking for a joined column without naming it in --group-by still counts by it.
    bool named = false;
    for (const auto& f : o.group_by) named |= f == a.join_field;
    if (!named) o.group_by.push_back(a.join_field);
  } else if (!a.join_field.empty()) {
    return Fail(InvalidArgument("--join-field " + a.join_field + " needs --join FILE.csv"));
  }
  auto cat = Open(g, Access::kRead);
  if (!cat.ok()) return Fail(cat.status());
  InstallSigint();
  o.cancel = &g_cancel;
  const bool tty = !g.quiet && isatty(STDERR_FILENO);
  if (tty)
    o.progress = [](int64_t done, int64_t total) {
      std::fprintf(stderr, "\r\033[Kthumbnails: %lld/%lld", (long long)done, (long long)total);
    };
  auto rep = BuildReport(**cat, o);
  if (tty) std::fprintf(stderr, "\r\033[K");
  if (!rep.ok()) {
    if (rep.status().code() == StatusCode::kCancelled) {
      std::fprintf(stderr, "doppel: %s; nothing was written\n", rep.status().message().c_str());
      return kExitInterrupted;
    }
    return Fail(rep.status());
  }
  const std::string text = a.format == "csv"    ? RenderReportCsv(*rep)
                           : a.format == "json" ? RenderReportJson(*rep)
                                                : RenderReportHtml(*rep);
  if (a.output.empty() || a.output == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return std::fflush(stdout) == 0 ? kExitOk : kExitFailure;
  }
  Status w = WriteAtomically(a.output, text);
  if (!w.ok()) return Fail(w);
  if (!g.quiet)
    std::fprintf(stderr, "report written to %s (%zu bytes; %lld clusters, %lld resolved)\n",
                 DisplayPath(a.output).c_str(), text.size(), (long long)rep->progress.clusters,
                 (long long)rep->progress.resolved);
  return kExitOk;
}

}  // namespace

CommandRunner RegisterReportCommands(CLI::App& app, const Globals& g) {
  auto args = std::make_shared<ReportArgs>();
  auto* report = app.add_subcommand(
      "report",
      "storage held in duplicates and reclaimed per department, overlap, counts, progress");
  report
      ->add_option("--format", args->format, "html (default: one self-contained page), csv or json")
      ->check(CLI::IsMember({"html", "csv", "json"}));
  report->add_option("-o,--output", args->output, "write to this file (default: standard output)");
  report->add_option("--deadline", args->deadline,
                     "YYYY-MM-DD: say whether the work is on track to finish by then");
  report->add_option("--today", args->today,
                     "YYYY-MM-DD the estimate counts from (default: today, UTC)");
  report
      ->add_option(
          "--group-by", args->group_by,
          "count files by: source, format, year, make, model, camera, author, or a --join-field "
          "(repeat or comma-separate; default source,format,year)")
      ->delimiter(',');
  report->add_option("--join", args->join,
                     "CSV with a header row adding a field per file, e.g. path,postcode");
  report->add_option(
      "--join-key", args->join_key,
      "the CSV's column holding the path relative to its source, or source/path (default path)");
  report->add_option("--join-field", args->join_field,
                     "the CSV's column to count by, e.g. postcode");
  report
      ->add_option("--largest", args->largest,
                   "list this many of the largest clusters (default 10)")
      ->check(CLI::Range(0, 1000));
  report->add_flag("--no-thumbnails", args->no_thumbnails,
                   "HTML without pictures (faster; no file is read)");
  report->footer(
      "Examples:\n"
      "  doppel report -o report.html --deadline 2026-07-31\n"
      "  doppel report --format csv -o report.csv          one table: section,key,subkey,value\n"
      "  doppel report --format json | jq .progress\n"
      "  doppel report --group-by year,camera --join postcodes.csv --join-field postcode -o "
      "by-postcode.html\n\n"
      "Reclaimed bytes and progress come from the audit trail of doppel apply and doppel undo;\n"
      "clusters rejected by a reviewer count as resolved. How every figure is computed: "
      "docs/report.md.");
  return [report, args, &g]() -> std::optional<int> {
    if (!*report) return std::nullopt;
    return CmdReport(g, *args);
  };
}

}  // namespace doppel::cli
