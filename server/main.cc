// gongdai-server: serves the Gongdai ledger over gRPC.
#include <absl/synchronization/mutex.h>
#include <pthread.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>

#include "engine/checkpoint.h"
#include "server/config.h"
#include "server/demo.h"
#include "server/server.h"

int main(int argc, char** argv) {
  // gRPC locks absl::Mutex on every call. Debian builds Abseil without NDEBUG, which leaves
  // its lock-order graph on: every lock and unlock updates a process-wide graph, about 2%
  // of the CPU under load. Lock-order checking belongs in tests, not in the server.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"gongdai-server: the Gongdai micro-loan ledger over gRPC"};
  std::string config_path;
  std::string listen;
  std::string data_dir;
  std::string business_date;
  bool print_config = false;
  bool demo = false;
  bool print_key = false;
  bool rebuild = false;
  app.add_option("-c,--config", config_path,
                 "TOML configuration file (every setting has a default)")
      ->check(CLI::ExistingFile);
  app.add_option("--listen", listen,
                 "address to listen on, overriding the config (default 127.0.0.1:50051)");
  app.add_option("--data-dir", data_dir,
                 "data directory, overriding the config (default ./gongdai-data)");
  app.add_option("--business-date", business_date,
                 "fix today's business date (YYYY-MM-DD), for demos and tests");
  CLI::Option* print_config_flag = app.add_flag("--print-default-config", print_config,
                                                "print the default configuration and exit");
  CLI::Option* print_key_flag =
      app.add_flag("--print-public-key", print_key,
                   "print the verifier key of the server's checkpoints (for auditors) and exit");
  print_config_flag->excludes(print_key_flag);
  CLI::Option* demo_flag = app.add_flag(
      "--demo", demo,
      "load the demo book (Ji'an's 2020 programme: 330 loans, 62,470,000.00 yuan) into an "
      "empty ledger; fixes the business date at 2021-03-31 unless --business-date is given");
  CLI::Option* rebuild_flag = app.add_flag(
      "--rebuild-projections", rebuild,
      "before serving, compare the derived state (projections, indexes, request ids) with a "
      "replay of the journal and, if they differ, rebuild it from the journal; the journal "
      "itself is never changed");
  // Each of these starts the server; a print flag prints and exits without starting it.
  for (CLI::Option* starts : {demo_flag, rebuild_flag})
    starts->excludes(print_config_flag)->excludes(print_key_flag);
  app.footer(
      "Examples:\n  gongdai-server --data-dir /var/lib/gongdai --listen 127.0.0.1:50051\n"
      "  gongdai-server --demo    # the demo book in ./gongdai-data");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help is a "parse error" of code 0; every other one is a usage error, exit 2.
    return app.exit(e) == 0 ? 0 : 2;
  }
  // The ledger holds national ID and phone numbers: what the server creates (its
  // database, tokens, key) is for its own user only.
  ::umask(0077);

  if (print_config) {
    std::cout << gongdai::server::DefaultConfigToml();
    return 0;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("gongdai"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");

  gongdai::server::ServerConfig config;
  if (!config_path.empty()) {
    absl::StatusOr<gongdai::server::ServerConfig> loaded = gongdai::server::LoadConfig(config_path);
    if (!loaded.ok()) {
      std::cerr << "gongdai-server: " << loaded.status().message() << "\n";
      return 2;
    }
    config = *std::move(loaded);
  }
  if (!listen.empty()) {
    if (absl::Status checked = gongdai::server::CheckListenAddress(listen); !checked.ok()) {
      std::cerr << "gongdai-server: --listen: " << checked.message() << "\n";
      return 2;
    }
    config.listen_address = listen;
  }
  if (!data_dir.empty()) config.data_dir = data_dir;
  if (demo && business_date.empty())
    business_date = std::string(gongdai::server::kDemoBusinessDate);
  if (!business_date.empty()) {
    if (!gongdai::ParseDate(business_date, "--business-date").ok()) {
      std::cerr << "gongdai-server: --business-date must be YYYY-MM-DD\n";
      return 2;
    }
    config.business_date_mode = gongdai::server::BusinessDateMode::kFixed;
    config.fixed_business_date = business_date;
  }

  if (print_key) {
    std::error_code created;
    std::filesystem::create_directories(config.data_dir, created);
    if (created) {
      std::cerr << "gongdai-server: cannot create " << config.data_dir << ": " << created.message()
                << "\n";
      return 1;
    }
    const std::string key_file =
        config.checkpoint_key_file.empty()
            ? (std::filesystem::path(config.data_dir) / "checkpoint-key.pem").string()
            : config.checkpoint_key_file;
    absl::StatusOr<gongdai::CheckpointSigner> signer =
        gongdai::CheckpointSigner::LoadOrCreate(key_file, config.checkpoint_origin);
    if (!signer.ok()) {
      std::cerr << "gongdai-server: " << signer.status().message() << "\n";
      return 1;
    }
    std::cout << signer->VerifierKey() << "\n";
    return 0;
  }

  // SIGINT and SIGTERM are taken by a waiting thread, not by whichever thread the kernel
  // picks: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // The demo book is loaded before the server listens, so nothing interleaves with it.
  std::function<absl::Status(gongdai::Ledger&)> load_demo;
  if (demo) {
    load_demo = [](gongdai::Ledger& ledger) -> absl::Status {
      if (ledger.Head().sequence != 0) {
        std::printf("the ledger already has %llu entries: demo book not loaded\n",
                    static_cast<unsigned long long>(ledger.Head().sequence));
        return absl::OkStatus();
      }
      std::printf("loading the demo book (Ji'an 2020) ...\n");
      std::fflush(stdout);
      absl::StatusOr<gongdai::server::DemoSummary> loaded = gongdai::server::LoadDemoBook(ledger);
      if (!loaded.ok()) return loaded.status();
      std::printf(
          "demo book loaded: %d borrowers, %d loans disbursed in 2020 (%s yuan, %d jobs expected), "
          "%d applications rejected, %d withdrawn, %llu entries\n",
          loaded->borrowers, loaded->loans_disbursed,
          gongdai::Money::FromFen(loaded->disbursed_fen).ToString().c_str(), loaded->jobs_expected,
          loaded->applications_rejected, loaded->applications_withdrawn,
          static_cast<unsigned long long>(loaded->entries));
      return absl::OkStatus();
    };
  }
  // After a DATA_LOSS on a projection (a value that does not parse, a key missing or left
  // over), the derived state is put right from the journal, which is the truth: one
  // replay, compared with what is stored and written only if they differ. The difference
  // is shown as DescribeProjectionMismatch shows it: never a value (a borrower's
  // projection holds personal data), an ID number masked, a request id left out.
  std::function<absl::Status(gongdai::Ledger&)> rebuild_projections;
  if (rebuild) {
    rebuild_projections = [](gongdai::Ledger& ledger) -> absl::Status {
      std::printf("comparing the derived state with a replay of the journal (%llu entries) ...\n",
                  static_cast<unsigned long long>(ledger.Head().sequence));
      std::fflush(stdout);
      absl::StatusOr<std::optional<gongdai::ProjectionMismatch>> rebuilt =
          ledger.RebuildProjectionsIfDiffering();
      if (!rebuilt.ok()) return rebuilt.status();
      if (!rebuilt->has_value()) {
        std::printf("the derived state matches the journal: nothing rebuilt\n");
        return absl::OkStatus();
      }
      const std::string difference = gongdai::DescribeProjectionMismatch(**rebuilt);
      spdlog::warn("derived state rebuilt from the journal (first difference: {})", difference);
      std::printf("first difference: %s\nthe derived state is rebuilt from the journal\n",
                  difference.c_str());
      return absl::OkStatus();
    };
  }
  std::function<absl::Status(gongdai::Ledger&)> prepare;
  if (load_demo || rebuild_projections) {
    prepare = [load_demo, rebuild_projections](gongdai::Ledger& ledger) -> absl::Status {
      if (rebuild_projections) {
        absl::Status rebuilt = rebuild_projections(ledger);
        if (!rebuilt.ok()) return rebuilt;
      }
      return load_demo ? load_demo(ledger) : absl::OkStatus();
    };
  }
  absl::StatusOr<std::unique_ptr<gongdai::server::GongdaiServer>> server =
      gongdai::server::GongdaiServer::Start(config, prepare);
  if (!server.ok()) {
    std::cerr << "gongdai-server: " << server.status().message() << "\n";
    return 1;
  }
  const gongdai::JournalHead head = (*server)->ledger().Head();
  std::printf("gongdai-server listening on %s (%s)\n", (*server)->listening_address().c_str(),
              (*server)->tls() ? "TLS" : "plaintext");
  if (!(*server)->development_tokens_path().empty()) {
    std::printf("development tokens (one per role) %s: %s\n",
                (*server)->development_tokens_created() ? "created in" : "in",
                (*server)->development_tokens_path().c_str());
  }
  std::printf("ledger: %s, %llu entries, business date %s\n",
              std::filesystem::absolute(config.data_dir).c_str(),
              static_cast<unsigned long long>(head.sequence),
              (*server)->ledger().Today().ToString().c_str());
  std::fflush(stdout);

  int received = 0;
  sigwait(&signals, &received);
  spdlog::info("signal {}: shutting down gracefully", received);
  (*server)->Shutdown();
  return 0;
}
