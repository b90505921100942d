// The upload gate as a library, on a real SQLite catalogue and real folders:
// API keys and policies (catalogue v5), check-and-insert, the live index,
// restart and refresh. Records are synthetic (no decoding): identity is
// decided by SHA-256 before any picture comparison.
#include "doppel/gate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "doppel/catalogue.h"
#include "test_util.h"

namespace doppel {
namespace {

namespace fs = std::filesystem;
using testing::ReadFile;
using testing::TempDir;

ImageRecord Record(uint8_t seed) {
  ImageRecord r;
  r.fingerprints.sha256.fill(seed);
  r.fingerprints.content_hash.fill(uint8_t(seed + 100));
  for (int w = 0; w < 16; ++w)
    r.fingerprints.pdq.hash.words[w] = uint16_t(seed * 2654435761u >> (w % 16));
  r.fingerprints.pdq.dihedral.fill(r.fingerprints.pdq.hash);
  r.fingerprints.pdq.quality = 100;
  r.info = {"jpeg", 800, 600, 3, 8, 1, 1, false, "srgb"};
  return r;
}

class GateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = (tmp_ / "g.db").string();
    fs::create_directories(tmp_ / "apur");
    CatalogueOptions o;
    o.create_if_missing = true;
    auto c = OpenCatalogue(db_, o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    cat_ = std::move(*c);
    ASSERT_TRUE(cat_->AddSource("apur", (tmp_ / "apur").string(), 0).ok());
  }
  std::unique_ptr<Gate> OpenGate() {
    GateOptions o;
    o.held_dir = (tmp_ / "held").string();
    auto g = Gate::Open(db_, o);
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    return g.ok() ? std::move(*g) : nullptr;
  }
  Result<UploadResult> Ingest(Gate& g, uint8_t seed, const std::string& bytes) {
    UploadRequest req;
    req.source = "apur";
    req.client_name = "../../etc/passwd";  // must never matter
    req.fields = {{"title", "Pont Neuf"}};
    return g.Ingest(req, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                    Record(seed));
  }

