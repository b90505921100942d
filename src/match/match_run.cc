// `doppel match`: compare the files not matched before with everything in
// the catalogue, store the pairs, rebuild the clusters.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "doppel/catalogue.h"
#include "doppel/index.h"
#include "doppel/local_words.h"
#include "doppel/match.h"
#include "doppel/rendition.h"
#include "util/parallel.h"
#include "util/paths.h"

#include <nlohmann/json.hpp>

namespace doppel {
namespace {

// Above this many files, "similar" pairs come only from the PDQ threshold and
// from capture metadata: the wide visual radius needs a scan per query.
constexpr size_t kWideSearchLimit = 200'000;
// Identical groups larger than this link new members to the group's best
// file only, instead of to every member.
constexpr size_t kMaxGroupPairs = 200;

// A pair for the geometric check, with the evidence that proposed it:
// checks go to the strongest evidence first (then the smaller key).
enum Evidence : int {
  kPriorMatch = 0,   // the hashes matched; the check confirms or overrules
  kSameInstant = 1,  // same camera, same second
  kCloseHashes = 2,  // global hashes within the threshold, finer check undecided (key: bits)
  kLocalWords = 3,   // shared local words (key: minus the words shared)
  kLooseHashes = 4,  // global hashes within the wide "similar" radius (key: bits)
};
struct CheckCandidate {
  uint32_t x = 0, y = 0;  // file indexes
  int evidence = kPriorMatch;
  int key = 0;
};

struct DigestKey {
  size_t operator()(const Digest& d) const {
    size_t h;
    std::memcpy(&h, d.data(), sizeof h);
    return h;
  }
};

// Reads the files of undecided pairs again as small grey renditions and
// lets local features decide (CompareGeometric). Pairs are taken by group of
// related files; a small per-worker cache keeps the features of recently
// read files. Files that cannot be read any
// more (moved since the scan) are counted and their pairs left as they were.
Status VerifyCandidates(Catalogue& cat, const std::vector<MatchInput>& files,
                        std::vector<std::pair<uint32_t, uint32_t>>& geo, const MatchRunOptions& opt,
                        std::vector<Match>& found, MatchSummary& sum) {
  DOPPEL_ASSIGN_OR_RETURN(std::vector<Source> sources, cat.ListSources());
  std::map<std::string, std::string> roots;
  for (const auto& s : sources) roots[s.name] = s.root;
  for (auto& [x, y] : geo)
    if (x > y) std::swap(x, y);
  std::sort(geo.begin(), geo.end());
  geo.erase(std::unique(geo.begin(), geo.end()), geo.end());
  std::map<std::pair<int64_t, int64_t>, size_t> where;
  for (size_t k = 0; k < found.size(); ++k) where[{found[k].file_a, found[k].file_b}] = k;

  // Work goes out by group of related files (connected by candidate pairs),
  // so one worker sees all pairs of a group in turn and its small cache
  // holds the group's features: each file is read about once, not once per
  // pair. Big groups are cut (at a first-file boundary) to keep both cores busy.
  std::vector<uint32_t> parent(files.size());
  for (uint32_t i = 0; i < parent.size(); ++i) parent[i] = i;
  auto root = [&](uint32_t i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
  };
  for (const auto& [x, y] : geo) parent[root(x)] = root(y);
  std::vector<uint32_t> group_of(geo.size());
  for (size_t k = 0; k < geo.size(); ++k) group_of[k] = root(geo[k].first);
  {
    std::vector<size_t> order(geo.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return std::tie(group_of[a], geo[a]) < std::tie(group_of[b], geo[b]);
    });
    std::vector<std::pair<uint32_t, uint32_t>> sorted(geo.size());
    std::vector<uint32_t> sorted_group(geo.size());
    for (size_t k = 0; k < order.size(); ++k) {
      sorted[k] = geo[order[k]];
      sorted_group[k] = group_of[order[k]];
    }
    geo = std::move(sorted);
    group_of = std::move(sorted_group);
  }
  constexpr size_t kMaxBatch = 256;  // pairs
  std::vector<size_t> starts;        // first pair of each batch
  for (size_t k = 0; k < geo.size(); ++k)
    if (k == 0 || group_of[k] != group_of[k - 1] ||
        (k - starts.back() >= kMaxBatch && geo[k].first != geo[k - 1].first))
      starts.push_back(k);
  starts.push_back(geo.size());

