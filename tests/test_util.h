// Shared helpers for doppel's tests: real files in real temporary folders.
#pragma once

#include <gtest/gtest.h>

#include <vips/vips.h>
#include <cstdint>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace doppel::testing {

// ../shared/testdata (or $DOPPEL_TESTDATA). Empty if absent: callers skip with
// DOPPEL_SKIP_WITHOUT_TESTDATA(); under CI=true absence is a failure.
std::string TestDataDir();
#define DOPPEL_REQUIRE_TESTDATA()                                                        \
  do {                                                                                   \
    if (::doppel::testing::TestDataDir().empty()) {                                      \
      if (::doppel::testing::InCi()) FAIL() << "CI=true but shared testdata is missing"; \
      GTEST_SKIP() << "shared testdata not found (set DOPPEL_TESTDATA); skipping";       \
    }                                                                                    \
  } while (0)
bool InCi();

// A fresh folder under the system temp dir, removed when the object dies
// (unless DOPPEL_KEEP_TMP is set).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  std::filesystem::path operator/(const std::string& rel) const { return path_ / rel; }

 private:
  std::filesystem::path path_;
};

std::string ReadFile(const std::filesystem::path& p);
void WriteFile(const std::filesystem::path& p, const std::string& bytes);
void CopyFile(const std::filesystem::path& from, const std::filesystem::path& to);

// A real photo installed by a Debian wallpaper package or the shared test
// data; empty if none is found (see DOPPEL_REQUIRE_PHOTO).
std::string SomePhoto();
// Sets `var` to SomePhoto(); without one the test is skipped with a message,
// and under CI=true it fails (mate-backgrounds is a dependency).
#define DOPPEL_REQUIRE_PHOTO(var)                                                               \
  do {                                                                                          \
    var = ::doppel::testing::SomePhoto();                                                       \
    if (var.empty()) {                                                                          \
      if (::doppel::testing::InCi()) FAIL() << "CI=true but no photo found (mate-backgrounds)"; \
      GTEST_SKIP() << "no photo found (install mate-backgrounds)";                              \
    }                                                                                           \
  } while (0)

// Writes a synthetic but textured image (gradients + shapes seeded by `seed`)
// of the given size with libvips; format from the extension; `options` is a
// libvips save option string such as "[Q=90]".
void MakeImage(const std::filesystem::path& p, int width, int height, int seed,
               const std::string& options = "");

// Writes `edit(original)` to `out` (libvips save options such as "[Q=90]"),
// failing the test on any libvips error.
void WriteVariant(const std::string& original, const std::filesystem::path& out,
                  const std::function<VipsImage*(VipsImage*)>& edit,
                  const std::string& options = "[Q=90]");
// The part of `in` at fractions of its width and height (nullptr on error).
VipsImage* Crop(VipsImage* in, double left, double top, double width, double height);

struct RunResult {
  int exit_code = -1;
  std::string out, err;
  long max_rss_kb = 0;
};
// Runs build/doppel with arguments (no shell), capturing output.
// With as_uid >= 0 the child drops to that user and group first (tests of
// permission errors still mean something when the suite runs as root).
RunResult RunDoppel(const std::vector<std::string>& args, const std::string& cwd = "",
                    int as_uid = -1);
// Starts build/doppel in the background, output to /dev/null; returns its pid.
int SpawnDoppel(const std::vector<std::string>& args);
std::string DoppelBinary();

}  // namespace doppel::testing
