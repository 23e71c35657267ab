// The demo book: its totals are exactly Ji'an's 2020 figures, its journal verifies, and
// every figure of the programme report agrees with a recomputation written here from the
// journal's entries alone.
#include "server/demo.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "engine/date.h"
#include "engine/ledger.h"
#include "engine/loan_math.h"
#include "tests/test_util.h"

namespace gongdai {
namespace {

using testing::TempDir;

LedgerOptions DemoOptions() {
  LedgerOptions options = testing::FixedDayOptions(std::string(server::kDemoBusinessDate).c_str());
  return options;
}

class DemoTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ledger_ = Ledger::Open(dir_->path(), DemoOptions())->release();
    absl::StatusOr<server::DemoSummary> summary = server::LoadDemoBook(*ledger_);
    ASSERT_TRUE(summary.ok()) << summary.status();
    summary_ = new server::DemoSummary(*summary);
    entries_ = new std::vector<v1::Entry>();
    for (uint64_t next = 1;;) {
      absl::StatusOr<std::vector<v1::Entry>> page =
          ledger_->ListEntries(next, Ledger::kListEntriesMax);
      ASSERT_TRUE(page.ok());
      if (page->empty()) break;
      for (v1::Entry& e : *page) entries_->push_back(std::move(e));
      next = entries_->back().sequence() + 1;
    }
  }
  static void TearDownTestSuite() {
    delete ledger_;
    delete dir_;
    delete summary_;
    delete entries_;
  }

  static TempDir* dir_;
  static Ledger* ledger_;
  static server::DemoSummary* summary_;
  static std::vector<v1::Entry>* entries_;
};

TempDir* DemoTest::dir_ = nullptr;
Ledger* DemoTest::ledger_ = nullptr;
server::DemoSummary* DemoTest::summary_ = nullptr;
std::vector<v1::Entry>* DemoTest::entries_ = nullptr;

