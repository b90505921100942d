// Plans: which copies to retire, which to keep, and why (docs/plan.md).
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "doppel/conflicts.h"
#include "doppel/replace.h"
#include "replace/json_util.h"
#include "replace/replace_int.h"
#include "util/paths.h"

namespace doppel {

const char* ActionKindName(ActionKind k) {
  switch (k) {
    case ActionKind::kQuarantine:
      return "quarantine";
    case ActionKind::kHardlink:
      return "hardlink";
    case ActionKind::kSymlink:
      return "symlink";
    case ActionKind::kDelete:
      return "delete";
    case ActionKind::kRedirectOnly:
      return "redirect-only";
  }
  return "?";
}

std::optional<ActionKind> ParseActionKind(const std::string& s) {
  for (ActionKind k : {ActionKind::kQuarantine, ActionKind::kHardlink, ActionKind::kSymlink,
                       ActionKind::kDelete, ActionKind::kRedirectOnly})
    if (s == ActionKindName(k)) return k;
  return std::nullopt;
}

std::string NewOperationId(const std::string& prefix) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  std::random_device rd;
  char rnd[8];
  std::snprintf(rnd, sizeof rnd, "%04x", unsigned(rd() & 0xFFFF));
  return prefix + "-" + buf + "-" + rnd;
}

namespace {

const char* Article(const std::string& word) {
  return !word.empty() && std::string("aeiou").find(word[0]) != std::string::npos ? "an" : "a";
}

}  // namespace

nlohmann::json ActionJson(const PlannedAction& a) {
  return {{"cluster_id", a.cluster_id},
          {"file_id", a.file_id},
          {"source", a.source},
          {"path", PathJson(a.path)},
          {"abs_path", PathJson(a.abs_path)},
          {"sha256", a.sha256},
          {"bytes", a.bytes},
          {"mtime_ns", a.mtime_ns},
          {"relation", a.relation},
          {"master_file_id", a.master_file_id},
          {"master_source", a.master_source},
          {"master_path", PathJson(a.master_path)},
          {"master_abs_path", PathJson(a.master_abs_path)},
          {"master_sha256", a.master_sha256},
          {"reason", a.reason}};
}

PlannedAction ActionFromJson(const nlohmann::json& j) {
  PlannedAction a;
  a.cluster_id = j.at("cluster_id").get<int64_t>();
  a.file_id = j.at("file_id").get<int64_t>();
  a.source = j.at("source").get<std::string>();
  a.path = PathFromJson(j.at("path"));
  a.abs_path = PathFromJson(j.at("abs_path"));
  a.sha256 = j.at("sha256").get<std::string>();
  a.bytes = j.at("bytes").get<int64_t>();
  a.mtime_ns = j.value("mtime_ns", int64_t(0));
  a.relation = j.value("relation", "");
  a.master_file_id = j.at("master_file_id").get<int64_t>();
  a.master_source = j.at("master_source").get<std::string>();
  a.master_path = PathFromJson(j.at("master_path"));
  a.master_abs_path = PathFromJson(j.at("master_abs_path"));
  a.master_sha256 = j.at("master_sha256").get<std::string>();
  a.reason = j.value("reason", "");
  return a;
}

int64_t Plan::LesserMasters() const {
  return std::count_if(clusters.begin(), clusters.end(),
                       [](const PlannedCluster& c) { return !c.warning.empty(); });
}

