// gongdai-replay-bench: how fast an auditor's replay verifies a journal, next to the bare
// SHA-256 chain over the same bytes (the physical limit: reading each stored entry and
// hashing it, with nothing else).
//
// It builds a journal of --entries entries with the engine (transfers among 100,000
// accounts), closes it, opens the database read-only as gongdai-audit does, and in one
// run measures:
//   chain:  for each stored entry, SHA-256(0x00 || canonical bytes), compared with the
//           stored hash, on one thread; run before and after the others, the faster kept;
//   verify: gongdai's Replayer: the stored-bytes checks, sequence, chain, balance, apply
//           through the engine's own apply (projections, Merkle tree) for every entry,
//           with reading and opening the entries on a second thread, keeping what apply
//           reads (gongdai-audit verify --db --journal-only; an export or a server is
//           replayed the same way); run before and after the others, the faster kept, as
//           the chain;
//   verify keeping everything: the same keeping everything apply writes (as gongdai-audit
//           verify --db does before it compares);
//   verify keeping everything + compare: that, then the byte-for-byte
//           comparison of every stored projection, index and request id with the replay
//           (gongdai-audit verify --db).
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <future>
#include <random>
#include <thread>

#include "engine/journal_format.h"
#include "engine/ledger.h"
#include "engine/replay.h"
#include "engine/sha256.h"
#include "engine/strings.h"

namespace gongdai::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// CPU seconds used so far, by this thread (CLOCK_THREAD_CPUTIME_ID) or by the whole
// process (CLOCK_PROCESS_CPUTIME_ID).
double CpuSeconds(clockid_t clock) {
  timespec now{};
  if (::clock_gettime(clock, &now) != 0) return 0;
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

// The process's peak resident memory so far, in MiB.
uint64_t PeakResidentMib() {
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<uint64_t>(usage.ru_maxrss) / 1024;  // ru_maxrss is in KiB on Linux
}

bool Build(const std::string& path, uint64_t entries) {
  LedgerOptions options;
  options.batch_commands_max = 2048;
  options.queue_commands_max = 1 << 16;
  absl::StatusOr<std::unique_ptr<Ledger>> ledger = Ledger::Open(path, options);
  if (!ledger.ok()) return false;
  std::atomic<uint64_t> failures{0};
  const int kThreads = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 random(static_cast<uint64_t>(t));
      const uint64_t share = entries / kThreads + (t == 0 ? entries % kThreads : 0);
      constexpr uint64_t kWindow = 1024;
      std::vector<std::future<CommandResult>> pending;
      for (uint64_t i = 0; i < share; ++i) {
        Command command;
        command.request_id = "r" + std::to_string(t) + "-" + std::to_string(i);
        command.actor.set_principal_id("bench.cashier");
        command.actor.set_role("cashier");
        auto* transfer = command.event.mutable_internal_transfer();
        transfer->set_from_account("external:bank:psbc");
        transfer->set_to_account("member:m" + std::to_string(random() % 100'000) + ":cash");
        transfer->set_amount_fen(static_cast<int64_t>(1 + random() % 1'000'000));
        auto promise = std::make_shared<std::promise<CommandResult>>();
        pending.push_back(promise->get_future());
        (*ledger)->Submit(std::move(command),
                          [promise](CommandResult r) { promise->set_value(std::move(r)); });
        if (pending.size() == kWindow) {
          for (auto& f : pending) failures += f.get().status.ok() ? 0 : 1;
          pending.clear();
        }
      }
      for (auto& f : pending) failures += f.get().status.ok() ? 0 : 1;
    });
  }
  for (std::thread& t : threads) t.join();
  return failures.load() == 0 && (*ledger)->Head().sequence == entries;
}

