// Master policy and metadata consolidation (docs/policy.md, docs/plan.md).
// toml++ and nlohmann::json exceptions stop here.
#include "doppel/policy.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "doppel/conflicts.h"
#include "doppel/match.h"
#include "replace/json_util.h"
#include "util/paths.h"

namespace doppel {

const char* PolicyRuleName(PolicyRule r) {
  switch (r) {
    case PolicyRule::kInformation:
      return "information";
    case PolicyRule::kSource:
      return "source";
    case PolicyRule::kOriginal:
      return "original";
    case PolicyRule::kCaptureDate:
      return "capture_date";
    case PolicyRule::kMetadata:
      return "metadata";
    case PolicyRule::kFileId:
      return "file_id";
  }
  return "?";
}

namespace {

std::optional<PolicyRule> ParseRule(std::string_view s) {
  for (PolicyRule r : {PolicyRule::kInformation, PolicyRule::kSource, PolicyRule::kOriginal,
                       PolicyRule::kCaptureDate, PolicyRule::kMetadata, PolicyRule::kFileId})
    if (s == PolicyRuleName(r)) return r;
  return std::nullopt;
}

}  // namespace

Result<MasterPolicy> ParsePolicy(const std::string& text, const std::string& name) {
  toml::table t;
  try {
    t = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << name << ": line " << e.source().begin.line << ": " << e.description()
        << "; fix the policy file (docs/policy.md)";
    return InvalidArgument(msg.str());
  }
  MasterPolicy p;
  p.origin = name;
  for (const auto& [key, node] : t) {
    const std::string k(key.str());
    if (k != "version" && k != "rules" && k != "sources")
      return InvalidArgument(std::string(name)
                                 .append(": unknown key '")
                                 .append(k)
                                 .append("' (known: version, rules, sources)"));
  }
  const int64_t version = t["version"].value_or(int64_t(0));
  if (version == 0) return InvalidArgument(name + ": missing 'version = 1' (docs/policy.md)");
  if (version > kPolicyVersion)
    return Unsupported(name + ": policy version " + std::to_string(version) +
                       " is newer than this doppel (" + std::to_string(kPolicyVersion) +
                       "); upgrade doppel");
  if (const toml::array* rules = t["rules"].as_array()) {
    p.rules.clear();
    for (const auto& r : *rules) {
      auto s = r.value<std::string>();
      auto rule = s ? ParseRule(*s) : std::nullopt;
      if (!rule)
        return InvalidArgument(name + ": unknown rule '" + s.value_or("?") +
                               "' (known: information, source, original, capture_date, metadata, "
                               "file_id)");
      if (std::find(p.rules.begin(), p.rules.end(), *rule) != p.rules.end())
        return InvalidArgument(name + ": rule '" + *s + "' is listed twice");
      p.rules.push_back(*rule);
    }
  } else if (t.contains("rules")) {
    return InvalidArgument(name + ": 'rules' must be a list of rule names");
  }
  if (std::find(p.rules.begin(), p.rules.end(), PolicyRule::kFileId) == p.rules.end())
    p.rules.push_back(PolicyRule::kFileId);
  if (const toml::table* sources = t["sources"].as_table()) {
    for (const auto& [key, node] : *sources)
      if (key.str() != "order")
        return InvalidArgument(name + ": unknown key 'sources." + std::string(key.str()) +
                               "' (known: order)");
    if (const toml::array* order = (*sources)["order"].as_array()) {
      for (const auto& s : *order) {
        auto v = s.value<std::string>();
        if (!v) return InvalidArgument(name + ": sources.order must list source names");
        p.source_order.push_back(*v);
      }
    }
  }
  return p;
}

Result<MasterPolicy> LoadPolicy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot read the policy file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParsePolicy(ss.str(), path);
}

std::string CandidateName(const Candidate& c) { return c.source + "/" + DisplayPath(c.path); }

