// Helpers shared by the engine's tests.
#ifndef GONGDAI_TESTS_TEST_UTIL_H_
#define GONGDAI_TESTS_TEST_UTIL_H_

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "engine/ledger.h"

namespace gongdai::testing {

// A fresh directory under the system temp dir, removed with its contents at scope end.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "gongdai-test-XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    if (made == nullptr) std::abort();
    path_ = made;
  }
  ~TempDir() {
    std::error_code ignored;  // a leftover temp dir is harmless; never fail a test on it
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Options with a fixed clock and business date, so entries are reproducible.
inline LedgerOptions FixedDayOptions(const char* today = "2020-06-30") {
  LedgerOptions options;
  options.clock_us = [] { return int64_t{1593500000} * 1'000'000; };
  const Date date = *ParseDate(today, "today");
  options.business_date_today = [date] { return date; };
  options.block_cache_bytes = size_t{8} << 20;
  options.write_buffer_bytes = size_t{4} << 20;
  return options;
}

inline Command Transfer(std::string request_id, std::string from, std::string to,
                        int64_t amount_fen, std::string date = "") {
  Command command;
  command.request_id = std::move(request_id);
  command.actor.set_principal_id("officer.liu");
  command.actor.set_role("officer");
  command.business_date = std::move(date);
  v1::InternalTransfer* transfer = command.event.mutable_internal_transfer();
  transfer->set_from_account(std::move(from));
  transfer->set_to_account(std::move(to));
  transfer->set_amount_fen(amount_fen);
  return command;
}

// Writes going on while a test reads: `count` commands (`make(i)` for i from 0), submitted
// from a thread of its own with at most `outstanding` unanswered at a time.
class SteadyWriter {
 public:
  SteadyWriter(Ledger& ledger, int count, int outstanding, std::function<Command(int)> make)
      : state_(std::make_shared<State>()) {
    thread_ = std::thread([&ledger, count, outstanding, make = std::move(make), state = state_] {
      for (int i = 0; i < count; ++i) {
        {
          std::unique_lock<std::mutex> lock(state->mutex);
          state->changed.wait(lock,
                              [&] { return state->submitted - state->answered < outstanding; });
          ++state->submitted;
        }
        // The answer holds the counts, so it may come after the test body has left.
        ledger.Submit(make(i), [state](CommandResult result) {
          {
            std::lock_guard<std::mutex> lock(state->mutex);
            if (!result.status.ok()) ++state->refused;
            ++state->answered;
          }
          state->changed.notify_all();
        });
      }
      std::lock_guard<std::mutex> lock(state->mutex);
      state->all_submitted = true;
    });
  }
  ~SteadyWriter() { Finish(); }
  SteadyWriter(const SteadyWriter&) = delete;
  SteadyWriter& operator=(const SteadyWriter&) = delete;

  // Whether every command has been submitted and answered.
  bool done() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->all_submitted && state_->answered == state_->submitted;
  }
  // Waits until every command is answered; returns how many were refused.
  int Finish() {
    if (thread_.joinable()) thread_.join();
    std::unique_lock<std::mutex> lock(state_->mutex);
    state_->changed.wait(lock, [&] { return state_->answered == state_->submitted; });
    return state_->refused;
  }

 private:
  struct State {
    mutable std::mutex mutex;
    std::condition_variable changed;
    int submitted = 0;
    int answered = 0;
    int refused = 0;
    bool all_submitted = false;
  };
  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace gongdai::testing

#endif  // GONGDAI_TESTS_TEST_UTIL_H_