Result<Plan> MakePlan(Catalogue& cat, const PlanOptions& options) {
  Plan plan;
  plan.plan_id = NewOperationId("plan");
  plan.created_at = UtcNow();
  plan.catalogue = cat.Location();
  plan.policy = options.policy.origin;
  plan.include_unconfirmed = options.include_unconfirmed;

  DOPPEL_ASSIGN_OR_RETURN(std::vector<Cluster> clusters, cat.LoadClusters());
  DOPPEL_ASSIGN_OR_RETURN(std::vector<MatchInput> inputs, cat.LoadMatchInputs());
  DOPPEL_ASSIGN_OR_RETURN(std::vector<Source> sources, cat.ListSources());
  DOPPEL_ASSIGN_OR_RETURN(std::vector<ReviewDecision> decisions, cat.ListDecisions(std::nullopt));
  DOPPEL_ASSIGN_OR_RETURN(std::vector<RetiredFile> retired_list, RetiredFiles(cat));
  // Crops are known from the match relation, not from a file's record.
  DOPPEL_ASSIGN_OR_RETURN(std::vector<Match> matches, cat.LoadMatches());
  // People's decisions on metadata conflicts (doppel metadata resolve).
  DOPPEL_ASSIGN_OR_RETURN(std::vector<MetadataResolution> resolutions, ListResolutions(cat));
  std::map<int64_t, const MatchInput*> by_id;
  for (const MatchInput& m : inputs) by_id[m.file_id] = &m;
  std::map<std::string, std::string> root_of;
  for (const Source& s : sources) root_of[s.name] = s.root;
  std::set<int64_t> retired;
  for (const RetiredFile& r : retired_list) retired.insert(r.file_id);
  // The latest decision per (cluster, file) is in force; decisions come oldest
  // first.
  std::map<int64_t, const ReviewDecision*> cluster_decision;
  std::map<std::pair<int64_t, int64_t>, const ReviewDecision*> member_decision;
  for (const ReviewDecision& d : decisions) {
    if (d.file_id)
      member_decision[{d.cluster_id, *d.file_id}] = &d;
    else
      cluster_decision[d.cluster_id] = &d;
  }

  std::vector<StoredMetadata> docs;
  for (const Cluster& c : clusters) {
    const ReviewDecision* d = cluster_decision.count(c.id) ? cluster_decision[c.id] : nullptr;
    if (d && d->decision == "reject") {
      plan.skipped.push_back({c.id, "rejected by " + d->reviewer + " in review: not duplicates"});
      continue;
    }
    const bool confirmed = d && (d->decision == "confirm" || d->decision == "choose_master");
    const bool all_exact =
        std::all_of(c.members.begin(), c.members.end(), [](const ClusterMember& m) {
          return m.master || m.relation == MatchKind::kExact || m.relation == MatchKind::kMetadata;
        });
    if (!confirmed && !all_exact && !options.include_unconfirmed) {
      plan.skipped.push_back({c.id,
                              "near copies nobody has confirmed yet (review them, or plan with "
                              "--include-unconfirmed)"});
      continue;
    }
    PlannedCluster pc;
    pc.cluster_id = c.id;
    pc.basis = confirmed ? (d->decision == "choose_master" ? "review: master chosen by "
                                                           : "review: confirmed by ") +
                               d->reviewer
               : all_exact ? "exact copies: same bytes or same picture"
                           : "automatic matches (unconfirmed)";
    std::vector<Candidate> cands;
    std::vector<std::string> relations;
    for (const ClusterMember& m : c.members) {
      auto it = by_id.find(m.file_id);
      if (it == by_id.end()) {
        pc.notes.push_back("file " + std::to_string(m.file_id) +
                           " is no longer readable in the catalogue");
        continue;
      }
      const MatchInput& in = *it->second;
      const std::string name = in.source + "/" + DisplayPath(in.path);
      if (retired.count(m.file_id)) {
        pc.notes.push_back(name + " is already retired");
        continue;
      }
      auto md = member_decision.find({c.id, m.file_id});
      if (md != member_decision.end() && md->second->decision == "reject") {
        pc.notes.push_back(name + " left out: " + md->second->reviewer +
                           " said it is not a duplicate");
        continue;
      }
      DOPPEL_ASSIGN_OR_RETURN(ImageRecord rec, cat.GetRecord(m.file_id));
      cands.push_back(Candidate{m.file_id, in.source, in.source_priority, in.path, std::move(rec)});
      relations.push_back(m.master ? "" : MatchKindName(m.relation));
    }
    if (cands.size() < 2) {
      plan.skipped.push_back(
          {c.id, "fewer than two copies left to compare" +
                     (pc.notes.empty() ? std::string() : " (" + pc.notes.front() + ")")});
      continue;
    }
    NoteCrops(matches, cands);
    MasterChoice choice = ChooseMaster(cands, options.policy);
    bool by_person = false;
    if (d && d->decision == "choose_master") {
      auto it = std::find_if(cands.begin(), cands.end(),
                             [&](const Candidate& x) { return x.file_id == d->master_file_id; });
      if (it != cands.end()) {
        choice.index = size_t(it - cands.begin());
        choice.reason = "kept " + CandidateName(*it) + ": chosen by " + d->reviewer + " in review";
        choice.warning = LesserCopyWarning(cands, choice.index);
        if (!choice.warning.empty()) choice.reason += " (warning: " + choice.warning + ")";
        by_person = true;
      } else {
        pc.notes.push_back("the master chosen in review (file " +
                           std::to_string(d->master_file_id) +
                           ") is no longer available; the policy chose");
      }
    }
    const Candidate& master = cands[choice.index];
    pc.master_file_id = master.file_id;
    pc.master = CandidateName(master);
    pc.reason = choice.reason;
    pc.warning = choice.warning;
    pc.metadata = Consolidate(c.id, cands, choice.index);
    ApplyResolutions(pc.metadata, resolutions);
    docs.push_back(StoredMetadata{master.file_id, c.id, ConsolidatedToJson(pc.metadata), ""});
    // The stored relation is to the clustering's master; name the policy's
    // master.
    std::string master_relation;
    for (size_t i = 0; i < cands.size(); ++i)
      if (i == choice.index) master_relation = relations[i];
    for (size_t i = 0; i < cands.size(); ++i) {
      if (i == choice.index) continue;
      const Candidate& x = cands[i];
      PlannedAction a;
      a.cluster_id = c.id;
      a.file_id = x.file_id;
      a.source = x.source;
      a.path = x.path;
      a.abs_path = JoinPath(root_of[x.source], x.path);
      a.sha256 = DigestHex(x.record.fingerprints.sha256);
      a.bytes = x.record.file_size;
      a.mtime_ns = x.record.mtime_ns;
      a.relation = relations[i].empty() ? master_relation : relations[i];
      a.master_file_id = master.file_id;
      a.master_source = master.source;
      a.master_path = master.path;
      a.master_abs_path = JoinPath(root_of[master.source], master.path);
      a.master_sha256 = DigestHex(master.record.fingerprints.sha256);
      const std::string why =
          by_person ? "chosen by " + d->reviewer + " in review" : choice.why_not[i];
      a.reason = CandidateName(x) + " is " + Article(a.relation) + " " + a.relation + " copy of " +
                 pc.master + ", which is kept: " + why;
      plan.bytes_to_reclaim += a.bytes;
      plan.actions.push_back(std::move(a));
    }
    plan.clusters.push_back(std::move(pc));
  }
  DOPPEL_RETURN_IF_ERROR(cat.SaveConsolidatedMetadata(docs));
  Event e;
  e.type = "plan";
  e.object = "plan:" + plan.plan_id;
  e.detail = DumpJson({{"plan_id", plan.plan_id},
                       {"clusters", plan.clusters.size()},
                       {"actions", plan.actions.size()},
                       {"bytes_to_reclaim", plan.bytes_to_reclaim},
                       {"skipped_clusters", plan.skipped.size()},
                       {"lesser_masters", plan.LesserMasters()},
                       {"policy", plan.policy},
                       {"include_unconfirmed", plan.include_unconfirmed}});
  DOPPEL_RETURN_IF_ERROR(cat.AppendEvent(e).status());
  return plan;
}

