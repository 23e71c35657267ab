#include "bench/book.h"

#include <cstdio>

#include "engine/national_id.h"

namespace gongdai::bench {

const char* const kCounties[kCountyCount] = {"吉州区", "青原区", "吉安县",  "吉水县", "峡江县",
                                             "新干县", "永丰县", "泰和县",  "遂川县", "万安县",
                                             "安福县", "永新县", "井冈山市"};

v1::Actor BookActor(const char* id, const char* role) {
  v1::Actor actor;
  actor.set_principal_id(id);
  actor.set_role(role);
  return actor;
}

Command MakeCommand(std::string request_id, const v1::Actor& actor, Date date, v1::Event event) {
  Command c;
  c.request_id = std::move(request_id);
  c.actor = actor;
  c.business_date = date.ToString();
  c.event = std::move(event);
  return c;
}

v1::ProductTerms BookTerms(bool bank, int term_months_max) {
  v1::ProductTerms t;
  t.set_name(bank ? "bank" : "fund");
  t.set_funding(bank ? v1::FUNDING_PARTNER_BANK : v1::FUNDING_UNION_FUND);
  if (bank) {
    t.set_bank_id("psbc");
    t.set_annual_rate("0.0435");
    t.set_day_count(v1::DAY_COUNT_CONVENTION_ACT_360);
  }
  for (auto category : {v1::BORROWER_CATEGORY_ORDINARY_MEMBER, v1::BORROWER_CATEGORY_MODEL_WORKER,
                        v1::BORROWER_CATEGORY_SMALL_ENTERPRISE}) {
    v1::CategoryLimit* l = t.add_limits();
    l->set_category(category);
    l->set_max_amount_fen(50'000'000);
  }
  t.set_term_months_min(12);
  t.set_term_months_max(term_months_max);
  t.add_methods(v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY);
  t.set_grace_days(5);
  t.set_dual_approval_above_fen(50'000'000);
  return t;
}

v1::Event BorrowerRegistration(size_t i) {
  v1::Event e;
  const Date born = ParseDate("1960-01-01", "d")->PlusDays(static_cast<int32_t>(i / 900));
  const std::string digits = born.ToString();
  const std::string first17 = "360802" + digits.substr(0, 4) + digits.substr(5, 2) +
                              digits.substr(8, 2) + std::to_string(100 + i % 900);
  e.mutable_borrower_registered()->set_national_id(first17 + NationalIdCheckCharacter(first17));
  v1::BorrowerDetails* d = e.mutable_borrower_registered()->mutable_details();
  d->set_name("借款人");
  d->set_phone("13907961234");
  d->set_union_member_number("JA-" + std::to_string(i));
  d->set_category(static_cast<v1::BorrowerCategory>(1 + i % 3));
  d->set_county(kCounties[i % kCountyCount]);
  d->set_enterprise_name("企业");
  d->set_sector("种植");
  return e;
}

int64_t LoanAmountFen(size_t i) { return static_cast<int64_t>(1'000'000 + (i % 40) * 500'000); }

void Pipeline::Submit(Command command, std::function<void(const CommandResult&)> after) {
  {
    std::unique_lock lock(mutex_);
    if (in_flight_ >= window_) changed_.wait(lock, [this] { return in_flight_ <= refill_at_; });
    ++in_flight_;
  }
  std::string request_id = command.request_id;
  ledger_.Submit(std::move(command), [this, request_id = std::move(request_id),
                                      after = std::move(after)](CommandResult result) {
    if (result.status.ok() && after) after(result);
    std::lock_guard lock(mutex_);
    if (!result.status.ok() && !failed_) {
      std::fprintf(stderr, "command %s refused: %s\n", request_id.c_str(),
                   std::string(result.status.message()).c_str());
      failed_ = true;
    }
    --in_flight_;
    if (in_flight_ == refill_at_ || in_flight_ == 0) changed_.notify_all();
  });
}

bool Pipeline::Wait() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return in_flight_ == 0; });
  return !failed_;
}

}  // namespace gongdai::bench
