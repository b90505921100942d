// The replace commands: plan, apply, undo, audit, metadata, release
// (docs/cli.md). Parsing and printing only: the work is in src/replace.
#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/common.h"
#include "cli/output.h"
#include "doppel/conflicts.h"
#include "doppel/policy.h"
#include "doppel/release.h"
#include "doppel/replace.h"
#include "util/paths.h"

namespace doppel::cli {
namespace {

using nlohmann::json;

Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return IOError(path + ": cannot write");
  return Status::OK();
}

Result<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot read (does it exist?)");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---------------------------------------------------------------- plan

int CmdPlan(const Globals& g, const std::string& policy_path, bool include_unconfirmed,
            const std::string& out, bool json_out) {
  PlanOptions o;
  if (!policy_path.empty()) {
    auto p = LoadPolicy(policy_path);
    if (!p.ok()) return Fail(p.status());
    o.policy = *p;
  }
  o.include_unconfirmed = include_unconfirmed;
  auto cat = Open(g);
  if (!cat.ok()) return Fail(cat.status());
  auto plan = MakePlan(**cat, o);
  if (!plan.ok()) return Fail(plan.status());
  const std::string text = PlanToJson(*plan);
  if (Status s = WriteText(out, text); !s.ok()) return Fail(s);
  if (json_out) {
    std::cout << text;
    return kExitOk;
  }
  if (g.quiet) return kExitOk;
  std::printf(
      "plan %s: %zu clusters, %zu files to retire, %s to reclaim "
      "(written to %s)\n",
      plan->plan_id.c_str(), plan->clusters.size(), plan->actions.size(),
      HumanBytes(plan->bytes_to_reclaim).c_str(), out.c_str());
  std::map<int64_t, std::vector<const PlannedAction*>> by_cluster;
  for (const PlannedAction& a : plan->actions) by_cluster[a.cluster_id].push_back(&a);
  for (const PlannedCluster& c : plan->clusters) {
    std::printf("\ncluster %lld (%s)\n  %s\n", (long long)c.cluster_id, c.basis.c_str(),
                c.reason.c_str());
    if (!c.warning.empty()) std::printf("  warning: %s\n", c.warning.c_str());
    for (const PlannedAction* a : by_cluster[c.cluster_id])
      std::printf("  retire %s/%s (%s, %s)\n", a->source.c_str(), DisplayPath(a->path).c_str(),
                  a->relation.c_str(), HumanBytes(a->bytes).c_str());
    for (const std::string& n : c.notes) std::printf("  note: %s\n", n.c_str());
    if (!c.metadata.conflicts.empty()) {
      std::printf("  %zu metadata conflicts to resolve:", c.metadata.conflicts.size());
      for (const MetadataConflict& m : c.metadata.conflicts) std::printf(" %s", m.field.c_str());
      std::printf(" (doppel metadata --conflicts; doppel metadata resolve)\n");
    }
  }
  if (!plan->skipped.empty()) {
    std::printf("\n%zu clusters not planned:\n", plan->skipped.size());
    for (const SkippedCluster& s : plan->skipped)
      std::printf("  cluster %lld: %s\n", (long long)s.cluster_id, s.reason.c_str());
  }
  if (const int64_t lesser = plan->LesserMasters(); lesser > 0)
    std::printf(
        "\nwarning: %lld clusters keep a copy that holds less than one they retire "
        "(see the warnings above; a review choice or the policy's rules decided)\n",
        (long long)lesser);
  std::printf(
      "\nnext: doppel apply %s --action quarantine   (or hardlink, "
      "symlink, delete, redirect-only)\n",
      out.c_str());
  return kExitOk;
}

// ---------------------------------------------------------------- apply / undo

int PrintReport(const Globals& g, const Result<ApplyReport>& r, bool json_out, const char* what) {
  if (!r.ok()) {
    int rc = Fail(r.status());
    if (std::string(what) == "done")
      std::fprintf(stderr,
                   "doppel: the journal keeps every step taken; run "
                   "`doppel apply --resume` to finish, "
                   "then `doppel undo ID` to reverse\n");
    return rc;
  }
  if (json_out) {
    json a = json::array();
    for (const ActionOutcome& o : r->outcomes)
      a.push_back({{"file_id", o.file_id},
                   {"file", o.name},
                   {"outcome", o.outcome},
                   {"message", o.message},
                   {"reclaimed_bytes", o.reclaimed_bytes}});
    std::cout << json{{"operation", r->operation_id},
                      {"complete", r->complete},
                      {"done", r->applied},
                      {"skipped", r->skipped},
                      {"reclaimed_bytes", r->reclaimed_bytes},
                      {"files", a}}
                     .dump(2)
              << "\n";
  } else if (!g.quiet) {
    for (const ActionOutcome& o : r->outcomes)
      if (o.outcome != "applied" && o.outcome != "undone")
        std::printf("%s: %s\n", o.outcome.c_str(), o.message.c_str());
    // An undo gives back what its apply reclaimed: the apply's figure says it.
    const bool undo = std::string(what) == "restored";
    std::printf("operation %s: %lld files %s, %lld skipped%s\n", r->operation_id.c_str(),
                (long long)r->applied, what, (long long)r->skipped,
                undo ? "" : (", " + HumanBytes(r->reclaimed_bytes) + " reclaimed").c_str());
  }
  if (!r->complete) {
    if (g_cancel)
      std::fprintf(stderr, "doppel: operation %s stopped before the end; %s\n",
                   r->operation_id.c_str(),
                   std::string(what) == "done" ? "finish it with `doppel apply --resume`"
                                               : "run the same `doppel undo` again to finish");
    else
      std::fprintf(stderr,
                   "doppel: some files were left alone (listed above); "
                   "the journal is kept: run "
                   "`doppel undo` again once their places are free\n");
    return g_cancel ? kExitInterrupted : kExitPartial;
  }
  return r->skipped > 0 ? kExitPartial : kExitOk;
}

ApplyOptions MakeApplyOptions(const Globals& g, const std::string& action,
                              const std::string& quarantine_dir) {
  ApplyOptions o;
  o.action = ParseActionKind(action).value_or(ActionKind::kQuarantine);
  if (!quarantine_dir.empty())
    o.quarantine_dir = std::filesystem::absolute(quarantine_dir).string();
  o.cancel = &g_cancel;
  if (const char* p = std::getenv("DOPPEL_TEST_APPLY_PAUSE_MS"))
    o.test_step_pause_ms = std::atoi(p);
  if (!g.quiet)
    o.progress = [](int64_t done, int64_t total, const std::string& line) {
      std::fprintf(stderr, "[%lld/%lld] %s\n", (long long)done, (long long)total, line.c_str());
    };
  return o;
}

int CmdApply(const Globals& g, const std::string& plan_path, const std::string& action,
             const std::string& quarantine_dir, bool resume, const std::string& resume_op,
             bool json_out) {
  InstallSigint();
  auto cat = Open(g);
  if (!cat.ok()) return Fail(cat.status());
  ApplyOptions o = MakeApplyOptions(g, action, quarantine_dir);
  if (resume) return PrintReport(g, ResumeApply(**cat, resume_op, o), json_out, "done");
  if (plan_path.empty())
    return Fail(InvalidArgument("apply needs a PLAN file (from `doppel plan`) or --resume"));
  if (action.empty())
    return Fail(
        InvalidArgument("apply needs --action "
                        "quarantine|hardlink|symlink|delete|redirect-only"));
  auto text = ReadText(plan_path);
  if (!text.ok()) return Fail(text.status());
  auto plan = PlanFromJson(*text, plan_path);
  if (!plan.ok()) return Fail(plan.status());
  if (!plan->catalogue.empty() && plan->catalogue != (*cat)->Location())
    std::fprintf(stderr, "doppel: note: %s was made from catalogue %s; applying with %s\n",
                 plan_path.c_str(), plan->catalogue.c_str(), (*cat)->Location().c_str());
  return PrintReport(g, ApplyPlan(**cat, *plan, o), json_out, "done");
}

int CmdUndo(const Globals& g, const std::string& op, bool json_out) {
  InstallSigint();
  auto cat = Open(g);
  if (!cat.ok()) return Fail(cat.status());
  ApplyOptions o = MakeApplyOptions(g, "", "");
  auto r = Undo(**cat, op, o);
  if (!r.ok()) return Fail(r.status());
  int rc = PrintReport(g, r, json_out, "restored");
  if (r->complete && !g.quiet && !json_out)
    std::printf("operation %s is undone; its journal is consumed\n", op.c_str());
  return rc;
}

// ---------------------------------------------------------------- audit

int CmdAudit(const Globals& g, const std::string& format, const std::string& type,
             const std::string& op) {
  auto cat = Open(g, Access::kRead);
  if (!cat.ok()) return Fail(cat.status());
  EventFilter f;
  f.type = type;
  f.operation = op;
  auto ev = (*cat)->ListEvents(f);
  if (!ev.ok()) return Fail(ev.status());
  if (format == "json") {
    json a = json::array();
    for (const Event& e : *ev) {
      json d = json::parse(e.detail, nullptr, false);
      a.push_back({{"id", e.id},
                   {"type", e.type},
                   {"time", e.time},
                   {"agent", e.agent},
                   {"object", e.object},
                   {"outcome", e.outcome},
                   {"operation", e.operation},
                   {"detail", d.is_discarded() ? json(e.detail) : d}});
    }
    std::cout << a.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  } else if (format == "csv") {
    std::cout << CsvLine(
        {"id", "time", "type", "object", "outcome", "operation", "agent", "detail"}, g.csv);
    for (const Event& e : *ev)
      std::cout << CsvLine({std::to_string(e.id), e.time, e.type, e.object, e.outcome, e.operation,
                            e.agent, e.detail},
                           g.csv);
  } else {
    std::vector<std::vector<std::string>> rows{
        {"ID", "TIME", "TYPE", "OBJECT", "OUTCOME", "OPERATION", "WHAT"}};
    for (const Event& e : *ev) {
      json d = json::parse(e.detail, nullptr, false);
      std::string what = e.detail;
      if (d.is_object()) {
        if (d.contains("reason"))
          what = d["reason"].get<std::string>();
        else if (d.contains("undoes"))
          what = "undoes " + d["undoes"].get<std::string>();
        else if (e.type == "plan")
          what = std::to_string(d.value("actions", 0)) + " actions";
      }
      if (what.size() > 100) what = what.substr(0, 97) + "...";
      rows.push_back(
          {std::to_string(e.id), e.time, e.type, e.object, e.outcome, e.operation, what});
    }
    if (ev->empty())
      std::printf("no events\n");
    else
      std::cout << Table(rows);
  }
  return kExitOk;
}

// ---------------------------------------------------------------- metadata

int CmdMetadata(const Globals& g, const std::string& format, bool write_xmp) {
  auto cat = Open(g, write_xmp ? Access::kWrite : Access::kRead);
  if (!cat.ok()) return Fail(cat.status());
  // People's decisions on conflicts applied (doppel metadata resolve).
  auto in_force = MetadataInForce(**cat);
  if (!in_force.ok()) return Fail(in_force.status());
  const std::vector<ConsolidatedMetadata>& all = *in_force;
  if (all.empty() && format != "json") {
    std::fprintf(stderr, "doppel: no consolidated metadata yet; run `doppel plan` first\n");
    return kExitOk;
  }
  int rc = kExitOk;
  if (write_xmp) {
    auto written = WriteXmpSidecars(**cat);
    if (!written.ok()) return Fail(written.status());
    for (const SidecarOutcome& w : *written) {
      if (!w.status.ok()) {
        std::fprintf(stderr, "doppel: %s\n", w.status.message().c_str());
        rc = kExitPartial;
      } else if (!g.quiet) {
        std::fprintf(stderr, "wrote %s\n", DisplayPath(w.path).c_str());
      }
    }
  }
  auto field = [](const ConsolidatedMetadata& m, const char* k) {
    auto it = m.fields.find(k);
    return it == m.fields.end() ? std::string() : it->second.value;
  };
  if (format == "json") {
    json a = json::array();
    for (const ConsolidatedMetadata& m : all)
      a.push_back(json::parse(ConsolidatedToJson(m), nullptr, false));
    std::cout << a.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  } else {
    std::cout << CsvLine({"master_file_id", "cluster_id", "master", "capture_time", "title",
                          "artist", "copyright", "gps", "keywords", "held_by", "conflicts"},
                         g.csv);
    for (const ConsolidatedMetadata& m : all) {
      std::string master, held, kw, conflicts;
      for (const HeldBy& h : m.held_by) {
        const std::string n = h.source + "/" + DisplayPath(h.path);
        if (h.master) master = n;
        held += (held.empty() ? "" : "; ") + n;
      }
      for (const std::string& k : m.keywords) kw += (kw.empty() ? "" : "; ") + k;
      for (const MetadataConflict& c : m.conflicts) {
        std::string v;
        for (const auto& [id, val] : c.values)
          v += (v.empty() ? "" : " | ") + ("file " + std::to_string(id) + ": " + val);
        conflicts += (conflicts.empty() ? "" : "; ") + c.field + " (" + v + ")";
      }
      std::cout << CsvLine({std::to_string(m.master_file_id), std::to_string(m.cluster_id), master,
                            field(m, "capture_time"), field(m, "title"), field(m, "artist"),
                            field(m, "copyright"), field(m, "gps"), kw, held, conflicts},
                           g.csv);
    }
  }
  return rc;
}

// ---------------------------------------------------------------- release

int CmdRelease(const Globals& g, const std::string& version, std::string dir) {
  auto cat = Open(g);
  if (!cat.ok()) return Fail(cat.status());
  if (dir.empty()) dir = "release-" + version;
  // Refuse before storing anything if the folder cannot hold the files.
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Fail(IOError(dir + ": cannot create the release folder: " + ec.message()));
  if (std::filesystem::exists(std::filesystem::path(dir) / "manifest.json"))
    return Fail(AlreadyExists(dir + "/manifest.json exists; choose another folder with -o"));
  auto r = MakeRelease(**cat, version);
  if (!r.ok()) return Fail(r.status());
  for (const auto& [name, text] :
       {std::pair<std::string, const std::string*>{"manifest.json", &r->manifest_json},
        {"redirects.csv", &r->redirects_csv},
        {"CHANGES.md", &r->changes_md}}) {
    std::string path = dir;
    path.append("/").append(name);
    if (Status s = WriteText(path, *text); !s.ok())
      return Fail(s.WithContext("release " + version +
                                " is stored in the catalogue but its files are incomplete"));
  }
  if (!g.quiet)
    std::printf(
        "release %s: %lld files newly retired, %lld restored, %lld redirects repointed; "
        "written to %s/ (manifest.json, redirects.csv, CHANGES.md)\n",
        version.c_str(), (long long)r->newly_retired, (long long)r->restored,
        (long long)r->repointed, dir.c_str());
  return kExitOk;
}

// ---------------------------------------------------------------- conflicts

int CmdMetadataResolve(const Globals& g, const MetadataDecisionRequest& req) {
  auto cat = Open(g);
  if (!cat.ok()) return Fail(cat.status());
  auto r = ResolveConflict(**cat, req);
  if (!r.ok()) return Fail(r.status());
  if (!g.quiet)
    std::printf(
        "cluster %lld: %s = \"%s\"%s, decided by %s (audit event %lld)\n",
        static_cast<long long>(r->cluster_id), r->field.c_str(), DisplayPath(r->value).c_str(),
        r->from_file_id ? (" (from file " + std::to_string(r->from_file_id) + ")").c_str() : "",
        DisplayPath(r->author).c_str(), static_cast<long long>(r->event_id));
  return kExitOk;
}

// The conflicts nobody has resolved: a table, CSV or JSON.
int CmdConflicts(const Globals& g, const std::string& format) {
  auto cat = Open(g, Access::kRead);
  if (!cat.ok()) return Fail(cat.status());
  auto open = OpenConflicts(**cat);
  if (!open.ok()) return Fail(open.status());
  if (format == "json") {
    json out = json::array();
    for (const OpenConflict& o : *open) {
      json values = json::array();
      for (const auto& [id, v] : o.conflict.values)
        values.push_back({{"file_id", id}, {"value", v}});
      out.push_back({{"cluster_id", o.cluster_id},
                     {"master_file_id", o.master_file_id},
                     {"field", o.conflict.field},
                     {"values", values}});
    }
    std::cout << out.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    return kExitOk;
  }
  if (format == "csv") {
    // One row per (conflict, value).
    std::cout << CsvLine({"cluster_id", "master_file_id", "field", "file_id", "value"}, g.csv);
    for (const OpenConflict& o : *open)
      for (const auto& [id, v] : o.conflict.values)
        std::cout << CsvLine({std::to_string(o.cluster_id), std::to_string(o.master_file_id),
                              o.conflict.field, std::to_string(id), v},
                             g.csv);
    return kExitOk;
  }
  for (const OpenConflict& o : *open) {
    std::printf("cluster %lld %s:", static_cast<long long>(o.cluster_id), o.conflict.field.c_str());
    for (const auto& [id, v] : o.conflict.values)
      std::printf("  file %lld \"%s\"", static_cast<long long>(id), DisplayPath(v).c_str());
    std::printf("\n");
  }
  if (!g.quiet)
    std::printf("%zu conflicts open%s\n", open->size(),
                open->empty() ? ""
                              : " (resolve with: doppel metadata resolve CLUSTER FIELD --from "
                                "FILE | --value V)");
  return kExitOk;
}

// ---------------------------------------------------------------- trash

int CmdTrashPurge(const Globals& g, int64_t older_than, int64_t hold_days, bool json_out) {
  auto cat = Open(g);
  if (!cat.ok()) return Fail(cat.status());
  PurgeOptions o;
  o.older_than_days = older_than;
  o.hold_days = hold_days;
  if (!g.quiet && !json_out)
    o.progress = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  auto r = PurgeTrash(**cat, o);
  if (!r.ok()) {
    const int rc = Fail(r.status());
    std::fprintf(stderr,
                 "doppel: each operation's journal records what was purged; run `doppel trash "
                 "purge` again to finish\n");
    return rc;
  }
  if (json_out) {
    json ops = json::array();
    for (const PurgedOperation& p : r->purged)
      ops.push_back({{"operation", p.operation},
                     {"applied_at", p.applied_at},
                     {"files", p.files},
                     {"bytes", p.bytes}});
    std::cout << json{{"purge", r->purge_id},
                      {"purged", ops},
                      {"held", r->held},
                      {"files", r->files},
                      {"bytes", r->bytes}}
                     .dump(2)
              << "\n";
    return kExitOk;
  }
  if (g.quiet) return kExitOk;
  for (const PurgedOperation& p : r->purged)
    std::printf("purged %s (applied %s): %lld files, %s; it can no longer be undone\n",
                p.operation.c_str(), p.applied_at.c_str(), (long long)p.files,
                HumanBytes(p.bytes).c_str());
  for (const std::string& h : r->held) std::printf("held: %s\n", h.c_str());
  std::printf("%lld files purged from the trash, %s freed\n", (long long)r->files,
              HumanBytes(r->bytes).c_str());
  return kExitOk;
}

}  // namespace

