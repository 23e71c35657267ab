// The report's running stocks: a loan's step function must give, on every day, exactly
// what the delinquency of its summary gives that day.
#include "engine/loan_math.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>

namespace gongdai {
namespace {

// A disbursed loan with `installments` monthly-ish installments and random payments in
// day order, some late, some partial, some more than an installment, maybe ended.
v1::LoanSummary RandomSummary(std::mt19937_64& rng) {
  auto uniform = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  v1::LoanSummary s;
  s.set_loan_id("l000001");
  s.set_grace_days(uniform(0, 1) == 0 ? 0 : uniform(1, 45));
  const int disbursed = 18'000 + uniform(0, 400);
  s.set_disbursed_day(disbursed);
  const int installments = uniform(1, 24);
  for (int i = 1; i <= installments; ++i) {
    s.add_due_day(disbursed + 30 * i + uniform(-2, 1));
    // A loan of fewer fen than months has installments of 0 fen.
    s.add_principal_fen(uniform(0, 19) == 0 ? 0 : uniform(1, 500'000));
  }
  // Due dates out of order never come from a schedule; StockSteps must still be right.
  if (uniform(0, 9) == 0) {
    std::shuffle(s.mutable_due_day()->begin(), s.mutable_due_day()->end(), rng);
  }
  int day = disbursed;
  const int payments = uniform(0, 3 * installments);
  for (int p = 0; p < payments; ++p) {
    day += uniform(0, 50);
    s.add_paid_day(day);
    s.add_paid_installment(uniform(1, installments));
    s.add_paid_fen(uniform(1, 600'000));
  }
  // Payments out of day order never come from the journal either; a payment decades on
  // spans more days than StockSteps orders without sorting.
  if (uniform(0, 9) == 0) {
    std::vector<int> order(static_cast<size_t>(payments));
    for (int p = 0; p < payments; ++p) order[static_cast<size_t>(p)] = p;
    std::shuffle(order.begin(), order.end(), rng);
    const v1::LoanSummary in_order = s;
    for (int p = 0; p < payments; ++p) {
      const int from = order[static_cast<size_t>(p)];
      s.set_paid_day(p, in_order.paid_day(from));
      s.set_paid_installment(p, in_order.paid_installment(from));
      s.set_paid_fen(p, in_order.paid_fen(from));
    }
  }
  if (payments > 0 && uniform(0, 19) == 0) s.set_paid_day(payments - 1, day + 9'000);
  if (uniform(0, 3) == 0) s.set_ended_day(day + uniform(0, 200));
  return s;
}

// On every day from before the disbursement to long after the last day that matters, the
// sum of the steps so far is the summary's delinquency that day.
void ExpectStepsSumToTheDelinquency(const v1::LoanSummary& summary, const std::string& where) {
  const std::vector<std::pair<int32_t, Stocks>> steps = StockSteps(summary);
  for (size_t i = 1; i < steps.size(); ++i) ASSERT_LT(steps[i - 1].first, steps[i].first);
  Stocks sum;
  size_t next = 0;
  const int first = summary.disbursed_day() - 5;
  int last = *std::max_element(summary.due_day().begin(), summary.due_day().end()) + 2'000;
  for (int32_t paid : summary.paid_day()) last = std::max(last, paid + 1);
  for (int day = first; day <= last; ++day) {
    while (next < steps.size() && steps[next].first <= day) {
      const Stocks& change = steps[next++].second;
      ASSERT_NE(change, Stocks{});
      sum += change;
    }
    const Stocks expected = StocksOf(SummaryDelinquencyAsOf(summary, Date::FromDays(day)));
    ASSERT_EQ(sum, expected) << where << " day " << Date::FromDays(day).ToString() << ": "
                             << summary.ShortDebugString();
  }
  EXPECT_EQ(next, steps.size()) << where << ": a step after the last day checked";
}

TEST(StockStepsTest, SumOfStepsEqualsTheDelinquencyOnEveryDay) {
  const uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 500; ++round) {
    ExpectStepsSumToTheDelinquency(
        RandomSummary(rng), "seed " + std::to_string(seed) + " round " + std::to_string(round));
  }
}

// StockSteps orders a loan's days in a bitmap of 8,192 days from the first, and sorts them
// beyond: a last payment 8,191 days after the disbursement is the bitmap's last bit, one
// day later takes the sort.
TEST(StockStepsTest, TheLastDayOfTheBitmapAndTheFirstBeyondItAreCounted) {
  for (const int span : {8'190, 8'191, 8'192, 8'193}) {
    v1::LoanSummary s;
    s.set_loan_id("l000001");
    s.set_grace_days(5);
    const int disbursed = 18'000;
    s.set_disbursed_day(disbursed);
    for (int i = 1; i <= 3; ++i) {
      s.add_due_day(disbursed + 30 * i);
      s.add_principal_fen(100'000);
    }
    s.add_paid_day(disbursed + 10);
    s.add_paid_installment(1);
    s.add_paid_fen(50'000);
    s.add_paid_day(disbursed + span);
    s.add_paid_installment(3);
    s.add_paid_fen(100'000);
    const std::vector<std::pair<int32_t, Stocks>> steps = StockSteps(s);
    ASSERT_FALSE(steps.empty());
    EXPECT_EQ(steps.back().first, disbursed + span) << "span " << span;
    ExpectStepsSumToTheDelinquency(s, "span " + std::to_string(span));
  }
}

TEST(StockStepsTest, ALoanPaidOnTimeIsNeverOverdue) {
  v1::LoanSummary s;
  s.set_disbursed_day(18'000);
  s.add_due_day(18'030);
  s.add_principal_fen(100);
  s.add_due_day(18'060);
  s.add_principal_fen(200);
  s.add_paid_day(18'030);
  s.add_paid_installment(1);
  s.add_paid_fen(100);
  s.add_paid_day(18'060);
  s.add_paid_installment(2);
  s.add_paid_fen(200);
  const std::vector<std::pair<int32_t, Stocks>> steps = StockSteps(s);
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0], (std::pair<int32_t, Stocks>{18'000, Stocks{1, 300, 0, 0, 0}}));
  EXPECT_EQ(steps[1], (std::pair<int32_t, Stocks>{18'030, Stocks{0, -100, 0, 0, 0}}));
  EXPECT_EQ(steps[2], (std::pair<int32_t, Stocks>{18'060, Stocks{-1, -200, 0, 0, 0}}));
}

TEST(StockStepsTest, AnUnpaidInstallmentTurnsOverdueThenAtRisk) {
  v1::LoanSummary s;
  s.set_disbursed_day(18'000);
  s.set_grace_days(5);
  s.add_due_day(18'030);
  s.add_principal_fen(100);
  s.add_due_day(18'060);
  s.add_principal_fen(200);
  const std::vector<std::pair<int32_t, Stocks>> steps = StockSteps(s);
  // Overdue the day after due + grace; PAR30 from the 31st day past due, PAR90 from the
  // 91st, each with the loan's whole outstanding; the second installment joins the
  // overdue figure after its own grace.
  std::vector<std::pair<int32_t, Stocks>> expected = {
      {18'000, Stocks{1, 300, 0, 0, 0}}, {18'036, Stocks{0, 0, 100, 0, 0}},
      {18'061, Stocks{0, 0, 0, 300, 0}}, {18'066, Stocks{0, 0, 200, 0, 0}},
      {18'121, Stocks{0, 0, 0, 0, 300}},
  };
  EXPECT_EQ(steps, expected);
}

}  // namespace
}  // namespace gongdai
