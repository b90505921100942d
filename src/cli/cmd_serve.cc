// The serve commands (see docs/cli.md and docs/api.md): `doppel serve`, the
// API keys (`doppel key add|list|revoke`) and the per-source upload policy
// (`doppel source policy`).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/common.h"
#include "cli/output.h"
#include "doppel/gate.h"
#include "server/server.h"

namespace doppel::cli {
namespace {

struct ServeArgs {
  std::string listen = "127.0.0.1:8080";
  int64_t max_body_mb = 64;
  int64_t max_pixels = 100'000'000;
  int decode_threads = 2;
  int decode_queue = -1;  // -1: 4 x decode_threads
  int decode_timeout_ms = 20000;
  int decode_nice = 10;
  int read_timeout_s = 10;
  int header_timeout_s = 10;
  int body_timeout_s = 120;
  int max_connections_per_ip = 8;
  int http_threads = 16;
  std::string policy;
  std::string held_dir;
  int threshold = 31;
  bool access_log = false;
  int refresh_seconds = 30;
};

int CmdServe(const Globals& g, const ServeArgs& a) {
  server::ServerOptions o;
  o.catalogue = g.db;
  const auto colon = a.listen.rfind(':');
  if (colon == std::string::npos)
    return Fail(
        InvalidArgument("--listen " + a.listen + ": expected HOST:PORT, e.g. 127.0.0.1:8080"));
  o.host = a.listen.substr(0, colon);
  try {
    o.port = std::stoi(a.listen.substr(colon + 1));
  } catch (...) {
    return Fail(InvalidArgument("--listen " + a.listen + ": the port is not a number"));
  }
  if (o.port < 0 || o.port > 65535)
    return Fail(InvalidArgument("--listen " + a.listen + ": port out of range"));
  o.max_body_bytes = a.max_body_mb << 20;
  o.max_pixels = a.max_pixels;
  o.decode_slots = a.decode_threads;
  o.decode_queue = a.decode_queue;
  o.decode_timeout_ms = a.decode_timeout_ms;
  o.decode_nice = a.decode_nice;
  o.read_timeout_s = a.read_timeout_s;
  o.header_timeout_s = a.header_timeout_s;
  o.body_timeout_s = a.body_timeout_s;
  o.max_connections_per_ip = a.max_connections_per_ip;
  o.http_threads = a.http_threads;
  o.gate.policy_override = a.policy;
  o.gate.held_dir = a.held_dir;
  o.gate.match.threshold = a.threshold;
  o.refresh_seconds = a.refresh_seconds;
  if (a.access_log)
    o.log = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };

  // The catalogue must exist (and is migrated) before the server opens its own connections.
  {
    auto cat = Open(g);
    if (!cat.ok()) return Fail(cat.status());
  }
  Status init = InitImaging();
  if (!init.ok()) return Fail(init);
  const auto t0 = std::chrono::steady_clock::now();
  auto srv = server::Server::Create(o);
  if (!srv.ok()) return Fail(srv.status());
  Status bound = (*srv)->Bind();
  if (!bound.ok()) return Fail(bound);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!g.quiet)
    std::fprintf(
        stderr,
        "doppel: serving %s on http://%s:%d (%zu pictures indexed in %s); review page at /review\n",
        g.db.c_str(), o.host.c_str(), (*srv)->port(), (*srv)->gate().size(),
        HumanDuration(secs).c_str());
  InstallSigint();
  std::thread watcher([&] {
    while (!g_cancel.load()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    (*srv)->Stop();
  });
  Status run = (*srv)->Run();
  g_cancel = true;  // release the watcher if the server stopped by itself
  watcher.join();
  if (!run.ok()) return Fail(run);
  if (!g.quiet) std::fprintf(stderr, "doppel: server stopped\n");
  return kExitOk;
}

int CmdKeyAdd(const Globals& g, const std::string& source, const std::string& role,
              const std::string& label, bool json_out) {
  auto cat = Open(g);
  if (!cat.ok()) return Fail(cat.status());
  auto k = CreateApiKey(**cat, source, role, label);
  if (!k.ok()) return Fail(k.status());
  if (json_out) {
    std::cout << nlohmann::json{{"id", k->key.id},
                                {"source", k->key.source},
                                {"role", k->key.role},
                                {"label", k->key.label},
                                {"token", k->token}}
                     .dump()
              << "\n";
  } else {
    std::printf("%s\n", k->token.c_str());
    if (!g.quiet)
      std::fprintf(
          stderr,
          "doppel: key %lld (%s for source %s) created; the token above is shown only now: "
          "store it safely\n",
          static_cast<long long>(k->key.id), k->key.role.c_str(), k->key.source.c_str());
  }
  return kExitOk;
}

int CmdKeyList(const Globals& g, bool json_out) {
  auto cat = Open(g);
  if (!cat.ok()) return Fail(cat.status());
  auto keys = (*cat)->ListApiKeys();
  if (!keys.ok()) return Fail(keys.status());
  if (json_out) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& k : *keys)
      a.push_back({{"id", k.id},
                   {"source", k.source},
                   {"role", k.role},
                   {"label", k.label},
                   {"created_at", k.created_at},
                   {"revoked_at", k.revoked_at.empty() ? nullptr : nlohmann::json(k.revoked_at)}});
    std::cout << a.dump(2) << "\n";
    return kExitOk;
  }
  if (keys->empty()) {
    std::printf("no API keys yet; make one with: doppel key add SOURCE --role uploader\n");
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"ID", "SOURCE", "ROLE", "LABEL", "CREATED", "REVOKED"}};
  for (const auto& k : *keys)
    rows.push_back({std::to_string(k.id), k.source, k.role, k.label, k.created_at,
                    k.revoked_at.empty() ? "-" : k.revoked_at});
  std::cout << Table(rows);
  return kExitOk;
}

