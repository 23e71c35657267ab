// A loan book for the benchmarks: the commands that build one with the engine (products,
// the union fund, borrowers in the 13 counties of Ji'an, applications, approvals,
// disbursements, monthly repayments) and a submitter that keeps a window of commands in
// flight. Used by gongdai-report-bench and gongdai-scale-bench.
#ifndef GONGDAI_BENCH_BOOK_H_
#define GONGDAI_BENCH_BOOK_H_

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>

#include "engine/date.h"
#include "engine/ledger.h"

namespace gongdai::bench {

inline constexpr size_t kCountyCount = 13;
extern const char* const kCounties[kCountyCount];

v1::Actor BookActor(const char* id, const char* role);
Command MakeCommand(std::string request_id, const v1::Actor& actor, Date date, v1::Event event);

// The union-fund product "fund" or the partner-bank product "bank" (PSBC, 4.35%, ACT/360):
// equal principal monthly over 12 to `term_months_max` months, grace 5 days.
v1::ProductTerms BookTerms(bool bank, int term_months_max);

// Borrower number `i`: a valid national ID number unique per i (below 900 x 20,000), a
// county and a category that cycle with i.
v1::Event BorrowerRegistration(size_t i);

// The amount of loan number `i`: 10,000 to 205,000 yuan, in fen.
int64_t LoanAmountFen(size_t i);

// Submits commands with at most `window` of them unanswered; Wait() returns once every
// submitted command is answered, false if any was refused (the first refusal is printed).
class Pipeline {
 public:
  // A steady `window` in flight: each answer lets one more command in.
  Pipeline(Ledger& ledger, size_t window) : Pipeline(ledger, window, window - 1) {}
  // A full window waits until no more than `refill_at` are unanswered. A bulk load passes
  // half the window, so that its answers do not wake the submitting thread once each.
  Pipeline(Ledger& ledger, size_t window, size_t refill_at)
      : ledger_(ledger), window_(window), refill_at_(refill_at) {}
  ~Pipeline() { Wait(); }

  void Submit(Command command, std::function<void(const CommandResult&)> after = nullptr);
  bool Wait();

 private:
  Ledger& ledger_;
  const size_t window_;
  const size_t refill_at_;
  std::mutex mutex_;
  std::condition_variable changed_;
  size_t in_flight_ = 0;
  bool failed_ = false;
};

}  // namespace gongdai::bench

#endif  // GONGDAI_BENCH_BOOK_H_