namespace {

bool IsLossless(const std::string& format) {
  return format == "png" || format == "tiff" || format == "bmp" || format == "pnm";
}

int MetadataFields(const ImageMetadata& m) {
  int n = 0;
  for (const std::string* s :
       {&m.capture_time, &m.make, &m.model, &m.artist, &m.copyright, &m.title})
    n += !s->empty();
  n += m.gps_latitude.has_value();
  n += !m.keywords.empty();
  return n;
}

// Source rank: position in the policy's list, then unlisted by priority.
std::pair<size_t, int> SourceRank(const Candidate& c, const MasterPolicy& p) {
  auto it = std::find(p.source_order.begin(), p.source_order.end(), c.source);
  return {size_t(it - p.source_order.begin()), -c.source_priority};
}

std::string Dim(const ImageInfo& i) {
  return std::to_string(i.width) + "×" + std::to_string(i.height);
}

Verdict Decide(PolicyRule rule, int order, std::string reason) {
  return Verdict{order, rule, std::move(reason)};
}

bool IsGrey(const ImageInfo& i) {
  return i.colourspace == "b-w" || i.colourspace == "grey16" ||
         i.bands - (i.has_alpha ? 1 : 0) == 1;
}

bool CroppedFrom(const Candidate& inner, const Candidate& outer) {
  return std::find(inner.cropped_from.begin(), inner.cropped_from.end(), outer.file_id) !=
         inner.cropped_from.end();
}

// One axis of information: > 0 when a holds more, with how each side is
// described (the richer copy's words first).
struct Axis {
  int cmp = 0;
  std::string more;    // "it is in colour, the other greyscale"
  std::string lesser;  // "a greyscale copy"
  std::string richer;  // "the colour original"
};

std::vector<Axis> InformationAxes(const Candidate& a, const Candidate& b) {
  const ImageInfo& ia = a.record.info;
  const ImageInfo& ib = b.record.info;
  std::vector<Axis> axes;
  auto side = [](bool a_more, const ImageInfo& x, const ImageInfo& y) {
    return a_more ? std::pair<const ImageInfo&, const ImageInfo&>(x, y)
                  : std::pair<const ImageInfo&, const ImageInfo&>(y, x);
  };
  const bool ga = IsGrey(ia), gb = IsGrey(ib);
  if (ga != gb)
    axes.push_back({gb ? 1 : -1, "it is in colour, the other greyscale", "a greyscale copy",
                    "the colour original"});
  const int64_t pa = int64_t(ia.width) * ia.height, pb = int64_t(ib.width) * ib.height;
  if (pa != pb) {
    auto [r, l] = side(pa > pb, ia, ib);
    axes.push_back({pa > pb ? 1 : -1, "it has more pixels (" + Dim(r) + " against " + Dim(l) + ")",
                    "a smaller copy (" + Dim(l) + ")", "the larger original (" + Dim(r) + ")"});
  }
  const bool ca = CroppedFrom(a, b), cb = CroppedFrom(b, a);
  if (ca != cb)
    axes.push_back({cb ? 1 : -1, "it holds the whole picture, the other a crop of it",
                    "a cropped copy", "the whole picture"});
  if (ia.bit_depth != ib.bit_depth && ia.bit_depth > 0 && ib.bit_depth > 0) {
    auto [r, l] = side(ia.bit_depth > ib.bit_depth, ia, ib);
    axes.push_back({ia.bit_depth > ib.bit_depth ? 1 : -1,
                    "it has deeper samples (" + std::to_string(r.bit_depth) + "-bit against " +
                        std::to_string(l.bit_depth) + "-bit)",
                    "an " + std::to_string(l.bit_depth) + "-bit copy",
                    "the " + std::to_string(r.bit_depth) + "-bit original"});
  }
  const bool la = IsLossless(ia.format), lb = IsLossless(ib.format);
  if (la != lb) {
    auto [r, l] = side(la, ia, ib);
    axes.push_back({la ? 1 : -1, "it is lossless " + r.format + ", the other lossy " + l.format,
                    "a lossy " + l.format + " copy", "the lossless " + r.format});
  }
  // Compression is only comparable between files that would hold the same
  // pixels the same way: same format, dimensions and colour.
  if (!la && !lb && ia.format == ib.format && pa == pb && pa > 0 && ga == gb) {
    const double ba = double(a.record.file_size) / pa, bb = double(b.record.file_size) / pb;
    if (std::abs(ba - bb) > 0.05 * std::max(ba, bb)) {
      char more[128], lesser[96], richer[96];
      std::snprintf(more, sizeof more, "it is less compressed (%.2f bytes per pixel against %.2f)",
                    std::max(ba, bb), std::min(ba, bb));
      std::snprintf(lesser, sizeof lesser, "a more compressed copy (%.2f bytes per pixel)",
                    std::min(ba, bb));
      std::snprintf(richer, sizeof richer, "the less compressed one (%.2f bytes per pixel)",
                    std::max(ba, bb));
      axes.push_back({ba > bb ? 1 : -1, more, lesser, richer});
    }
  }
  return axes;
}

// > 0: a dominates b; < 0: b dominates a; 0: neither.
int Dominance(const std::vector<Axis>& axes) {
  bool a_more = false, b_more = false;
  for (const Axis& x : axes) (x.cmp > 0 ? a_more : b_more) = true;
  return a_more == b_more ? 0 : a_more ? 1 : -1;
}

// order < 0: a wins; reason written from the winner's side.
Verdict ApplyRule(PolicyRule rule, const Candidate& a, const Candidate& b, const MasterPolicy& p) {
  const ImageInfo& ia = a.record.info;
  const ImageInfo& ib = b.record.info;
  switch (rule) {
    case PolicyRule::kInformation:
      return CompareInformation(a, b);
    case PolicyRule::kSource: {
      if (a.source == b.source) return {};
      auto ra = SourceRank(a, p), rb = SourceRank(b, p);
      if (ra == rb) return {};
      const bool a_wins = ra < rb;
      const Candidate& w = a_wins ? a : b;
      const Candidate& l = a_wins ? b : a;
      auto rw = a_wins ? ra : rb;
      auto rl = a_wins ? rb : ra;
      std::string why;
      if (rw.first != rl.first)
        why = "source '" + w.source + "' ranks above '" + l.source + "' in the policy";
      else
        why = "source '" + w.source + "' has priority " + std::to_string(w.source_priority) +
              ", above '" + l.source + "' (" + std::to_string(l.source_priority) + ")";
      return Decide(rule, a_wins ? -1 : 1, why);
    }
    case PolicyRule::kOriginal: {
      const int64_t pa = int64_t(ia.width) * ia.height, pb = int64_t(ib.width) * ib.height;
      if (pa != pb)
        return Decide(rule, pa > pb ? -1 : 1,
                      "it has more pixels (" + Dim(pa > pb ? ia : ib) + " against " +
                          Dim(pa > pb ? ib : ia) + "): the others are smaller derivatives");
      if (ia.bit_depth != ib.bit_depth) {
        const bool a_wins = ia.bit_depth > ib.bit_depth;
        return Decide(rule, a_wins ? -1 : 1,
                      "it has deeper samples (" +
                          std::to_string(a_wins ? ia.bit_depth : ib.bit_depth) + "-bit against " +
                          std::to_string(a_wins ? ib.bit_depth : ia.bit_depth) + "-bit)");
      }
      const bool la = IsLossless(ia.format), lb = IsLossless(ib.format);
      if (la != lb)
        return Decide(rule, la ? -1 : 1,
                      "it is lossless " + (la ? ia.format : ib.format) + ", the other lossy " +
                          (la ? ib.format : ia.format));
      if (!la && ia.format == ib.format && pa > 0) {
        // Same lossy format and size: the bigger file was recompressed less.
        const double ba = double(a.record.file_size) / pa, bb = double(b.record.file_size) / pb;
        if (std::abs(ba - bb) > 0.05 * std::max(ba, bb)) {
          char buf[128];
          std::snprintf(buf, sizeof buf,
                        "it is less recompressed (%.2f bytes per pixel against %.2f)",
                        std::max(ba, bb), std::min(ba, bb));
          return Decide(rule, ba > bb ? -1 : 1, buf);
        }
      }
      return {};
    }
    case PolicyRule::kCaptureDate: {
      auto ta = CaptureTimeSeconds(a.record.metadata.capture_time);
      auto tb = CaptureTimeSeconds(b.record.metadata.capture_time);
      if (ta && !tb) return Decide(rule, -1, "it has a capture date and the other has none");
      if (tb && !ta) return Decide(rule, 1, "it has a capture date and the other has none");
      if (!ta || std::abs(*ta - *tb) < 1) return {};
      const bool a_wins = *ta < *tb;
      return Decide(rule, a_wins ? -1 : 1,
                    "it was captured earlier (" + (a_wins ? a : b).record.metadata.capture_time +
                        " against " + (a_wins ? b : a).record.metadata.capture_time + ")");
    }
    case PolicyRule::kMetadata: {
      const int na = MetadataFields(a.record.metadata), nb = MetadataFields(b.record.metadata);
      if (na == nb) return {};
      return Decide(rule, na > nb ? -1 : 1,
                    "it has richer metadata (" + std::to_string(std::max(na, nb)) +
                        " fields against " + std::to_string(std::min(na, nb)) + ")");
    }
    case PolicyRule::kFileId:
      if (a.file_id == b.file_id) return {};
      return Decide(rule, a.file_id < b.file_id ? -1 : 1,
                    "the copies are equivalent under the policy; the lowest file id (" +
                        std::to_string(std::min(a.file_id, b.file_id)) + ") decides");
  }
  return {};
}

}  // namespace