int Main(int argc, char** argv) {
  CLI::App app{"gongdai-replay-bench: audit replay speed against the bare SHA-256 chain"};
  uint64_t entries = 1'000'000;
  std::string dir = std::filesystem::temp_directory_path().string();
  bool smoke = false;
  bool keep = false;
  std::string db;
  app.add_option("--entries", entries, "journal length (default 1,000,000)");
  app.add_option("--db", db,
                 "measure an existing database (a stopped server's data, or the book that "
                 "gongdai-scale-bench --keep leaves) instead of building one; it is only read");
  app.add_option("--dir", dir, "where to build the scratch database (removed at the end)");
  app.add_flag("--keep", keep, "leave the built database in place (its path is printed)");
  app.add_flag("--smoke", smoke, "10,000 entries, to check the benchmark runs");
  CLI11_PARSE(app, argc, argv);
  if (smoke) entries = 10'000;
  const bool scratch = db.empty();
  const std::string path =
      scratch ? dir + "/gongdai-replay-bench-" + std::to_string(::getpid()) : db;

  Clock::time_point start = Clock::now();
  if (scratch) {
    if (!Build(path, entries)) {
      std::fprintf(stderr, "building the journal failed\n");
      std::filesystem::remove_all(path);
      return 1;
    }
    std::printf("built %llu entries in %.1f s\n", static_cast<unsigned long long>(entries),
                Seconds(start));
  }

  absl::StatusOr<std::unique_ptr<DatabaseCopy>> copy = DatabaseCopy::Open(path);
  if (!copy.ok()) return 1;

  // The physical limit: read and hash every entry and compare with its stored hash. (It
  // leaves out the link to the previous entry, which needs the entry parsed, so that it
  // stays an upper bound.) Measured before and after the replay, the faster counting,
  // so that a page cache the first pass found cold does not lower the limit.
  uint64_t bytes = 0;
  uint64_t replay_entries = 0;
  std::string last(32, '\0');
  Sha256& sha = ThreadSha256();
  auto chain = [&]() -> double {
    start = Clock::now();
    bytes = 0;
    replay_entries = 0;
    absl::Status chained =
        (*copy)->ForEachEntry([&](std::string_view stored, uint64_t key) -> absl::Status {
          std::string_view body = stored.substr(0, stored.size() - kHashFieldBytes);
          std::string hash = sha.Digest({std::string_view("\x00", 1), body});
          if (hash != stored.substr(stored.size() - 32))
            return absl::DataLossError(Cat("entry ", key));
          bytes += stored.size();
          ++replay_entries;
          last = std::move(hash);
          return absl::OkStatus();
        });
    return chained.ok() ? Seconds(start) : -1;
  };
  const double chain_before_s = chain();
  if (chain_before_s < 0) return 1;
  if (!scratch) entries = replay_entries;

  // A verify: every entry read and opened on a second thread and added to `replay`.
  struct Verify {
    double seconds = -1;
    double reading_cpu_s = 0;
    double replay_cpu_s = 0;
  };
  auto verify = [&](Replayer& replay) -> Verify {
    Verify v;
    start = Clock::now();
    const double thread_cpu_before = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
    const double process_cpu_before = CpuSeconds(CLOCK_PROCESS_CPUTIME_ID);
    absl::Status verified = (*copy)->ForEachOpenedEntry(
        [&](const OpenedEntry& opened) { return replay.AddOpened(opened); });
    const double seconds = Seconds(start);
    // The replay runs on this thread; the reading thread has ended, so the rest is its (and
    // whatever RocksDB's background threads did meanwhile, next to nothing on a database
    // opened read-only).
    v.replay_cpu_s = CpuSeconds(CLOCK_THREAD_CPUTIME_ID) - thread_cpu_before;
    v.reading_cpu_s = CpuSeconds(CLOCK_PROCESS_CPUTIME_ID) - process_cpu_before - v.replay_cpu_s;
    if (!verified.ok() || replay.last_hash() != last) {
      std::fprintf(stderr, "verify failed: %s\n", std::string(verified.message()).c_str());
      return v;
    }
    v.seconds = seconds;
    return v;
  };
  // As gongdai-audit verifies an export or a server: the state keeps what apply reads.
  // Run before and after the rest, the faster counting, as the chain's passes.
  auto verify_light = [&]() -> Verify {
    Replayer replay(ReplayKeeps::kWhatApplyReads);
    return verify(replay);
  };
  const Verify light_before = verify_light();
  if (light_before.seconds < 0) return 1;
  const uint64_t light_peak_mib = PeakResidentMib();
  // As gongdai-audit verifies a database copy: everything kept, then compared.
  Verify full;
  double compare_s = 0;
  uint64_t full_peak_mib = 0;
  uint64_t compare_peak_mib = 0;
  {
    Replayer replay(ReplayKeeps::kEverything);
    full = verify(replay);
    if (full.seconds < 0) return 1;
    full_peak_mib = PeakResidentMib();
    start = Clock::now();
    absl::StatusOr<std::optional<ProjectionMismatch>> mismatch = (*copy)->CompareWith(replay);
    compare_s = Seconds(start);
    if (!mismatch.ok() || mismatch->has_value()) return 1;
    compare_peak_mib = PeakResidentMib();
  }
  const Verify light_after = verify_light();
  if (light_after.seconds < 0) return 1;
  const Verify& light = light_after.seconds < light_before.seconds ? light_after : light_before;
  const double chain_after_s = chain();
  if (chain_after_s < 0) return 1;
  const double chain_s = std::min(chain_before_s, chain_after_s);

  const double n = static_cast<double>(entries);
  std::printf("%-40s %14s %12s %10s\n", "", "entries/s", "MB/s", "of limit");
  std::printf("%-40s %14.0f %12.1f %9.0f%%\n", "bare SHA-256 chain (limit)", n / chain_s,
              bytes / chain_s / 1e6, 100.0);
  const double verify_s = light.seconds;
  const double compare_total_s = full.seconds + compare_s;
  std::printf("%-40s %14.0f %12.1f %9.0f%%\n", "verify: checks + replay through apply",
              n / verify_s, bytes / verify_s / 1e6, 100.0 * chain_s / verify_s);
  std::printf("%-40s %14.0f %12.1f %9.0f%%\n", "verify keeping everything apply writes",
              n / full.seconds, bytes / full.seconds / 1e6, 100.0 * chain_s / full.seconds);
  std::printf("%-40s %14.0f %12.1f %9.0f%%\n", "verify keeping everything + compare",
              n / compare_total_s, bytes / compare_total_s / 1e6,
              100.0 * chain_s / compare_total_s);
  std::printf(
      "average entry %.0f bytes; chain %.2f s (passes of %.2f and %.2f s); verify %.2f s on two "
      "threads (passes of %.2f and %.2f s; CPU: reading %.2f s, replaying %.2f s), keeping "
      "what apply reads (peak RSS %llu MiB); keeping everything %.2f s (CPU: reading %.2f s, "
      "replaying %.2f s; peak RSS "
      "%llu MiB) and compare %.2f s (peak RSS %llu MiB)\n",
      bytes / n, chain_s, chain_before_s, chain_after_s, verify_s, light_before.seconds,
      light_after.seconds, light.reading_cpu_s, light.replay_cpu_s,
      static_cast<unsigned long long>(light_peak_mib), full.seconds, full.reading_cpu_s,
      full.replay_cpu_s, static_cast<unsigned long long>(full_peak_mib), compare_s,
      static_cast<unsigned long long>(compare_peak_mib));
  copy->reset();
  if (scratch && keep) std::printf("kept the database at %s\n", path.c_str());
  if (scratch && !keep) std::filesystem::remove_all(path);
  return 0;
}

}  // namespace
}  // namespace gongdai::bench

int main(int argc, char** argv) { return gongdai::bench::Main(argc, argv); }
