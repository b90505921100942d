// Resolving metadata conflicts (docs/plan.md, "Conflicts"): decisions are
// audit events with their author; consolidated metadata uses the latest.
// A real SQLite catalogue.
#include "doppel/conflicts.h"

#include <gtest/gtest.h>

#include "doppel/catalogue.h"
#include "test_util.h"

namespace doppel {
namespace {

Candidate Copy(int64_t id, const std::string& title, const std::string& capture) {
  Candidate c;
  c.file_id = id;
  c.source = "s" + std::to_string(id);
  c.path = "p.jpg";
  c.record.metadata.title = title;
  c.record.metadata.capture_time = capture;
  return c;
}

TEST(MetadataConflicts, AResolutionIsAuditedWithItsAuthorAndClosesTheConflict) {
  testing::TempDir tmp;
  CatalogueOptions co;
  co.create_if_missing = true;
  auto cat = OpenCatalogue((tmp / "c.db").string(), co);
  ASSERT_TRUE(cat.ok()) << cat.status().ToString();
  std::vector<Candidate> copies = {Copy(1, "Pont Neuf", "1998-06-02T10:00:00"),
                                   Copy(2, "Pont-Neuf, vue générale", "1998-06-01T09:00:00")};
  ConsolidatedMetadata m = Consolidate(7, copies, 0);
  ASSERT_EQ(m.conflicts.size(), 2u);  // title and capture_time
  ASSERT_TRUE((*cat)->SaveConsolidatedMetadata({{1, 7, ConsolidatedToJson(m), ""}}).ok());

  // Refused, nothing recorded: no author, a field not in conflict, a copy
  // that carries no value of the field.
  EXPECT_FALSE(ResolveConflict(**cat, 7, "title", "x", 0, "").ok());
  auto not_open = ResolveConflict(**cat, 7, "artist", "x", 0, "claire");
  ASSERT_FALSE(not_open.ok());
  EXPECT_NE(not_open.status().message().find("'artist' is not in conflict"), std::string::npos)
      << not_open.status().message();
  EXPECT_FALSE(ResolveConflict(**cat, 7, "title", "", 9, "claire").ok());
  EXPECT_FALSE(ResolveConflict(**cat, 8, "title", "x", 0, "claire").ok());
  EXPECT_TRUE(ListResolutions(**cat)->empty());

  auto r = ResolveConflict(**cat, 7, "title", "", 2, "claire");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->value, "Pont-Neuf, vue générale");
  EventFilter f;
  f.type = "metadata decision";
  auto events = (*cat)->ListEvents(f);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].agent, "person claire");
  EXPECT_EQ((*events)[0].object, "cluster:7");
  // The stored document carries the decided value; only capture_time is open.
  auto docs = (*cat)->LoadConsolidatedMetadata();
  ASSERT_EQ(docs->size(), 1u);
  auto stored = ConsolidatedFromJson((*docs)[0].document);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->fields["title"].value, "Pont-Neuf, vue générale");
  EXPECT_EQ(stored->fields["title"].from_file_id, 2);
  ASSERT_EQ(stored->conflicts.size(), 1u);
  EXPECT_EQ(stored->conflicts[0].field, "capture_time");

  // A decision can be changed; the latest is in force, and a new
  // consolidation (what `doppel plan` does) applies it.
  ASSERT_TRUE(ResolveConflict(**cat, 7, "title", "Le Pont Neuf", 0, "marc").ok());
  auto in_force = ListResolutions(**cat);
  ASSERT_EQ(in_force->size(), 1u);
  EXPECT_EQ((*in_force)[0].author, "marc");
  ConsolidatedMetadata again = Consolidate(7, copies, 0);
  ApplyResolutions(again, *in_force);
  EXPECT_EQ(again.fields["title"].value, "Le Pont Neuf");
  ASSERT_EQ(again.conflicts.size(), 1u);
  EXPECT_EQ(again.conflicts[0].field, "capture_time");
  // Another cluster's metadata is untouched.
  ConsolidatedMetadata other = Consolidate(8, copies, 0);
  ApplyResolutions(other, *in_force);
  EXPECT_EQ(other.conflicts.size(), 2u);
}

}  // namespace
}  // namespace doppel
