// Helpers shared by the engine's tests.
#ifndef GONGDAI_TESTS_TEST_UTIL_H_
#define GONGDAI_TESTS_TEST_UTIL_H_

#include <cstdlib>
#include <filesystem>
#include <string>

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

}  // namespace gongdai::testing

#endif  // GONGDAI_TESTS_TEST_UTIL_H_
