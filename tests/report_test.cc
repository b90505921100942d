// Reports on a real catalogue with known answers: three departments of real
// image files, scanned and matched by the real doppel, plus apply/undo events
// written as the replacement commands write them (docs/report.md).
#include "doppel/report.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <exiv2/exiv2.hpp>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "doppel/catalogue.h"
#include "doppel/replace.h"
#include "metadata/exiv2_reader.h"
#include "test_util.h"

namespace doppel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::MakeImage;
using testing::RunDoppel;
using testing::TempDir;

// A path with markup in it: must come out escaped in HTML (a folder
// "<script>alert('x')<" holding "script>.jpg").
const std::string kScriptPath = "<script>alert('x')</script>.jpg";

void Tag(const fs::path& p, const std::string& when, const std::string& make,
         const std::string& model, const std::string& artist) {
  InitExiv2();
  std::unique_ptr<Exiv2::Image> img(Exiv2::ImageFactory::open(p.string()).release());
  img->readMetadata();
  Exiv2::ExifData& exif = img->exifData();
  exif["Exif.Photo.DateTimeOriginal"] = when;
  exif["Exif.Image.Make"] = make;
  exif["Exif.Image.Model"] = model;
  if (!artist.empty()) exif["Exif.Image.Artist"] = artist;
  img->writeMetadata();
}