TEST_F(DemoTest, TotalsAreJiAns2020Figures) {
  EXPECT_EQ(summary_->loans_disbursed, 330);
  EXPECT_EQ(summary_->disbursed_fen, 6'247'000'000);
  EXPECT_EQ(summary_->jobs_expected, 2556);
  EXPECT_EQ(summary_->applications_rejected, 40);
  EXPECT_EQ(summary_->applications_withdrawn, 15);
  ReportQuery year{"2020-01-01", "2020-12-31", {ReportDimension::kCounty}};
  absl::StatusOr<ProgrammeReport> report = ledger_->GetProgrammeReport(year);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->total.flows.loans_disbursed(), 330);
  EXPECT_EQ(report->total.flows.disbursed_fen(), 6'247'000'000);
  EXPECT_EQ(report->total.flows.jobs_expected(), 2556);
  // Ji'an's 13 counties and districts, and the subsidy settled with the bank (no county).
  ASSERT_EQ(report->rows.size(), 14u);
  EXPECT_EQ(report->rows[0].group[0], "");
  EXPECT_GT(report->rows[0].flows.subsidy_settled_fen(), 0);

  // By category and funding: the settled subsidy's row has an empty category, as its
  // county is, and names its funding.
  ReportQuery by_category{
      "2020-01-01", "2020-12-31", {ReportDimension::kCategory, ReportDimension::kFunding}};
  report = ledger_->GetProgrammeReport(by_category);
  ASSERT_TRUE(report.ok()) << report.status();
  size_t settled_rows = 0;
  for (const ReportRow& row : report->rows) {
    ASSERT_EQ(row.group.size(), 2u);
    EXPECT_NE(row.group[0], "BORROWER_CATEGORY_UNSPECIFIED");
    if (row.group[0].empty()) {
      ++settled_rows;
      EXPECT_EQ(row.group[1], "FUNDING_PARTNER_BANK");
      EXPECT_GT(row.flows.subsidy_settled_fen(), 0);
      EXPECT_EQ(row.flows.loans_disbursed(), 0);
    }
  }
  EXPECT_EQ(settled_rows, 1u);
}

TEST_F(DemoTest, TheBookHasWhatADemoShouldShow) {
  std::set<std::string> kinds;
  std::set<std::string> submitters, approvers;
  for (const v1::Entry& e : *entries_) {
    kinds.insert(v1::Event::descriptor()->FindFieldByNumber(e.event().kind_case())->name());
    if (e.event().has_application_submitted()) submitters.insert(e.actor().principal_id());
    if (e.event().has_approval_granted()) approvers.insert(e.actor().principal_id());
  }
  for (const char* kind :
       {"product_defined", "borrower_registered", "fund_contributed", "application_submitted",
        "approval_granted", "application_rejected", "application_withdrawn", "loan_disbursed",
        "repayment_recorded", "subsidy_accrued", "subsidy_settled", "jobs_reported",
        "loan_written_off", "recovery_recorded", "entry_reversed"}) {
    EXPECT_TRUE(kinds.count(kind)) << kind;
  }
  for (const std::string& s : submitters)
    EXPECT_FALSE(approvers.count(s)) << s;  // four eyes throughout
  absl::StatusOr<OverduePage> overdue =
      ledger_->ListOverdueLoans(OverdueQuery{std::string(server::kDemoBusinessDate), 500, ""});
  ASSERT_TRUE(overdue.ok());
  EXPECT_GT(overdue->loans.size(), 5u);
  EXPECT_LT(overdue->loans.size(), 120u);
  PortfolioFigures portfolio = *ledger_->GetPortfolio(server::kDemoBusinessDate);
  EXPECT_GT(portfolio.par30_fen, 0);
  EXPECT_LT(portfolio.par30_fen, portfolio.outstanding_fen / 4);
}

TEST_F(DemoTest, JournalVerifiesAndProjectionsEqualARebuild) {
  EXPECT_TRUE(ledger_->VerifyJournal().ok());
  absl::StatusOr<std::optional<ProjectionMismatch>> mismatch =
      ledger_->CompareProjectionsWithRebuild();
  ASSERT_TRUE(mismatch.ok());
  EXPECT_FALSE(mismatch->has_value()) << (*mismatch)->space << " " << (*mismatch)->key;
}

// The portfolio and the report read small loan summaries; they must give exactly what
// the full loan records give, for every loan and date.
TEST_F(DemoTest, LoanSummariesGiveTheSameDelinquencyAsTheFullRecords) {
  LoanQuery query;
  query.page_size = kPageSizeMax;
  int compared = 0;
  for (;;) {
    absl::StatusOr<LoanPage> page = ledger_->ListLoans(query);
    ASSERT_TRUE(page.ok());
    for (const v1::LoanState& loan : page->loans) {
      std::optional<v1::LoanSummary> summary = SummaryOf(loan);
      ASSERT_EQ(summary.has_value(), !loan.position().disbursed_date().empty()) << loan.loan_id();
      if (!summary.has_value()) continue;
      for (const char* date :
           {"2020-03-15", "2020-07-01", "2020-12-31", "2021-02-14", "2021-03-31"}) {
        const Date as_of = *ParseDate(date, "d");
        const Delinquency full = DelinquencyAsOf(loan.position(), loan.grace_days(), as_of);
        const Delinquency small = SummaryDelinquencyAsOf(*summary, as_of);
        ASSERT_EQ(small.outstanding_fen, full.outstanding_fen) << loan.loan_id() << " " << date;
        ASSERT_EQ(small.overdue_principal_fen, full.overdue_principal_fen)
            << loan.loan_id() << " " << date;
        ASSERT_EQ(small.days_past_due, full.days_past_due) << loan.loan_id() << " " << date;
        ASSERT_EQ(small.bucket, full.bucket) << loan.loan_id() << " " << date;
        ++compared;
      }
    }
    if (page->next_page_token.empty()) break;
    query.page_token = page->next_page_token;
  }
  EXPECT_EQ(compared, 330 * 5);
}

TEST_F(DemoTest, SameSeedSameBook) {
  TempDir other;
  auto again = *Ledger::Open(other.path(), DemoOptions());
  ASSERT_TRUE(server::LoadDemoBook(*again).ok());
  EXPECT_EQ(again->Head().sequence, ledger_->Head().sequence);
  EXPECT_EQ(again->Head().hash, ledger_->Head().hash);
  EXPECT_EQ(server::LoadDemoBook(*again).status().code(), absl::StatusCode::kFailedPrecondition);
}

// ---- An independent recomputation of the report from the entries -----------------------

struct Figures {
  std::map<std::string, int64_t> flows;
  int64_t loans_outstanding = 0, outstanding = 0, overdue = 0, par30 = 0, par90 = 0;
};

struct LoanFacts {
  std::string county;
  int grace_days = 0;
  int64_t jobs_expected = 0;
  int64_t jobs_reported = 0;
  bool approved = false;
  std::vector<v1::Installment> schedule;
  std::vector<std::pair<Date, std::vector<v1::Allocation>>> repayments;
  std::optional<Date> written_off;
  Date disbursed;
};

Date D(const std::string& text) { return *ParseDate(text, "date"); }

// Flows within [from, to] and stocks as of `to`, grouped by county ("" holds settlements).
std::map<std::string, Figures> Recompute(const std::vector<v1::Entry>& entries, Date from,
                                         Date to) {
  std::set<uint64_t> reversed;
  for (const v1::Entry& e : entries) {
    if (e.event().has_entry_reversed())
      reversed.insert(e.event().entry_reversed().reversed_sequence());
  }
  std::map<std::string, std::string> county_of_borrower;
  std::map<std::string, int> grace_of_product;
  std::map<std::string, LoanFacts> loans;
  std::map<std::string, Figures> out;
  auto flow = [&](const std::string& county, const std::string& date, const char* name,
                  int64_t amount) {
    const Date day = D(date);
    if (day < from || day > to) return;
    out[county].flows[name] += amount;
  };
  for (const v1::Entry& e : entries) {
    if (reversed.count(e.sequence()) || e.event().has_entry_reversed()) continue;
    const v1::Event& ev = e.event();
    const std::string& date = e.business_date();
    if (ev.has_product_defined())
      grace_of_product[ev.product_defined().product_id()] =
          ev.product_defined().terms().grace_days();
    if (ev.has_borrower_registered()) {
      county_of_borrower[ev.borrower_registered().borrower_id()] =
          ev.borrower_registered().details().county();
    }
    if (ev.has_application_submitted()) {
      const auto& a = ev.application_submitted();
      LoanFacts& loan = loans[a.loan_id()];
      loan.county = county_of_borrower[a.borrower_id()];
      loan.grace_days = grace_of_product[a.product_id()];
      loan.jobs_expected = a.jobs_expected();
      flow(loan.county, date, "applications_received", 1);
    }
    if (ev.has_approval_granted() &&
        ev.approval_granted().approvals() == ev.approval_granted().approvals_required()) {
      LoanFacts& loan = loans[ev.approval_granted().loan_id()];
      loan.approved = true;
      flow(loan.county, date, "applications_approved", 1);
    }
    if (ev.has_application_rejected())
      flow(loans[ev.application_rejected().loan_id()].county, date, "applications_rejected", 1);
    if (ev.has_application_withdrawn()) {
      LoanFacts& loan = loans[ev.application_withdrawn().loan_id()];
      flow(loan.county, date, "applications_withdrawn", 1);
      if (loan.approved) flow(loan.county, date, "applications_approved", -1);
    }
    if (ev.has_loan_disbursed()) {
      LoanFacts& loan = loans[ev.loan_disbursed().loan_id()];
      loan.schedule.assign(ev.loan_disbursed().schedule().begin(),
                           ev.loan_disbursed().schedule().end());
      loan.disbursed = D(date);
      flow(loan.county, date, "loans_disbursed", 1);
      flow(loan.county, date, "disbursed_fen", ev.loan_disbursed().amount_fen());
      flow(loan.county, date, "jobs_expected", loan.jobs_expected);
      for (const v1::Installment& i : loan.schedule)
        flow(loan.county, i.due_date(), "principal_due_fen", i.principal_fen());
    }
    auto accrued = [&](const LoanFacts& loan, const auto& periods) {
      for (const v1::AccrualPeriod& p : periods)
        flow(loan.county, date, "subsidy_accrued_fen", p.amount_fen());
    };
    if (ev.has_repayment_recorded()) {
      const auto& r = ev.repayment_recorded();
      LoanFacts& loan = loans[r.loan_id()];
      flow(loan.county, date, "repaid_fen", r.amount_fen());
      std::vector<v1::Allocation> allocations(r.allocations().begin(), r.allocations().end());
      for (const v1::Allocation& a : allocations) {
        const v1::Installment& due = loan.schedule[static_cast<size_t>(a.installment() - 1)];
        if (D(date) <= D(due.due_date()).PlusDays(loan.grace_days)) {
          flow(loan.county, due.due_date(), "principal_repaid_on_time_fen", a.principal_fen());
        }
      }
      loan.repayments.emplace_back(D(date), allocations);
      accrued(loan, r.accruals());
    }
    if (ev.has_subsidy_accrued())
      accrued(loans[ev.subsidy_accrued().loan_id()], ev.subsidy_accrued().accruals());
    if (ev.has_subsidy_settled())
      flow("", date, "subsidy_settled_fen", ev.subsidy_settled().amount_fen());
    if (ev.has_jobs_reported()) {
      LoanFacts& loan = loans[ev.jobs_reported().loan_id()];
      flow(loan.county, date, "jobs_reported",
           ev.jobs_reported().jobs_created() - loan.jobs_reported);
      loan.jobs_reported = ev.jobs_reported().jobs_created();
    }
    if (ev.has_loan_written_off()) {
      LoanFacts& loan = loans[ev.loan_written_off().loan_id()];
      flow(loan.county, date, "written_off_fen", ev.loan_written_off().amount_fen());
      accrued(loan, ev.loan_written_off().accruals());
      loan.written_off = D(date);
      // Installments that would have fallen due after the write-off no longer do; what was
      // paid on them before stays due (and repaid on time).
      for (size_t k = 0; k < loan.schedule.size(); ++k) {
        const v1::Installment& installment = loan.schedule[k];
        if (D(installment.due_date()) <= D(date)) continue;
        int64_t paid = 0;
        for (const auto& [day, allocations] : loan.repayments) {
          for (const v1::Allocation& a : allocations)
            if (a.installment() == static_cast<int>(k) + 1) paid += a.principal_fen();
        }
        flow(loan.county, installment.due_date(), "principal_due_fen",
             -(installment.principal_fen() - paid));
      }
    }
    if (ev.has_recovery_recorded())
      flow(loans[ev.recovery_recorded().loan_id()].county, date, "recovered_fen",
           ev.recovery_recorded().amount_fen());
  }
  for (const auto& [id, loan] : loans) {
    if (loan.schedule.empty() || loan.disbursed > to) continue;
    if (loan.written_off.has_value() && *loan.written_off <= to) continue;
    std::vector<int64_t> paid(loan.schedule.size(), 0);
    for (const auto& [day, allocations] : loan.repayments) {
      if (day > to) continue;
      for (const v1::Allocation& a : allocations)
        paid[static_cast<size_t>(a.installment() - 1)] += a.principal_fen();
    }
    int64_t outstanding = 0, overdue = 0;
    std::optional<Date> oldest_unpaid;
    for (size_t i = 0; i < loan.schedule.size(); ++i) {
      const int64_t unpaid = loan.schedule[i].principal_fen() - paid[i];
      if (unpaid <= 0) continue;
      outstanding += unpaid;
      const Date due = D(loan.schedule[i].due_date());
      if (!oldest_unpaid.has_value()) oldest_unpaid = due;
      if (to > due.PlusDays(loan.grace_days)) overdue += unpaid;
    }
    if (outstanding == 0) continue;
    Figures& f = out[loan.county];
    f.loans_outstanding += 1;
    f.outstanding += outstanding;
    f.overdue += overdue;
    const int dpd = overdue > 0 ? to.days_since_epoch() - oldest_unpaid->days_since_epoch() : 0;
    if (dpd > 30) f.par30 += outstanding;
    if (dpd > 90) f.par90 += outstanding;
  }
  return out;
}

void ExpectReportMatches(const ProgrammeReport& report,
                         const std::map<std::string, Figures>& expected) {
  std::set<std::string> seen;
  for (const ReportRow& row : report.rows) {
    const std::string county = row.group.at(0);
    seen.insert(county);
    auto it = expected.find(county);
    ASSERT_NE(it, expected.end()) << county;
    const Figures& f = it->second;
    const google::protobuf::Descriptor* descriptor = v1::ReportCounters::descriptor();
    const google::protobuf::Reflection* reflection = v1::ReportCounters::GetReflection();
    for (int i = 0; i < descriptor->field_count(); ++i) {
      const auto* field = descriptor->field(i);
      const auto want = f.flows.find(field->name());
      EXPECT_EQ(reflection->GetInt64(row.flows, field), want == f.flows.end() ? 0 : want->second)
          << county << " " << field->name() << " " << report.from << ".." << report.to;
    }
    EXPECT_EQ(row.loans_outstanding, f.loans_outstanding) << county;
    EXPECT_EQ(row.outstanding_fen, f.outstanding) << county;
    EXPECT_EQ(row.overdue_principal_fen, f.overdue) << county;
    EXPECT_EQ(row.par30_fen, f.par30) << county;
    EXPECT_EQ(row.par90_fen, f.par90) << county;
  }
  for (const auto& [county, f] : expected) {
    bool any = f.loans_outstanding != 0;
    for (const auto& [name, value] : f.flows) any |= value != 0;
    if (any) {
      EXPECT_TRUE(seen.count(county)) << "missing row " << county;
    }
  }
}

TEST_F(DemoTest, EveryReportFigureAgreesWithARecomputationFromTheJournal) {
  for (const auto& [from, to] :
       std::vector<std::pair<const char*, const char*>>{{"2020-01-01", "2020-12-31"},
                                                        {"2020-04-01", "2020-06-30"},
                                                        {"2021-01-01", "2021-03-31"},
                                                        {"2020-03-01", "2020-03-31"},
                                                        {"2020-01-01", "2021-03-31"}}) {
    ReportQuery query{from, to, {ReportDimension::kCounty}};
    absl::StatusOr<ProgrammeReport> report = ledger_->GetProgrammeReport(query);
    ASSERT_TRUE(report.ok()) << report.status();
    ExpectReportMatches(*report, Recompute(*entries_, D(from), D(to)));
  }
}

}  // namespace
}  // namespace gongdai