Verdict CompareCandidates(const Candidate& a, const Candidate& b, const MasterPolicy& policy) {
  for (PolicyRule r : policy.rules) {
    Verdict v = ApplyRule(r, a, b, policy);
    if (v.order != 0) return v;
  }
  return ApplyRule(PolicyRule::kFileId, a, b, policy);
}

Verdict CompareInformation(const Candidate& a, const Candidate& b) {
  std::vector<Axis> axes = InformationAxes(a, b);
  const int d = Dominance(axes);
  if (d == 0) return {};
  std::string why = "it holds more of the picture: ";
  bool first = true;
  for (const Axis& x : axes) {
    why += (first ? "" : "; ") + x.more;
    first = false;
  }
  return Decide(PolicyRule::kInformation, -d, why);
}

std::vector<bool> HoldsMostInformation(const std::vector<Candidate>& c) {
  std::vector<bool> out(c.size(), true);
  for (size_t i = 0; i < c.size(); ++i)
    for (size_t j = 0; j < c.size() && out[i]; ++j)
      if (j != i && CompareInformation(c[j], c[i]).order < 0) out[i] = false;
  return out;
}

std::string LesserCopyWarning(const std::vector<Candidate>& c, size_t kept) {
  for (size_t j = 0; j < c.size(); ++j) {
    if (j == kept) continue;
    std::vector<Axis> axes = InformationAxes(c[j], c[kept]);
    if (Dominance(axes) <= 0) continue;
    for (const Axis& x : axes)
      if (x.cmp > 0)
        return "keeps " + x.lesser + "; " + x.richer + " " + CandidateName(c[j]) + " is retired";
  }
  return "";
}