// The fixture (sizes s1..s6 are the files' real sizes):
//   P1 (1998, Canon, Doisneau): urbanisme/p1.jpg, apur/p1-copy.jpg, archives/p1.jpg
//   P2 (2003, NIKON D70):      urbanisme/p2.jpg, apur/<script>...jpg
//   P3 (png):                  apur/p3.png, archives/p3.png       (rejected by a reviewer)
//   P4:                        archives/p4a.jpg, archives/p4b.jpg (one department)
//   P6:                        urbanisme/p6.jpg, archives/p6.jpg
//   P5:                        urbanisme/solo.jpg                  (no copy)
// Priorities urbanisme 10 > apur 5 > archives 0 choose the masters.
// Applied: apur/p1-copy (quarantine), apur/<script> (delete), archives/p6
// (redirect-only, frees nothing); archives/p1 applied then undone; archives/p4b
// failed. apur/p1-copy and archives/p6 are gone from disk (quarantined).
class ReportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir;
    const fs::path root = tmp_->path();
    const fs::path urb = root / "urbanisme", apur = root / "apur", arch = root / "archives";
    MakeImage(urb / "p1.jpg", 640, 480, 11);
    Tag(urb / "p1.jpg", "1998:05:01 10:00:00", "Canon", "Canon EOS 5D", "Robert Doisneau");
    MakeImage(urb / "p2.jpg", 600, 400, 12);
    Tag(urb / "p2.jpg", "2003:07:14 12:00:00", "NIKON", "D70", "");
    MakeImage(apur / "p3.png", 500, 500, 13);
    MakeImage(arch / "p4a.jpg", 560, 420, 14);
    MakeImage(urb / "solo.jpg", 480, 640, 15);
    MakeImage(urb / "p6.jpg", 700, 500, 16);
    testing::CopyFile(urb / "p1.jpg", apur / "p1-copy.jpg");
    testing::CopyFile(urb / "p1.jpg", arch / "p1.jpg");
    testing::CopyFile(urb / "p2.jpg", apur / kScriptPath);
    testing::CopyFile(apur / "p3.png", arch / "p3.png");
    testing::CopyFile(arch / "p4a.jpg", arch / "p4b.jpg");
    testing::CopyFile(urb / "p6.jpg", arch / "p6.jpg");
    s1 = int64_t(fs::file_size(urb / "p1.jpg"));
    s2 = int64_t(fs::file_size(urb / "p2.jpg"));
    s3 = int64_t(fs::file_size(apur / "p3.png"));
    s4 = int64_t(fs::file_size(arch / "p4a.jpg"));
    s5 = int64_t(fs::file_size(urb / "solo.jpg"));
    s6 = int64_t(fs::file_size(urb / "p6.jpg"));

    db_ = (root / "c.db").string();
    ASSERT_EQ(RunDoppel({"--db", db_, "init"}).exit_code, 0);
    ASSERT_EQ(
        RunDoppel({"--db", db_, "source", "add", "urbanisme", urb.string(), "--priority", "10"})
            .exit_code,
        0);
    ASSERT_EQ(RunDoppel({"--db", db_, "source", "add", "apur", apur.string(), "--priority", "5"})
                  .exit_code,
              0);
    ASSERT_EQ(RunDoppel({"--db", db_, "source", "add", "archives", arch.string()}).exit_code, 0);
    auto scan = RunDoppel({"--db", db_, "scan", "--jobs", "2"});
    ASSERT_EQ(scan.exit_code, 0) << scan.err;
    auto match = RunDoppel({"--db", db_, "match", "--jobs", "2"});
    ASSERT_EQ(match.exit_code, 0) << match.err;

    auto cat = OpenCatalogue(db_, CatalogueOptions{});
    ASSERT_TRUE(cat.ok()) << cat.status().ToString();
    auto files = (*cat)->ListFiles(std::nullopt, "", 0);
    ASSERT_TRUE(files.ok());
    for (const auto& f : *files) ids_[f.source + "/" + f.path] = f.id;
    ASSERT_EQ(ids_.size(), 12u);
    auto clusters = (*cat)->LoadClusters();
    ASSERT_TRUE(clusters.ok());
    ASSERT_EQ(clusters->size(), 5u) << "the matcher should find exactly the five copied pictures";
    auto cluster_of = [&](const std::string& file) -> int64_t {
      for (const auto& c : *clusters)
        for (const auto& m : c.members)
          if (m.file_id == ids_.at(file)) return c.id;
      return 0;
    };

    auto apply = [&](const std::string& file, const std::string& action, int64_t bytes,
                     int64_t reclaimed, const std::string& time, const std::string& outcome,
                     const std::string& master) {
      const auto slash = file.find('/');
      json d = {{"action", action},
                {"file_id", ids_.at(file)},
                {"master_file_id", ids_.at(master)},
                {"cluster_id", cluster_of(file)},
                {"source", file.substr(0, slash)},
                {"path", file.substr(slash + 1)},
                {"sha256", std::string(64, '0')},
                {"bytes", bytes},
                {"reclaimed_bytes", reclaimed},
                {"reason", "copy of the master"}};
      Event e{0,       "apply",  time,     "", "file:" + std::to_string(ids_.at(file)),
              outcome, d.dump(), "apply-1"};
      ASSERT_TRUE((*cat)->AppendEvent(e).ok());
    };
    apply("apur/p1-copy.jpg", "quarantine", s1, s1, "2026-06-23T10:00:00Z", "success",
          "urbanisme/p1.jpg");
    apply("archives/p1.jpg", "quarantine", s1, s1, "2026-06-23T10:00:01Z", "success",
          "urbanisme/p1.jpg");
    apply("apur/" + kScriptPath, "delete", s2, s2, "2026-06-25T12:00:00Z", "success",
          "urbanisme/p2.jpg");
    apply("archives/p4b.jpg", "quarantine", s4, s4, "2026-06-26T08:00:00Z", "failure",
          "archives/p4a.jpg");
    apply("archives/p6.jpg", "redirect-only", s6, 0, "2026-06-27T10:00:00Z", "success",
          "urbanisme/p6.jpg");
    json u = {{"undoes", "apply-1"},
              {"action", "quarantine"},
              {"file_id", ids_.at("archives/p1.jpg")},
              {"bytes", s1},
              {"reclaimed_bytes", s1}};
    Event undo{0,
               "undo",
               "2026-06-24T09:00:00Z",
               "",
               "file:" + std::to_string(ids_.at("archives/p1.jpg")),
               "success",
               u.dump(),
               "undo-1"};
    ASSERT_TRUE((*cat)->AppendEvent(undo).ok());

    ReviewDecision reject;
    reject.cluster_id = cluster_of("apur/p3.png");
    reject.decision = "reject";
    reject.reviewer = "Marie";
    reject.members = {ids_.at("apur/p3.png"), ids_.at("archives/p3.png")};
    ASSERT_TRUE((*cat)->RecordDecision(reject).ok());

    // Quarantined: gone from their folders.
    fs::remove(apur / "p1-copy.jpg");
    fs::remove(arch / "p6.jpg");

    testing::WriteFile(root / "postcodes.csv",
                       "path,postcode\n"
                       "p1.jpg,75001\n"
                       "archives/p1.jpg,75004\n"
                       "urbanisme/p2.jpg,75002\n"
                       "\"apur/" +
                           kScriptPath +
                           "\",75002\n"
                           "p3.png,75003\n"
                           "archives/p4a.jpg,75020\n"
                           "archives/p4b.jpg,75020\n"
                           "nosuch.jpg,99999\n");
  }
  static void TearDownTestSuite() {
    delete tmp_;
    tmp_ = nullptr;
  }

  std::unique_ptr<Catalogue> Open() {
    auto cat = OpenCatalogue(db_, CatalogueOptions{});
    EXPECT_TRUE(cat.ok()) << cat.status().ToString();
    return cat.ok() ? std::move(cat).value() : nullptr;
  }
  static std::string Postcodes() { return (tmp_->path() / "postcodes.csv").string(); }

  static ReportOptions Options() {
    ReportOptions o;
    o.group_by = {"source", "format", "year", "camera", "author", "postcode"};
    auto join = LoadJoinCsv(Postcodes(), "path", "postcode");
    EXPECT_TRUE(join.ok()) << join.status().ToString();
    if (join.ok()) o.join = *join;
    o.today = "2026-07-01";
    o.deadline = "2026-07-31";
    return o;
  }

  static inline TempDir* tmp_ = nullptr;
  static inline std::string db_;
  static inline std::map<std::string, int64_t> ids_;
  static inline int64_t s1, s2, s3, s4, s5, s6;
};