  auto cancelled = [&] { return opt.cancel && opt.cancel->load(std::memory_order_relaxed); };
  std::mutex mu;
  WorkCounter groups(starts.size() - 1);
  std::atomic<size_t> done{0};
  std::vector<std::optional<Match>> verdicts(geo.size());
  std::atomic<int64_t> unreadable{0};
  RunWorkers(opt.jobs, [&](int) {
    constexpr size_t kCache = 64;
    std::map<uint32_t, std::pair<uint64_t, std::shared_ptr<const LocalFeatures>>> cache;
    std::map<uint32_t, bool> failed;
    uint64_t tick = 0;
    auto features = [&](uint32_t f) -> std::shared_ptr<const LocalFeatures> {
      if (auto it = cache.find(f); it != cache.end()) {
        it->second.first = ++tick;
        return it->second.second;
      }
      if (failed.count(f)) return nullptr;
      RenditionOptions ro;
      ro.max_side = kGeometrySide;
      ro.grey = true;
      auto root = roots.find(files[f].source);
      std::shared_ptr<const LocalFeatures> out;
      if (root != roots.end()) {
        auto r = RenderFile(JoinPath(root->second, files[f].path), ro);
        if (r.ok()) {
          auto ft = ExtractFeatures(*r);
          if (ft.ok()) out = *ft;
        }
      }
      if (!out) {
        failed[f] = true;
        unreadable.fetch_add(1);
        return nullptr;
      }
      if (cache.size() >= kCache) {
        auto oldest = std::min_element(
            cache.begin(), cache.end(),
            [](const auto& x, const auto& y) { return x.second.first < y.second.first; });
        cache.erase(oldest);
      }
      cache[f] = {++tick, out};
      return out;
    };
    for (size_t g; !cancelled() && groups.Next(g);) {
      for (size_t k = starts[g]; k < starts[g + 1]; ++k) {
        const auto [x, y] = geo[k];
        auto fx = features(x);
        if (!fx) continue;
        auto fy = features(y);
        if (!fy) continue;
        const GeometricCheck check = VerifyGeometry(*fx, *fy, opt.match.geometry);
        std::optional<Match> prior;
        {
          const auto key = std::make_pair(std::min(files[x].file_id, files[y].file_id),
                                          std::max(files[x].file_id, files[y].file_id));
          std::lock_guard lk(mu);
          if (auto it = where.find(key); it != where.end()) prior = found[it->second];
        }
        verdicts[k] = CompareGeometric(files[x], files[y], prior, check, opt.match);
      }
      const size_t d = done.fetch_add(starts[g + 1] - starts[g]) + (starts[g + 1] - starts[g]);
      if (opt.progress) {
        std::lock_guard lk(mu);
        opt.progress("verifying", int64_t(d), int64_t(geo.size()));
      }
    }
  });
  sum.geometry_checked = int64_t(geo.size());
  sum.geometry_unreadable = unreadable.load();
  for (auto& v : verdicts) {
    if (!v) continue;
    auto it = where.find({v->file_a, v->file_b});
    if (it == where.end()) {
      where[{v->file_a, v->file_b}] = found.size();
      found.push_back(std::move(*v));
    } else {
      found[it->second] = std::move(*v);
    }
  }
  return Status::OK();
}

// Pairs sharing local words (doppel/local_words.h), at least one of them
// fresh, strongest first, as file indexes into `files`.
Result<std::vector<LocalCandidate>> FindLocalCandidatesIn(
    Catalogue& cat, const std::vector<MatchInput>& files,
    const std::unordered_map<int64_t, uint32_t>& index_of, const MatchRunOptions& opt,
    MatchSummary& sum) {
  std::vector<bool> fresh(files.size());
  for (uint32_t i = 0; i < files.size(); ++i) fresh[i] = !files[i].already_matched;
  LocalWordSource source = [&](const auto& visit) {
    return cat.ForEachLocalWords([&](int64_t id, std::span<const uint32_t> words) {
      if (auto it = index_of.find(id); it != index_of.end()) visit(it->second, words);
    });
  };
  LocalCandidateOptions lo = opt.local;
  lo.min_shared = opt.match.min_shared_words;
  lo.cancel = opt.cancel;
  DOPPEL_ASSIGN_OR_RETURN(std::vector<LocalCandidate> found,
                          FindLocalCandidates(source, uint32_t(files.size()), fresh, lo));
  sum.local_candidates = int64_t(found.size());
  return found;
}

// Keeps, strongest evidence first, the pairs whose two files both have
// checks left: at most `per_file` pairs per file (0 = no limit). Repeated
// pairs count once. The pairs left out are counted, never dropped silently.
std::vector<std::pair<uint32_t, uint32_t>> LimitChecksPerFile(std::vector<CheckCandidate>& geo,
                                                              int per_file, MatchSummary& sum) {
  for (auto& c : geo)
    if (c.x > c.y) std::swap(c.x, c.y);
  std::sort(geo.begin(), geo.end(), [](const CheckCandidate& p, const CheckCandidate& q) {
    return std::tie(p.evidence, p.key, p.x, p.y) < std::tie(q.evidence, q.key, q.x, q.y);
  });
  std::set<std::pair<uint32_t, uint32_t>> kept;
  std::unordered_map<uint32_t, int> used;
  std::vector<std::pair<uint32_t, uint32_t>> out;
  for (const auto& c : geo) {
    if (!kept.insert({c.x, c.y}).second) continue;
    if (per_file > 0 && (used[c.x] >= per_file || used[c.y] >= per_file)) {
      ++sum.checks_skipped;
      continue;
    }
    ++used[c.x];
    ++used[c.y];
    out.push_back({c.x, c.y});
  }
  geo.clear();
  return out;
}

}  // namespace

