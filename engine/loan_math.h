// The loan arithmetic, as pure functions over a loan's position:
// schedules, the subsidy's daily accrual, and delinquency as of a date. Private to engine/.
#ifndef GONGDAI_ENGINE_LOAN_MATH_H_
#define GONGDAI_ENGINE_LOAN_MATH_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/date.h"
#include "engine/ledger.h"
#include "engine/money.h"
#include "gongdai/v1/journal.pb.h"
#include "gongdai/v1/state.pb.h"

namespace gongdai {

// Due date k is the disbursement date plus k calendar months, clamped to month end.
// Bullet: one installment at maturity. Equal principal monthly: `term_months`
// installments of the floor, the remainder in the last; they sum to `amount_fen`.
[[nodiscard]] absl::StatusOr<std::vector<v1::Installment>> BuildSchedule(
    Date disbursed, int64_t amount_fen, int term_months, v1::RepaymentMethod method);

// Counts principal-days from position.accrued_through_date up to `to` (exclusive) at the
// current outstanding principal, into one pending bucket per calendar month. `to` must
// not be before accrued_through_date.
void AdvanceAccrual(v1::LoanPosition& position, Date to);

// Prices and removes the pending months that are complete by `through` (their month
// ended on or before it). With `final` (payoff, write-off), every pending month, the
// last one ending at `through`. Each period is rounded once, half to even.
[[nodiscard]] absl::StatusOr<std::vector<v1::AccrualPeriod>> TakeAccrualPeriods(
    v1::LoanPosition& position, Date through, bool final, Rate rate, DayCount basis);

// What is paid of each installment as of `as_of` (repayments dated on or before it).
std::vector<int64_t> PaidAsOf(const v1::LoanPosition& position, Date as_of);

// The loan's delinquency as of `as_of`. A loan not yet disbursed then, or written off
// or closed by then, has nothing outstanding.
Delinquency DelinquencyAsOf(const v1::LoanPosition& position, int grace_days, Date as_of);

std::string AgingBucket(int days_past_due);

// The summary of a disbursed loan (nullopt for one not disbursed), and its delinquency
// as of a day: the same figures as DelinquencyAsOf, from the small record.
std::optional<v1::LoanSummary> SummaryOf(const v1::LoanState& loan);
Delinquency SummaryDelinquencyAsOf(const v1::LoanSummary& summary, Date as_of);

// What a loan adds to the report's stocks as of a day: nothing unless it has principal
// outstanding then; PAR30/PAR90 hold its whole outstanding once it is more than 30/90 days
// past due.
struct Stocks {
  int64_t loans_outstanding = 0;
  int64_t outstanding_fen = 0;
  int64_t overdue_principal_fen = 0;
  int64_t par30_fen = 0;
  int64_t par90_fen = 0;
  friend bool operator==(const Stocks&, const Stocks&) = default;
  Stocks& operator+=(const Stocks& other);
  Stocks& operator-=(const Stocks& other);
  friend Stocks operator-(Stocks a, const Stocks& b) { return a -= b; }
};
Stocks StocksOf(const Delinquency& delinquency);
// The stored form of a day's change (StockChange, under "k/") and back.
Stocks StocksOf(const v1::StockChange& change);
v1::StockChange StockChangeOf(const Stocks& stocks);

// A loan's stocks as a step function of the day: (day, change) in ascending day order,
// no change zero. For every day t, the sum of the changes on days <= t equals
// StocksOf(SummaryDelinquencyAsOf(summary, t)).
std::vector<std::pair<int32_t, Stocks>> StockSteps(const v1::LoanSummary& summary);

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_LOAN_MATH_H_