int CmdKeyRevoke(const Globals& g, int64_t id) {
  auto cat = Open(g);
  if (!cat.ok()) return Fail(cat.status());
  Status s = (*cat)->RevokeApiKey(id);
  if (!s.ok()) return Fail(s);
  if (!g.quiet)
    std::printf("key %lld revoked; requests with it now get 401\n", static_cast<long long>(id));
  return kExitOk;
}

int CmdSourcePolicy(const Globals& g, const std::string& source, const std::string& policy) {
  auto cat = Open(g);
  if (!cat.ok()) return Fail(cat.status());
  if (policy.empty()) {
    auto p = (*cat)->GetUploadPolicy(source);
    if (!p.ok()) return Fail(p.status());
    std::printf("%s\n", p->c_str());
    return kExitOk;
  }
  Status s = (*cat)->SetUploadPolicy(source, policy);
  if (!s.ok()) return Fail(s);
  if (!g.quiet)
    std::printf(
        "source %s: duplicates uploaded from now on are %s (a running server reads this per "
        "upload)\n",
        source.c_str(),
        policy == "reject"  ? "rejected"
        : policy == "alias" ? "recorded as aliases"
                            : "held for review");
  return kExitOk;
}

}  // namespace

CommandRunner RegisterServeCommands(CLI::App& app, const Globals& g) {
  auto a = std::make_shared<ServeArgs>();
  auto* serve = app.add_subcommand("serve", "run the upload gate (HTTP API) and the review page");
  serve->add_option("--listen", a->listen,
                    "HOST:PORT to listen on (default 127.0.0.1:8080; port 0 = any)");
  serve->add_option("--max-body-mb", a->max_body_mb, "refuse larger requests with 413 (default 64)")
      ->check(CLI::Range(int64_t(1), int64_t(4096)));
  serve
      ->add_option("--max-pixels", a->max_pixels,
                   "refuse larger pictures with 422 before decoding (default 1e8)")
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--decode-threads", a->decode_threads,
                   "pictures decoded at once; others wait in line, first come first served "
                   "(default 2)")
      ->check(CLI::Range(1, 256));
  serve
      ->add_option("--decode-queue", a->decode_queue,
                   "pictures that may wait for a decode slot; more get 503 with Retry-After at "
                   "once (default 4 x --decode-threads; 0 = never wait)")
      ->check(CLI::Range(0, 4096));
  serve
      ->add_option("--decode-timeout-ms", a->decode_timeout_ms,
                   "abandon longer decodes with 422 (default 20000)")
      ->check(CLI::Range(100, 600000));
  serve
      ->add_option("--decode-nice", a->decode_nice,
                   "lower the decode threads' CPU priority by this much, so hash lookups and "
                   "other requests are served first when decodes fill the cores (default 10; "
                   "0 = the same priority)")
      ->check(CLI::Range(0, 19));
  serve
      ->add_option("--read-timeout", a->read_timeout_s,
                   "seconds a client may stall while sending (default 10)")
      ->check(CLI::Range(1, 3600));
  serve
      ->add_option("--header-timeout", a->header_timeout_s,
                   "seconds a request's line and headers may take in all (default 10)")
      ->check(CLI::Range(1, 3600));
  serve
      ->add_option("--body-timeout", a->body_timeout_s,
                   "seconds a request's body may take in all (default 120)")
      ->check(CLI::Range(1, 86400));
  serve
      ->add_option("--max-connections-per-ip", a->max_connections_per_ip,
                   "connections served at once per client address; more get 503 (default 8; "
                   "0 = no limit, e.g. behind a reverse proxy)")
      ->check(CLI::Range(0, 100000));
  serve
      ->add_option("--http-threads", a->http_threads,
                   "request workers besides one per decode slot and place in line; each open "
                   "client connection holds one (default 16)")
      ->check(CLI::Range(1, 1024));
  serve
      ->add_option("--policy", a->policy,
                   "override every source's upload policy: reject, alias or hold")
      ->check(CLI::IsMember({"reject", "alias", "hold"}));
  serve->add_option("--held-dir", a->held_dir,
                    "where held uploads go (default: doppel-held beside the catalogue)");
  serve->add_option("--threshold", a->threshold, "PDQ bits for a near copy (default 31)")
      ->check(CLI::Range(0, 128));
  serve
      ->add_option("--refresh-seconds", a->refresh_seconds,
                   "check this often whether a `doppel match` ran, then index the files other "
                   "processes catalogued (default 30; 0 = never)")
      ->check(CLI::Range(0, 86400));
  serve->add_flag("--access-log", a->access_log, "print one line per request on stderr");
  serve->footer(
      "Examples:\n  doppel serve\n  doppel serve --listen 0.0.0.0:8080 --max-body-mb 100 "
      "--decode-threads 4\n"
      "  doppel serve --decode-threads 4 --decode-queue 32 --http-threads 64 --access-log\n"
      "  curl -H 'Authorization: Bearer dpl_...' -F source=apur -F image=@photo.jpg \\\n"
      "       http://127.0.0.1:8080/api/v1/uploads\n\n"
      "Accepted pictures go to SOURCE_ROOT/uploads/YYYY/MM/DD/SHA256.EXT. API: docs/api.md.\n"
      "Ctrl-C stops the server after the requests in progress.");

  auto* key = app.add_subcommand("key", "manage API keys of the HTTP server (docs/api.md)");
  key->require_subcommand(1);
  auto ka = std::make_shared<std::tuple<std::string, std::string, std::string, bool, int64_t>>();
  auto& [k_source, k_role, k_label, k_json, k_id] = *ka;
  k_role = "uploader";
  auto* kadd = key->add_subcommand("add", "make a key for a source; prints its token once");
  kadd->add_option("SOURCE", k_source, "the source it may upload to (admins: any)")->required();
  kadd->add_option("--role", k_role, "uploader (default), reviewer or admin")
      ->check(CLI::IsMember({"uploader", "reviewer", "admin"}));
  kadd->add_option("--label", k_label, "who or what uses it, e.g. 'scanner room 2'");
  kadd->add_flag("--json", k_json, "print id, role and token as JSON");
  kadd->footer(
      "Examples:\n  doppel key add apur --role uploader --label 'scan station'\n"
      "  TOKEN=$(doppel key add urbanisme --role reviewer)");
  auto* klist = key->add_subcommand("list", "list keys (never their tokens)");
  klist->add_flag("--json", k_json, "JSON output");
  klist->footer("Example:\n  doppel key list");
  auto* krev = key->add_subcommand("revoke", "stop a key from working");
  krev->add_option("ID", k_id, "the key's id (see doppel key list)")->required();
  krev->footer("Example:\n  doppel key revoke 3");

  // `doppel source policy` joins the source commands registered by main.cc.
  auto pa = std::make_shared<std::pair<std::string, std::string>>();
  CLI::App* spol = nullptr;
  CLI::App* source = nullptr;
  for (CLI::App* sub : app.get_subcommands([](CLI::App* s) { return s->get_name() == "source"; }))
    source = sub;
  if (source) {
    spol = source->add_subcommand(
        "policy", "show or set what the upload gate does with a source's duplicates");
    spol->add_option("NAME", pa->first, "the source")->required();
    spol->add_option("POLICY", pa->second,
                     "reject (default), alias or hold; omit to show the current one")
        ->check(CLI::IsMember({"reject", "alias", "hold"}));
    spol->footer(
        "reject: answer 409 and store nothing; alias: record the upload as an alias of the "
        "catalogued\n"
        "file (bytes not stored); hold: keep the bytes aside and list them for review.\n\n"
        "Examples:\n  doppel source policy apur hold\n  doppel source policy apur");
  }

  return [=, &g]() -> std::optional<int> {
    if (*serve) return CmdServe(g, *a);
    auto& [src, role, label, json_out, id] = *ka;
    if (*kadd) return CmdKeyAdd(g, src, role, label, json_out);
    if (*klist) return CmdKeyList(g, json_out);
    if (*krev) return CmdKeyRevoke(g, id);
    if (spol && *spol) return CmdSourcePolicy(g, pa->first, pa->second);
    return std::nullopt;
  };
}

}  // namespace doppel::cli