Result<MatchSummary> MatchCatalogue(Catalogue& cat, const MatchRunOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  auto cancelled = [&] { return opt.cancel && opt.cancel->load(std::memory_order_relaxed); };
  DOPPEL_ASSIGN_OR_RETURN(std::vector<MatchInput> files, cat.LoadMatchInputs());
  MatchSummary sum;
  sum.files = int64_t(files.size());
  std::vector<uint32_t> fresh;
  for (uint32_t i = 0; i < files.size(); ++i) {
    if (opt.rematch_all) files[i].already_matched = false;
    if (!files[i].already_matched) fresh.push_back(i);
  }
  sum.new_files = int64_t(fresh.size());
  std::vector<Match> found;
  std::set<std::pair<int64_t, int64_t>> seen;
  auto add = [&](Match m) {
    if (seen.insert({m.file_a, m.file_b}).second) found.push_back(std::move(m));
  };

  // 1. Identical bytes and identical pictures: group by digest.
  for (bool by_content : {false, true}) {
    std::unordered_map<Digest, std::vector<uint32_t>, DigestKey> groups;
    for (uint32_t i = 0; i < files.size(); ++i)
      groups[by_content ? files[i].fingerprints.content_hash : files[i].fingerprints.sha256]
          .push_back(i);
    for (auto& [digest, members] : groups) {
      if (members.size() < 2) continue;
      std::sort(members.begin(), members.end(),
                [&](uint32_t x, uint32_t y) { return RanksBefore(files[x], files[y]); });
      // All pairs, or (for very large groups) each member with the group's best file.
      const size_t n = members.size();
      const bool big = n > kMaxGroupPairs;
      for (size_t x = 0; x < (big ? 1 : n); ++x)
        for (size_t y = x + 1; y < n; ++y) {
          const MatchInput& a = files[members[x]];
          const MatchInput& b = files[members[y]];
          if (a.already_matched && b.already_matched) continue;
          if (auto m = Compare(a, b, opt.match)) add(std::move(*m));
        }
    }
  }

  // 2. Near copies and visually close pictures, through the PDQ index: the
  //    whole picture in its eight orientations, and the picture inside borders.
  PdqIndex index;
  std::vector<uint32_t> owner;  // index entry -> file
  {
    std::vector<PdqHash> hashes;
    for (uint32_t i = 0; i < files.size(); ++i) {
      hashes.push_back(files[i].fingerprints.pdq.hash);
      owner.push_back(i);
      hashes.push_back(files[i].fingerprints.signature.smooth.hash);
      owner.push_back(i);
      if (files[i].fingerprints.signature.trimmed) {
        hashes.push_back(files[i].fingerprints.signature.trimmed->hash);
        owner.push_back(i);
      }
    }
    index.Build(std::move(hashes));
  }
  const bool wide = files.size() <= kWideSearchLimit;
  std::mutex mu;
  std::vector<CheckCandidate> geo;  // undecided candidate pairs (file indexes)
  WorkCounter work(fresh.size());
  std::atomic<size_t> done{0};
  RunWorkers(opt.jobs, [&](int) {
    QueryScratch scratch;
    std::vector<Neighbour> hits;
    std::vector<Match> local;
    std::vector<CheckCandidate> local_geo;
    std::map<uint32_t, int> candidates;  // file -> smallest distance seen
    std::vector<std::pair<int, uint32_t>> undecided;
    for (size_t k; !cancelled() && work.Next(k);) {
      const uint32_t i = fresh[k];
      const MatchInput& a = files[i];
      candidates.clear();
      auto collect = [&](const PdqHash& q, int radius) {
        index.Query(q, radius, hits, scratch);
        for (const Neighbour& n : hits)
          if (owner[n.index] != i) {
            auto [it, fresh_entry] = candidates.try_emplace(owner[n.index], n.distance);
            if (!fresh_entry) it->second = std::min(it->second, int(n.distance));
          }
      };
      for (int d = 0; d < (opt.match.dihedral ? 8 : 1); ++d) {
        collect(a.fingerprints.pdq.dihedral[d], opt.match.threshold);
        collect(a.fingerprints.signature.smooth.dihedral[d], opt.match.threshold);
      }
      if (a.fingerprints.signature.trimmed)
        collect(a.fingerprints.signature.trimmed->hash, opt.match.threshold);
      if (wide && opt.match.similar_radius > opt.match.threshold) {
        // Visually close pictures, as they are and inside their borders (the
        // eight orientations would make this scan eight times longer).
        collect(a.fingerprints.pdq.hash, opt.match.similar_radius);
        collect(a.fingerprints.signature.smooth.hash, opt.match.similar_radius);
        if (a.fingerprints.signature.trimmed)
          collect(a.fingerprints.signature.trimmed->hash, opt.match.similar_radius);
      }
      undecided.clear();
      for (auto [j, dist] : candidates) {
        const MatchInput& b = files[j];
        if (!b.already_matched && j < i) continue;  // the other fresh file's turn covers it
        auto m = Compare(a, b, opt.match);
        if (m && (m->kind == MatchKind::kNear || m->kind == MatchKind::kSimilar))
          local.push_back(std::move(*m));
        if (!m || m->kind == MatchKind::kSimilar) undecided.push_back({dist, j});
      }
      // The closest undecided candidates go to the geometric check.
      std::sort(undecided.begin(), undecided.end());
      for (auto [dist, j] : undecided)
        local_geo.push_back(
            {i, j, dist <= opt.match.threshold ? kCloseHashes : kLooseHashes, dist});
      const size_t d = done.fetch_add(1) + 1;
      if (opt.progress && (d % 256 == 0 || d == fresh.size())) {
        std::lock_guard lk(mu);
        opt.progress("comparing", int64_t(d), int64_t(fresh.size()));
      }
    }
    std::lock_guard lk(mu);
    for (auto& m : local) add(std::move(m));
    geo.insert(geo.end(), local_geo.begin(), local_geo.end());
  });
  if (cancelled()) return Cancelled("matching stopped on request; nothing was stored");

  // 3. Shots moments apart by the same camera (supporting evidence needs a
  //    visual agreement too: Compare decides).
  {
    // Per camera, files in capture order (ties by id, so runs repeat
    // exactly); every pair within the time window, at most kMaxBurst later
    // shots per file (a burst of hundreds would otherwise be quadratic).
    constexpr size_t kMaxBurst = 64;
    std::map<std::pair<std::string, std::string>, std::vector<std::pair<double, uint32_t>>>
        by_camera;
    for (uint32_t i = 0; i < files.size(); ++i) {
      if (files[i].metadata.model.empty()) continue;
      if (auto t = CaptureTimeSeconds(files[i].metadata.capture_time))
        by_camera[{files[i].metadata.make, files[i].metadata.model}].push_back({*t, i});
    }
    for (auto& [camera, shots] : by_camera) {
      std::sort(shots.begin(), shots.end(), [&](const auto& x, const auto& y) {
        return x.first != y.first ? x.first < y.first
                                  : files[x.second].file_id < files[y.second].file_id;
      });
      for (size_t x = 0; x < shots.size(); ++x)
        for (size_t y = x + 1; y < shots.size() && y <= x + kMaxBurst &&
                               shots[y].first - shots[x].first <= opt.match.similar_seconds;
             ++y) {
          const MatchInput& a = files[shots[x].second];
          const MatchInput& b = files[shots[y].second];
          if (a.already_matched && b.already_matched) continue;
          const bool known =
              seen.count({std::min(a.file_id, b.file_id), std::max(a.file_id, b.file_id)}) > 0;
          // Same camera, same instant: the same exposure, so a candidate for
          // the geometric check whatever the hashes say (a caption can move
          // PDQ 90 bits). Other instants are other exposures: never copies.
          if (opt.geometry && shots[y].first == shots[x].first && !known)
            geo.push_back({shots[x].second, shots[y].second, kSameInstant, 0});
          if (known) continue;
          if (auto m = Compare(a, b, opt.match)) add(std::move(*m));
        }
    }
  }

  // 4. The geometric check (docs/matching.md): undecided candidates, near
  //    pairs whose thumbnails agree only loosely, shots moments apart, and
  //    pairs sharing local words, whatever their global hashes say.
  if (opt.geometry) {
    std::unordered_map<int64_t, uint32_t> index_of;
    for (uint32_t i = 0; i < files.size(); ++i) index_of[files[i].file_id] = i;
    for (const Match& m : found)
      if (m.kind == MatchKind::kNear ? WantsGeometry(m, m.distance, 0, opt.match)
                                     : m.kind == MatchKind::kSimilar)
        geo.push_back({index_of[m.file_a], index_of[m.file_b], kPriorMatch, m.distance});
    if (opt.local_candidates) {
      std::vector<LocalCandidate> local;
      DOPPEL_ASSIGN_OR_RETURN(local, FindLocalCandidatesIn(cat, files, index_of, opt, sum));
      std::set<std::pair<uint32_t, uint32_t>> decided;  // already an automatic match
      for (const Match& m : found)
        if (IsAutomatic(m.kind) &&
            !(m.kind == MatchKind::kNear && WantsGeometry(m, m.distance, 0, opt.match))) {
          const uint32_t x = index_of[m.file_a], y = index_of[m.file_b];
          decided.insert({std::min(x, y), std::max(x, y)});
        }
      for (const LocalCandidate& c : local)
        if (!decided.count({c.a, c.b})) geo.push_back({c.a, c.b, kLocalWords, -c.shared});
    }
  }
  std::vector<std::pair<uint32_t, uint32_t>> checks;
  if (opt.geometry) checks = LimitChecksPerFile(geo, opt.geometry_per_file, sum);
  if (opt.geometry && !checks.empty()) {
    DOPPEL_RETURN_IF_ERROR(VerifyCandidates(cat, files, checks, opt, found, sum));
    if (cancelled()) return Cancelled("matching stopped on request; nothing was stored");
  }

  for (const Match& m : found) ++sum.pairs[int(m.kind)];
  std::vector<int64_t> fresh_ids;
  fresh_ids.reserve(fresh.size());
  for (uint32_t i : fresh) fresh_ids.push_back(files[i].file_id);
  DOPPEL_RETURN_IF_ERROR(cat.SaveMatches(found, fresh_ids, opt.rematch_all));

  DOPPEL_ASSIGN_OR_RETURN(std::vector<Match> all, cat.LoadMatches());
  std::vector<Cluster> clusters = BuildClusters(files, all);
  DOPPEL_RETURN_IF_ERROR(cat.SaveClusters(clusters));
  sum.clusters = int64_t(clusters.size());
  for (const auto& c : clusters) sum.clustered_files += int64_t(c.members.size());
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Event e;
  e.type = "match";
  e.object = "catalogue";
  e.detail = nlohmann::json{{"files", sum.files},
                            {"new_files", sum.new_files},
                            {"pairs_found",
                             {{"exact", sum.pairs[0]},
                              {"metadata", sum.pairs[1]},
                              {"near", sum.pairs[2]},
                              {"similar", sum.pairs[3]}}},
                            {"clusters", sum.clusters},
                            {"threshold", opt.match.threshold},
                            {"rematch_all", opt.rematch_all}}
                 .dump();
  DOPPEL_RETURN_IF_ERROR(cat.AppendEvent(e).status());
  return sum;
}

}  // namespace doppel
