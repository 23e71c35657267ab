// Long random programmes (borrowers, products, applications, approvals by random
// people, disbursements, repayments, reversals, write-offs, date advances) against an
// independent model written here. After every step: the entry balances, the fund's cash
// is never negative, no loan's repaid principal exceeds its principal, all account
// balances sum to zero, and the engine agrees with the model; every few steps and at the
// end, a rebuild from the journal equals the stored projections. GONGDAI_SEED=<n>
// replays a run.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <set>

#include "engine/journal_format.h"
#include "engine/status.h"
#include "tests/programme_fixture.h"

namespace gongdai {
namespace {

using testing::ProgrammeTest;

struct ModelLoan {
  std::string borrower;
  bool bank = false;
  int64_t amount = 0;
  std::string submitter;
  std::set<std::string> approvers;
  int required = 1;
  v1::LoanStatus status = v1::LOAN_STATUS_SUBMITTED;
  int64_t outstanding = 0;
  int64_t repaid = 0;
  // The latest financial entry and what undoing it restores.
  uint64_t last_financial = 0;
  bool undoable = false;
  v1::LoanStatus status_before = v1::LOAN_STATUS_UNSPECIFIED;
  int64_t outstanding_before = 0;
  int64_t repaid_before = 0;
  int64_t fund_effect = 0;  // cash the latest financial entry moved into the fund
};

class ProgrammeRandomTest : public ProgrammeTest {
 protected:
  std::mt19937_64 random_;
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(random_); }

  std::map<std::string, bool> borrowers_;  // id -> active
  std::map<std::string, ModelLoan> loans_;
  std::vector<std::string> loan_ids_;
  int64_t fund_cash_ = 0;
  std::set<std::string> accounts_;
  const std::vector<v1::Actor> people_ = {testing::kOfficer,  testing::kOfficer2,
                                          testing::kApprover, testing::kApprover2,
                                          testing::kCashier,  testing::kSupervisor};

  // Runs a command, checks the engine's answer against the model's expectation and the
  // invariants, and returns whether it committed.
  bool Step(const v1::Actor& actor, const v1::Event& event, const std::string& expected_reason) {
    CommandResult result = Run(actor, event);
    if (expected_reason.empty()) {
      EXPECT_TRUE(result.status.ok()) << event.ShortDebugString() << ": " << result.status;
    } else {
      std::vector<FieldViolation> violations = FieldViolationsOf(result.status);
      const std::string reason =
          violations.empty() ? ReasonOf(result.status) : violations[0].reason;
      EXPECT_EQ(reason, expected_reason) << event.ShortDebugString() << ": " << result.status;
    }
    if (!result.status.ok()) return false;
    EXPECT_TRUE(CheckBalanced(result.entry).ok());
    for (const v1::Posting& p : result.entry.postings()) accounts_.insert(p.account());
    last_entry_ = result.entry;
    return true;
  }

  void CheckInvariants() {
    int64_t sum = 0;
    for (const std::string& account : accounts_) sum += Balance(account);
    ASSERT_EQ(sum, 0) << "account balances must sum to zero";
    ASSERT_GE(Balance("union:fund:cash"), 0);
    ASSERT_EQ(Balance("union:fund:cash"), fund_cash_);
    for (const auto& [id, model] : loans_) {
      const v1::LoanState loan = Loan(id);
      ASSERT_EQ(loan.position().status(), model.status) << id;
      ASSERT_LE(loan.position().principal_repaid_fen(), loan.amount_fen()) << id;
      ASSERT_EQ(loan.position().principal_outstanding_fen(), model.outstanding) << id;
      ASSERT_EQ(loan.position().principal_repaid_fen(), model.repaid) << id;
    }
  }

  void Financial(ModelLoan& loan) {
    loan.undoable = true;
    loan.last_financial = last_entry_.sequence();
  }
  void Remember(ModelLoan& loan, int64_t fund_effect) {
    loan.status_before = loan.status;
    loan.outstanding_before = loan.outstanding;
    loan.repaid_before = loan.repaid;
    loan.fund_effect = fund_effect;
  }

  std::string RandomLoan() {
    return loan_ids_.empty() ? "" : loan_ids_[Pick(static_cast<int>(loan_ids_.size()))];
  }