std::string PlanToJson(const Plan& p) {
  nlohmann::json j;
  j["format"] = "doppel-plan";
  j["version"] = p.version;
  j["plan_id"] = p.plan_id;
  j["created_at"] = p.created_at;
  j["catalogue"] = p.catalogue;
  j["policy"] = p.policy;
  j["include_unconfirmed"] = p.include_unconfirmed;
  j["summary"] = {{"clusters", p.clusters.size()},
                  {"actions", p.actions.size()},
                  {"bytes_to_reclaim", p.bytes_to_reclaim},
                  {"skipped_clusters", p.skipped.size()},
                  {"lesser_masters", p.LesserMasters()}};
  j["clusters"] = nlohmann::json::array();
  for (const PlannedCluster& c : p.clusters) {
    nlohmann::json x = {{"cluster_id", c.cluster_id},
                        {"master_file_id", c.master_file_id},
                        {"master", c.master},
                        {"basis", c.basis},
                        {"reason", c.reason},
                        {"notes", c.notes},
                        {"metadata", nlohmann::json::parse(ConsolidatedToJson(c.metadata))}};
    if (!c.warning.empty()) x["warning"] = c.warning;
    j["clusters"].push_back(std::move(x));
  }
  j["actions"] = nlohmann::json::array();
  for (const PlannedAction& a : p.actions) j["actions"].push_back(ActionJson(a));
  j["skipped"] = nlohmann::json::array();
  for (const SkippedCluster& s : p.skipped)
    j["skipped"].push_back({{"cluster_id", s.cluster_id}, {"reason", s.reason}});
  return DumpJson(j, 2) + "\n";
}

Result<Plan> PlanFromJson(const std::string& text, const std::string& name) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Corruption(name + ": not a JSON plan file (docs/plan.md)");
  if (j.value("format", "") != "doppel-plan")
    return InvalidArgument(name + ": not a doppel plan (no \"format\": \"doppel-plan\")");
  const int version = j.value("version", 0);
  if (version > kPlanVersion)
    return Unsupported(name + ": plan version " + std::to_string(version) +
                       " is newer than this doppel (" + std::to_string(kPlanVersion) +
                       "); upgrade doppel");
  if (version < 1) return Corruption(name + ": plan has no valid version");
  try {
    Plan p;
    p.version = version;
    p.plan_id = j.at("plan_id").get<std::string>();
    p.created_at = j.value("created_at", "");
    p.catalogue = j.value("catalogue", "");
    p.policy = j.value("policy", "");
    p.include_unconfirmed = j.value("include_unconfirmed", false);
    for (const auto& c : j.at("clusters")) {
      PlannedCluster pc;
      pc.cluster_id = c.at("cluster_id").get<int64_t>();
      pc.master_file_id = c.at("master_file_id").get<int64_t>();
      pc.master = c.value("master", "");
      pc.basis = c.value("basis", "");
      pc.reason = c.value("reason", "");
      pc.notes = c.value("notes", std::vector<std::string>{});
      pc.warning = c.value("warning", "");
      if (c.contains("metadata")) {
        auto m = ConsolidatedFromJson(c["metadata"].dump());
        if (m.ok()) pc.metadata = *m;
      }
      p.clusters.push_back(std::move(pc));
    }
    for (const auto& a : j.at("actions")) {
      PlannedAction x = ActionFromJson(a);
      p.bytes_to_reclaim += x.bytes;
      p.actions.push_back(std::move(x));
    }
    if (j.contains("skipped"))
      for (const auto& s : j["skipped"])
        p.skipped.push_back({s.at("cluster_id").get<int64_t>(), s.value("reason", "")});
    return p;
  } catch (const std::exception& e) {
    return Corruption(name + ": malformed plan: " + e.what());
  }
}

}  // namespace doppel
