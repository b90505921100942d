// Metadata conflict decisions (docs/plan.md, "Conflicts"): recorded as audit
// events, applied by every reader of consolidated metadata.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>

#include "doppel/conflicts.h"
#include "replace/json_util.h"
#include "util/paths.h"

namespace doppel {
namespace {

constexpr const char* kDecisionEvent = "metadata decision";
constexpr size_t kMaxTextBytes = 2000;

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

bool HasControlCharacter(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char ch) {
    const auto u = static_cast<unsigned char>(ch);
    return u < 0x20 || u == 0x7f;
  });
}

bool IsKnownField(std::string_view field) {
  const auto& names = ConsolidatedFieldNames();
  return std::find(names.begin(), names.end(), field) != names.end();
}

std::string KnownFieldList() {
  std::string s;
  for (const std::string& f : ConsolidatedFieldNames()) s += (s.empty() ? "" : ", ") + f;
  return s;
}

Status CheckCaptureTime(const std::string& v) {
  static const std::regex kIso(
      R"(^(\d{4})-(\d{2})-(\d{2})(T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?)?$)");
  std::smatch m;
  if (std::regex_match(v, m, kIso)) {
    const int month = std::stoi(m[2]), day = std::stoi(m[3]);
    const bool time_ok =
        !m[4].matched || (std::stoi(m[5]) < 24 && std::stoi(m[6]) < 60 && std::stoi(m[7]) < 61);
    if (month >= 1 && month <= 12 && day >= 1 && day <= 31 && time_ok) return Status::OK();
  }
  return InvalidArgument("capture_time '" + DisplayPath(v) +
                         "' is not an ISO 8601 date or date-time (YYYY-MM-DD or "
                         "YYYY-MM-DDTHH:MM:SS[.fff][+hh:mm])");
}

Result<std::string> CheckGps(const std::string& v) {
  static const std::regex kPair(R"(^\s*([+-]?\d{1,3}(\.\d+)?)\s*,\s*([+-]?\d{1,3}(\.\d+)?)\s*$)");
  std::smatch m;
  if (std::regex_match(v, m, kPair)) {
    const double lat = std::stod(m[1]), lon = std::stod(m[3]);
    if (std::abs(lat) <= 90 && std::abs(lon) <= 180) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.6f,%.6f", lat, lon);  // as Consolidate writes it
      return std::string(buf);
    }
  }
  return InvalidArgument("gps '" + DisplayPath(v) +
                         "' is not LAT,LON in decimal degrees (latitude -90..90, longitude "
                         "-180..180), e.g. 48.857000,2.341000");
}

std::string ClusterName(int64_t id) { return "cluster " + std::to_string(id); }

}  // namespace

Result<std::string> CheckMetadataValue(std::string_view field, const std::string& value) {
  if (!IsKnownField(field))
    return InvalidArgument("'" + DisplayPath(std::string(field)) +
                           "' is not a field of consolidated metadata (" + KnownFieldList() + ")");
  const std::string v = Trim(value);
  if (v.empty()) return InvalidArgument(std::string(field) + ": the value is empty");
  if (!IsValidUtf8(v) || HasControlCharacter(v))
    return InvalidArgument(std::string(field) + " '" + DisplayPath(v) +
                           "' is not valid UTF-8 text without control characters");
  if (v.size() > kMaxTextBytes)
    return InvalidArgument(std::string(field) + ": the value is " + std::to_string(v.size()) +
                           " bytes long; at most " + std::to_string(kMaxTextBytes) + " are taken");
  if (field == "capture_time") {
    DOPPEL_RETURN_IF_ERROR(CheckCaptureTime(v));
    return v;
  }
  if (field == "gps") return CheckGps(v);
  return v;
}

// ---------------------------------------------------------------- in force

MetadataDecisions::MetadataDecisions(std::vector<MetadataDecision> all) : all_(std::move(all)) {
  for (size_t i = 0; i < all_.size(); ++i)
    in_force_[{all_[i].cluster_id, all_[i].field}] = i;  // later ones win
}

const MetadataDecision* MetadataDecisions::For(int64_t cluster_id, const std::string& field) const {
  auto it = in_force_.find({cluster_id, field});
  return it == in_force_.end() ? nullptr : &all_[it->second];
}