  void RandomStep() {
    const int kind = Pick(100);
    if (kind < 8 || borrowers_.empty()) {
      v1::Event e;
      e.mutable_borrower_registered()->set_national_id(
          testing::NationalId("19800101", static_cast<int>(borrowers_.size()) + 1));
      *e.mutable_borrower_registered()->mutable_details() =
          Details("借款人", v1::BORROWER_CATEGORY_ORDINARY_MEMBER);
      if (Step(testing::kOfficer, e, ""))
        borrowers_[last_entry_.event().borrower_registered().borrower_id()] = true;
    } else if (kind < 11) {
      auto it = std::next(borrowers_.begin(), Pick(static_cast<int>(borrowers_.size())));
      v1::Event e;
      auto* change = e.mutable_talent_pool_status_changed();
      change->set_borrower_id(it->first);
      const bool activate = Pick(2) == 0;
      change->set_status(activate ? v1::TALENT_POOL_STATUS_ACTIVE
                                  : v1::TALENT_POOL_STATUS_SUSPENDED);
      change->set_reason("年度复核");
      if (Step(testing::kSupervisor, e, it->second == activate ? "STATUS_UNCHANGED" : ""))
        it->second = activate;
    } else if (kind < 16) {
      const int64_t amount = 100'000 * (1 + Pick(50));
      if (Step(testing::kCashier, Contribute(amount), "")) fund_cash_ += amount;
    } else if (kind < 30) {
      auto it = std::next(borrowers_.begin(), Pick(static_cast<int>(borrowers_.size())));
      const bool bank = Pick(2) == 0;
      const int64_t amount = 100'000 * (1 + Pick(120));  // up to 120,000 yuan: some over the limit
      const v1::Actor& officer = people_[Pick(2)];
      std::string reason;
      if (!it->second)
        reason = "BORROWER_NOT_ACTIVE";
      else if (amount > 10'000'000)
        reason = "EXCEEDS_PRODUCT_LIMIT";
      v1::Event e = Application(it->first, bank ? "psbc" : "fund", amount, 3 + Pick(10));
      if (Step(officer, e, reason)) {
        ModelLoan loan;
        loan.borrower = it->first;
        loan.bank = bank;
        loan.amount = amount;
        loan.submitter = officer.principal_id();
        loan.required = amount > (bank ? 30'000'000 : 5'000'000) ? 2 : 1;
        const std::string id = last_entry_.event().application_submitted().loan_id();
        loans_[id] = loan;
        loan_ids_.push_back(id);
      }
    } else if (kind < 45) {
      const std::string id = RandomLoan();
      if (id.empty()) return;
      ModelLoan& loan = loans_[id];
      const v1::Actor& who = people_[Pick(static_cast<int>(people_.size()))];
      std::string reason;
      if (who.role() != "approver" && who.role() != "supervisor")
        reason = "APPROVER_ROLE_REQUIRED";
      else if (loan.status != v1::LOAN_STATUS_SUBMITTED)
        reason = "INVALID_LOAN_STATE";
      else if (who.principal_id() == loan.submitter)
        reason = "SELF_APPROVAL_FORBIDDEN";
      else if (loan.approvers.count(who.principal_id()))
        reason = "DUPLICATE_APPROVAL";
      if (Step(who, Approve(id), reason)) {
        loan.approvers.insert(who.principal_id());
        if (static_cast<int>(loan.approvers.size()) >= loan.required)
          loan.status = v1::LOAN_STATUS_APPROVED;
      }
    } else if (kind < 55) {
      const std::string id = RandomLoan();
      if (id.empty()) return;
      ModelLoan& loan = loans_[id];
      std::string reason;
      if (loan.status != v1::LOAN_STATUS_APPROVED)
        reason = "INVALID_LOAN_STATE";
      else if (!loan.bank && fund_cash_ < loan.amount)
        reason = "FUND_INSUFFICIENT";
      if (Step(testing::kCashier, Disburse(id), reason)) {
        Remember(loan, loan.bank ? 0 : -loan.amount);
        loan.status = v1::LOAN_STATUS_ACTIVE;
        loan.outstanding = loan.amount;
        if (!loan.bank) fund_cash_ -= loan.amount;
        Financial(loan);
      }
    } else if (kind < 80) {
      const std::string id = RandomLoan();
      if (id.empty()) return;
      ModelLoan& loan = loans_[id];
      const int64_t amount =
          Pick(4) == 0 ? loan.outstanding + Pick(3)
                       : 1 + Pick(static_cast<int>(std::max<int64_t>(loan.outstanding, 1)));
      std::string reason;
      if (amount <= 0)
        reason = "AMOUNT_NOT_POSITIVE";
      else if (loan.status != v1::LOAN_STATUS_ACTIVE)
        reason = "INVALID_LOAN_STATE";
      else if (amount > loan.outstanding)
        reason = "EXCEEDS_OUTSTANDING";
      if (Step(testing::kCashier, Repay(id, amount), reason)) {
        Remember(loan, loan.bank ? 0 : amount);
        loan.outstanding -= amount;
        loan.repaid += amount;
        if (!loan.bank) fund_cash_ += amount;
        if (loan.outstanding == 0) loan.status = v1::LOAN_STATUS_CLOSED;
        Financial(loan);
      }
    } else if (kind < 86) {
      const std::string id = RandomLoan();
      if (id.empty()) return;
      ModelLoan& loan = loans_[id];
      std::string reason;
      if (!loan.undoable || loan.last_financial == 0) return;  // nothing the model can undo
      // The fund must still hold the cash the entry brought in.
      if (loan.fund_effect > fund_cash_) reason = "FUND_INSUFFICIENT";
      if (Step(testing::kSupervisor, Reverse(loan.last_financial), reason)) {
        loan.status = loan.status_before;
        loan.outstanding = loan.outstanding_before;
        loan.repaid = loan.repaid_before;
        fund_cash_ -= loan.fund_effect;
        loan.undoable = false;
      }
    } else if (kind < 89) {
      const std::string id = RandomLoan();
      if (id.empty()) return;
      ModelLoan& loan = loans_[id];
      v1::Event e;
      e.mutable_loan_written_off()->set_loan_id(id);
      e.mutable_loan_written_off()->set_reason("无法收回");
      std::string reason = loan.status != v1::LOAN_STATUS_ACTIVE ? "INVALID_LOAN_STATE" : "";
      if (Step(testing::kSupervisor, e, reason)) {
        Remember(loan, 0);
        loan.status = v1::LOAN_STATUS_WRITTEN_OFF;
        loan.outstanding = 0;
        Financial(loan);
      }
    } else if (kind < 94) {
      const std::string id = RandomLoan();
      if (id.empty() || !loans_[id].bank) return;
      CommandResult result = Run(testing::kCashier, Accrue(id));
      const std::string reason = ReasonOf(result.status);
      EXPECT_TRUE(result.status.ok() || reason == "NOTHING_TO_ACCRUE" ||
                  reason == "INVALID_LOAN_STATE")
          << result.status;
      if (result.status.ok()) {
        for (const v1::Posting& p : result.entry.postings()) accounts_.insert(p.account());
        last_entry_ = result.entry;
        Remember(loans_[id], 0);
        Financial(loans_[id]);
      }
    } else {
      today_ = today_.PlusDays(1 + Pick(25));
    }
  }