CommandRunner RegisterReplaceCommands(CLI::App& app, const Globals& g) {
  struct Args {
    std::string policy, out = "plan.json", plan, action, quarantine_dir, resume_op, op,
                        format = "table", type, version, dir;
    bool include_unconfirmed = false, json_out = false, resume = false, write_xmp = false;
    int64_t older_than = -1, hold_days = 30;
    int64_t cluster = 0;
    std::string field, value, from, reviewer;
    bool conflicts = false;
  };
  auto a = std::make_shared<Args>();

  auto* plan = app.add_subcommand(
      "plan", "decide which copy of each picture to keep and which to retire, and why");
  plan->add_option("--policy", a->policy,
                   "master policy (TOML, docs/policy.md; default: built-in rules)")
      ->check(CLI::ExistingFile);
  plan->add_flag("--include-unconfirmed", a->include_unconfirmed,
                 "also plan clusters of near copies nobody has confirmed in review");
  plan->add_option("-o,--output", a->out, "plan file to write (default plan.json)");
  plan->add_flag("--json", a->json_out, "print the plan as JSON instead of the summary");
  plan->footer(
      "By default only clusters a person confirmed, and clusters of "
      "exact copies, are planned.\n\n"
      "Examples:\n  doppel plan\n  doppel plan --policy policy.toml "
      "-o plan.json\n"
      "  doppel plan --include-unconfirmed --json");

  auto* apply =
      app.add_subcommand("apply", "carry out a plan under a journal (resumable, reversible)");
  apply->add_option("PLAN", a->plan, "plan file from `doppel plan`");
  apply->add_option("--action", a->action, "quarantine, hardlink, symlink, delete or redirect-only")
      ->check(CLI::IsMember({"quarantine", "hardlink", "symlink", "delete", "redirect-only"}));
  apply->add_option("--quarantine-dir", a->quarantine_dir,
                    "where quarantined files go (default: CATALOGUE.replace/quarantine)");
  apply->add_flag("--resume", a->resume, "finish an interrupted apply from its journal");
  apply->add_option("--operation", a->resume_op,
                    "with --resume: which operation (default: the interrupted one)");
  apply->add_flag("--json", a->json_out, "JSON output");
  apply->footer(
      "Each file and its master are checked against the catalogue's SHA-256 "
      "right before acting;\n"
      "a changed file is skipped. delete keeps a copy in "
      "CATALOGUE.replace/trash so undo can restore it.\n\n"
      "Examples:\n  doppel apply plan.json --action quarantine "
      "--quarantine-dir /srv/quarantine\n"
      "  doppel apply plan.json --action hardlink\n  doppel apply --resume\n"
      "Exit codes: 0 done, 3 some files skipped, 130 interrupted (resume it), "
      "1 failed (resume it).");

  auto* undo =
      app.add_subcommand("undo", "reverse an applied operation: bytes, path and mtime restored");
  undo->add_option("OPERATION", a->op,
                   "operation id printed by apply (see doppel audit --type apply)")
      ->required();
  undo->add_flag("--json", a->json_out, "JSON output");
  undo->footer("Example:\n  doppel undo op-20261201T213000Z-1a2b");

  auto* audit = app.add_subcommand(
      "audit", "export the audit trail: plans, applied and undone actions, decisions");
  audit->add_option("--format", a->format, "table, csv or json")
      ->check(CLI::IsMember({"table", "csv", "json"}));
  audit->add_option("--type", a->type,
                    "only events of this type (plan, apply, undo, release, "
                    "review decision...)");
  audit->add_option("--operation", a->op, "only events of this operation");
  audit->footer(
      "Examples:\n  doppel audit\n  doppel audit --type apply --format csv > "
      "applied.csv\n"
      "  doppel audit --operation op-20261201T213000Z-1a2b --format json");

  auto* metadata = app.add_subcommand(
      "metadata", "export each master's consolidated metadata (from doppel plan)");
  metadata
      ->add_option("--format", a->format,
                   "csv (default) or json; with --conflicts also table (the default there)")
      ->check(CLI::IsMember({"csv", "json", "table"}));
  auto* write_xmp = metadata->add_flag(
      "--write-xmp", a->write_xmp, "also write MASTER.xmp sidecars (the master is never changed)");
  metadata
      ->add_flag("--conflicts", a->conflicts,
                 "list the conflicts nobody has resolved yet, one line per conflict")
      ->excludes(write_xmp);
  metadata->add_flag("--json", a->json_out, "with --conflicts: as JSON (same as --format json)");
  metadata->footer(
      "Consolidated values carry the decisions in force (doppel metadata resolve).\n\n"
      "Examples:\n  doppel metadata --format json\n"
      "  doppel metadata --write-xmp > metadata.csv\n"
      "  doppel metadata --conflicts\n"
      "  doppel metadata --conflicts --format csv > open-conflicts.csv\n"
      "  doppel metadata resolve 4 title --from 12 --reviewer claire");
  auto* resolve = metadata->add_subcommand(
      "resolve", "decide the value of a field whose copies disagree (recorded with its author)");
  resolve->add_option("CLUSTER", a->cluster, "cluster id (doppel metadata --conflicts)")
      ->required();
  resolve->add_option("FIELD", a->field, "title, artist, copyright, make, model, capture_time, gps")
      ->required();
  auto* value_opt = resolve->add_option("--value", a->value, "the value to keep, typed in");
  auto* from_opt = resolve->add_option(
      "--from", a->from,
      "keep the value this copy carries: its file id, SOURCE/PATH or absolute path");
  value_opt->excludes(from_opt);
  resolve->add_option("--reviewer", a->reviewer, "who decides (default: $USER, else the login)");
  resolve->footer(
      "The decision is an audit event with its author (doppel audit --type 'metadata decision');\n"
      "the latest one per cluster and field is in force. Exports, XMP sidecars, plans and\n"
      "releases use it; resolving again changes it. Nothing is recorded when the cluster,\n"
      "field, value or copy is refused.\n\n"
      "Examples:\n  doppel metadata resolve 4 title --from 12 --reviewer claire\n"
      "  doppel metadata resolve 4 title --from 'apur/etudes/Halles - canopee.jpg'\n"
      "  doppel metadata resolve 4 capture_time --value 1998-06-01T09:00:00\n"
      "  doppel metadata resolve 4 gps --value 48.862,2.345");

  auto* release = app.add_subcommand(
      "release", "publish a numbered release: manifest, redirect list, change notice");
  release->add_option("VERSION", a->version, "release number, e.g. 1.0 (never reused)")->required();
  release->add_option("-o,--output", a->dir,
                      "folder for manifest.json, redirects.csv, CHANGES.md "
                      "(default release-VERSION)");
  release->footer(
      "Examples:\n  doppel release 1.0\n  doppel release 1.1 -o "
      "/srv/portal/releases/1.1");

  auto* trash = app.add_subcommand("trash", "the retired bytes kept so that undo can restore them");
  trash->require_subcommand(1);
  trash->footer("Example:\n  doppel trash purge --older-than 90");
  auto* purge = trash->add_subcommand(
      "purge", "remove, for good, the retired bytes of operations older than DAYS");
  purge->add_option("--older-than", a->older_than, "days since the apply began")
      ->required()
      ->check(CLI::NonNegativeNumber);
  purge
      ->add_option("--hold-days", a->hold_days,
                   "the archive's hold period: younger operations are never purged (default 30)")
      ->check(CLI::NonNegativeNumber);
  purge->add_flag("--json", a->json_out, "JSON output");
  purge->footer(
      "Only `delete`, `hardlink` and `symlink` keep bytes in CATALOGUE.replace/trash; a "
      "quarantine folder is yours and is never purged.\n"
      "A purged operation can no longer be undone; `doppel undo` then names the files lost.\n"
      "Each removal is journaled and audited (doppel audit --type purge).\n\n"
      "Examples:\n  doppel trash purge --older-than 90\n"
      "  doppel trash purge --older-than 7 --hold-days 7 --json");

  return [=, &g]() -> std::optional<int> {
    if (*purge) return CmdTrashPurge(g, a->older_than, a->hold_days, a->json_out);
    if (*plan) return CmdPlan(g, a->policy, a->include_unconfirmed, a->out, a->json_out);
    if (*apply)
      return CmdApply(g, a->plan, a->action, a->quarantine_dir, a->resume, a->resume_op,
                      a->json_out);
    if (*undo) return CmdUndo(g, a->op, a->json_out);
    if (*audit) return CmdAudit(g, a->format, a->type, a->op);
    if (*resolve) {
      MetadataDecisionRequest req;
      req.cluster_id = a->cluster;
      req.field = a->field;
      req.value = a->value;
      req.from = a->from;
      req.author = a->reviewer;
      if (req.author.empty() && std::getenv("USER")) req.author = std::getenv("USER");
      if (req.author.empty())
        if (const passwd* pw = getpwuid(geteuid())) req.author = pw->pw_name;
      return CmdMetadataResolve(g, req);
    }
    if (*metadata && a->conflicts) return CmdConflicts(g, a->json_out ? "json" : a->format);
    if (*metadata) return CmdMetadata(g, a->format == "json" ? "json" : "csv", a->write_xmp);
    if (*release) return CmdRelease(g, a->version, a->dir);
    return std::nullopt;
  };
}

}  // namespace doppel::cli