void MetadataDecisions::Apply(ConsolidatedMetadata& m) const {
  for (auto it = in_force_.lower_bound({m.cluster_id, ""});
       it != in_force_.end() && it->first.first == m.cluster_id; ++it) {
    const MetadataDecision& d = all_[it->second];
    m.fields[d.field] = MetadataValue{d.value, d.from_file_id};
    m.conflicts.erase(std::remove_if(m.conflicts.begin(), m.conflicts.end(),
                                     [&](const MetadataConflict& c) { return c.field == d.field; }),
                      m.conflicts.end());
  }
}

std::vector<const MetadataDecision*> MetadataDecisions::InForce() const {
  std::vector<size_t> idx;
  for (const auto& [key, i] : in_force_) idx.push_back(i);
  std::sort(idx.begin(), idx.end());
  std::vector<const MetadataDecision*> out;
  out.reserve(idx.size());
  for (size_t i : idx) out.push_back(&all_[i]);
  return out;
}

Result<MetadataDecisions> LoadMetadataDecisions(Catalogue& cat) {
  EventFilter f;
  f.type = kDecisionEvent;
  DOPPEL_ASSIGN_OR_RETURN(std::vector<Event> events, cat.ListEvents(f));
  std::vector<MetadataDecision> all;
  for (const Event& e : events) {  // oldest first
    if (e.outcome != "success") continue;
    auto d = nlohmann::json::parse(e.detail, nullptr, false);
    if (!d.is_object() || !d.value("cluster_id", nlohmann::json()).is_number_integer() ||
        !d.value("field", nlohmann::json()).is_string() ||
        !d.value("value", nlohmann::json()).is_string())
      continue;
    MetadataDecision r;
    r.event_id = e.id;
    r.cluster_id = d["cluster_id"].get<int64_t>();
    r.field = d["field"].get<std::string>();
    r.value = d["value"].get<std::string>();
    r.from_file_id = d.value("from_file_id", int64_t(0));
    r.author = e.agent.rfind("person ", 0) == 0 ? e.agent.substr(7) : e.agent;
    r.decided_at = e.time;
    all.push_back(std::move(r));
  }
  return MetadataDecisions(std::move(all));
}

Result<std::vector<ConsolidatedMetadata>> MetadataInForce(Catalogue& cat) {
  DOPPEL_ASSIGN_OR_RETURN(std::vector<StoredMetadata> docs, cat.LoadConsolidatedMetadata());
  DOPPEL_ASSIGN_OR_RETURN(MetadataDecisions decisions, LoadMetadataDecisions(cat));
  std::vector<ConsolidatedMetadata> out;
  for (const StoredMetadata& d : docs) {
    auto m = ConsolidatedFromJson(d.document);
    if (!m.ok())
      return m.status().WithContext("consolidated metadata of master file " +
                                    std::to_string(d.master_file_id) +
                                    " (run `doppel plan` again to rebuild it)");
    decisions.Apply(*m);
    out.push_back(std::move(*m));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.master_file_id < b.master_file_id; });
  return out;
}

Result<std::vector<OpenConflict>> OpenConflicts(Catalogue& cat) {
  DOPPEL_ASSIGN_OR_RETURN(std::vector<ConsolidatedMetadata> all, MetadataInForce(cat));
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.cluster_id < b.cluster_id; });
  std::vector<OpenConflict> out;
  for (const ConsolidatedMetadata& m : all)
    for (const MetadataConflict& c : m.conflicts)
      out.push_back({m.cluster_id, m.master_file_id, c});
  return out;
}

// ---------------------------------------------------------------- deciding

