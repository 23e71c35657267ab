// The demo book: a realistic, deterministic programme modelled on Ji'an's 2020 book
// (330 loans disbursed in 2020, 62,470,000.00 yuan in all, 2,556 jobs expected, across
// Ji'an's 13 counties and districts), written through the engine's own commands, the
// same path the service uses, by distinct officers, approvers, cashiers and a supervisor.
#ifndef GONGDAI_SERVER_DEMO_H_
#define GONGDAI_SERVER_DEMO_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "engine/ledger.h"

namespace gongdai::server {

// The demo's business date: repayments, accruals and follow-ups run through this day.
inline constexpr std::string_view kDemoBusinessDate = "2021-03-31";
inline constexpr int kDemoLoans = 330;
inline constexpr int64_t kDemoDisbursedFen = 6'247'000'000;  // 62,470,000.00 yuan
inline constexpr int kDemoJobs = 2556;

struct DemoSummary {
  int borrowers = 0;
  int loans_disbursed = 0;
  int applications_rejected = 0;
  int applications_withdrawn = 0;
  int64_t disbursed_fen = 0;
  int jobs_expected = 0;
  uint64_t entries = 0;
};

// Fills an empty ledger (FAILED_PRECONDITION LEDGER_NOT_EMPTY otherwise) whose business
// date is on or after kDemoBusinessDate. The same seed gives the same book, entry for
// entry (but for recorded_at times).
[[nodiscard]] absl::StatusOr<DemoSummary> LoadDemoBook(Ledger& ledger, uint64_t seed = 2020);

}  // namespace gongdai::server

#endif  // GONGDAI_SERVER_DEMO_H_