const DepartmentFigures& Dept(const Report& r, const std::string& name) {
  for (const auto& d : r.departments)
    if (d.source == name) return d;
  static DepartmentFigures none;
  ADD_FAILURE() << "no department " << name;
  return none;
}

std::map<std::string, std::pair<int64_t, int64_t>> Groups(const Report& r,
                                                          const std::string& field) {
  std::map<std::string, std::pair<int64_t, int64_t>> out;
  for (const auto& g : r.groupings)
    if (g.field == field)
      for (const auto& c : g.groups) out[c.value] = {c.before, c.after};
  return out;
}

TEST_F(ReportTest, StorageHeldAndReclaimedPerDepartment) {
  auto cat = Open();
  auto r = BuildReport(*cat, Options());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->departments.size(), 3u);
  EXPECT_EQ(r->departments[0].source, "apur");  // by name
  const auto& urb = Dept(*r, "urbanisme");
  const auto& apur = Dept(*r, "apur");
  const auto& arch = Dept(*r, "archives");
  // Files held: still fingerprinted (nobody rescanned after the applies).
  EXPECT_EQ(urb.files, 4);
  EXPECT_EQ(urb.bytes, s1 + s2 + s5 + s6);
  EXPECT_EQ(apur.files, 3);
  EXPECT_EQ(apur.bytes, s1 + s2 + s3);
  EXPECT_EQ(arch.files, 5);
  EXPECT_EQ(arch.bytes, s1 + s3 + 2 * s4 + s6);
  // Held in duplicates: archives/p1 (undone) and one of archives/p4a|b; P3 was
  // rejected; the others are retired.
  EXPECT_EQ(urb.duplicate_files, 0);
  EXPECT_EQ(apur.duplicate_bytes, 0);
  EXPECT_EQ(arch.duplicate_files, 2);
  EXPECT_EQ(arch.duplicate_bytes, s1 + s4);
  // Identical copies, one kept per group: archives/p1, archives/p3 (review does
  // not change bytes), one of archives/p4.
  EXPECT_EQ(urb.exact_redundant_files, 0);
  EXPECT_EQ(apur.exact_redundant_files, 0);
  EXPECT_EQ(arch.exact_redundant_files, 3);
  EXPECT_EQ(arch.exact_redundant_bytes, s1 + s3 + s4);
  // Reclaimed: apur's two; archives/p6 retired by redirect frees nothing;
  // archives/p1 was undone; archives/p4b failed.
  EXPECT_EQ(apur.retired_files, 2);
  EXPECT_EQ(apur.reclaimed_bytes, s1 + s2);
  EXPECT_EQ(arch.retired_files, 1);
  EXPECT_EQ(arch.reclaimed_bytes, 0);
  EXPECT_EQ(urb.retired_files, 0);
  EXPECT_EQ(r->totals.reclaimed_bytes, s1 + s2);
  EXPECT_EQ(r->totals.duplicate_bytes, s1 + s4);
  EXPECT_EQ(r->totals.files, 12);
}

TEST_F(ReportTest, OverlapMatrixCountsClustersInBothDepartments) {
  auto cat = Open();
  auto r = BuildReport(*cat, Options());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const auto& o = r->overlap;
  ASSERT_EQ(o.sources, (std::vector<std::string>{"apur", "archives", "urbanisme"}));
  // P1 in all three, P2 urbanisme+apur, P6 urbanisme+archives, P4 twice in
  // archives; P3 (apur+archives) was rejected.
  const std::vector<std::vector<int64_t>> want = {{0, 1, 2}, {1, 1, 2}, {2, 2, 0}};
  EXPECT_EQ(o.clusters, want);
}

