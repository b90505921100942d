// A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl on a Unix
// socket in a temporary folder, started on first use by this test process
// (once per process, never per test), stopped and removed when the process's
// tests end. As root the cluster runs as the `postgres` user (initdb refuses
// root). Needs Debian's postgresql package (scripts/install-deps); the
// binaries are looked for in $DOPPEL_PG_BINDIR, then /usr/lib/postgresql/*/bin.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "test_util.h"

namespace doppel::testing {

// A connection URI for a new, empty database of the test cluster, or empty
// (with the reason in *why) if no cluster can be started here.
std::string FreshPgDatabase(std::string* why);

// Runs SQL on a database of the test cluster, outside doppel; returns the
// first column of the first row ("" if none), or sets *error.
std::string PgExec(const std::string& uri, const std::string& sql, std::string* error = nullptr);

// Sets `var` to a fresh database's URI; without a server the test is skipped
// with the reason, and under CI=true it fails.
#define DOPPEL_REQUIRE_PG(var)                                                           \
  do {                                                                                   \
    std::string why_pg_;                                                                 \
    var = ::doppel::testing::FreshPgDatabase(&why_pg_);                                  \
    if (var.empty()) {                                                                   \
      if (::doppel::testing::InCi()) FAIL() << "CI=true but no PostgreSQL: " << why_pg_; \
      GTEST_SKIP() << "no PostgreSQL server for the tests: " << why_pg_;                 \
    }                                                                                    \
  } while (0)

}  // namespace doppel::testing
