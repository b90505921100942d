// Metadata conflict decisions (docs/plan.md, "Conflicts").
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "doppel/conflicts.h"
#include "replace/json_util.h"

namespace doppel {

Result<std::vector<MetadataResolution>> ListResolutions(Catalogue& cat) {
  EventFilter f;
  f.type = "metadata decision";
  DOPPEL_ASSIGN_OR_RETURN(std::vector<Event> events, cat.ListEvents(f));
  std::map<std::pair<int64_t, std::string>, MetadataResolution> latest;
  for (const Event& e : events) {
    auto d = nlohmann::json::parse(e.detail, nullptr, false);
    if (!d.is_object() || e.outcome != "success") continue;
    MetadataResolution r;
    r.event_id = e.id;
    r.cluster_id = d.value("cluster_id", int64_t(0));
    r.field = d.value("field", "");
    r.value = d.value("value", "");
    r.from_file_id = d.value("from_file_id", int64_t(0));
    r.author = e.agent.rfind("person ", 0) == 0 ? e.agent.substr(7) : e.agent;
    r.decided_at = e.time;
    latest[{r.cluster_id, r.field}] = std::move(r);  // events come oldest first
  }
  std::vector<MetadataResolution> out;
  for (auto& [k, r] : latest) out.push_back(std::move(r));
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.event_id < b.event_id; });
  return out;
}

void ApplyResolutions(ConsolidatedMetadata& m, const std::vector<MetadataResolution>& decisions) {
  for (const MetadataResolution& r : decisions) {
    if (r.cluster_id != m.cluster_id) continue;
    m.fields[r.field] = MetadataValue{r.value, r.from_file_id};
    m.conflicts.erase(std::remove_if(m.conflicts.begin(), m.conflicts.end(),
                                     [&](const MetadataConflict& c) { return c.field == r.field; }),
                      m.conflicts.end());
  }
}

Result<MetadataResolution> ResolveConflict(Catalogue& cat, int64_t cluster_id,
                                           const std::string& field, const std::string& value,
                                           int64_t from_file_id, const std::string& author) {
  if (author.empty())
    return InvalidArgument("a metadata decision needs its author (--reviewer NAME)");
  DOPPEL_ASSIGN_OR_RETURN(std::vector<StoredMetadata> docs, cat.LoadConsolidatedMetadata());
  auto doc = std::find_if(docs.begin(), docs.end(),
                          [&](const StoredMetadata& d) { return d.cluster_id == cluster_id; });
  if (doc == docs.end())
    return NotFound("cluster " + std::to_string(cluster_id) +
                    " has no consolidated metadata; run `doppel plan` first");
  DOPPEL_ASSIGN_OR_RETURN(ConsolidatedMetadata m, ConsolidatedFromJson(doc->document));
  DOPPEL_ASSIGN_OR_RETURN(std::vector<MetadataResolution> earlier, ListResolutions(cat));
  const bool decided_before =
      std::any_of(earlier.begin(), earlier.end(), [&](const MetadataResolution& r) {
        return r.cluster_id == cluster_id && r.field == field;
      });
  auto conflict = std::find_if(m.conflicts.begin(), m.conflicts.end(),
                               [&](const MetadataConflict& c) { return c.field == field; });
  if (conflict == m.conflicts.end() && !decided_before) {
    std::string open;
    for (const MetadataConflict& c : m.conflicts) open += (open.empty() ? "" : ", ") + c.field;
    return InvalidArgument("cluster " + std::to_string(cluster_id) + ": '" + field +
                           "' is not in conflict (open: " + (open.empty() ? "none" : open) +
                           "); nothing recorded");
  }
  MetadataResolution r;
  r.cluster_id = cluster_id;
  r.field = field;
  r.value = value;
  r.from_file_id = from_file_id;
  r.author = author;
  if (from_file_id != 0) {
    // The value that copy carries, as the conflict listed it.
    bool found = false;
    if (conflict != m.conflicts.end())
      for (const auto& [id, v] : conflict->values)
        if (id == from_file_id) {
          r.value = v;
          found = true;
        }
    if (!found)
      return InvalidArgument("cluster " + std::to_string(cluster_id) + ": file " +
                             std::to_string(from_file_id) + " carries no value of '" + field +
                             "' in the conflict (see `doppel metadata --conflicts`); nothing "
                             "recorded");
  } else if (value.empty()) {
    return InvalidArgument("give the value with --value V or --from FILE_ID");
  }
  Event e;
  e.type = "metadata decision";
  e.object = "cluster:" + std::to_string(cluster_id);
  e.agent = "person " + author;
  e.detail = DumpJson({{"cluster_id", cluster_id},
                       {"master_file_id", m.master_file_id},
                       {"field", field},
                       {"value", r.value},
                       {"from_file_id", from_file_id}});
  DOPPEL_ASSIGN_OR_RETURN(r.event_id, cat.AppendEvent(e));
  ApplyResolutions(m, {r});
  doc->document = ConsolidatedToJson(m);
  doc->updated_at.clear();
  DOPPEL_RETURN_IF_ERROR(
      cat.SaveConsolidatedMetadata({*doc}).WithContext(
          "the decision is recorded in the audit trail; `doppel plan` will apply it"));
  return r;
}

}  // namespace doppel