  v1::Entry last_entry_;
};

TEST_F(ProgrammeRandomTest, LongRandomProgrammesKeepEveryInvariant) {
  const char* seed_text = std::getenv("GONGDAI_SEED");
  const uint64_t seed =
      seed_text != nullptr ? std::strtoull(seed_text, nullptr, 10) : std::random_device()();
  std::printf("GONGDAI_SEED=%llu\n", static_cast<unsigned long long>(seed));
  SCOPED_TRACE("GONGDAI_SEED=" + std::to_string(seed));
  random_.seed(seed);
  const size_t recent_bytes[] = {0, 4096, size_t{64} << 20};
  recent_projection_bytes_ = recent_bytes[random_() % 3];
  Reopen();
  v1::ProductTerms fund = testing::UnionFundTerms();
  fund.set_dual_approval_above_fen(5'000'000);
  fund.set_term_months_min(3);
  DefineProduct("fund", fund);
  v1::ProductTerms bank = testing::BankTerms("0.0435", v1::DAY_COUNT_CONVENTION_ACT_365);
  bank.set_term_months_min(3);
  DefineProduct("psbc", bank);
  constexpr int kSteps = 1500;
  for (int step = 0; step < kSteps; ++step) {
    RandomStep();
    ASSERT_NO_FATAL_FAILURE(CheckInvariants()) << "after step " << step;
    if (::testing::Test::HasFailure()) FAIL() << "after step " << step;
    if (step % 100 == 99) {
      auto mismatch = ledger_->CompareProjectionsWithRebuild();
      ASSERT_TRUE(mismatch.ok()) << mismatch.status();
      ASSERT_FALSE(mismatch->has_value()) << (*mismatch)->space << " " << (*mismatch)->key;
    }
    if (step % 500 == 250) {
      // Reopened with a writer that keeps no recent projections, a few (evicted all the
      // time) or plenty: its reads must agree with storage whatever it keeps.
      recent_projection_bytes_ = recent_bytes[random_() % 3];
      Reopen();
    }
  }
  auto mismatch = ledger_->CompareProjectionsWithRebuild();
  ASSERT_TRUE(mismatch.ok());
  EXPECT_FALSE(mismatch->has_value());
  EXPECT_TRUE(ledger_->VerifyJournal().ok());
  std::printf("%zu loans, %zu borrowers, %llu entries\n", loans_.size(), borrowers_.size(),
              static_cast<unsigned long long>(ledger_->Head().sequence));
}

}  // namespace
}  // namespace gongdai