void NoteCrops(const std::vector<Match>& matches, std::vector<Candidate>& c) {
  std::map<int64_t, Candidate*> by_id;
  for (Candidate& x : c) by_id[x.file_id] = &x;
  for (const Match& m : matches) {
    // "A cropped to 90% of the area" / "B cropped to ..." (docs/matching.md).
    const bool a_inner = m.transform.rfind("A cropped", 0) == 0;
    const bool b_inner = m.transform.rfind("B cropped", 0) == 0;
    if (!a_inner && !b_inner) continue;
    auto inner = by_id.find(a_inner ? m.file_a : m.file_b);
    auto outer = by_id.find(a_inner ? m.file_b : m.file_a);
    if (inner == by_id.end() || outer == by_id.end()) continue;
    inner->second->cropped_from.push_back(outer->second->file_id);
  }
}

namespace {

// The rules filter in order: each keeps the candidates that no other
// remaining candidate beats under it. For total orders (every rule but
// `information`) this is the lexicographic order; for dominance it keeps the
// copies nothing dominates, so a lesser copy cannot win on a later rule.
// `eliminated` gets, per removed candidate, the rule and a candidate that
// beat it.
size_t Filter(const std::vector<Candidate>& c, std::vector<size_t> alive,
              const MasterPolicy& policy,
              std::map<size_t, std::pair<PolicyRule, size_t>>* eliminated) {
  std::vector<PolicyRule> rules = policy.rules;
  rules.push_back(PolicyRule::kFileId);
  for (PolicyRule r : rules) {
    if (alive.size() <= 1) break;
    std::vector<size_t> next;
    for (size_t i : alive) {
      std::optional<size_t> beaten_by;
      for (size_t j : alive)
        if (j != i && ApplyRule(r, c[j], c[i], policy).order < 0) {
          beaten_by = j;
          break;
        }
      if (!beaten_by)
        next.push_back(i);
      else if (eliminated)
        (*eliminated)[i] = {r, *beaten_by};
    }
    if (!next.empty()) alive = std::move(next);  // rules are acyclic; never empty
  }
  return alive.front();
}

}  // namespace

