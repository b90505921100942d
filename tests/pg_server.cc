#include "pg_server.h"

#include <glob.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <mutex>

namespace doppel::testing {
namespace {

namespace fs = std::filesystem;

std::string FindBinDir() {
  if (const char* env = std::getenv("DOPPEL_PG_BINDIR"); env && *env) return env;
  glob_t g{};
  std::string best;
  if (glob("/usr/lib/postgresql/*/bin/initdb", 0, nullptr, &g) == 0) {
    std::vector<std::string> found(g.gl_pathv, g.gl_pathv + g.gl_pathc);
    // The newest major version (numeric order: 9 < 15).
    std::sort(found.begin(), found.end(), [](const std::string& a, const std::string& b) {
      return std::atoi(a.c_str() + 20) < std::atoi(b.c_str() + 20);
    });
    best = fs::path(found.back()).parent_path().string();
  }
  globfree(&g);
  return best;
}

class Cluster {
 public:
  // Starts the cluster once; returns false with the reason.
  bool Start(std::string* why) {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_) return true;
    if (!error_.empty()) {
      *why = error_;
      return false;
    }
    error_ = DoStart();
    *why = error_;
    started_ = error_.empty();
    return started_;
  }
  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_) Run(Bin("pg_ctl") + " -D " + dir_ + "/data -w -s -m immediate stop");
    started_ = false;
    std::error_code ec;
    if (!dir_.empty() && !std::getenv("DOPPEL_KEEP_TMP")) fs::remove_all(dir_, ec);
    dir_.clear();
  }
  std::string Uri(const std::string& db) const {
    return "postgresql://doppel@/" + db + "?host=" + dir_;
  }
  int NextDatabase() { return ++databases_; }

 private:
  std::string Bin(const std::string& tool) const { return as_ + bin_ + "/" + tool; }
  int Run(const std::string& cmd) const {
    return std::system((cmd + " >>" + dir_ + "/log 2>&1").c_str());
  }
  std::string DoStart() {
    bin_ = FindBinDir();
    if (bin_.empty() || access((bin_ + "/initdb").c_str(), X_OK) != 0)
      return "initdb not found (install postgresql with scripts/install-deps, or set "
             "DOPPEL_PG_BINDIR)";
    std::string tmpl = "/tmp/doppel-pg-XXXXXX";  // short: a socket path is at most 107 bytes
    if (!mkdtemp(tmpl.data())) return "cannot make a temporary folder";
    dir_ = tmpl;
    if (geteuid() == 0) {
      const passwd* pw = getpwnam("postgres");
      if (!pw) return "running as root and there is no `postgres` user to run the server as";
      if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) return "cannot chown " + dir_;
      as_ = "runuser -u postgres -- ";
    }
    if (Run(Bin("initdb") + " -D " + dir_ + "/data -A trust -U doppel --no-sync -E UTF8 " +
            "--locale=C") != 0)
      return "initdb failed (see " + dir_ + "/log)";
    // Durability is not under test here: no fsync, for speed.
    if (Run(Bin("pg_ctl") + " -D " + dir_ + "/data -w -s -l " + dir_ + "/server.log -o \"-k " +
            dir_ +
            " -c listen_addresses='' -c fsync=off -c full_page_writes=off "
            "-c synchronous_commit=off\" start") != 0)
      return "pg_ctl start failed (see " + dir_ + "/server.log)";
    return "";
  }

  std::mutex mu_;
  bool started_ = false;
  std::string error_, bin_, dir_, as_;
  int databases_ = 0;
};

Cluster& TheCluster() {
  static Cluster* c = new Cluster;  // never destroyed: the Environment stops it
  return *c;
}

class PgEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { TheCluster().Stop(); }
};
// Registered before main runs (gtest_main): its TearDown ends the cluster.
[[maybe_unused]] const auto* const kRegistered =
    ::testing::AddGlobalTestEnvironment(new PgEnvironment);

}  // namespace

std::string PgExec(const std::string& uri, const std::string& sql, std::string* error) {
  PGconn* c = PQconnectdb(uri.c_str());
  std::string out;
  if (PQstatus(c) != CONNECTION_OK) {
    if (error) *error = PQerrorMessage(c);
    PQfinish(c);
    return out;
  }
  PGresult* r = PQexec(c, sql.c_str());
  const ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    if (error) *error = PQresultErrorMessage(r);
  } else if (PQntuples(r) > 0 && PQnfields(r) > 0) {
    out = PQgetvalue(r, 0, 0);
  }
  PQclear(r);
  PQfinish(c);
  return out;
}

std::string FreshPgDatabase(std::string* why) {
  Cluster& cluster = TheCluster();
  if (!cluster.Start(why)) return "";
  const std::string name = "t" + std::to_string(cluster.NextDatabase());
  std::string error;
  PgExec(cluster.Uri("postgres"), "CREATE DATABASE " + name, &error);
  if (!error.empty()) {
    *why = "cannot create a database: " + error;
    return "";
  }
  return cluster.Uri(name);
}

}  // namespace doppel::testing
