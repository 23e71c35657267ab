// A ledger with the programme's usual cast: products, borrowers, officers and approvers,
// and helpers that build each command the way the service will.
#ifndef GONGDAI_TESTS_PROGRAMME_FIXTURE_H_
#define GONGDAI_TESTS_PROGRAMME_FIXTURE_H_

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/ledger.h"
#include "engine/national_id.h"
#include "engine/status.h"
#include "tests/test_util.h"

namespace gongdai::testing {

inline v1::Actor Person(const std::string& id, const std::string& role) {
  v1::Actor actor;
  actor.set_principal_id(id);
  actor.set_role(role);
  return actor;
}

inline const v1::Actor kOfficer = Person("officer.liu", "officer");
inline const v1::Actor kOfficer2 = Person("officer.chen", "officer");
inline const v1::Actor kApprover = Person("approver.wang", "approver");
inline const v1::Actor kApprover2 = Person("approver.zhao", "approver");
inline const v1::Actor kCashier = Person("cashier.sun", "cashier");
inline const v1::Actor kSupervisor = Person("supervisor.hu", "supervisor");

// A valid national ID number for birth date `yyyymmdd` and a serial, with its check.
inline std::string NationalId(const std::string& yyyymmdd, int serial) {
  std::string serial_text = std::to_string(100 + serial % 900);
  std::string first17 = "360802" + yyyymmdd + serial_text;
  return first17 + NationalIdCheckCharacter(first17);
}

inline v1::ProductTerms UnionFundTerms() {
  v1::ProductTerms terms;
  terms.set_name("工会创业互助金");
  terms.set_funding(v1::FUNDING_UNION_FUND);
  auto limit = [&](v1::BorrowerCategory category, int64_t yuan) {
    v1::CategoryLimit* l = terms.add_limits();
    l->set_category(category);
    l->set_max_amount_fen(yuan * 100);
  };
  limit(v1::BORROWER_CATEGORY_ORDINARY_MEMBER, 100'000);
  limit(v1::BORROWER_CATEGORY_MODEL_WORKER, 300'000);
  terms.set_term_months_min(3);
  terms.set_term_months_max(36);
  terms.add_methods(v1::REPAYMENT_METHOD_BULLET);
  terms.add_methods(v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY);
  terms.set_grace_days(5);
  terms.set_dual_approval_above_fen(20'000'000);  // 200,000 yuan
  return terms;
}

inline v1::ProductTerms BankTerms(
    const char* rate = "0.0435",
    v1::DayCountConvention day_count = v1::DAY_COUNT_CONVENTION_ACT_360) {
  v1::ProductTerms terms;
  terms.set_name("庐陵工贷 (邮储银行)");
  terms.set_funding(v1::FUNDING_PARTNER_BANK);
  terms.set_bank_id("psbc");
  terms.set_annual_rate(rate);
  terms.set_day_count(day_count);
  auto limit = [&](v1::BorrowerCategory category, int64_t yuan) {
    v1::CategoryLimit* l = terms.add_limits();
    l->set_category(category);
    l->set_max_amount_fen(yuan * 100);
  };
  limit(v1::BORROWER_CATEGORY_ORDINARY_MEMBER, 100'000);
  limit(v1::BORROWER_CATEGORY_MODEL_WORKER, 300'000);
  limit(v1::BORROWER_CATEGORY_SMALL_ENTERPRISE, 500'000);
  terms.set_term_months_min(1);
  terms.set_term_months_max(36);
  terms.add_methods(v1::REPAYMENT_METHOD_BULLET);
  terms.add_methods(v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY);
  terms.set_grace_days(3);
  terms.set_dual_approval_above_fen(30'000'000);
  return terms;
}

class ProgrammeTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    ledger_.reset();
    LedgerOptions options = FixedDayOptions("2020-01-01");
    options.business_date_today = [this] { return today_; };
    options.recent_projection_bytes = recent_projection_bytes_;
    options.batch_read_threads = batch_read_threads_;
    if (block_cache_bytes_.has_value()) options.block_cache_bytes = *block_cache_bytes_;
    options.env = env_;
    options.before_head_published = before_head_published_;
    absl::StatusOr<std::unique_ptr<Ledger>> opened =
        Ledger::Open(path_.empty() ? dir_.path() : path_, options);
    ASSERT_TRUE(opened.ok()) << opened.status();
    ledger_ = *std::move(opened);
  }

  void SetToday(const char* date) { today_ = *ParseDate(date, "today"); }

  // Holds the committer, once, between the synced write of the batch that ends at a given
  // sequence and its publishing as the durable head (LedgerOptions::before_head_published).
  class PublishGate {
   public:
    void Hold(uint64_t sequence) { hold_ = sequence; }
    // Whether the committer came to be held within a generous while.
    [[nodiscard]] bool WaitUntilHeld() {
      return reached_future_.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
    }
    // Lets the committer go on; later calls do nothing.
    void Open() {
      std::call_once(opened_once_, [this] { open_.set_value(); });
    }
    // The hook.
    void Pass(uint64_t sequence) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        batch_ends_.push_back(sequence);
      }
      if (sequence != hold_.load() || held_once_.exchange(true)) return;
      reached_.set_value();
      opened_.wait();
    }
    // The last sequence of each batch written so far.
    std::vector<uint64_t> BatchEnds() {
      std::lock_guard<std::mutex> lock(mutex_);
      return batch_ends_;
    }
    // Opens the gate as it goes out of scope: declared after the futures of calls that may
    // wait for the gate, an early return opens it before they are waited for.
    struct OpenOnExit {
      PublishGate& gate;
      ~OpenOnExit() { gate.Open(); }
    };

   private:
    std::atomic<uint64_t> hold_{0};
    std::atomic<bool> held_once_{false};
    std::promise<void> reached_;
    std::future<void> reached_future_ = reached_.get_future();
    std::promise<void> open_;
    std::shared_future<void> opened_ = open_.get_future().share();
    std::once_flag opened_once_;
    std::mutex mutex_;
    std::vector<uint64_t> batch_ends_;
  };
  // Reopens the ledger with a gate for the test to hold.
  std::shared_ptr<PublishGate> GatePublishing() {
    auto gate = std::make_shared<PublishGate>();
    before_head_published_ = [gate](uint64_t sequence) { gate->Pass(sequence); };
    Reopen();
    return gate;
  }

  // `expected_version`: Command::expected_version (a borrower update's).
  CommandResult Run(const v1::Actor& actor, const v1::Event& event, std::string date = "",
                    uint64_t expected_version = 0) {
    Command command;
    command.request_id = "req-" + std::to_string(++request_counter_);
    command.actor = actor;
    command.business_date = date.empty() ? today_.ToString() : date;
    command.event = event;
    command.expected_version = expected_version;
    return ledger_->SubmitAndWait(std::move(command));
  }

  // Runs and requires success; returns the entry.
  v1::Entry Ok(const v1::Actor& actor, const v1::Event& event, std::string date = "",
               uint64_t expected_version = 0) {
    CommandResult result = Run(actor, event, std::move(date), expected_version);
    EXPECT_TRUE(result.status.ok()) << result.status;
    return result.entry;
  }

  void DefineProduct(const std::string& id, const v1::ProductTerms& terms) {
    v1::Event event;
    event.mutable_product_defined()->set_product_id(id);
    *event.mutable_product_defined()->mutable_terms() = terms;
    Ok(kSupervisor, event);
  }

  static v1::BorrowerDetails Details(
      const std::string& name,
      v1::BorrowerCategory category = v1::BORROWER_CATEGORY_ORDINARY_MEMBER,
      const std::string& county = "吉州区") {
    v1::BorrowerDetails d;
    d.set_name(name);
    d.set_phone("13907961234");
    d.set_union_member_number("JA-2020-0001");
    d.set_category(category);
    d.set_county(county);
    d.set_enterprise_name(name + "的农家乐");
    d.set_sector("乡村旅游");
    return d;
  }

  std::string Register(const std::string& name,
                       v1::BorrowerCategory category = v1::BORROWER_CATEGORY_ORDINARY_MEMBER,
                       const std::string& county = "吉州区") {
    return RegisterOn("", name, category, county);
  }
  // Registered on `date` ("" for today).
  std::string RegisterOn(const std::string& date, const std::string& name,
                         v1::BorrowerCategory category = v1::BORROWER_CATEGORY_ORDINARY_MEMBER,
                         const std::string& county = "吉州区") {
    v1::Event event;
    event.mutable_borrower_registered()->set_national_id(NationalId("19850612", ++id_serial_));
    *event.mutable_borrower_registered()->mutable_details() = Details(name, category, county);
    return Ok(kOfficer, event, date).event().borrower_registered().borrower_id();
  }

  static v1::Event Application(
      const std::string& borrower, const std::string& product, int64_t amount_fen, int term_months,
      v1::RepaymentMethod method = v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY) {
    v1::Event event;
    v1::ApplicationSubmitted* a = event.mutable_application_submitted();
    a->set_borrower_id(borrower);
    a->set_product_id(product);
    a->set_amount_fen(amount_fen);
    a->set_term_months(term_months);
    a->set_method(method);
    a->set_purpose("扩大养殖规模");
    a->set_jobs_expected(4);
    return event;
  }

  std::string Submit(const std::string& borrower, const std::string& product, int64_t amount_fen,
                     int term_months,
                     v1::RepaymentMethod method = v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY) {
    return Ok(kOfficer, Application(borrower, product, amount_fen, term_months, method))
        .event()
        .application_submitted()
        .loan_id();
  }

  static v1::Event Approve(const std::string& loan) {
    v1::Event event;
    event.mutable_approval_granted()->set_loan_id(loan);
    return event;
  }
  static v1::Event Disburse(const std::string& loan) {
    v1::Event event;
    event.mutable_loan_disbursed()->set_loan_id(loan);
    return event;
  }
  static v1::Event Repay(const std::string& loan, int64_t amount_fen) {
    v1::Event event;
    v1::RepaymentRecorded* r = event.mutable_repayment_recorded();
    r->set_loan_id(loan);
    r->set_amount_fen(amount_fen);
    r->set_channel(v1::PAYMENT_CHANNEL_BANK_TRANSFER);
    return event;
  }
  static v1::Event Contribute(int64_t amount_fen) {
    v1::Event event;
    event.mutable_fund_contributed()->set_amount_fen(amount_fen);
    event.mutable_fund_contributed()->set_source("吉安市总工会");
    return event;
  }
  static v1::Event Reverse(uint64_t sequence, const std::string& reason = "录入错误") {
    v1::Event event;
    event.mutable_entry_reversed()->set_reversed_sequence(sequence);
    event.mutable_entry_reversed()->set_reason(reason);
    return event;
  }
  static v1::Event Accrue(const std::string& loan) {
    v1::Event event;
    event.mutable_subsidy_accrued()->set_loan_id(loan);
    return event;
  }

  // Submits, approves and disburses a loan on today's date.
  std::string ActiveLoan(
      const std::string& borrower, const std::string& product, int64_t amount_fen, int term_months,
      v1::RepaymentMethod method = v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY) {
    std::string loan = Submit(borrower, product, amount_fen, term_months, method);
    if (loan.empty()) return loan;  // Submit has already failed the test
    Ok(kApprover, Approve(loan));
    if (Loan(loan).approvals_required() > 1) Ok(kApprover2, Approve(loan));
    Ok(kCashier, Disburse(loan));
    return loan;
  }

  int64_t Balance(std::string_view account) {
    absl::StatusOr<Money> balance = ledger_->GetBalance(account);
    EXPECT_TRUE(balance.ok()) << balance.status();
    return static_cast<int64_t>(balance->fen());
  }

  v1::LoanState Loan(const std::string& id) {
    absl::StatusOr<v1::LoanState> loan = ledger_->GetLoan(id);
    EXPECT_TRUE(loan.ok()) << loan.status();
    return loan.ok() ? *loan : v1::LoanState();
  }

  TempDir dir_;
  std::unique_ptr<Ledger> ledger_;
  // The writer's recent projections, for the next Reopen.
  size_t recent_projection_bytes_ = LedgerOptions().recent_projection_bytes;
  size_t batch_read_threads_ = LedgerOptions().batch_read_threads;
  std::optional<size_t> block_cache_bytes_;  // FixedDayOptions' when not set
  rocksdb::Env* env_ = nullptr;              // not owned
  std::function<void(uint64_t)> before_head_published_;
  // The database Reopen opens, when not dir_.
  std::string path_;
  Date today_ = *ParseDate("2020-01-01", "today");
  int request_counter_ = 0;
  int id_serial_ = 0;
};

}  // namespace gongdai::testing

#endif  // GONGDAI_TESTS_PROGRAMME_FIXTURE_H_
