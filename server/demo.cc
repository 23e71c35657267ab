#include "server/demo.h"

#include <array>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <queue>

#include "engine/national_id.h"
#include "engine/status.h"
#include "engine/strings.h"

namespace gongdai::server {
namespace {

// A small deterministic generator (SplitMix64), the same on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  int Below(int n) { return static_cast<int>(Next() % static_cast<uint64_t>(n)); }
  int Between(int low, int high) { return low + Below(high - low + 1); }
  bool Percent(int p) { return Below(100) < p; }

 private:
  uint64_t state_;
};

struct County {
  const char* name;
  const char* region;  // the first six digits of a resident's national ID number
};

constexpr std::array<County, 13> kCounties = {{{"吉州区", "360802"},
                                               {"青原区", "360803"},
                                               {"吉安县", "360821"},
                                               {"吉水县", "360822"},
                                               {"峡江县", "360823"},
                                               {"新干县", "360824"},
                                               {"永丰县", "360825"},
                                               {"泰和县", "360826"},
                                               {"遂川县", "360827"},
                                               {"万安县", "360828"},
                                               {"安福县", "360829"},
                                               {"永新县", "360830"},
                                               {"井冈山市", "360881"}}};

constexpr std::array<const char*, 20> kSurnames = {"刘", "王", "李", "张", "陈", "杨", "黄",
                                                   "赵", "周", "吴", "罗", "曾", "彭", "肖",
                                                   "郭", "胡", "邓", "袁", "谢", "钟"};
constexpr std::array<const char*, 24> kGiven = {
    "建华", "秀英", "志强", "丽萍", "国平", "海燕", "春生", "桂兰", "文斌", "小红", "冬梅", "永福",
    "红梅", "金水", "玉珍", "卫东", "晓峰", "美玲", "家明", "淑芬", "振宇", "雪琴", "德胜", "婷"};
struct Trade {
  const char* enterprise;
  const char* sector;
  const char* purpose;
};
constexpr std::array<Trade, 10> kTrades = {{{"井冈蜜柚种植合作社", "特色种植", "扩大蜜柚种植面积"},
                                            {"庐陵农家乐", "乡村旅游", "改造客房与餐厅"},
                                            {"绿源生态养殖场", "生态养殖", "新建标准化猪舍"},
                                            {"吉安竹木制品厂", "竹木加工", "购置竹制品加工设备"},
                                            {"赣味米粉坊", "食品加工", "新增米粉生产线"},
                                            {"红土地电商服务部", "农村电商", "建设仓储与直播间"},
                                            {"巧手家政服务社", "家政服务", "培训与招聘家政人员"},
                                            {"井冈山红色研学基地", "文化旅游", "购置研学接待设施"},
                                            {"狗牯脑茶叶加工厂", "茶叶加工", "更新炒茶设备"},
                                            {"金牌汽修店", "汽车维修", "购置检测设备"}}};

v1::Actor Person(const char* id, const char* role) {
  v1::Actor actor;
  actor.set_principal_id(id);
  actor.set_role(role);
  return actor;
}

const std::array<v1::Actor, 4>& Officers() {
  static const std::array<v1::Actor, 4> kOfficers = {
      Person("officer.liujh", "officer"), Person("officer.wangf", "officer"),
      Person("officer.chenl", "officer"), Person("officer.zhoum", "officer")};
  return kOfficers;
}
const std::array<v1::Actor, 3>& Approvers() {
  static const std::array<v1::Actor, 3> kApprovers = {Person("approver.huangw", "approver"),
                                                      Person("approver.luoq", "approver"),
                                                      Person("approver.xiaoj", "approver")};
  return kApprovers;
}
const std::array<v1::Actor, 2>& Cashiers() {
  static const std::array<v1::Actor, 2> kCashiers = {Person("cashier.yangh", "cashier"),
                                                     Person("cashier.dengh", "cashier")};
  return kCashiers;
}
const v1::Actor& Supervisor() {
  static const v1::Actor kSupervisor = Person("supervisor.guoq", "supervisor");
  return kSupervisor;
}

constexpr const char* kFundProduct = "luling-fund-2020";
constexpr const char* kBankProduct = "luling-psbc-2020";

enum class Behaviour { kPunctual, kEarly, kLate, kPartial, kDefaulting };

struct Applicant {
  int county = 0;
  v1::BorrowerCategory category = v1::BORROWER_CATEGORY_ORDINARY_MEMBER;
  int trade = 0;
  std::string name;
  std::string national_id;
  std::string phone;
  std::string borrower_id;  // once registered
};

struct PlannedLoan {
  Applicant applicant;
  bool bank = false;
  int64_t amount_fen = 0;
  int term_months = 12;
  v1::RepaymentMethod method = v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY;
  int jobs = 1;
  Date register_date, submit_date, approve_date, disburse_date;
  Behaviour behaviour = Behaviour::kPunctual;
  int paid_installments_before_default = 0;
  int officer = 0;
  int approver = 0;
  // Rejected and withdrawn applications never reach disbursement.
  enum class Outcome {
    kDisbursed,
    kRejected,
    kWithdrawnSubmitted,
    kWithdrawnApproved
  } outcome = Outcome::kDisbursed;
  std::string loan_id;  // once submitted
  bool jobs_follow_up = false;
  bool reversal_demo = false;
  bool write_off_demo = false;
};

// An action runs on a date, in a phase of that day; all actions of one (date, phase)
// are submitted together and so commit as one batch.
enum Phase {
  kContribute,
  kDefine,
  kRegister,
  kSubmit,
  kApproveFirst,
  kApproveSecond,
  kDecide,
  kDisburse,
  kRepay,
  kWrongRepay,
  kReverse,
  kCorrectRepay,
  kJobs,
  kAccrue,
  kSettle,
  kWriteOff,
  kRecover,
  kPhaseCount
};

struct Action {
  Date date;
  int phase = 0;
  uint64_t order = 0;
  // Builds the command when the action runs (nullopt: nothing to do any more).
  std::function<std::optional<Command>()> make;
  std::function<absl::Status(const CommandResult&)> after;
};

struct Later {
  bool operator()(const Action& a, const Action& b) const {
    if (a.date != b.date) return a.date > b.date;
    if (a.phase != b.phase) return a.phase > b.phase;
    return a.order > b.order;
  }
};

Date D(std::string_view text) { return *ParseDate(text, "date"); }

bool Weekend(Date d) {
  const int weekday = (d.days_since_epoch() + 4) % 7;  // 1970-01-01 was a Thursday (4)
  return weekday == 0 || weekday == 6;
}

Date NextWorkday(Date d) {
  while (Weekend(d)) d = d.PlusDays(1);
  return d;
}

v1::ProductTerms FundTerms() {
  v1::ProductTerms t;
  t.set_name("庐陵工贷·工会创业互助金");
  t.set_funding(v1::FUNDING_UNION_FUND);
  auto limit = [&](v1::BorrowerCategory c, int64_t yuan) {
    v1::CategoryLimit* l = t.add_limits();
    l->set_category(c);
    l->set_max_amount_fen(yuan * 100);
  };
  limit(v1::BORROWER_CATEGORY_ORDINARY_MEMBER, 100'000);
  limit(v1::BORROWER_CATEGORY_MODEL_WORKER, 300'000);
  t.set_term_months_min(6);
  t.set_term_months_max(24);
  t.add_methods(v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY);
  t.add_methods(v1::REPAYMENT_METHOD_BULLET);
  t.set_grace_days(5);
  t.set_dual_approval_above_fen(20'000'000);
  return t;
}

v1::ProductTerms BankTerms() {
  v1::ProductTerms t;
  t.set_name("庐陵工贷·邮储银行贴息贷款");
  t.set_funding(v1::FUNDING_PARTNER_BANK);
  t.set_bank_id("psbc");
  t.set_annual_rate("0.0435");
  t.set_day_count(v1::DAY_COUNT_CONVENTION_ACT_360);
  auto limit = [&](v1::BorrowerCategory c, int64_t yuan) {
    v1::CategoryLimit* l = t.add_limits();
    l->set_category(c);
    l->set_max_amount_fen(yuan * 100);
  };
  limit(v1::BORROWER_CATEGORY_ORDINARY_MEMBER, 100'000);
  limit(v1::BORROWER_CATEGORY_MODEL_WORKER, 300'000);
  limit(v1::BORROWER_CATEGORY_SMALL_ENTERPRISE, 500'000);
  t.set_term_months_min(12);
  t.set_term_months_max(36);
  t.add_methods(v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY);
  t.add_methods(v1::REPAYMENT_METHOD_BULLET);
  t.set_grace_days(3);
  t.set_dual_approval_above_fen(30'000'000);
  return t;
}

class DemoBuilder {
 public:
  DemoBuilder(Ledger& ledger, uint64_t seed) : ledger_(ledger), rng_(seed) {}

  absl::StatusOr<DemoSummary> Run();

 private:
  void Plan();
  Applicant NewApplicant(int county, v1::BorrowerCategory category);
  void PlanAmountsAndJobs();
  void Schedule(Date date, int phase, std::function<std::optional<Command>()> make,
                std::function<absl::Status(const CommandResult&)> after = nullptr);
  Command MakeCommand(const v1::Actor& actor, Date date, v1::Event event);
  void ScheduleApplication(PlannedLoan& loan);
  absl::Status ScheduleRepayments(PlannedLoan& loan, const v1::Entry& disbursement);
  absl::Status Execute();

  Ledger& ledger_;
  Rng rng_;
  std::vector<PlannedLoan> loans_;  // disbursed ones first, then the others
  std::priority_queue<Action, std::vector<Action>, Later> actions_;
  uint64_t order_ = 0;
  uint64_t request_ = 0;
  int national_id_serial_ = 0;
  DemoSummary summary_;
  const Date end_ = D(kDemoBusinessDate);
};

Applicant DemoBuilder::NewApplicant(int county, v1::BorrowerCategory category) {
  Applicant a;
  a.county = county;
  a.category = category;
  a.trade = rng_.Below(static_cast<int>(kTrades.size()));
  a.name = Cat(kSurnames[static_cast<size_t>(rng_.Below(20))],
               kGiven[static_cast<size_t>(rng_.Below(24))]);
  const Date born = D("1962-01-01").PlusDays(rng_.Below(33 * 365));
  const std::string birth =
      Cat(born.ToString().substr(0, 4), born.ToString().substr(5, 2), born.ToString().substr(8, 2));
  std::string serial = std::to_string(100 + (++national_id_serial_ % 900));
  const std::string first17 = Cat(kCounties[static_cast<size_t>(county)].region, birth, serial);
  a.national_id = first17 + NationalIdCheckCharacter(first17);
  a.phone = Cat("13", rng_.Between(5, 9), rng_.Between(10000000, 99999999));
  return a;
}

void DemoBuilder::Plan() {
  // 330 disbursed loans: 110 ordinary members, 120 model workers, 100 small enterprises.
  for (int i = 0; i < kDemoLoans; ++i) {
    PlannedLoan loan;
    const v1::BorrowerCategory category = i < 110   ? v1::BORROWER_CATEGORY_ORDINARY_MEMBER
                                          : i < 230 ? v1::BORROWER_CATEGORY_MODEL_WORKER
                                                    : v1::BORROWER_CATEGORY_SMALL_ENTERPRISE;
    loan.applicant = NewApplicant(i % static_cast<int>(kCounties.size()), category);
    loan.bank = category == v1::BORROWER_CATEGORY_SMALL_ENTERPRISE || rng_.Percent(45);
    loan.term_months = loan.bank ? 12 * rng_.Between(1, 3) : (rng_.Percent(60) ? 12 : 24);
    loan.method = rng_.Percent(75) ? v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY
                                   : v1::REPAYMENT_METHOD_BULLET;
    loan.disburse_date = NextWorkday(D("2020-01-20").PlusDays(rng_.Below(340)));
    loan.submit_date = NextWorkday(loan.disburse_date.PlusDays(-rng_.Between(8, 15)));
    loan.approve_date = NextWorkday(loan.submit_date.PlusDays(rng_.Between(1, 4)));
    if (loan.approve_date >= loan.disburse_date) loan.approve_date = loan.submit_date.PlusDays(1);
    loan.register_date = std::max(D("2020-01-06"), loan.submit_date.PlusDays(-rng_.Between(0, 5)));
    const int roll = rng_.Below(100);
    loan.behaviour = roll < 60   ? Behaviour::kPunctual
                     : roll < 68 ? Behaviour::kEarly
                     : roll < 85 ? Behaviour::kLate
                     : roll < 93 ? Behaviour::kPartial
                                 : Behaviour::kDefaulting;
    loan.paid_installments_before_default = rng_.Between(1, 4);
    loan.officer = rng_.Below(4);
    loan.approver = rng_.Below(3);
    loan.jobs_follow_up = rng_.Percent(55);
    loans_.push_back(std::move(loan));
  }
  PlanAmountsAndJobs();
  // One loan shows a corrected cashier error (a reversal); one defaulted loan is written
  // off and partly recovered.
  for (PlannedLoan& loan : loans_) {
    if (!loan.bank && loan.behaviour == Behaviour::kPunctual && loan.term_months == 24 &&
        loan.method == v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY &&
        loan.disburse_date < D("2020-06-01")) {
      loan.reversal_demo = true;
      break;
    }
  }
  for (PlannedLoan& loan : loans_) {
    if (!loan.bank && !loan.reversal_demo && loan.disburse_date < D("2020-04-01") &&
        loan.method == v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY) {
      loan.behaviour = Behaviour::kDefaulting;
      loan.paid_installments_before_default = 2;
      loan.write_off_demo = true;
      break;
    }
  }
  // Applications that never became loans: 40 rejected, 15 withdrawn.
  for (int i = 0; i < 55; ++i) {
    PlannedLoan application;
    application.applicant = NewApplicant(rng_.Below(static_cast<int>(kCounties.size())),
                                         rng_.Percent(60) ? v1::BORROWER_CATEGORY_ORDINARY_MEMBER
                                                          : v1::BORROWER_CATEGORY_MODEL_WORKER);
    application.bank = rng_.Percent(50);
    application.amount_fen = int64_t{10'000} * 100 * rng_.Between(3, 10);
    application.term_months = 12;
    application.jobs = rng_.Between(1, 4);
    application.submit_date = NextWorkday(D("2020-02-03").PlusDays(rng_.Below(320)));
    application.register_date = application.submit_date;
    application.approve_date = NextWorkday(application.submit_date.PlusDays(rng_.Between(2, 6)));
    application.disburse_date = NextWorkday(application.approve_date.PlusDays(rng_.Between(2, 6)));
    application.officer = rng_.Below(4);
    application.approver = rng_.Below(3);
    application.outcome = i < 40   ? PlannedLoan::Outcome::kRejected
                          : i < 48 ? PlannedLoan::Outcome::kWithdrawnSubmitted
                                   : PlannedLoan::Outcome::kWithdrawnApproved;
    loans_.push_back(std::move(application));
  }
}

void DemoBuilder::PlanAmountsAndJobs() {
  // Amounts in steps of 10,000 yuan within each category's limit, then nudged one step at
  // a time until they add up to exactly 62,470,000.00 yuan.
  auto bounds = [](const PlannedLoan& loan) -> std::pair<int, int> {
    switch (loan.applicant.category) {
      case v1::BORROWER_CATEGORY_ORDINARY_MEMBER:
        return {3, 10};
      case v1::BORROWER_CATEGORY_MODEL_WORKER:
        return {5, 30};
      default:
        return {10, 50};
    }
  };
  constexpr int64_t kStepFen = 1'000'000;  // 10,000 yuan
  int64_t steps = 0;
  for (PlannedLoan& loan : loans_) {
    auto [low, high] = bounds(loan);
    loan.amount_fen = kStepFen * rng_.Between(low, high);
    steps += loan.amount_fen / kStepFen;
  }
  const int64_t target = kDemoDisbursedFen / kStepFen;
  while (steps != target) {
    PlannedLoan& loan = loans_[static_cast<size_t>(rng_.Below(kDemoLoans))];
    auto [low, high] = bounds(loan);
    const int64_t units = loan.amount_fen / kStepFen;
    if (steps > target && units > low) {
      loan.amount_fen -= kStepFen;
      --steps;
    } else if (steps < target && units < high) {
      loan.amount_fen += kStepFen;
      ++steps;
    }
  }
  int jobs = 0;
  for (PlannedLoan& loan : loans_) {
    loan.jobs = std::clamp(static_cast<int>(loan.amount_fen / 2'500'000), 1, 40) + rng_.Below(3);
    jobs += loan.jobs;
  }
  while (jobs != kDemoJobs) {
    PlannedLoan& loan = loans_[static_cast<size_t>(rng_.Below(kDemoLoans))];
    if (jobs < kDemoJobs) {
      ++loan.jobs;
      ++jobs;
    } else if (loan.jobs > 1) {
      --loan.jobs;
      --jobs;
    }
  }
}

void DemoBuilder::Schedule(Date date, int phase, std::function<std::optional<Command>()> make,
                           std::function<absl::Status(const CommandResult&)> after) {
  actions_.push(Action{date, phase, ++order_, std::move(make), std::move(after)});
}

Command DemoBuilder::MakeCommand(const v1::Actor& actor, Date date, v1::Event event) {
  Command command;
  command.request_id = Cat("demo-", ++request_);
  command.actor = actor;
  command.business_date = date.ToString();
  command.event = std::move(event);
  return command;
}

void DemoBuilder::ScheduleApplication(PlannedLoan& loan) {
  PlannedLoan* l = &loan;
  const v1::Actor& officer = Officers()[static_cast<size_t>(loan.officer)];
  const v1::Actor& approver = Approvers()[static_cast<size_t>(loan.approver)];
  Schedule(
      loan.register_date, kRegister,
      [this, l, &officer] {
        v1::Event e;
        v1::BorrowerRegistered* r = e.mutable_borrower_registered();
        r->set_national_id(l->applicant.national_id);
        v1::BorrowerDetails* d = r->mutable_details();
        const Trade& trade = kTrades[static_cast<size_t>(l->applicant.trade)];
        d->set_name(l->applicant.name);
        d->set_phone(l->applicant.phone);
        d->set_union_member_number(Cat("JA-", 100000 + (l - loans_.data())));
        d->set_category(l->applicant.category);
        d->set_county(kCounties[static_cast<size_t>(l->applicant.county)].name);
        d->set_enterprise_name(Cat(l->applicant.name.substr(0, 3), "·", trade.enterprise));
        d->set_sector(trade.sector);
        return MakeCommand(officer, l->register_date, std::move(e));
      },
      [this, l](const CommandResult& r) {
        l->applicant.borrower_id = r.entry.event().borrower_registered().borrower_id();
        ++summary_.borrowers;
        return absl::OkStatus();
      });
  Schedule(
      loan.submit_date, kSubmit,
      [this, l, &officer] {
        v1::Event e;
        v1::ApplicationSubmitted* a = e.mutable_application_submitted();
        a->set_borrower_id(l->applicant.borrower_id);
        a->set_product_id(l->bank ? kBankProduct : kFundProduct);
        a->set_amount_fen(l->amount_fen);
        a->set_term_months(l->term_months);
        a->set_method(l->method);
        a->set_purpose(kTrades[static_cast<size_t>(l->applicant.trade)].purpose);
        a->set_jobs_expected(l->jobs);
        return MakeCommand(officer, l->submit_date, std::move(e));
      },
      [l](const CommandResult& r) {
        l->loan_id = r.entry.event().application_submitted().loan_id();
        return absl::OkStatus();
      });
  auto approve = [this, l](const v1::Actor& who) {
    return [this, l, &who]() -> std::optional<Command> {
      v1::Event e;
      e.mutable_approval_granted()->set_loan_id(l->loan_id);
      e.mutable_approval_granted()->set_note("材料齐全, 同意");
      return MakeCommand(who, l->approve_date, std::move(e));
    };
  };
  using Outcome = PlannedLoan::Outcome;
  if (loan.outcome == Outcome::kRejected) {
    Schedule(
        loan.approve_date, kDecide,
        [this, l, &approver] {
          static constexpr std::array<const char*, 4> kReasons = {
              "经营计划不完整", "担保条件不足", "近三年有不良信用记录", "项目不符合扶持方向"};
          v1::Event e;
          e.mutable_application_rejected()->set_loan_id(l->loan_id);
          e.mutable_application_rejected()->set_reason(
              kReasons[static_cast<size_t>(rng_.Below(4))]);
          return MakeCommand(approver, l->approve_date, std::move(e));
        },
        [this](const CommandResult&) {
          ++summary_.applications_rejected;
          return absl::OkStatus();
        });
    return;
  }
  if (loan.outcome != Outcome::kWithdrawnSubmitted)
    Schedule(loan.approve_date, kApproveFirst, approve(approver));
  if (loan.outcome != Outcome::kDisbursed) {
    Schedule(
        loan.disburse_date, kDecide,
        [this, l, &officer] {
          v1::Event e;
          e.mutable_application_withdrawn()->set_loan_id(l->loan_id);
          e.mutable_application_withdrawn()->set_reason("申请人已另行筹措资金");
          return MakeCommand(officer, l->disburse_date, std::move(e));
        },
        [this](const CommandResult&) {
          ++summary_.applications_withdrawn;
          return absl::OkStatus();
        });
    return;
  }
  const int64_t threshold = (l->bank ? BankTerms() : FundTerms()).dual_approval_above_fen();
  if (loan.amount_fen > threshold) {
    const v1::Actor& second = Approvers()[static_cast<size_t>((loan.approver + 1) % 3)];
    Schedule(loan.approve_date, kApproveSecond, approve(second));
  }
  const v1::Actor& cashier = Cashiers()[static_cast<size_t>(rng_.Below(2))];
  Schedule(
      loan.disburse_date, kDisburse,
      [this, l, &cashier] {
        v1::Event e;
        e.mutable_loan_disbursed()->set_loan_id(l->loan_id);
        e.mutable_loan_disbursed()->set_amount_fen(l->amount_fen);
        return MakeCommand(cashier, l->disburse_date, std::move(e));
      },
      [this, l](const CommandResult& r) {
        ++summary_.loans_disbursed;
        summary_.disbursed_fen += l->amount_fen;
        summary_.jobs_expected += l->jobs;
        return ScheduleRepayments(*l, r.entry);
      });
}

absl::Status DemoBuilder::ScheduleRepayments(PlannedLoan& loan, const v1::Entry& disbursement) {
  PlannedLoan* l = &loan;
  std::map<Date, int64_t> payments;
  int64_t planned = 0;
  const auto& schedule = disbursement.event().loan_disbursed().schedule();
  auto pay = [&](Date date, int64_t amount) {
    amount = std::min(amount, loan.amount_fen - planned);
    if (amount <= 0 || date > end_ || date <= loan.disburse_date) return;
    payments[date] += amount;
    planned += amount;
  };
  for (int k = 0; k < schedule.size(); ++k) {
    const Date due = D(schedule[k].due_date());
    const int64_t principal = schedule[k].principal_fen();
    switch (loan.behaviour) {
      case Behaviour::kPunctual:
        pay(due.PlusDays(-rng_.Between(0, 2)), principal);
        break;
      case Behaviour::kEarly:
        pay(due,
            principal + (k == 2 && k + 1 < schedule.size() ? schedule[k + 1].principal_fen() : 0));
        break;
      case Behaviour::kLate:
        pay(due.PlusDays(rng_.Between(6, 40)), principal);
        break;
      case Behaviour::kPartial:
        pay(due, principal / 2);
        pay(due.PlusDays(15), principal - principal / 2);
        break;
      case Behaviour::kDefaulting:
        if (k < loan.paid_installments_before_default) pay(due, principal);
        break;
    }
  }
  const v1::Actor& cashier = Cashiers()[static_cast<size_t>(rng_.Below(2))];
  bool reversal_shown = false;
  for (const auto& [date, amount] : payments) {
    const Date day = date;
    const int64_t fen = amount;
    auto repay = [this, l, &cashier, day](int64_t value) {
      return [this, l, &cashier, day, value]() -> std::optional<Command> {
        v1::Event e;
        v1::RepaymentRecorded* r = e.mutable_repayment_recorded();
        r->set_loan_id(l->loan_id);
        r->set_amount_fen(value);
        r->set_channel(v1::PAYMENT_CHANNEL_AUTO_DEBIT);
        r->set_reference(Cat("PSBC-", day.ToString(), "-", l->loan_id));
        return MakeCommand(cashier, day, std::move(e));
      };
    };
    if (loan.reversal_demo && !reversal_shown && day > loan.disburse_date.PlusDays(70)) {
      // The cashier types ten times the amount; the supervisor reverses it the same day
      // and the right amount is recorded after.
      reversal_shown = true;
      auto wrong = std::make_shared<uint64_t>(0);
      Schedule(day, kWrongRepay, repay(fen * 10), [wrong](const CommandResult& r) {
        *wrong = r.entry.sequence();
        return absl::OkStatus();
      });
      Schedule(day, kReverse, [this, wrong, day]() -> std::optional<Command> {
        v1::Event e;
        e.mutable_entry_reversed()->set_reversed_sequence(*wrong);
        e.mutable_entry_reversed()->set_reason("金额录入错误 (多录一位), 冲正后重录");
        return MakeCommand(Supervisor(), day, std::move(e));
      });
      Schedule(day, kCorrectRepay, repay(fen));
      continue;
    }
    Schedule(day, kRepay, repay(fen));
  }
  if (loan.jobs_follow_up && loan.disburse_date.PlusMonthsClamped(6) <= end_) {
    const Date visit = NextWorkday(loan.disburse_date.PlusMonthsClamped(6));
    const int created = std::max(0, loan.jobs + rng_.Between(-2, 3));
    if (visit <= end_) {
      const v1::Actor& officer = Officers()[static_cast<size_t>(loan.officer)];
      Schedule(visit, kJobs, [this, l, &officer, visit, created]() -> std::optional<Command> {
        v1::Event e;
        e.mutable_jobs_reported()->set_loan_id(l->loan_id);
        e.mutable_jobs_reported()->set_jobs_created(created);
        e.mutable_jobs_reported()->set_note("回访核实用工人数");
        return MakeCommand(officer, visit, std::move(e));
      });
    }
  }
  if (loan.write_off_demo) {
    Schedule(D("2021-03-15"), kWriteOff, [this, l]() -> std::optional<Command> {
      v1::Event e;
      e.mutable_loan_written_off()->set_loan_id(l->loan_id);
      e.mutable_loan_written_off()->set_reason(
          "借款人经营失败外出务工, 催收逾180天无果, 经审批核销");
      return MakeCommand(Supervisor(), D("2021-03-15"), std::move(e));
    });
    Schedule(D("2021-03-25"), kRecover, [this, l]() -> std::optional<Command> {
      absl::StatusOr<v1::LoanState> state = ledger_.GetLoan(l->loan_id);
      if (!state.ok()) return std::nullopt;
      v1::Event e;
      e.mutable_recovery_recorded()->set_loan_id(l->loan_id);
      e.mutable_recovery_recorded()->set_amount_fen(state->position().written_off_fen() * 3 / 10);
      e.mutable_recovery_recorded()->set_channel(v1::PAYMENT_CHANNEL_CASH);
      e.mutable_recovery_recorded()->set_reference("担保人代偿");
      return MakeCommand(Cashiers()[0], D("2021-03-25"), std::move(e));
    });
  }
  return absl::OkStatus();
}

absl::Status DemoBuilder::Execute() {
  while (!actions_.empty()) {
    const Date date = actions_.top().date;
    const int phase = actions_.top().phase;
    std::vector<Action> group;
    while (!actions_.empty() && actions_.top().date == date && actions_.top().phase == phase) {
      group.push_back(actions_.top());
      actions_.pop();
    }
    std::vector<std::future<CommandResult>> results(group.size());
    std::vector<std::optional<Command>> commands(group.size());
    for (size_t i = 0; i < group.size(); ++i) {
      commands[i] = group[i].make();
      if (!commands[i].has_value()) continue;
      auto promise = std::make_shared<std::promise<CommandResult>>();
      results[i] = promise->get_future();
      ledger_.Submit(*commands[i],
                     [promise](CommandResult r) { promise->set_value(std::move(r)); });
    }
    for (size_t i = 0; i < group.size(); ++i) {
      if (!commands[i].has_value()) continue;
      CommandResult result = results[i].get();
      if (!result.status.ok()) {
        return absl::InternalError(
            Cat("demo book: ", date.ToString(), " phase ", phase, ": ",
                commands[i]->event.ShortDebugString(), ": ",
                std::string_view(result.status.message().data(), result.status.message().size())));
      }
      if (group[i].after) {
        absl::Status after = group[i].after(result);
        if (!after.ok()) return after;
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<DemoSummary> DemoBuilder::Run() {
  if (ledger_.Head().sequence != 0) {
    return Refused("LEDGER_NOT_EMPTY", "the demo book is loaded only into an empty ledger");
  }
  if (ledger_.Today() < end_) {
    return Refused("BUSINESS_DATE_TOO_EARLY",
                   Cat("the demo book runs through ", kDemoBusinessDate,
                       "; today's business date is ", ledger_.Today().ToString()));
  }
  Plan();
  const Date start = D("2020-01-02");
  Schedule(start, kDefine, [this, start]() -> std::optional<Command> {
    v1::Event e;
    e.mutable_product_defined()->set_product_id(kFundProduct);
    *e.mutable_product_defined()->mutable_terms() = FundTerms();
    return MakeCommand(Supervisor(), start, std::move(e));
  });
  Schedule(start, kDefine, [this, start]() -> std::optional<Command> {
    v1::Event e;
    e.mutable_product_defined()->set_product_id(kBankProduct);
    *e.mutable_product_defined()->mutable_terms() = BankTerms();
    return MakeCommand(Supervisor(), start, std::move(e));
  });
  int64_t fund_loans_fen = 0;
  for (const PlannedLoan& loan : loans_) {
    if (!loan.bank && loan.outcome == PlannedLoan::Outcome::kDisbursed)
      fund_loans_fen += loan.amount_fen;
  }
  // The revolving fund: the city federation's capital, topped up by the province.
  const std::array<std::pair<const char*, int64_t>, 2> contributions = {
      {{"吉安市总工会", fund_loans_fen * 6 / 10},
       {"江西省总工会 (专项资金)", fund_loans_fen * 5 / 10}}};
  for (const auto& [source, amount] : contributions) {
    Schedule(start, kContribute, [this, start, source, amount]() -> std::optional<Command> {
      v1::Event e;
      e.mutable_fund_contributed()->set_amount_fen(amount);
      e.mutable_fund_contributed()->set_source(source);
      e.mutable_fund_contributed()->set_reference("2020年度创业互助金");
      return MakeCommand(Cashiers()[0], start, std::move(e));
    });
  }
  for (PlannedLoan& loan : loans_) ScheduleApplication(loan);
  // Quarterly: the subsidy of every active partner-bank loan is posted, then settled with
  // the bank ten days later (the last quarter only in part, so something is owed).
  for (const char* quarter : {"2020-04-01", "2020-07-01", "2020-10-01", "2021-01-01"}) {
    const Date day = D(quarter);
    for (PlannedLoan& loan : loans_) {
      if (!loan.bank || loan.outcome != PlannedLoan::Outcome::kDisbursed ||
          loan.disburse_date >= day)
        continue;
      PlannedLoan* l = &loan;
      Schedule(day, kAccrue, [this, l, day]() -> std::optional<Command> {
        absl::StatusOr<v1::LoanState> state = ledger_.GetLoan(l->loan_id);
        if (!state.ok() || state->position().status() != v1::LOAN_STATUS_ACTIVE)
          return std::nullopt;
        v1::Event e;
        e.mutable_subsidy_accrued()->set_loan_id(l->loan_id);
        return MakeCommand(Cashiers()[1], day, std::move(e));
      });
    }
    const Date settle = day.PlusDays(9);
    const bool last = day == D("2021-01-01");
    Schedule(settle, kSettle, [this, settle, last]() -> std::optional<Command> {
      absl::StatusOr<Money> payable = ledger_.GetBalance("bank:psbc:subsidy_payable");
      if (!payable.ok() || payable->fen() >= 0) return std::nullopt;
      const int64_t owed = static_cast<int64_t>(-payable->fen());
      v1::Event e;
      e.mutable_subsidy_settled()->set_bank_id("psbc");
      e.mutable_subsidy_settled()->set_amount_fen(last ? owed * 9 / 10 : owed);
      e.mutable_subsidy_settled()->set_reference(Cat("贴息结算-", settle.ToString()));
      return MakeCommand(Supervisor(), settle, std::move(e));
    });
  }
  absl::Status executed = Execute();
  if (!executed.ok()) return executed;
  summary_.entries = ledger_.Head().sequence;
  return summary_;
}

}  // namespace

absl::StatusOr<DemoSummary> LoadDemoBook(Ledger& ledger, uint64_t seed) {
  DemoBuilder builder(ledger, seed);
  return builder.Run();
}

}  // namespace gongdai::server