MasterChoice ChooseMaster(const std::vector<Candidate>& c, const MasterPolicy& policy) {
  MasterChoice out;
  std::vector<size_t> all(c.size());
  for (size_t i = 0; i < c.size(); ++i) all[i] = i;
  std::map<size_t, std::pair<PolicyRule, size_t>> eliminated;
  out.index = Filter(c, all, policy, &eliminated);
  out.why_not.resize(c.size());
  for (size_t i = 0; i < c.size(); ++i) {
    if (i == out.index) continue;
    Verdict v = CompareCandidates(c[out.index], c[i], policy);
    auto e = eliminated.find(i);
    if (v.order < 0 || e == eliminated.end() || e->second.second == out.index) {
      out.why_not[i] = v.reason;
    } else {
      // Another copy, not the master, beat it: say which and why.
      const auto [rule, by] = e->second;
      out.why_not[i] = CandidateName(c[by]) + " ranks above it (" +
                       ApplyRule(rule, c[by], c[i], policy).reason + ")";
    }
  }
  // The reason shown for the cluster is the one against the runner-up: the
  // strongest rival is the one a person wants explained.
  std::vector<size_t> rest;
  for (size_t i = 0; i < c.size(); ++i)
    if (i != out.index) rest.push_back(i);
  out.reason = "kept " + CandidateName(c[out.index]);
  if (!rest.empty()) out.reason += ": " + out.why_not[Filter(c, rest, policy, nullptr)];
  out.warning = LesserCopyWarning(c, out.index);
  if (!out.warning.empty()) out.reason += " (warning: " + out.warning + ")";
  return out;
}

// --- Consolidation ---

namespace {

std::string GpsText(const ImageMetadata& m) {
  if (!m.gps_latitude || !m.gps_longitude) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f,%.6f", *m.gps_latitude, *m.gps_longitude);
  return buf;
}

}  // namespace

const std::vector<std::string>& ConsolidatedFieldNames() {
  static const std::vector<std::string> kFields = {"title", "artist",       "copyright", "make",
                                                   "model", "capture_time", "gps"};
  return kFields;
}

std::string MetadataFieldValue(const ImageMetadata& md, std::string_view field) {
  if (field == "title") return md.title;
  if (field == "artist") return md.artist;
  if (field == "copyright") return md.copyright;
  if (field == "make") return md.make;
  if (field == "model") return md.model;
  if (field == "capture_time") return md.capture_time;
  if (field == "gps") return GpsText(md);
  return "";
}