TEST_F(ReportTest, CountsByFieldBeforeAndAfter) {
  auto cat = Open();
  auto r = BuildReport(*cat, Options());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  using G = std::map<std::string, std::pair<int64_t, int64_t>>;
  EXPECT_EQ(Groups(*r, "source"),
            (G{{"urbanisme", {4, 4}}, {"apur", {3, 1}}, {"archives", {5, 2}}}));
  EXPECT_EQ(Groups(*r, "format"), (G{{"jpeg", {10, 5}}, {"png", {2, 2}}}));
  EXPECT_EQ(Groups(*r, "year"), (G{{"1998", {3, 1}}, {"2003", {2, 1}}, {"(none)", {7, 5}}}));
  EXPECT_EQ(Groups(*r, "camera"),
            (G{{"Canon EOS 5D", {3, 1}}, {"NIKON D70", {2, 1}}, {"(none)", {7, 5}}}));
  EXPECT_EQ(Groups(*r, "author"), (G{{"Robert Doisneau", {3, 1}}, {"(none)", {9, 6}}}));
  EXPECT_EQ(Groups(*r, "postcode"), (G{{"75001", {1, 1}},
                                       {"75002", {2, 1}},
                                       {"75003", {2, 2}},
                                       {"75004", {1, 0}},
                                       {"75020", {2, 1}},
                                       {"(none)", {4, 2}}}));
  // Years run oldest first, "(none)" last.
  for (const auto& g : r->groupings)
    if (g.field == "year") {
      ASSERT_EQ(g.groups.size(), 3u);
      EXPECT_EQ(g.groups[0].value, "1998");
      EXPECT_EQ(g.groups[2].value, "(none)");
    }
  bool noted = false;
  for (const auto& n : r->notes)
    noted |= n.find("8 file(s) matched a row; 1 row(s) matched no file") != std::string::npos;
  EXPECT_TRUE(noted) << "the join's unmatched rows are reported";
}

TEST_F(ReportTest, ProgressRateAndFinishAgainstDeadline) {
  auto cat = Open();
  ReportOptions o = Options();
  auto r = BuildReport(*cat, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Progress& p = r->progress;
  EXPECT_EQ(p.clusters, 5);
  EXPECT_EQ(p.resolved, 3);  // P2 and P6 retired, P3 rejected
  EXPECT_EQ(p.resolved_retired, 2);
  EXPECT_EQ(p.resolved_rejected, 1);
  EXPECT_EQ(p.pending, 2);  // P1 (archives/p1 undone), P4 (failed)
  EXPECT_EQ(p.files_retired, 3);
  EXPECT_EQ(p.first_apply, "2026-06-23T10:00:00Z");
  EXPECT_EQ(p.last_apply, "2026-06-27T10:00:00Z");
  EXPECT_DOUBLE_EQ(p.span_days, 4.0);
  EXPECT_DOUBLE_EQ(p.rate_per_day, 0.75);
  EXPECT_EQ(p.days_needed, 3);  // ceil(2 / 0.75)
  EXPECT_EQ(p.estimated_finish, "2026-07-04");
  ASSERT_TRUE(p.on_track.has_value());
  EXPECT_TRUE(*p.on_track);

  o.deadline = "2026-07-03";
  auto late = BuildReport(*cat, o);
  ASSERT_TRUE(late.ok());
  EXPECT_FALSE(*late->progress.on_track);
  o.deadline = "2026-07-04";  // finishing on the deadline day is on track
  EXPECT_TRUE(*BuildReport(*cat, o)->progress.on_track);
  o.deadline.clear();
  EXPECT_FALSE(BuildReport(*cat, o)->progress.on_track.has_value());

  o.deadline = "2026-02-30";
  auto bad = BuildReport(*cat, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("YYYY-MM-DD"), std::string::npos);
}

TEST_F(ReportTest, LargestClustersAndUnknownFields) {
  auto cat = Open();
  ReportOptions o = Options();
  auto r = BuildReport(*cat, o);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->largest_clusters.size(), 5u);
  const auto& big = r->largest_clusters[0];
  EXPECT_EQ(big.members, 3);
  EXPECT_EQ(big.duplicate_bytes, 2 * s1);
  EXPECT_EQ(big.status, "pending");
  EXPECT_TRUE(big.files[0].master);
  EXPECT_EQ(big.files[0].source, "urbanisme");
  EXPECT_TRUE(big.files[0].jpeg.empty()) << "no thumbnails unless asked";

  o.group_by = {"postcode"};
  o.join.reset();
  auto unknown = BuildReport(*cat, o);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("--join"), std::string::npos)
      << unknown.status().message();

  std::atomic<bool> stop{true};
  o = Options();
  o.cancel = &stop;
  o.thumbnails = true;
  auto cancelled = BuildReport(*cat, o);
  ASSERT_FALSE(cancelled.ok());
  EXPECT_EQ(cancelled.status().code(), StatusCode::kCancelled);

  auto no_column = LoadJoinCsv(Postcodes(), "file", "postcode");
  ASSERT_FALSE(no_column.ok());
  EXPECT_NE(no_column.status().message().find("columns: path, postcode"), std::string::npos)
      << no_column.status().message();
}

