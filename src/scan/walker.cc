#include "scan/walker.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>
#include <utility>

#include "doppel/scan.h"

namespace doppel {
namespace {

constexpr int kMaxDepth = 256;

int64_t MtimeNs(const struct stat& st) {
  return int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

struct Frame {
  DIR* dir = nullptr;
  std::string prefix;  // "" for the root, else "a/b/"
  std::pair<dev_t, ino_t> id;
};

}  // namespace

Result<WalkReport> Walk(const std::string& root, const WalkOptions& opt,
                        const std::function<void(const WalkEntry&)>& on_file,
                        const std::function<void(const std::string&, const Status&)>& on_problem) {
  WalkReport report;
  int rootfd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) {
    int e = errno;
    if (e == ENOENT) return NotFound("folder " + root + " does not exist (is the drive mounted?)");
    return IOError("cannot open folder " + root + ": " + std::strerror(e));
  }
  struct stat rst {};
  fstat(rootfd, &rst);
  std::vector<Frame> stack;
  std::set<std::pair<dev_t, ino_t>> visited;  // only filled when following links
  DIR* rd = fdopendir(rootfd);
  if (!rd) {
    int e = errno;
    ::close(rootfd);
    return IOError("cannot list folder " + root + ": " + std::strerror(e));
  }
  // Links are followed only to places inside the Source: resolved against
  // the root's own resolved path, so a link to / or to a private file
  // elsewhere is recorded as skipped, never read.
  std::string root_real;
  if (opt.follow_symlinks) {
    char* r = ::realpath(root.c_str(), nullptr);
    if (r) {
      root_real = r;
      std::free(r);
    }
  }
  auto inside_root = [&](const std::string& rel) {
    if (root_real.empty()) return false;
    char* r = ::realpath((root + "/" + rel).c_str(), nullptr);
    if (!r) return false;
    const std::string target = r;
    std::free(r);
    return target == root_real || root_real == "/" ||
           target.compare(0, root_real.size() + 1, root_real + "/") == 0;
  };
  stack.push_back({rd, "", {rst.st_dev, rst.st_ino}});
  if (opt.follow_symlinks) visited.insert(stack.back().id);

  while (!stack.empty()) {
    if (opt.cancel && opt.cancel->load(std::memory_order_relaxed)) {
      report.cancelled = true;
      break;
    }
    Frame& top = stack.back();
    errno = 0;
    struct dirent* de = readdir(top.dir);
    if (!de) {
      if (errno != 0) {
        on_problem(top.prefix,
                   IOError(std::string("folder listing failed part-way: ") + std::strerror(errno)));
        report.unreadable_prefixes.push_back(top.prefix);
      }
      closedir(top.dir);
      stack.pop_back();
      continue;
    }
    const char* name = de->d_name;
    if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
    const int dfd = dirfd(top.dir);
    const std::string rel = top.prefix + name;

    struct stat st {};
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT)  // vanished since readdir: nothing to report
        on_problem(rel, IOError(std::string("cannot stat: ") + std::strerror(errno)));
      continue;
    }
    if (S_ISLNK(st.st_mode)) {
      if (!opt.follow_symlinks) {
        ++report.symlinks_skipped;
        continue;
      }
      if (fstatat(dfd, name, &st, 0) != 0) {
        const int e = errno;
        if (e == ELOOP)
          on_problem(rel, IOError("symbolic link loop; not followed"));
        else
          on_problem(rel, IOError(std::string("broken symbolic link: ") + std::strerror(e)));
        continue;
      }
      if (!inside_root(rel)) {
        ++report.symlinks_skipped;
        on_problem(rel, Unsupported("symbolic link leads outside the source folder; not followed "
                                    "(--follow-symlinks only follows links within the source)"));
        continue;
      }
    }
    if (S_ISDIR(st.st_mode)) {
      std::pair<dev_t, ino_t> id{st.st_dev, st.st_ino};
      if (opt.follow_symlinks) {
        bool ancestor = false;
        for (const auto& f : stack) ancestor |= f.id == id;
        if (ancestor) {
          on_problem(rel,
                     IOError("symbolic link loop: leads back to a folder above it; not followed"));
          continue;
        }
        if (!visited.insert(id).second) continue;  // reached twice through links: scan once
      }
      if (int(stack.size()) >= kMaxDepth) {
        on_problem(rel, IOError("folder nesting deeper than " + std::to_string(kMaxDepth) +
                                " levels; not entered"));
        report.unreadable_prefixes.push_back(rel + "/");
        continue;
      }
      int fd = openat(dfd, name,
                      O_RDONLY | O_DIRECTORY | O_CLOEXEC | (opt.follow_symlinks ? 0 : O_NOFOLLOW));
      DIR* d = fd >= 0 ? fdopendir(fd) : nullptr;
      if (!d) {
        const int e = errno;
        if (fd >= 0) ::close(fd);
        on_problem(rel + "/", IOError(std::string("cannot open folder: ") + std::strerror(e) +
                                      "; its files keep their last known state"));
        report.unreadable_prefixes.push_back(rel + "/");
        continue;
      }
      stack.push_back({d, rel + "/", id});  // invalidates `top`
      continue;
    }
    if (!opt.all_files && !HasImageExtension(name)) continue;
    if (!S_ISREG(st.st_mode)) {
      // Never opened: reading a FIFO blocks until someone writes, and a
      // device may never end.
      const char* what = S_ISFIFO(st.st_mode)   ? "a named pipe (FIFO)"
                         : S_ISSOCK(st.st_mode) ? "a socket"
                         : S_ISCHR(st.st_mode)  ? "a character device"
                         : S_ISBLK(st.st_mode)  ? "a block device"
                                                : "not a regular file";
      on_problem(rel, Unsupported(std::string(what) +
                                  " named like a picture; skipped without opening it"));
      continue;
    }
    on_file(WalkEntry{rel, int64_t(st.st_size), MtimeNs(st)});
  }
  for (auto& f : stack) closedir(f.dir);
  return report;
}

}  // namespace doppel
