#include "test_util.h"

#include <grp.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vips/vips.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

extern char** environ;

namespace doppel::testing {

namespace fs = std::filesystem;

bool InCi() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

std::string TestDataDir() {
  std::string dir;
  if (const char* env = std::getenv("DOPPEL_TESTDATA"); env && *env)
    dir = env;
  else
    dir = std::string(DOPPEL_SOURCE_DIR) + "/../shared/testdata";
  std::error_code ec;
  if (fs::is_directory(fs::path(dir) / "pdq", ec)) return fs::canonical(dir).string();
  return "";
}

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "doppel-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) std::abort();
  path_ = tmpl;
}

TempDir::~TempDir() {
  if (std::getenv("DOPPEL_KEEP_TMP")) return;
  std::error_code ec;
  // Tests chmod things; make sure everything can be removed.
  for (auto it = fs::recursive_directory_iterator(
           path_, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec))
    fs::permissions(it->path(), fs::perms::owner_all,
                    fs::perm_options::add | fs::perm_options::nofollow, ec);
  fs::remove_all(path_, ec);
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

void CopyFile(const fs::path& from, const fs::path& to) {
  fs::create_directories(to.parent_path());
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

std::string SomePhoto() {
  const char* candidates[] = {"/usr/share/backgrounds/mate/nature/Storm.jpg",
                              "/usr/share/backgrounds/mate/nature/Dune.jpg",
                              "/usr/share/backgrounds/the-mouse.jpg"};
  for (const char* c : candidates)
    if (fs::exists(c)) return c;
  std::string td = TestDataDir();
  if (!td.empty()) return td + "/pdq/bridge-mods/aaa-orig.jpg";
  return "";
}

namespace {
void EnsureVips() {
  static bool done = [] { return VIPS_INIT("doppel-tests") == 0; }();
  if (!done) std::abort();
}
struct Unref {
  std::vector<VipsImage*> v;
  ~Unref() {
    for (auto* i : v) g_object_unref(i);
  }
  VipsImage* operator()(VipsImage* i) {
    v.push_back(i);
    return i;
  }
};
}  // namespace

void WriteVariant(const std::string& original, const fs::path& out,
                  const std::function<VipsImage*(VipsImage*)>& edit, const std::string& options) {
  EnsureVips();
  VipsImage* in = vips_image_new_from_file(original.c_str(), nullptr);
  ASSERT_NE(in, nullptr) << vips_error_buffer();
  VipsImage* res = edit(in);
  ASSERT_NE(res, nullptr) << vips_error_buffer();
  ASSERT_EQ(vips_image_write_to_file(res, (out.string() + options).c_str(), nullptr), 0)
      << vips_error_buffer();
  g_object_unref(res);
  g_object_unref(in);
}

VipsImage* Crop(VipsImage* in, double left, double top, double width, double height) {
  VipsImage* out = nullptr;
  const int w = in->Xsize, h = in->Ysize;
  if (vips_extract_area(in, &out, int(left * w), int(top * h), int(width * w), int(height * h),
                        nullptr))
    return nullptr;
  return out;
}

void MakeImage(const fs::path& p, int width, int height, int seed, const std::string& options) {
  EnsureVips();
  fs::create_directories(p.parent_path());
  // Smooth random structure (blurred noise per band) plus a gradient: enough
  // texture for a meaningful PDQ hash, different for every seed.
  Unref keep;
  VipsImage* bands[3];
  for (int b = 0; b < 3; ++b) {
    VipsImage *noise, *blur;
    if (vips_gaussnoise(&noise, width / 8 + 1, height / 8 + 1, "sigma", 60.0, "mean", 128.0, "seed",
                        seed * 3 + b, nullptr))
      FAIL() << vips_error_buffer();
    keep(noise);
    if (vips_gaussblur(noise, &blur, 1.5, nullptr)) FAIL() << vips_error_buffer();
    keep(blur);
    VipsImage* big;
    if (vips_resize(blur, &big, double(width) / (width / 8 + 1), "vscale",
                    double(height) / (height / 8 + 1), nullptr))
      FAIL() << vips_error_buffer();
    keep(big);
    VipsImage* crop;
    if (vips_crop(big, &crop, 0, 0, std::min(width, big->Xsize), std::min(height, big->Ysize),
                  nullptr))
      FAIL() << vips_error_buffer();
    keep(crop);
    bands[b] = crop;
  }
  VipsImage *joined, *uchar, *srgb;
  if (vips_bandjoin(bands, &joined, 3, nullptr)) FAIL() << vips_error_buffer();
  keep(joined);
  if (vips_cast(joined, &uchar, VIPS_FORMAT_UCHAR, nullptr)) FAIL() << vips_error_buffer();
  keep(uchar);
  if (vips_copy(uchar, &srgb, "interpretation", VIPS_INTERPRETATION_sRGB, nullptr))
    FAIL() << vips_error_buffer();
  keep(srgb);
  if (vips_image_write_to_file(srgb, (p.string() + options).c_str(), nullptr))
    FAIL() << vips_error_buffer();
}

std::string DoppelBinary() { return DOPPEL_BINARY; }

namespace {
[[noreturn]] void ExecDoppel(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  std::string bin = DoppelBinary();
  argv.push_back(bin.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(bin.c_str(), argv.data());
  _exit(127);
}
}  // namespace

int SpawnDoppel(const std::vector<std::string>& args) {
  std::fflush(nullptr);  // or the child's freopen would flush our buffers a second time
  pid_t pid = fork();
  if (pid == 0) {
    if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(127);
    ExecDoppel(args);
  }
  return pid;
}

RunResult RunDoppel(const std::vector<std::string>& args, const std::string& cwd, int as_uid) {
  RunResult rr;
  TempDir tmp;
  const std::string out = (tmp / "out").string(), err = (tmp / "err").string();
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(127);
    if (!freopen(out.c_str(), "w", stdout) || !freopen(err.c_str(), "w", stderr)) _exit(127);
    if (as_uid >= 0 &&
        (setgroups(0, nullptr) != 0 || setgid(gid_t(as_uid)) != 0 || setuid(uid_t(as_uid)) != 0))
      _exit(126);
    ExecDoppel(args);
  }
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  rr.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  rr.max_rss_kb = ru.ru_maxrss;
  rr.out = ReadFile(out);
  rr.err = ReadFile(err);
  return rr;
}

}  // namespace doppel::testing