ConsolidatedMetadata Consolidate(int64_t cluster_id, const std::vector<Candidate>& c,
                                 size_t master) {
  ConsolidatedMetadata m;
  m.cluster_id = cluster_id;
  m.master_file_id = c.empty() ? 0 : c[master].file_id;
  std::vector<size_t> order;
  if (!c.empty()) order.push_back(master);
  for (size_t i = 0; i < c.size(); ++i)
    if (i != master) order.push_back(i);
  for (size_t i : order)
    m.held_by.push_back(HeldBy{c[i].file_id, c[i].source, c[i].path, i == master});

  // Plain text fields: the master's value, else the first copy that has one;
  // distinct values are a conflict.
  for (const char* field : {"title", "artist", "copyright", "make", "model"}) {
    MetadataConflict conflict{field, {}};
    std::set<std::string> seen;
    for (size_t i : order) {
      std::string v = MetadataFieldValue(c[i].record.metadata, field);
      if (v.empty()) continue;
      if (!m.fields.count(field)) m.fields[field] = MetadataValue{v, c[i].file_id};
      if (seen.insert(v).second) conflict.values.emplace_back(c[i].file_id, v);
    }
    if (conflict.values.size() > 1) m.conflicts.push_back(std::move(conflict));
  }
  // Capture time: the earliest; dates more than a second apart conflict.
  {
    MetadataConflict conflict{"capture_time", {}};
    std::optional<double> best;
    std::vector<double> distinct;
    for (size_t i : order) {
      const std::string& v = c[i].record.metadata.capture_time;
      auto t = CaptureTimeSeconds(v);
      if (!t) continue;
      if (!best || *t < *best) {
        best = t;
        m.fields["capture_time"] = MetadataValue{v, c[i].file_id};
      }
      if (std::none_of(distinct.begin(), distinct.end(),
                       [&](double d) { return std::abs(d - *t) < 1; })) {
        distinct.push_back(*t);
        conflict.values.emplace_back(c[i].file_id, v);
      }
    }
    if (conflict.values.size() > 1) m.conflicts.push_back(std::move(conflict));
  }
  // GPS: the master's position, else the first; positions more than about
  // 50 m apart conflict.
  {
    MetadataConflict conflict{"gps", {}};
    std::vector<std::pair<double, double>> distinct;
    for (size_t i : order) {
      const ImageMetadata& md = c[i].record.metadata;
      if (!md.gps_latitude || !md.gps_longitude) continue;
      if (!m.fields.count("gps")) m.fields["gps"] = MetadataValue{GpsText(md), c[i].file_id};
      auto close_by = [&](const std::pair<double, double>& p) {
        return std::abs(p.first - *md.gps_latitude) < 0.0005 &&
               std::abs(p.second - *md.gps_longitude) < 0.0005;
      };
      if (std::none_of(distinct.begin(), distinct.end(), close_by)) {
        distinct.emplace_back(*md.gps_latitude, *md.gps_longitude);
        conflict.values.emplace_back(c[i].file_id, GpsText(md));
      }
    }
    if (conflict.values.size() > 1) m.conflicts.push_back(std::move(conflict));
  }
  for (size_t i : order)
    for (const std::string& k : c[i].record.metadata.keywords) {
      auto& from = m.keyword_from[k];
      if (from.empty()) m.keywords.push_back(k);
      from.push_back(c[i].file_id);
    }
  return m;
}

std::string ConsolidatedToJson(const ConsolidatedMetadata& m) {
  nlohmann::json j;
  j["version"] = 1;
  j["cluster_id"] = m.cluster_id;
  j["master_file_id"] = m.master_file_id;
  j["held_by"] = nlohmann::json::array();
  for (const HeldBy& h : m.held_by)
    j["held_by"].push_back({{"file_id", h.file_id},
                            {"source", h.source},
                            {"path", PathJson(h.path)},
                            {"master", h.master}});
  j["fields"] = nlohmann::json::object();
  for (const auto& [k, v] : m.fields)
    j["fields"][k] = {{"value", v.value}, {"from_file_id", v.from_file_id}};
  j["keywords"] = m.keywords;
  j["keyword_from"] = m.keyword_from;
  j["conflicts"] = nlohmann::json::array();
  for (const MetadataConflict& c : m.conflicts) {
    nlohmann::json values = nlohmann::json::array();
    for (const auto& [id, v] : c.values) values.push_back({{"file_id", id}, {"value", v}});
    j["conflicts"].push_back({{"field", c.field}, {"values", values}});
  }
  return DumpJson(j);
}

