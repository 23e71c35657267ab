// Test helper for crash_test: writes entries as fast as it can and prints each
// acknowledged entry as "<sequence> <request id>" on standard output, flushed, until it
// is killed. Usage: crash_writer <database dir> <round>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/ledger.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: crash_writer <dir> <round>\n");
    return 2;
  }
  gongdai::LedgerOptions options;
  options.block_cache_bytes = size_t{8} << 20;
  options.write_buffer_bytes = size_t{1} << 20;  // small, so flushes and compactions happen too
  auto ledger = gongdai::Ledger::Open(argv[1], options);
  if (!ledger.ok()) {
    std::fprintf(stderr, "open: %s\n", std::string(ledger.status().message()).c_str());
    return 1;
  }
  std::mutex out;
  std::vector<std::thread> threads;
  const std::string round = argv[2];
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (long i = 0;; ++i) {
        gongdai::Command command;
        command.request_id = "crash-" + round + "-" + std::to_string(t) + "-" + std::to_string(i);
        command.actor.set_principal_id("crash.writer");
        command.actor.set_role("officer");
        auto* transfer = command.event.mutable_internal_transfer();
        transfer->set_from_account("external:bank:psbc");
        transfer->set_to_account("member:m" + std::to_string(i % 97) + ":cash");
        transfer->set_amount_fen(1 + i % 1000);
        gongdai::CommandResult result = (*ledger)->SubmitAndWait(std::move(command));
        if (!result.status.ok()) {
          std::fprintf(stderr, "write: %s\n", std::string(result.status.message()).c_str());
          std::_Exit(1);
        }
        std::lock_guard<std::mutex> lock(out);
        std::printf("%llu %s\n", static_cast<unsigned long long>(result.entry.sequence()),
                    result.entry.request_id().c_str());
        std::fflush(stdout);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  return 0;
}