TEST_F(ReportTest, HtmlIsSelfContainedEscapedAndShowsThumbnails) {
  auto cat = Open();
  ReportOptions o = Options();
  o.thumbnails = true;
  auto r = BuildReport(*cat, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  int with_picture = 0, with_note = 0;
  for (const auto& c : r->largest_clusters)
    for (const auto& t : c.files) {
      with_picture += !t.jpeg.empty();
      with_note += !t.note.empty();
      if (t.path == "p1-copy.jpg" || (t.source == "archives" && t.path == "p6.jpg")) {
        EXPECT_TRUE(t.jpeg.empty());
        EXPECT_NE(t.note.find("file not found"), std::string::npos) << t.note;
      }
    }
  EXPECT_EQ(with_picture, 9);  // 11 clustered files, 2 quarantined
  EXPECT_EQ(with_note, 2);

  const std::string html = RenderReportHtml(*r);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(html.find("http://"), std::string::npos) << "no external reference";
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos) << "the path's markup must be escaped";
  EXPECT_NE(html.find("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;.jpg"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("data:image/jpeg;base64,"), std::string::npos);
  EXPECT_NE(html.find("class=\"placeholder\""), std::string::npos);
  auto count = [&](const std::string& s) {
    size_t n = 0;
    for (size_t at = html.find(s); at != std::string::npos; at = html.find(s, at + 1)) ++n;
    return n;
  };
  for (const char* tag : {"svg", "table", "section", "figure", "tr", "div"})
    EXPECT_EQ(count(std::string("<") + tag + (std::string(tag) == "tr" ? ">" : "")),
              count(std::string("</") + tag + ">"))
        << tag;
  EXPECT_EQ(count("<img "), 9u);
  EXPECT_NE(html.find("on track"), std::string::npos);
  EXPECT_EQ(HtmlEscape("a&b<c>\"d'"), "a&amp;b&lt;c&gt;&quot;d&#39;");
}

TEST_F(ReportTest, CsvAndJsonCarryTheSameFigures) {
  auto cat = Open();
  auto r = BuildReport(*cat, Options());
  ASSERT_TRUE(r.ok());
  const std::string csv = RenderReportCsv(*r);
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "section,key,subkey,value");
  EXPECT_NE(csv.find("department,apur,reclaimed_bytes," + std::to_string(s1 + s2) + "\n"),
            std::string::npos);
  EXPECT_NE(csv.find("overlap,archives,urbanisme,2\n"), std::string::npos);
  EXPECT_NE(csv.find("group:postcode,75004,after,0\n"), std::string::npos);
  EXPECT_NE(csv.find("progress,estimated_finish,,2026-07-04\n"), std::string::npos);
  EXPECT_NE(csv.find("progress,on_track,,true\n"), std::string::npos);

  const json j = json::parse(RenderReportJson(*r));
  EXPECT_EQ(j["format"], "doppel-report");
  EXPECT_EQ(j["version"], kReportFormatVersion);
  EXPECT_EQ(j["totals"]["reclaimed_bytes"], s1 + s2);
  EXPECT_EQ(j["overlap"]["clusters"][1][1], 1);
  EXPECT_EQ(j["progress"]["days_needed"], 3);
  EXPECT_EQ(j["progress"]["rate_per_day"], 0.75);
  EXPECT_EQ(j["largest_clusters"][0]["members"], 3);
}

