// The POSIX Env: the only place the destructive path calls the OS.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "doppel/replace.h"
#include "util/sha256.h"

namespace doppel {
namespace {

Status Errno(const std::string& what, const std::string& path, int err) {
  std::string msg = path + ": cannot " + what + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return DiskFull(msg);
  if (err == ENOENT) return NotFound(msg);
  if (err == EEXIST) return AlreadyExists(msg);
  if (err == EXDEV) return Unsupported(msg + " (different file systems)");
  return IOError(msg);
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

Status WriteAll(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Errno("write", path, errno);
    }
    p += w;
    n -= size_t(w);
  }
  return Status::OK();
}

class PosixWritableFile final : public Env::WritableFile {
 public:
  PosixWritableFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status Append(const std::string& bytes) override {
    return WriteAll(fd_, bytes.data(), bytes.size(), path_);
  }
  Status Sync() override {
    if (::fsync(fd_) != 0) return Errno("fsync", path_, errno);
    return Status::OK();
  }
  Status Close() override {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return Errno("close", path_, errno);
    return Status::OK();
  }

 private:
  int fd_;
  std::string path_;
};

class PosixEnv final : public Env {
 public:
  Result<FileInfo> Stat(const std::string& path) override {
    struct stat st {};
    FileInfo fi;
    if (::lstat(path.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return fi;
      return Errno("stat", path, errno);
    }
    fi.exists = true;
    fi.is_regular = S_ISREG(st.st_mode);
    fi.is_symlink = S_ISLNK(st.st_mode);
    fi.size = st.st_size;
    fi.mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    fi.dev = st.st_dev;
    fi.ino = st.st_ino;
    fi.mode = st.st_mode & 07777;
    return fi;
  }

  Result<std::string> Sha256Hex(const std::string& path) override {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (fd.get() < 0) return Errno("open", path, errno);
    Sha256 h;
    std::vector<char> buf(1 << 20);
    for (;;) {
      ssize_t r = ::read(fd.get(), buf.data(), buf.size());
      if (r < 0) {
        if (errno == EINTR) continue;
        return Errno("read", path, errno);
      }
      if (r == 0) break;
      h.Update(buf.data(), size_t(r));
    }
    return DigestHex(h.Finish());
  }

  Result<std::string> ReadFile(const std::string& path) override {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return Errno("open", path, errno);
    std::string out;
    char buf[65536];
    for (;;) {
      ssize_t r = ::read(fd.get(), buf, sizeof buf);
      if (r < 0) {
        if (errno == EINTR) continue;
        return Errno("read", path, errno);
      }
      if (r == 0) break;
      out.append(buf, size_t(r));
    }
    return out;
  }

  Result<std::string> ReadLink(const std::string& path) override {
    std::vector<char> buf(4096);
    ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
    if (n < 0) return Errno("read the link", path, errno);
    return std::string(buf.data(), size_t(n));
  }

  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
      if (errno == ENOENT) return out;
      return Errno("list", dir, errno);
    }
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
    return out;
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return Errno("rename to " + to, from, errno);
    return Status::OK();
  }