  TempDir tmp_;
  std::string db_;
  std::unique_ptr<Catalogue> cat_;
};

TEST_F(GateTest, ApiKeysAreStoredHashedAndRevocable) {
  EXPECT_GE(cat_->SchemaVersion(), 5);  // the gate's tables arrived in version 5
  auto k = CreateApiKey(*cat_, "apur", "reviewer", "desk");
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  EXPECT_EQ(k->token.rfind("dpl_", 0), 0u);
  auto found = cat_->FindApiKey(ApiTokenDigest(k->token));
  ASSERT_TRUE(found.ok() && *found);
  EXPECT_EQ((*found)->role, "reviewer");
  EXPECT_EQ((*found)->source, "apur");
  EXPECT_FALSE(*cat_->FindApiKey(ApiTokenDigest(k->token + "x")));
  EXPECT_EQ(CreateApiKey(*cat_, "nosuch", "uploader", "").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(CreateApiKey(*cat_, "apur", "king", "").status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(cat_->RevokeApiKey(k->key.id).ok());
  ASSERT_TRUE(cat_->RevokeApiKey(k->key.id).ok());  // twice is fine
  EXPECT_FALSE(*cat_->FindApiKey(ApiTokenDigest(k->token)));
  EXPECT_EQ(cat_->RevokeApiKey(999).code(), StatusCode::kNotFound);
  auto keys = cat_->ListApiKeys();
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_FALSE(keys->at(0).revoked_at.empty());
}

TEST_F(GateTest, PolicyDefaultsToRejectAndIsChecked) {
  EXPECT_EQ(*cat_->GetUploadPolicy("apur"), "reject");
  EXPECT_EQ(cat_->SetUploadPolicy("apur", "maybe").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cat_->SetUploadPolicy("nosuch", "hold").code(), StatusCode::kNotFound);
  ASSERT_TRUE(cat_->SetUploadPolicy("apur", "hold").ok());
  EXPECT_EQ(*cat_->GetUploadPolicy("apur"), "hold");
}

TEST_F(GateTest, AcceptsOnceThenAppliesThePolicyAndSurvivesARestart) {
  auto gate = OpenGate();
  ASSERT_TRUE(gate);
  auto first = Ingest(*gate, 1, "first bytes");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->outcome, UploadOutcome::kAccepted);
  // The path comes from the day and the bytes' digest; the client's name is ignored.
  EXPECT_EQ(first->path.rfind("uploads/", 0), 0u);
  EXPECT_NE(first->path.find(DigestHex(Record(1).fingerprints.sha256) + ".jpg"), std::string::npos);
  EXPECT_EQ(ReadFile(tmp_ / "apur" / first->path), "first bytes");
  EXPECT_EQ(gate->size(), 1u);

  auto again = Ingest(*gate, 1, "first bytes");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->outcome, UploadOutcome::kRejected);
  EXPECT_EQ(again->duplicate_of->file_id, first->file_id);
  EXPECT_EQ(again->duplicate_of->kind, MatchKind::kExact);

  Status set = cat_->SetUploadPolicy("apur", "alias");
  ASSERT_TRUE(set.ok()) << set.ToString();
  auto alias = Ingest(*gate, 1, "first bytes");
  ASSERT_TRUE(alias.ok());
  EXPECT_EQ(alias->outcome, UploadOutcome::kAlias);
  ASSERT_TRUE(cat_->SetUploadPolicy("apur", "hold").ok());
  auto held = Ingest(*gate, 1, "first bytes");
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(held->outcome, UploadOutcome::kHeld);
  auto uploads = cat_->ListUploads("apur", "", 0);
  ASSERT_EQ(uploads->size(), 2u);
  EXPECT_EQ(uploads->at(0).outcome, "held");  // newest first
  EXPECT_EQ(ReadFile(tmp_ / "held" / uploads->at(0).held_path), "first bytes");
  EXPECT_EQ(nlohmann::json::parse(uploads->at(1).fields)["title"], "Pont Neuf");
  EXPECT_EQ(gate->size(), 1u);

  // Every decision is in the audit trail.
  EventFilter f;
  f.type = "upload";
  auto events = cat_->ListEvents(f);
  ASSERT_EQ(events->size(), 4u);
  const char* outcomes[] = {"accepted", "rejected", "alias", "held"};
  for (size_t i = 0; i < 4; ++i)
    EXPECT_EQ(nlohmann::json::parse(events->at(i).detail)["outcome"], outcomes[i]);

  // A restart reloads the index from the catalogue.
  gate.reset();
  gate = OpenGate();
  EXPECT_EQ(gate->size(), 1u);
  auto found = gate->Lookup(Record(1));
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ(found->at(0).file_id, first->file_id);
}

// A portal links to the master: an upload matching a clustered copy names
// the cluster's master, and the copy it actually matched.
TEST_F(GateTest, ADuplicateOfAClusteredCopyNamesItsMaster) {
  auto gate = OpenGate();
  ASSERT_TRUE(gate);
  auto copy = Ingest(*gate, 1, "copy bytes");
  auto master = Ingest(*gate, 2, "master bytes");
  ASSERT_TRUE(copy.ok() && master.ok());
  std::vector<Cluster> clusters(1);
  clusters[0].master_file_id = master->file_id;
  clusters[0].members = {{master->file_id, true, MatchKind::kExact, 0},
                         {copy->file_id, false, MatchKind::kNear, 9}};
  // The test's own connection has read since the gate wrote: the write must
  // not start on that old snapshot.
  Status saved = cat_->SaveClusters(clusters);
  ASSERT_TRUE(saved.ok()) << saved.ToString();

  auto before = Ingest(*gate, 1, "copy bytes");  // clusters not reloaded yet
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->master_file_id, copy->file_id);
  ASSERT_TRUE(gate->Refresh().ok());
  auto after = Ingest(*gate, 1, "copy bytes");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->outcome, UploadOutcome::kRejected);
  EXPECT_EQ(after->duplicate_of->file_id, copy->file_id);
  EXPECT_EQ(after->master_file_id, master->file_id);
  // A restart reads the clusters too.
  gate.reset();
  gate = OpenGate();
  auto again = Ingest(*gate, 1, "copy bytes");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->master_file_id, master->file_id);
}

TEST_F(GateTest, ConcurrentIngestsOfOneRecordAcceptExactlyOne) {
  auto gate = OpenGate();
  std::atomic<int> accepted{0}, rejected{0}, failed{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 16; ++i)
    ts.emplace_back([&] {
      auto r = Ingest(*gate, 7, "same");
      if (!r.ok())
        ++failed;
      else if (r->outcome == UploadOutcome::kAccepted)
        ++accepted;
      else
        ++rejected;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(accepted.load(), 1);
  EXPECT_EQ(rejected.load(), 15);
  EXPECT_EQ(failed.load(), 0);
}

TEST_F(GateTest, RefreshPicksUpFilesAddedByAnotherConnection) {
  auto gate = OpenGate();
  EXPECT_EQ(gate->size(), 0u);
  testing::WriteFile(tmp_ / "apur" / "scanned.jpg", "x");
  auto src = cat_->GetSource("apur");
  ASSERT_TRUE(cat_->AddUploadedFile(src->id, "scanned.jpg", Record(9), "{}").ok());
  EXPECT_EQ(cat_->AddUploadedFile(src->id, "scanned.jpg", Record(9), "{}").status().code(),
            StatusCode::kAlreadyExists);
  // No `doppel match` since the gate opened: the cheap check finds nothing to do.
  EXPECT_EQ(*gate->RefreshAfterMatch(), 0);
  Event e;
  e.type = "match";
  e.object = "catalogue";
  e.detail = "{}";
  ASSERT_TRUE(cat_->AppendEvent(e).ok());
  EXPECT_EQ(*gate->RefreshAfterMatch(), 1);
  EXPECT_EQ(*gate->RefreshAfterMatch(), 0);
  EXPECT_EQ(*gate->Refresh(), 0);
  EXPECT_EQ(gate->File(gate->Lookup(Record(9))->at(0).file_id)->path, "scanned.jpg");
}

}  // namespace
}  // namespace doppel