Result<ConsolidatedMetadata> ConsolidatedFromJson(const std::string& text) {
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    ConsolidatedMetadata m;
    m.cluster_id = j.at("cluster_id").get<int64_t>();
    m.master_file_id = j.at("master_file_id").get<int64_t>();
    for (const auto& h : j.at("held_by"))
      m.held_by.push_back(HeldBy{h.at("file_id").get<int64_t>(), h.at("source").get<std::string>(),
                                 PathFromJson(h.at("path")), h.value("master", false)});
    for (const auto& [k, v] : j.at("fields").items())
      m.fields[k] =
          MetadataValue{v.at("value").get<std::string>(), v.at("from_file_id").get<int64_t>()};
    m.keywords = j.at("keywords").get<std::vector<std::string>>();
    m.keyword_from = j.value("keyword_from", std::map<std::string, std::vector<int64_t>>{});
    for (const auto& c : j.at("conflicts")) {
      MetadataConflict mc{c.at("field").get<std::string>(), {}};
      for (const auto& v : c.at("values"))
        mc.values.emplace_back(v.at("file_id").get<int64_t>(), v.at("value").get<std::string>());
      m.conflicts.push_back(std::move(mc));
    }
    return m;
  } catch (const nlohmann::json::exception& e) {
    return Corruption(std::string("consolidated metadata: ") + e.what());
  }
}

namespace {
std::string XmlEscape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    switch (ch) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      default:
        o += ch;
    }
  }
  return o;
}
}  // namespace

std::string ConsolidatedToXmp(const ConsolidatedMetadata& m) {
  std::ostringstream x;
  auto field = [&](const char* k) -> std::string {
    auto it = m.fields.find(k);
    return it == m.fields.end() ? std::string() : it->second.value;
  };
  x << "<?xpacket begin=\"\xEF\xBB\xBF\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n"
    << "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n"
    << " <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n"
    << "  <rdf:Description rdf:about=\"\"\n"
    << "    xmlns:dc=\"http://purl.org/dc/elements/1.1/\"\n"
    << "    xmlns:exif=\"http://ns.adobe.com/exif/1.0/\"\n"
    << "    xmlns:photoshop=\"http://ns.adobe.com/photoshop/1.0/\"\n"
    << "    xmlns:doppel=\"https://doppel.invalid/ns/consolidated/1.0/\"\n"
    << "    doppel:ClusterId=\"" << m.cluster_id << "\"\n"
    << "    doppel:MasterFileId=\"" << m.master_file_id << "\"";
  if (!field("capture_time").empty())
    x << "\n    exif:DateTimeOriginal=\"" << XmlEscape(field("capture_time"))
      << "\"\n    photoshop:DateCreated=\"" << XmlEscape(field("capture_time")) << "\"";
  x << ">\n";
  if (!field("title").empty())
    x << "   <dc:title><rdf:Alt><rdf:li xml:lang=\"x-default\">" << XmlEscape(field("title"))
      << "</rdf:li></rdf:Alt></dc:title>\n";
  if (!field("artist").empty())
    x << "   <dc:creator><rdf:Seq><rdf:li>" << XmlEscape(field("artist"))
      << "</rdf:li></rdf:Seq></dc:creator>\n";
  if (!field("copyright").empty())
    x << "   <dc:rights><rdf:Alt><rdf:li xml:lang=\"x-default\">" << XmlEscape(field("copyright"))
      << "</rdf:li></rdf:Alt></dc:rights>\n";
  if (!m.keywords.empty()) {
    x << "   <dc:subject><rdf:Bag>\n";
    for (const std::string& k : m.keywords) x << "    <rdf:li>" << XmlEscape(k) << "</rdf:li>\n";
    x << "   </rdf:Bag></dc:subject>\n";
  }
  x << "   <doppel:HeldBy><rdf:Bag>\n";
  for (const HeldBy& h : m.held_by)
    x << "    <rdf:li>" << XmlEscape(h.source + "/" + DisplayPath(h.path)) << "</rdf:li>\n";
  x << "   </rdf:Bag></doppel:HeldBy>\n";
  if (!m.conflicts.empty()) {
    x << "   <doppel:Conflicts><rdf:Bag>\n";
    for (const MetadataConflict& c : m.conflicts) {
      std::string v;
      for (const auto& [id, val] : c.values)
        v += (v.empty() ? "" : " | ") + ("file " + std::to_string(id) + ": " + val);
      x << "    <rdf:li>" << XmlEscape(c.field + ": " + v) << "</rdf:li>\n";
    }
    x << "   </rdf:Bag></doppel:Conflicts>\n";
  }
  x << "  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n<?xpacket "
       "end=\"w\"?>\n";
  return x.str();
}

}  // namespace doppel