Result<MetadataDecision> ResolveConflict(Catalogue& cat, const MetadataDecisionRequest& req) {
  const std::string nothing = "; nothing recorded";
  const std::string author = Trim(req.author);
  if (author.empty() || !IsValidUtf8(author) || HasControlCharacter(author) || author.size() > 200)
    return InvalidArgument(
        "a metadata decision needs its author: a name of printable UTF-8 "
        "text (--reviewer NAME)" +
        nothing);
  if (!IsKnownField(req.field))
    return InvalidArgument("'" + DisplayPath(req.field) +
                           "' is not a field of consolidated metadata (" + KnownFieldList() + ")" +
                           nothing);
  if (req.value.empty() == req.from.empty())
    return InvalidArgument(
        "give the value with --value V or take it from a copy with --from FILE "
        "(one of them)" +
        nothing);

  DOPPEL_ASSIGN_OR_RETURN(std::vector<StoredMetadata> docs, cat.LoadConsolidatedMetadata());
  auto doc = std::find_if(docs.begin(), docs.end(),
                          [&](const StoredMetadata& d) { return d.cluster_id == req.cluster_id; });
  if (doc == docs.end())
    return NotFound(ClusterName(req.cluster_id) +
                    " has no consolidated metadata (clusters get it from `doppel plan`)" + nothing);
  DOPPEL_ASSIGN_OR_RETURN(ConsolidatedMetadata m, ConsolidatedFromJson(doc->document));
  DOPPEL_ASSIGN_OR_RETURN(MetadataDecisions decisions, LoadMetadataDecisions(cat));
  const bool in_conflict =
      std::any_of(m.conflicts.begin(), m.conflicts.end(),
                  [&](const MetadataConflict& c) { return c.field == req.field; });
  if (!in_conflict && !decisions.For(req.cluster_id, req.field)) {
    std::string open;
    for (const MetadataConflict& c : m.conflicts) open += (open.empty() ? "" : ", ") + c.field;
    return InvalidArgument(ClusterName(req.cluster_id) + ": '" + req.field +
                           "' is not in conflict (open: " + (open.empty() ? "none" : open) + ")" +
                           nothing);
  }

  MetadataDecision r;
  r.cluster_id = req.cluster_id;
  r.field = req.field;
  r.author = author;
  if (!req.from.empty()) {
    // The copy: a file id, SOURCE/PATH, or its absolute path; one of the
    // copies this cluster's metadata was consolidated from.
    const bool is_id = std::all_of(req.from.begin(), req.from.end(), [](char ch) {
      return std::isdigit(static_cast<unsigned char>(ch));
    });
    const HeldBy* copy = nullptr;
    std::string members;
    for (const HeldBy& h : m.held_by) {
      members += (members.empty() ? "" : ", ") + std::to_string(h.file_id) + " " + h.source + "/" +
                 DisplayPath(h.path);
      bool same = false;
      if (is_id) {
        same = req.from.size() < 19 && std::stoll(req.from) == h.file_id;
      } else if (req.from == h.source + "/" + h.path) {
        same = true;
      } else if (!req.from.empty() && req.from[0] == '/') {
        auto source = cat.GetSource(h.source);
        same = source.ok() && req.from == JoinPath(source->root, h.path);
      }
      if (same && !copy) copy = &h;
    }
    if (!copy)
      return InvalidArgument(DisplayPath(req.from) + " is not a copy of " +
                             ClusterName(req.cluster_id) + " (its copies: " + members + ")" +
                             nothing);
    DOPPEL_ASSIGN_OR_RETURN(ImageRecord record, cat.GetRecord(copy->file_id));
    const std::string v = MetadataFieldValue(record.metadata, req.field);
    if (v.empty())
      return InvalidArgument(copy->source + "/" + DisplayPath(copy->path) + " (file " +
                             std::to_string(copy->file_id) + ") carries no " + req.field + nothing);
    r.value = v;
    r.from_file_id = copy->file_id;
  } else {
    auto v = CheckMetadataValue(req.field, req.value);
    if (!v.ok()) return v.status().WithContext(ClusterName(req.cluster_id) + nothing);
    r.value = *v;
  }

  Event e;
  e.type = kDecisionEvent;
  e.object = "cluster:" + std::to_string(r.cluster_id);
  e.agent = "person " + author;
  e.detail = DumpJson({{"cluster_id", r.cluster_id},
                       {"master_file_id", m.master_file_id},
                       {"field", r.field},
                       {"value", r.value},
                       {"from_file_id", r.from_file_id}});
  DOPPEL_ASSIGN_OR_RETURN(r.event_id, cat.AppendEvent(e));
  return r;
}

// ---------------------------------------------------------------- sidecars

Result<std::vector<SidecarOutcome>> WriteXmpSidecars(Catalogue& cat, Env* env) {
  DOPPEL_ASSIGN_OR_RETURN(std::vector<ConsolidatedMetadata> all, MetadataInForce(cat));
  std::vector<SidecarOutcome> out;
  for (const ConsolidatedMetadata& m : all) {
    auto written = WriteXmpSidecar(cat, m, env);
    out.push_back({m.master_file_id, written.ok() ? *written : "", written.status()});
  }
  return out;
}

}  // namespace doppel
