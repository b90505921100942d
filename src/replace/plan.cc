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
  const std::string stamp = FormatUtcNow("%Y%m%dT%H%M%SZ");
  std::random_device rd;
  char rnd[8];
  std::snprintf(rnd, sizeof rnd, "%04x", unsigned(rd() & 0xFFFF));
  return prefix + "-" + stamp + "-" + rnd;
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
  DOPPEL_ASSIGN_OR_RETURN(std::vector<ReviewDecision> decision_list,
                          cat.ListDecisions(std::nullopt));
  const ReviewDecisions decisions(std::move(decision_list));  // the ones in force
  DOPPEL_ASSIGN_OR_RETURN(std::vector<RetiredFile> retired_list, RetiredFiles(cat));
  // Crops are known from the match relation, not from a file's record.
  DOPPEL_ASSIGN_OR_RETURN(std::vector<Match> matches, cat.LoadMatches());
  // People's decisions on metadata conflicts (doppel metadata resolve).
  DOPPEL_ASSIGN_OR_RETURN(const MetadataDecisions metadata_decisions, LoadMetadataDecisions(cat));
  std::map<int64_t, const MatchInput*> by_id;
  for (const MatchInput& m : inputs) by_id[m.file_id] = &m;
  std::map<std::string, std::string> root_of;
  for (const Source& s : sources) root_of[s.name] = s.root;
  std::set<int64_t> retired;
  for (const RetiredFile& r : retired_list) retired.insert(r.file_id);

  std::vector<StoredMetadata> docs;
  for (const Cluster& c : clusters) {
    const ReviewDecision* d = decisions.ForCluster(c.id);
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
      if (const ReviewDecision* md = decisions.ForMember(c.id, m.file_id);
          md && md->decision == "reject") {
        pc.notes.push_back(name + " left out: " + md->reviewer + " said it is not a duplicate");
        continue;
      }
      DOPPEL_ASSIGN_OR_RETURN(ImageRecord rec, cat.GetRecord(m.file_id));
      cands.push_back(
          Candidate{m.file_id, in.source, in.source_priority, in.path, std::move(rec), {}});
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
    // The catalogue keeps what the copies say, conflicts included (a decision
    // can be changed); the plan carries the decisions in force.
    docs.push_back(StoredMetadata{master.file_id, c.id, ConsolidatedToJson(pc.metadata), ""});
    metadata_decisions.Apply(pc.metadata);
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

namespace {

// Plans are a few levels deep; anything deeper is not a plan, and refusing it
// keeps the recursive parts of the JSON library (dump, comparisons) shallow.
constexpr int kMaxPlanDepth = 32;

bool IsSha256Hex(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// A Source name as the catalogue holds it: one path component.
bool IsSourceName(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos;
}

// A path relative to a Source root that stays inside it: no leading '/', no
// empty, "." or ".." component.
bool IsInsidePath(const std::string& p) {
  if (p.empty() || p.front() == '/') return false;
  size_t start = 0;
  for (;;) {
    const size_t slash = p.find('/', start);
    const std::string part = p.substr(start, slash == std::string::npos ? slash : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

// Empty when the action's fields are well formed, else what is wrong.
std::string ActionProblem(const PlannedAction& a) {
  if (a.file_id <= 0 || a.master_file_id <= 0) return "file ids must be positive";
  if (a.file_id == a.master_file_id) return "the file is its own master";
  if (a.bytes < 0 || a.bytes > (int64_t(1) << 56)) return "\"bytes\" is out of range";
  if (!IsSha256Hex(a.sha256) || !IsSha256Hex(a.master_sha256))
    return "a SHA-256 is not 64 lower-case hex digits";
  if (!IsSourceName(a.source) || !IsSourceName(a.master_source)) return "a source name is invalid";
  if (!IsInsidePath(a.path) || !IsInsidePath(a.master_path))
    return "a path is not relative to its Source (absolute, empty, or with a '..' part)";
  if (a.abs_path.empty() || a.abs_path.front() != '/' || a.master_abs_path.empty() ||
      a.master_abs_path.front() != '/')
    return "an abs_path is not absolute";
  return "";
}

}  // namespace

Result<Plan> PlanFromJson(const std::string& text, const std::string& name) {
  const std::string refused = "; refused (nothing was changed): make a new plan with `doppel plan`";
  bool too_deep = false;
  nlohmann::json j = nlohmann::json::parse(
      text,
      [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
        if (depth > kMaxPlanDepth) too_deep = true;
        return depth <= kMaxPlanDepth;
      },
      false);
  if (too_deep)
    return Corruption(name + ": nested deeper than any plan (" + std::to_string(kMaxPlanDepth) +
                      " levels)" + refused);
  if (j.is_discarded() || !j.is_object())
    return Corruption(name + ": not a JSON plan file (docs/plan.md)" + refused);
  // Every field is read inside the try: a value of the wrong type throws.
  try {
    if (!j.contains("format") || j["format"] != "doppel-plan")
      return InvalidArgument(name + ": not a doppel plan (no \"format\": \"doppel-plan\")");
    if (!j.contains("version") || !j["version"].is_number_integer())
      return Corruption(name + ": plan has no valid version" + refused);
    const int64_t version = j["version"].get<int64_t>();
    if (version > kPlanVersion)
      return Unsupported(name + ": plan version " + std::to_string(version) +
                         " is newer than this doppel (" + std::to_string(kPlanVersion) +
                         "); upgrade doppel");
    if (version < 1) return Corruption(name + ": plan has no valid version" + refused);
    Plan p;
    p.version = int(version);
    p.plan_id = j.at("plan_id").get<std::string>();
    p.created_at = j.value("created_at", "");
    p.catalogue = j.value("catalogue", "");
    p.policy = j.value("policy", "");
    p.include_unconfirmed = j.value("include_unconfirmed", false);
    if (!j.at("clusters").is_array() || !j.at("actions").is_array())
      return Corruption(name + ": \"clusters\" and \"actions\" must be arrays" + refused);
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
      const size_t index = p.actions.size();
      PlannedAction x = ActionFromJson(a);
      const std::string problem = ActionProblem(x);
      if (!problem.empty())
        return Corruption(std::string(name)
                              .append(": action ")
                              .append(std::to_string(index))
                              .append(" (file ")
                              .append(std::to_string(x.file_id))
                              .append("): ")
                              .append(problem)
                              .append(refused));
      if (__builtin_add_overflow(p.bytes_to_reclaim, x.bytes, &p.bytes_to_reclaim))
        return Corruption(std::string(name)
                              .append(": the actions' bytes add up past any archive")
                              .append(refused));
      p.actions.push_back(std::move(x));
    }
    if (j.contains("skipped"))
      for (const auto& s : j["skipped"])
        p.skipped.push_back({s.at("cluster_id").get<int64_t>(), s.value("reason", "")});
    return p;
  } catch (const std::exception& e) {
    return Corruption(name + ": malformed plan: " + e.what() + refused);
  }
}

}  // namespace doppel