  Status CopyFile(const std::string& from, const std::string& to) override {
    Fd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (in.get() < 0) return Errno("open", from, errno);
    struct stat st {};
    if (::fstat(in.get(), &st) != 0) return Errno("stat", from, errno);
    Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777));
    if (out.get() < 0) return Errno("create", to, errno);
    std::vector<char> buf(1 << 20);
    for (;;) {
      ssize_t r = ::read(in.get(), buf.data(), buf.size());
      if (r < 0) {
        if (errno == EINTR) continue;
        return Errno("read", from, errno);
      }
      if (r == 0) break;
      DOPPEL_RETURN_IF_ERROR(WriteAll(out.get(), buf.data(), size_t(r), to));
    }
    if (::fchmod(out.get(), st.st_mode & 07777) != 0) return Errno("set permissions of", to, errno);
    if (::fsync(out.get()) != 0) return Errno("fsync", to, errno);
    if (::close(out.release()) != 0) return Errno("close", to, errno);
    return Status::OK();
  }

  Status Link(const std::string& target, const std::string& at) override {
    if (::link(target.c_str(), at.c_str()) != 0) return Errno("hard-link to " + target, at, errno);
    return Status::OK();
  }

  Status Symlink(const std::string& target, const std::string& at) override {
    if (::symlink(target.c_str(), at.c_str()) != 0)
      return Errno("make a symbolic link to " + target, at, errno);
    return Status::OK();
  }

  Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) == 0) return Status::OK();
    if (errno == EISDIR || errno == EPERM) {
      if (::rmdir(path.c_str()) == 0) return Status::OK();
    }
    return Errno("remove", path, errno);
  }

  Status SetMtime(const std::string& path, int64_t mtime_ns) override {
    struct timespec ts[2];
    ts[0].tv_sec = 0;
    ts[0].tv_nsec = UTIME_OMIT;
    ts[1].tv_sec = mtime_ns / 1000000000;
    ts[1].tv_nsec = mtime_ns % 1000000000;
    if (::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0)
      return Errno("set the modification time of", path, errno);
    return Status::OK();
  }

  Status CreateDirs(const std::string& path) override {
    if (path.empty()) return Status::OK();
    std::string cur;
    size_t pos = 0;
    while (pos != std::string::npos) {
      pos = path.find('/', pos + 1);
      cur = path.substr(0, pos);
      if (cur.empty()) continue;
      if (::mkdir(cur.c_str(), 0777) != 0 && errno != EEXIST)
        return Errno("create the folder", cur, errno);
    }
    return Status::OK();
  }

  Status SyncDir(const std::string& dir) override {
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) return Errno("open the folder", dir, errno);
    if (::fsync(fd.get()) != 0) return Errno("fsync the folder", dir, errno);
    return Status::OK();
  }

  Status AppendDurably(const std::string& path, const std::string& bytes) override {
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (fd.get() < 0) return Errno("open", path, errno);
    DOPPEL_RETURN_IF_ERROR(WriteAll(fd.get(), bytes.data(), bytes.size(), path));
    if (::fdatasync(fd.get()) != 0) return Errno("fdatasync", path, errno);
    return Status::OK();
  }

  class PosixLock final : public Lock {
   public:
    explicit PosixLock(int fd) : fd_(fd) {}
    ~PosixLock() override { ::close(fd_); }  // closing releases the flock

   private:
    int fd_;
  };

  Result<std::unique_ptr<Lock>> LockFile(const std::string& path) override {
    Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (fd.get() < 0) return Errno("open the lock file", path, errno);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK)
        return Busy(path +
                    ": another doppel apply or undo is running on this "
                    "catalogue; wait for it");
      return Errno("lock", path, errno);
    }
    return std::unique_ptr<Lock>(new PosixLock(fd.release()));
  }

  Status WriteFileDurably(const std::string& path, const std::string& bytes) override {
    const std::string tmp = path + ".doppel-part";
    {
      Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (fd.get() < 0) return Errno("create", tmp, errno);
      DOPPEL_RETURN_IF_ERROR(WriteAll(fd.get(), bytes.data(), bytes.size(), tmp));
      if (::fsync(fd.get()) != 0) return Errno("fsync", tmp, errno);
    }
    return Rename(tmp, path);
  }
};

}  // namespace

Result<std::string> Env::RealPath(const std::string& path) {
  char* r = ::realpath(path.c_str(), nullptr);
  if (!r) return Errno("resolve", path, errno);
  std::string out(r);
  std::free(r);
  return out;
}

Result<std::unique_ptr<Env::WritableFile>> Env::NewExclusiveFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("create", path, errno);
  return std::unique_ptr<WritableFile>(new PosixWritableFile(fd, path));
}

Env* Env::Default() {
  static Env* env = new PosixEnv();
  return env;
}

}  // namespace doppel