// Renderers on a hand-made Report: tags that a spreadsheet would run as a
// formula stay text; quotes and commas are quoted.
TEST(ReportRender, CsvNeutralisesFormulasAndQuotes) {
  Report r;
  r.groupings.push_back(
      Grouping{"author", {{"=HYPERLINK(\"http://x\",\"y\")", 2, 1}, {"Doe, Jane", 1, 1}}});
  const std::string csv = RenderReportCsv(r);
  EXPECT_NE(csv.find("group:author,\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",before,2\n"),
            std::string::npos)
      << csv;
  EXPECT_NE(csv.find("group:author,\"Doe, Jane\",after,1\n"), std::string::npos) << csv;
  const std::string html = RenderReportHtml(r);
  EXPECT_NE(html.find("=HYPERLINK(&quot;http://x&quot;"), std::string::npos);
}

TEST(ReportRender, BigClustersListTheMembersBeyondTheFigures) {
  Report r;
  ClusterSummary c;
  c.id = 7;
  c.members = 9;
  for (int i = 0; i < 9; ++i) {
    Thumbnail t;
    t.file_id = i + 1;
    t.source = "apur";
    t.path = "f" + std::to_string(i) + ".jpg";
    t.master = i == 0;
    c.files.push_back(t);
  }
  r.largest_clusters.push_back(c);
  const std::string html = RenderReportHtml(r);
  size_t figures = 0;
  for (size_t at = html.find("<figure"); at != std::string::npos; at = html.find("<figure", at + 1))
    ++figures;
  EXPECT_EQ(figures, 6u);
  EXPECT_NE(html.find("Also in this cluster: apur/f6.jpg; apur/f7.jpg; apur/f8.jpg."),
            std::string::npos);
}

// Which files are retired is one rule (RetiredFiles, which apply, plan and
// release use): the report counts exactly those, on a trail with every case
// the rule decides -- a skipped apply, a failed undo, an apply naming its file
// only in the detail, an apply after an undo, an event naming no file.
TEST_F(ReportTest, RetiredFilesAreExactlyThoseOfTheSharedRule) {
  TempDir copy;
  const std::string db = (copy / "c.db").string();
  fs::copy_file(db_, db);
  auto opened = OpenCatalogue(db, CatalogueOptions{});
  ASSERT_TRUE(opened.ok());
  Catalogue& cat = **opened;
  auto event = [&](const std::string& type, const std::string& object, const std::string& outcome,
                   const json& detail) {
    ASSERT_TRUE(cat.AppendEvent(Event{0, type, "2026-06-29T10:00:00Z", "", object, outcome,
                                      detail.dump(), type + "-x"})
                    .ok());
  };
  auto file = [&](const std::string& f) { return "file:" + std::to_string(ids_.at(f)); };
  // Skipped: changes nothing.
  event("apply", file("archives/p4a.jpg"), "warning", {{"source", "archives"}});
  // A failed undo: apur/p1-copy stays retired.
  event("undo", file("apur/p1-copy.jpg"), "failure", {{"source", "apur"}});
  // Named in the detail only (the object is not a file id).
  event("apply", "file:unknown", "success",
        {{"file_id", ids_.at("urbanisme/solo.jpg")}, {"source", "urbanisme"}});
  // archives/p1 was applied, undone, and is applied again.
  event("apply", file("archives/p1.jpg"), "success", {{"source", "archives"}});
  // Names no file: ignored, and the report says so.
  event("apply", "cluster:3", "success", json::object());

  std::set<int64_t> expected = {ids_.at("apur/p1-copy.jpg"), ids_.at("apur/" + kScriptPath),
                                ids_.at("archives/p6.jpg"), ids_.at("urbanisme/solo.jpg"),
                                ids_.at("archives/p1.jpg")};
  int64_t nameless = -1;
  auto rule = RetiredFiles(cat, &nameless);
  ASSERT_TRUE(rule.ok()) << rule.status().ToString();
  std::set<int64_t> by_rule;
  for (const auto& f : *rule) by_rule.insert(f.file_id);
  EXPECT_EQ(by_rule, expected);
  EXPECT_EQ(nameless, 1);

  ReportOptions o = Options();
  o.largest_clusters = 100;
  auto r = BuildReport(cat, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->progress.files_retired, int64_t(expected.size()));
  EXPECT_EQ(Dept(*r, "apur").retired_files, 2);
  EXPECT_EQ(Dept(*r, "archives").retired_files, 2);
  EXPECT_EQ(Dept(*r, "urbanisme").retired_files, 1);
  // Every member shown in a cluster is marked retired exactly when the rule says so.
  int shown = 0;
  for (const auto& c : r->largest_clusters)
    for (const auto& t : c.files) {
      ++shown;
      EXPECT_EQ(t.retired, expected.count(t.file_id) > 0) << t.source << "/" << t.path;
    }
  EXPECT_GE(shown, 11);
  bool noted = false;
  for (const auto& n : r->notes) noted |= n.rfind("1 apply/undo event(s) name no file", 0) == 0;
  EXPECT_TRUE(noted);
}

// Review decisions change what counts: a member-level reject takes a file out
// of its cluster, choose_master moves the master; a cluster that `match`
// dropped after its copies were retired still counts as resolved.
TEST_F(ReportTest, DecisionsAndVanishedClustersChangeTheFigures) {
  TempDir copy;
  const std::string db = (copy / "c.db").string();
  fs::copy_file(db_, db);
  auto opened = OpenCatalogue(db, CatalogueOptions{});
  ASSERT_TRUE(opened.ok());
  Catalogue& cat = **opened;
  auto clusters = cat.LoadClusters();
  ASSERT_TRUE(clusters.ok());
  auto cluster_of = [&](const std::string& file) -> int64_t {
    for (const auto& c : *clusters)
      for (const auto& m : c.members)
        if (m.file_id == ids_.at(file)) return c.id;
    return 0;
  };
  ReviewDecision not_a_copy;
  not_a_copy.cluster_id = cluster_of("archives/p1.jpg");
  not_a_copy.file_id = ids_.at("archives/p1.jpg");
  not_a_copy.decision = "reject";
  not_a_copy.reviewer = "Marie";
  ASSERT_TRUE(cat.RecordDecision(not_a_copy).ok());
  ReviewDecision choose;
  choose.cluster_id = cluster_of("archives/p4b.jpg");
  choose.decision = "choose_master";
  choose.master_file_id = ids_.at("archives/p4b.jpg");
  choose.reviewer = "Marie";
  ASSERT_TRUE(cat.RecordDecision(choose).ok());
  json d = {{"action", "quarantine"}, {"file_id", ids_.at("urbanisme/solo.jpg")},
            {"cluster_id", 999},      {"source", "urbanisme"},
            {"path", "solo.jpg"},     {"bytes", s5},
            {"reclaimed_bytes", s5}};
  ASSERT_TRUE(cat.AppendEvent(Event{0, "apply", "2026-06-28T10:00:00Z", "",
                                    "file:" + std::to_string(ids_.at("urbanisme/solo.jpg")),
                                    "success", d.dump(), "apply-2"})
                  .ok());

  ReportOptions o = Options();
  auto r = BuildReport(cat, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Progress& p = r->progress;
  EXPECT_EQ(p.clusters, 6);  // five stored, one vanished
  EXPECT_EQ(p.resolved, 5);  // P1 (its one copy left is retired), P2, P6, cluster 999, P3 rejected
  EXPECT_EQ(p.resolved_rejected, 1);
  EXPECT_EQ(p.pending, 1);  // P4
  EXPECT_DOUBLE_EQ(p.span_days, 5.0);
  EXPECT_DOUBLE_EQ(p.rate_per_day, 1.0);
  EXPECT_EQ(p.estimated_finish, "2026-07-02");

  EXPECT_EQ(Dept(*r, "archives").duplicate_files, 1);  // archives/p1 is not a copy any more
  EXPECT_EQ(Dept(*r, "archives").duplicate_bytes, s4);
  EXPECT_EQ(Dept(*r, "archives").exact_redundant_bytes, s1 + s3 + s4);  // its bytes still are
  EXPECT_EQ(Dept(*r, "urbanisme").retired_files, 1);
  EXPECT_EQ(Dept(*r, "urbanisme").reclaimed_bytes, s5);
  const std::vector<std::vector<int64_t>> overlap = {{0, 0, 2}, {0, 1, 1}, {2, 1, 0}};
  EXPECT_EQ(r->overlap.clusters, overlap);
  using G = std::map<std::string, std::pair<int64_t, int64_t>>;
  EXPECT_EQ(Groups(*r, "source"),
            (G{{"urbanisme", {4, 4}}, {"apur", {3, 1}}, {"archives", {5, 3}}}));
  bool found = false;
  for (const auto& c : r->largest_clusters)
    if (c.id == cluster_of("archives/p4b.jpg")) {
      found = true;
      ASSERT_EQ(c.files.size(), 2u);
      EXPECT_EQ(c.files[0].path, "p4b.jpg") << "the reviewer's master comes first";
      EXPECT_TRUE(c.files[0].master);
    }
  EXPECT_TRUE(found);
}

// The page as a real browser reads it: the markup in a path stays text, every
// picture and chart is there, nothing is fetched.
TEST_F(ReportTest, ChromiumReadsThePage) {
  const char* candidates[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser",
                              "/usr/bin/google-chrome"};
  std::string browser;
  for (const char* c : candidates)
    if (fs::exists(c)) browser = c;
  if (browser.empty()) GTEST_SKIP() << "no chromium installed";
  auto cat = Open();
  ReportOptions o = Options();
  o.thumbnails = true;
  auto r = BuildReport(*cat, o);
  ASSERT_TRUE(r.ok());
  TempDir out;
  const fs::path page = out / "report.html";
  testing::WriteFile(page, RenderReportHtml(*r));
  const std::string dom_file = (out / "dom.html").string();
  const std::string cmd = browser + " --headless --no-sandbox --disable-gpu --user-data-dir=" +
                          (out / "profile").string() + " --dump-dom file://" + page.string() +
                          " > " + dom_file + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const std::string dom = testing::ReadFile(dom_file);
  auto count = [&](const std::string& s) {
    size_t n = 0;
    for (size_t at = dom.find(s); at != std::string::npos; at = dom.find(s, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("<script"), 0u) << "the path became an element";
  EXPECT_EQ(count("<img "), 9u);
  EXPECT_EQ(count("<svg"), 1u + 6u + 1u);  // departments, one per grouping, progress
  EXPECT_NE(dom.find("&lt;script&gt;alert('x')&lt;/script&gt;.jpg"), std::string::npos);
  EXPECT_NE(dom.find("</html>"), std::string::npos);
}

TEST_F(ReportTest, CliWritesEachFormat) {
  const std::vector<std::string> common = {
      "--db",       db_,      "report",    "--today",      "2026-07-01", "--deadline",
      "2026-07-31", "--join", Postcodes(), "--join-field", "postcode"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = common;
    a.insert(a.end(), extra.begin(), extra.end());
    return RunDoppel(a);
  };
  auto csv = with({"--format", "csv", "--group-by", "source,year"});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_NE(csv.out.find("group:year,1998,before,3\n"), std::string::npos) << csv.out;
  EXPECT_NE(csv.out.find("group:postcode,75020,after,1\n"), std::string::npos)
      << "--join-field is counted too";
  EXPECT_NE(csv.out.find("progress,pending,,2\n"), std::string::npos);

  auto js = with({"--format", "json"});
  ASSERT_EQ(js.exit_code, 0) << js.err;
  const json j = json::parse(js.out);
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["progress"]["on_track"], true);
  EXPECT_EQ(j["progress"]["estimated_finish"], "2026-07-04");

  TempDir out;
  const std::string page = (out / "report.html").string();
  auto html = with({"-o", page});
  ASSERT_EQ(html.exit_code, 0) << html.err;
  const std::string text = testing::ReadFile(page);
  EXPECT_NE(text.find("data:image/jpeg;base64,"), std::string::npos);
  EXPECT_EQ(text.find("<script"), std::string::npos);
  EXPECT_NE(html.err.find("report written to"), std::string::npos);

  // A join table without the named column (a bad argument: exit 2), or no
  // file at all (exit 1): a clear error, and no report written over the good one.
  const std::string before = testing::ReadFile(page);
  auto nocol = RunDoppel(
      {"--db", db_, "report", "--join", Postcodes(), "--join-field", "arrondissement", "-o", page});
  EXPECT_EQ(nocol.exit_code, 2);
  EXPECT_NE(nocol.err.find("arrondissement"), std::string::npos) << nocol.err;
  auto nofile = RunDoppel(
      {"--db", db_, "report", "--join", (out / "nosuch.csv").string(), "--join-field", "postcode"});
  EXPECT_EQ(nofile.exit_code, 1);
  EXPECT_NE(nofile.err.find("nosuch.csv"), std::string::npos) << nofile.err;
  EXPECT_EQ(testing::ReadFile(page), before);

  auto bad = RunDoppel({"--db", db_, "report", "--group-by", "colour"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("cannot group by 'colour'"), std::string::npos) << bad.err;
  auto no_field = RunDoppel({"--db", db_, "report", "--join", Postcodes()});
  EXPECT_EQ(no_field.exit_code, 2);
  EXPECT_NE(no_field.err.find("--join-field"), std::string::npos);
  auto help = RunDoppel({"report", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("Examples"), std::string::npos);
}

}  // namespace
}  // namespace doppel
