#include "engine/loan_math.h"

#include <algorithm>
#include <array>
#include <bit>

#include "engine/check.h"
#include "engine/strings.h"

namespace gongdai {
namespace {

Date MonthStart(Date d) { return Date::FromCivil(d.year(), d.month(), 1); }
Date NextMonthStart(Date d) { return MonthStart(d).PlusMonthsClamped(1); }
Date MustParse(const std::string& text) {
  absl::StatusOr<Date> date = ParseDate(text, "date");
  GONGDAI_CHECK(date.ok());
  return *date;
}

}  // namespace

absl::StatusOr<std::vector<v1::Installment>> BuildSchedule(Date disbursed, int64_t amount_fen,
                                                           int term_months,
                                                           v1::RepaymentMethod method) {
  std::vector<v1::Installment> schedule;
  if (method == v1::REPAYMENT_METHOD_BULLET) {
    v1::Installment only;
    only.set_number(1);
    only.set_due_date(disbursed.PlusMonthsClamped(term_months).ToString());
    only.set_principal_fen(amount_fen);
    schedule.push_back(only);
    return schedule;
  }
  if (method != v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY) {
    return absl::InvalidArgumentError("unknown repayment method");
  }
  absl::StatusOr<std::vector<Money>> parts =
      SplitFloorRemainderLast(Money::FromFen(amount_fen), term_months);
  if (!parts.ok()) return parts.status();
  for (int k = 1; k <= term_months; ++k) {
    v1::Installment installment;
    installment.set_number(k);
    installment.set_due_date(disbursed.PlusMonthsClamped(k).ToString());
    installment.set_principal_fen(static_cast<int64_t>((*parts)[static_cast<size_t>(k - 1)].fen()));
    schedule.push_back(installment);
  }
  return schedule;
}

void AdvanceAccrual(v1::LoanPosition& position, Date to) {
  Date from = MustParse(position.accrued_through_date());
  GONGDAI_CHECK(from <= to);
  const int64_t principal = position.principal_outstanding_fen();
  while (from < to) {
    const Date segment_end = std::min(NextMonthStart(from), to);
    const int64_t days = segment_end.days_since_epoch() - from.days_since_epoch();
    v1::PendingAccrual* bucket = nullptr;
    if (position.pending_size() > 0) {
      v1::PendingAccrual* last = position.mutable_pending(position.pending_size() - 1);
      if (MonthStart(MustParse(last->start_date())) == MonthStart(from)) bucket = last;
    }
    if (bucket == nullptr) {
      bucket = position.add_pending();
      bucket->set_start_date(from.ToString());
    }
    bucket->set_principal_fen_days(bucket->principal_fen_days() + principal * days);
    from = segment_end;
  }
  position.set_accrued_through_date(to.ToString());
}

absl::StatusOr<std::vector<v1::AccrualPeriod>> TakeAccrualPeriods(v1::LoanPosition& position,
                                                                  Date through, bool final,
                                                                  Rate rate, DayCount basis) {
  AdvanceAccrual(position, through);
  std::vector<v1::AccrualPeriod> periods;
  int taken = 0;
  for (const v1::PendingAccrual& bucket : position.pending()) {
    const Date start = MustParse(bucket.start_date());
    Date end = NextMonthStart(start);
    if (end > through) {
      if (!final) break;
      end = through;
    }
    absl::StatusOr<Money> amount =
        AccrualForPrincipalDays(Fen(bucket.principal_fen_days()), rate, basis);
    if (!amount.ok()) return amount.status();
    v1::AccrualPeriod period;
    period.set_start_date(bucket.start_date());
    period.set_end_date(end.ToString());
    period.set_principal_fen_days(bucket.principal_fen_days());
    period.set_amount_fen(static_cast<int64_t>(amount->fen()));
    periods.push_back(period);
    ++taken;
  }
  position.mutable_pending()->DeleteSubrange(0, taken);
  return periods;
}

std::vector<int64_t> PaidAsOf(const v1::LoanPosition& position, Date as_of) {
  std::vector<int64_t> paid(static_cast<size_t>(position.schedule_size()), 0);
  GONGDAI_CHECK(position.allocation_installment_size() == position.allocation_day_size() &&
                position.allocation_fen_size() == position.allocation_day_size());
  for (int i = 0; i < position.allocation_day_size(); ++i) {
    if (position.allocation_day(i) > as_of.days_since_epoch()) continue;
    const int index = position.allocation_installment(i) - 1;
    GONGDAI_CHECK(index >= 0 && index < position.schedule_size());
    paid[static_cast<size_t>(index)] += position.allocation_fen(i);
  }
  return paid;
}

std::string AgingBucket(int days_past_due) {
  if (days_past_due <= 0) return "current";
  if (days_past_due <= 30) return "1-30";
  if (days_past_due <= 60) return "31-60";
  if (days_past_due <= 90) return "61-90";
  if (days_past_due <= 180) return "91-180";
  return "180+";
}

Delinquency DelinquencyAsOf(const v1::LoanPosition& position, int grace_days, Date as_of) {
  Delinquency result;
  if (position.disbursed_date().empty() || MustParse(position.disbursed_date()) > as_of) {
    return result;
  }
  const bool ended = position.status() == v1::LOAN_STATUS_WRITTEN_OFF ||
                     position.status() == v1::LOAN_STATUS_CLOSED;
  if (ended && !position.closed_date().empty() && MustParse(position.closed_date()) <= as_of) {
    return result;
  }
  const std::vector<int64_t> paid = PaidAsOf(position, as_of);
  int oldest_unpaid = -1;
  for (int i = 0; i < position.schedule_size(); ++i) {
    const v1::Installment& installment = position.schedule(i);
    const int64_t unpaid = installment.principal_fen() - paid[static_cast<size_t>(i)];
    result.outstanding_fen += unpaid;
    if (unpaid <= 0) continue;
    if (oldest_unpaid < 0) oldest_unpaid = i;
    if (as_of > MustParse(installment.due_date()).PlusDays(grace_days)) {
      ++result.overdue_installments;
      result.overdue_principal_fen += unpaid;
    }
  }
  if (result.overdue_installments > 0) {
    const Date due = MustParse(position.schedule(oldest_unpaid).due_date());
    result.days_past_due = as_of.days_since_epoch() - due.days_since_epoch();
  }
  result.bucket = AgingBucket(result.days_past_due);
  return result;
}

std::optional<v1::LoanSummary> SummaryOf(const v1::LoanState& loan) {
  const v1::LoanPosition& position = loan.position();
  if (position.disbursed_date().empty()) return std::nullopt;
  v1::LoanSummary summary;
  summary.set_loan_id(loan.loan_id());
  summary.set_borrower_id(loan.borrower_id());
  summary.set_county(loan.county());
  summary.set_category(loan.category());
  summary.set_product_id(loan.product_id());
  summary.set_funding(loan.funding());
  summary.set_grace_days(loan.grace_days());
  summary.set_disbursed_day(MustParse(position.disbursed_date()).days_since_epoch());
  const bool ended = position.status() == v1::LOAN_STATUS_WRITTEN_OFF ||
                     position.status() == v1::LOAN_STATUS_CLOSED;
  if (ended && !position.closed_date().empty()) {
    summary.set_ended_day(MustParse(position.closed_date()).days_since_epoch());
  }
  for (const v1::Installment& installment : position.schedule()) {
    summary.add_due_day(MustParse(installment.due_date()).days_since_epoch());
    summary.add_principal_fen(installment.principal_fen());
  }
  *summary.mutable_paid_day() = position.allocation_day();
  *summary.mutable_paid_installment() = position.allocation_installment();
  *summary.mutable_paid_fen() = position.allocation_fen();
  return summary;
}

Delinquency SummaryDelinquencyAsOf(const v1::LoanSummary& s, Date as_of) {
  Delinquency result;
  const int32_t today = as_of.days_since_epoch();
  if (s.disbursed_day() > today) return result;
  if (s.ended_day() != 0 && s.ended_day() <= today) return result;
  std::vector<int64_t> unpaid(s.principal_fen().begin(), s.principal_fen().end());
  for (int i = 0; i < s.paid_day_size(); ++i) {
    if (s.paid_day(i) > today) continue;
    const int index = s.paid_installment(i) - 1;
    GONGDAI_CHECK(index >= 0 && index < static_cast<int>(unpaid.size()));
    unpaid[static_cast<size_t>(index)] -= s.paid_fen(i);
  }
  int oldest_unpaid = -1;
  for (size_t i = 0; i < unpaid.size(); ++i) {
    if (unpaid[i] <= 0) continue;
    result.outstanding_fen += unpaid[i];
    if (oldest_unpaid < 0) oldest_unpaid = static_cast<int>(i);
    if (today > s.due_day(static_cast<int>(i)) + s.grace_days()) {
      ++result.overdue_installments;
      result.overdue_principal_fen += unpaid[i];
    }
  }
  if (result.overdue_installments > 0) result.days_past_due = today - s.due_day(oldest_unpaid);
  result.bucket = AgingBucket(result.days_past_due);
  return result;
}

Stocks& Stocks::operator+=(const Stocks& o) {
  loans_outstanding += o.loans_outstanding;
  outstanding_fen += o.outstanding_fen;
  overdue_principal_fen += o.overdue_principal_fen;
  par30_fen += o.par30_fen;
  par90_fen += o.par90_fen;
  return *this;
}

Stocks& Stocks::operator-=(const Stocks& o) {
  loans_outstanding -= o.loans_outstanding;
  outstanding_fen -= o.outstanding_fen;
  overdue_principal_fen -= o.overdue_principal_fen;
  par30_fen -= o.par30_fen;
  par90_fen -= o.par90_fen;
  return *this;
}

Stocks StocksOf(const v1::StockChange& c) {
  return Stocks{c.loans_outstanding(), c.outstanding_fen(), c.overdue_principal_fen(),
                c.par30_fen(), c.par90_fen()};
}

v1::StockChange StockChangeOf(const Stocks& stocks) {
  v1::StockChange c;
  c.set_loans_outstanding(stocks.loans_outstanding);
  c.set_outstanding_fen(stocks.outstanding_fen);
  c.set_overdue_principal_fen(stocks.overdue_principal_fen);
  c.set_par30_fen(stocks.par30_fen);
  c.set_par90_fen(stocks.par90_fen);
  return c;
}

Stocks StocksOf(const Delinquency& d) {
  Stocks stocks;
  if (d.outstanding_fen <= 0) return stocks;
  stocks.loans_outstanding = 1;
  stocks.outstanding_fen = d.outstanding_fen;
  stocks.overdue_principal_fen = d.overdue_principal_fen;
  if (d.days_past_due > 30) stocks.par30_fen = d.outstanding_fen;
  if (d.days_past_due > 90) stocks.par90_fen = d.outstanding_fen;
  return stocks;
}

namespace {

// Sorts `days` and removes repeats. A loan's days span a few years: over a span of up to
// kBitmapDays they are ordered by marking them in a bitmap and reading it back (a few
// dozen words for a 36-month loan), in place of the sort that every repayment's report
// update made twice; a wider span is sorted.
void SortDistinct(std::vector<int32_t>& days) {
  constexpr int64_t kBitmapDays = 8192;
  if (days.empty()) return;
  const auto [low, high] = std::minmax_element(days.begin(), days.end());
  const int32_t first = *low;
  if (int64_t{*high} - first >= kBitmapDays) {
    std::sort(days.begin(), days.end());
    days.erase(std::unique(days.begin(), days.end()), days.end());
    return;
  }
  std::array<uint64_t, kBitmapDays / 64> marked{};
  const size_t words = static_cast<size_t>((*high - first) / 64 + 1);
  for (int32_t day : days) {
    const auto offset = static_cast<uint32_t>(day - first);
    marked[offset / 64] |= uint64_t{1} << (offset % 64);
  }
  days.clear();
  for (size_t w = 0; w < words; ++w) {
    for (uint64_t bits = marked[w]; bits != 0; bits &= bits - 1) {
      days.push_back(first +
                     static_cast<int32_t>(w * 64 + static_cast<size_t>(std::countr_zero(bits))));
    }
  }
}

}  // namespace

std::vector<std::pair<int32_t, Stocks>> StockSteps(const v1::LoanSummary& s) {
  // SummaryDelinquencyAsOf(s, t) changes only on these days: the disbursement, the end, a
  // payment, and for each installment the day after its grace (it turns overdue) and the
  // 31st and 91st days after its due date (PAR30, PAR90 for the oldest unpaid one).
  std::vector<int32_t> days;
  days.reserve(2 + static_cast<size_t>(s.paid_day_size()) + 3 * s.due_day_size());
  days.push_back(s.disbursed_day());
  if (s.ended_day() != 0) days.push_back(s.ended_day());
  for (int32_t day : s.paid_day()) days.push_back(day);
  for (int32_t due : s.due_day()) {
    days.push_back(due + s.grace_days() + 1);
    days.push_back(due + 31);
    days.push_back(due + 91);
  }
  SortDistinct(days);

  // Payments in day order, applied as the sweep passes their day.
  std::vector<int> payments(static_cast<size_t>(s.paid_day_size()));
  for (size_t i = 0; i < payments.size(); ++i) payments[i] = static_cast<int>(i);
  if (!std::is_sorted(s.paid_day().begin(), s.paid_day().end())) {
    std::stable_sort(payments.begin(), payments.end(),
                     [&s](int a, int b) { return s.paid_day(a) < s.paid_day(b); });
  }
  const int n = s.due_day_size();
  std::vector<int64_t> unpaid(s.principal_fen().begin(), s.principal_fen().end());
  bool monotonic = std::is_sorted(s.due_day().begin(), s.due_day().end());
  for (int p = 0; p < s.paid_fen_size(); ++p) monotonic = monotonic && s.paid_fen(p) > 0;
  // With due dates in order and payments only reducing what is unpaid (always so for a
  // schedule), the sweep keeps its sums as it goes: installments turn overdue in order,
  // and the oldest unpaid one only moves forward. Otherwise each day is summed afresh.
  int64_t outstanding = 0;
  for (int64_t u : unpaid) outstanding += std::max<int64_t>(u, 0);
  int64_t overdue = 0;
  int overdue_count = 0;  // installments [0, turned) are past their grace
  int turned = 0;
  int oldest = 0;  // every installment before it is paid
  size_t next_payment = 0;

  std::vector<std::pair<int32_t, Stocks>> steps;
  steps.reserve(days.size());
  Stocks previous;
  for (int32_t today : days) {
    if (today < s.disbursed_day()) continue;
    while (next_payment < payments.size() && s.paid_day(payments[next_payment]) <= today) {
      const int p = payments[next_payment++];
      const int index = s.paid_installment(p) - 1;
      GONGDAI_CHECK(index >= 0 && index < n);
      int64_t& u = unpaid[static_cast<size_t>(index)];
      const int64_t counted_before = std::max<int64_t>(u, 0);
      u -= s.paid_fen(p);
      const int64_t counted_after = std::max<int64_t>(u, 0);
      outstanding += counted_after - counted_before;
      if (index < turned) {
        overdue += counted_after - counted_before;
        if (counted_before > 0 && counted_after == 0) --overdue_count;
      }
    }
    Delinquency d;
    if (s.ended_day() == 0 || s.ended_day() > today) {
      if (monotonic) {
        while (turned < n && today > s.due_day(turned) + s.grace_days()) {
          const int64_t u = unpaid[static_cast<size_t>(turned)];
          if (u > 0) {
            overdue += u;
            ++overdue_count;
          }
          ++turned;
        }
        while (oldest < n && unpaid[static_cast<size_t>(oldest)] <= 0) ++oldest;
        d.outstanding_fen = outstanding;
        d.overdue_installments = overdue_count;
        d.overdue_principal_fen = overdue;
        if (overdue_count > 0) d.days_past_due = today - s.due_day(oldest);
      } else {
        // The same figures as SummaryDelinquencyAsOf(s, today), summed afresh.
        int oldest_unpaid = -1;
        for (int i = 0; i < n; ++i) {
          const int64_t u = unpaid[static_cast<size_t>(i)];
          if (u <= 0) continue;
          d.outstanding_fen += u;
          if (oldest_unpaid < 0) oldest_unpaid = i;
          if (today > s.due_day(i) + s.grace_days()) {
            ++d.overdue_installments;
            d.overdue_principal_fen += u;
          }
        }
        if (d.overdue_installments > 0) d.days_past_due = today - s.due_day(oldest_unpaid);
      }
    }
    const Stocks now = StocksOf(d);
    const Stocks change = now - previous;
    if (change != Stocks{}) steps.emplace_back(today, change);
    previous = now;
  }
  return steps;
}

}  // namespace gongdai
