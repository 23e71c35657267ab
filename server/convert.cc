#include "server/convert.h"

#include "engine/money.h"
#include "engine/national_id.h"
#include "engine/strings.h"

namespace gongdai::server {
namespace {

constexpr int64_t kApiAmountFenMax = 10'000'000'000;  // 100 million yuan

void DecisionToApi(const v1::Decision& d, v1::LoanDecision* out) {
  out->set_principal_id(d.principal_id());
  out->set_role(d.role());
  out->set_date(d.date());
  out->set_sequence(d.sequence());
  out->set_note(d.note());
}

}  // namespace

int64_t AmountFen(std::string_view text, std::string_view field, ViolationCollector& violations,
                  bool optional) {
  if (optional && text.empty()) return 0;
  AmountRules rules;
  rules.allow_zero = false;
  rules.max_fen = kApiAmountFenMax;
  absl::StatusOr<Money> money = ParseAmount(text, field, rules);
  if (!money.ok()) {
    violations.AddStatus(field, money.status());
    return 0;
  }
  return static_cast<int64_t>(money->fen());
}

std::string Yuan(int64_t fen) { return Money::FromFen(fen).ToString(); }

v1::ProductTerms TermsFromInput(const v1::ProductTermsInput& input,
                                ViolationCollector& violations) {
  v1::ProductTerms terms;
  terms.set_name(input.name());
  terms.set_funding(input.funding());
  terms.set_bank_id(input.bank_id());
  terms.set_annual_rate(input.annual_rate());
  terms.set_day_count(input.day_count());
  for (int i = 0; i < input.limits_size(); ++i) {
    v1::CategoryLimit* limit = terms.add_limits();
    limit->set_category(input.limits(i).category());
    limit->set_max_amount_fen(AmountFen(input.limits(i).max_amount(),
                                        Cat("terms.limits[", i, "].max_amount"), violations));
    if (limit->max_amount_fen() == 0) limit->set_max_amount_fen(1);  // reported above
  }
  terms.set_term_months_min(input.term_months_min());
  terms.set_term_months_max(input.term_months_max());
  *terms.mutable_methods() = input.methods();
  terms.set_grace_days(input.grace_days());
  if (!input.dual_approval_above().empty()) {
    AmountRules rules;
    rules.max_fen = kApiAmountFenMax;
    absl::StatusOr<Money> threshold =
        ParseAmount(input.dual_approval_above(), "terms.dual_approval_above", rules);
    if (threshold.ok()) {
      terms.set_dual_approval_above_fen(static_cast<int64_t>(threshold->fen()));
    } else {
      violations.AddStatus("terms.dual_approval_above", threshold.status());
    }
  } else {
    violations.Add("terms.dual_approval_above", "REQUIRED",
                   "is required: the amount above which two approvals are needed");
  }
  return terms;
}

v1::BorrowerDetails DetailsFromInput(const v1::BorrowerDetailsInput& input) {
  v1::BorrowerDetails details;
  details.set_name(input.name());
  details.set_phone(input.phone());
  details.set_union_member_number(input.union_member_number());
  details.set_category(input.category());
  details.set_county(input.county());
  details.set_enterprise_name(input.enterprise_name());
  details.set_sector(input.sector());
  return details;
}

v1::Product ProductToApi(const v1::ProductState& state) {
  const v1::ProductTerms& t = state.terms();
  v1::Product p;
  p.set_product_id(state.product_id());
  p.set_name(t.name());
  p.set_funding(t.funding());
  p.set_bank_id(t.bank_id());
  p.set_annual_rate(t.annual_rate());
  p.set_day_count(t.day_count());
  for (const v1::CategoryLimit& limit : t.limits()) {
    v1::CategoryLimitSpec* spec = p.add_limits();
    spec->set_category(limit.category());
    spec->set_max_amount(Yuan(limit.max_amount_fen()));
  }
  p.set_term_months_min(t.term_months_min());
  p.set_term_months_max(t.term_months_max());
  *p.mutable_methods() = t.methods();
  p.set_grace_days(t.grace_days());
  p.set_dual_approval_above(Yuan(t.dual_approval_above_fen()));
  return p;
}

v1::Borrower BorrowerToApi(const v1::BorrowerState& state, bool personal) {
  const v1::BorrowerDetails& d = state.details();
  v1::Borrower b;
  b.set_borrower_id(state.borrower_id());
  b.set_national_id(personal ? state.national_id() : MaskNationalId(state.national_id()));
  b.set_name(d.name());
  b.set_phone(personal ? d.phone() : MaskPhone(d.phone()));
  b.set_union_member_number(d.union_member_number());
  b.set_category(d.category());
  b.set_county(d.county());
  b.set_enterprise_name(d.enterprise_name());
  b.set_sector(d.sector());
  b.set_status(state.status());
  b.set_status_reason(state.status_reason());
  b.set_registered_date(state.registered_date());
  b.set_version(state.changed_sequence());
  return b;
}

void CheckLoanView(v1::LoanView view, std::string_view field, ViolationCollector& violations) {
  if (!v1::LoanView_IsValid(view))
    violations.Add(field, "UNKNOWN_ENUM_VALUE", "is not a loan view");
}

v1::LoanStatus ToEngineStatus(v1::ApiLoanStatus::Value status) {
  return static_cast<v1::LoanStatus>(static_cast<int>(status));
}

v1::ApiLoanStatus::Value ToApiStatus(v1::LoanStatus status) {
  return static_cast<v1::ApiLoanStatus::Value>(static_cast<int>(status));
}

void LoanToApi(const v1::LoanState& s, bool personal, v1::LoanView view, v1::Loan* out) {
  const v1::LoanPosition& position = s.position();
  v1::Loan& loan = *out;
  loan.set_loan_id(s.loan_id());
  loan.set_borrower_id(s.borrower_id());
  loan.set_product_id(s.product_id());
  loan.set_amount(Yuan(s.amount_fen()));
  loan.set_term_months(s.term_months());
  loan.set_method(s.method());
  loan.set_purpose(s.purpose());
  loan.set_jobs_expected(s.jobs_expected());
  loan.set_jobs_reported(s.jobs_reported());
  loan.set_funding(s.funding());
  loan.set_bank_id(s.bank_id());
  loan.set_county(s.county());
  loan.set_category(s.category());
  loan.set_status(ToApiStatus(position.status()));
  DecisionToApi(s.submitted(), loan.mutable_submitted());
  for (const v1::Decision& d : s.approvals()) DecisionToApi(d, loan.add_approvals());
  loan.set_approvals_required(s.approvals_required());
  if (s.has_closed_by()) DecisionToApi(s.closed_by(), loan.mutable_closed_by());
  loan.set_disbursed_date(position.disbursed_date());
  loan.set_principal_outstanding(Yuan(position.principal_outstanding_fen()));
  loan.set_principal_repaid(Yuan(position.principal_repaid_fen()));
  loan.set_subsidy_accrued(Yuan(position.subsidy_accrued_fen()));
  loan.set_written_off(Yuan(position.written_off_fen()));
  loan.set_recovered(Yuan(position.recovered_fen()));
  loan.set_closed_date(position.closed_date());
  if (view != v1::LOAN_VIEW_BASIC) {
    for (int i = 0; i < position.schedule_size(); ++i) {
      v1::ScheduledInstallment* line = loan.add_schedule();
      line->set_number(position.schedule(i).number());
      line->set_due_date(position.schedule(i).due_date());
      line->set_principal(Yuan(position.schedule(i).principal_fen()));
      line->set_paid(Yuan(i < position.paid_fen_size() ? position.paid_fen(i) : 0));
    }
  }
  for (const v1::Guarantor& g : s.guarantors()) {
    v1::Guarantor* guarantor = loan.add_guarantors();
    *guarantor = g;
    if (!personal) guarantor->set_national_id(MaskNationalId(g.national_id()));
  }
  loan.set_annual_rate(s.annual_rate());
  loan.set_grace_days(s.grace_days());
}

void StatementToApi(const LoanStatement& statement, bool personal, v1::LoanStatement* out) {
  LoanToApi(statement.loan, personal, v1::LOAN_VIEW_FULL, out->mutable_loan());
  out->set_as_of(statement.as_of);
  for (const InstallmentLine& line : statement.installments) {
    v1::StatementLine* l = out->add_installments();
    l->set_number(line.installment.number());
    l->set_due_date(line.installment.due_date());
    l->set_principal(Yuan(line.installment.principal_fen()));
    l->set_paid(Yuan(line.paid_fen));
    l->set_unpaid(Yuan(line.unpaid_fen));
    l->set_state(line.state);
  }
  out->set_outstanding(Yuan(statement.delinquency.outstanding_fen));
  out->set_overdue_principal(Yuan(statement.delinquency.overdue_principal_fen));
  out->set_days_past_due(statement.delinquency.days_past_due);
  out->set_aging_bucket(statement.delinquency.bucket);
  for (const v1::Entry& entry : statement.entries) {
    v1::Entry* shown = out->add_entries();
    *shown = entry;
    if (!personal) MaskPersonalData(*shown);
  }
}

std::string Ratio(int64_t numerator, int64_t denominator) {
  if (denominator <= 0) return "0.0000";
  absl::StatusOr<Fen> scaled = DivideRoundHalfEven(Fen(numerator) * 10'000, Fen(denominator));
  const int64_t units = scaled.ok() ? static_cast<int64_t>(*scaled) : 0;
  std::string fraction = std::to_string(units % 10'000);
  fraction.insert(0, 4 - fraction.size(), '0');
  return Cat(units / 10'000, ".", fraction);
}

v1::Portfolio PortfolioToApi(const PortfolioFigures& f) {
  v1::Portfolio p;
  p.set_as_of(f.as_of);
  p.set_loans_outstanding(f.loans_outstanding);
  p.set_outstanding(Yuan(f.outstanding_fen));
  p.set_overdue_principal(Yuan(f.overdue_principal_fen));
  p.set_par30(Yuan(f.par30_fen));
  p.set_par90(Yuan(f.par90_fen));
  p.set_par30_ratio(Ratio(f.par30_fen, f.outstanding_fen));
  p.set_par90_ratio(Ratio(f.par90_fen, f.outstanding_fen));
  for (const PortfolioFigures::Bucket& bucket : f.aging) {
    v1::AgingBucket* b = p.add_aging();
    b->set_bucket(bucket.name);
    b->set_loans(bucket.loans);
    b->set_outstanding(Yuan(bucket.outstanding_fen));
  }
  return p;
}

absl::StatusOr<ReportQuery> ReportQueryFromRequest(const v1::GetProgrammeReportRequest& r) {
  ViolationCollector v;
  ReportQuery query;
  const bool by_dates = !r.from().empty() || !r.to().empty();
  if (by_dates) {
    // Each of year, quarter and month given is named: the one the caller gave is the
    // field to drop.
    for (const auto& [field, value] : {std::pair<const char*, int32_t>{"year", r.year()},
                                       {"quarter", r.quarter()},
                                       {"month", r.month()}}) {
      if (value != 0) {
        v.Add(field, "CONFLICTING_PERIOD",
              "give either a year (with a quarter or month) or from and to, not both");
      }
    }
    if (r.from().empty()) v.Add("from", "REQUIRED", "is required with to");
    if (r.to().empty()) v.Add("to", "REQUIRED", "is required with from");
    query.from = r.from();
    query.to = r.to();
  } else {
    if (r.year() < 1990 || r.year() > 2999)
      v.Add("year", "OUT_OF_RANGE", "must be a year such as 2020 (or give from and to)");
    if (r.quarter() != 0 && r.month() != 0)
      v.Add("month", "CONFLICTING_PERIOD", "give a quarter or a month, not both");
    if (r.quarter() < 0 || r.quarter() > 4) v.Add("quarter", "OUT_OF_RANGE", "must be 1-4");
    if (r.month() < 0 || r.month() > 12) v.Add("month", "OUT_OF_RANGE", "must be 1-12");
    if (v.empty()) {
      int first_month = 1, months = 12;
      if (r.quarter() != 0) first_month = 3 * r.quarter() - 2, months = 3;
      if (r.month() != 0) first_month = r.month(), months = 1;
      const Date from = Date::FromCivil(r.year(), static_cast<unsigned>(first_month), 1);
      query.from = from.ToString();
      query.to = from.PlusMonthsClamped(months).PlusDays(-1).ToString();
    }
  }
  for (int i = 0; i < r.group_by_size(); ++i) {
    switch (r.group_by(i)) {
      case v1::REPORT_DIMENSION_COUNTY:
        query.group_by.push_back(ReportDimension::kCounty);
        break;
      case v1::REPORT_DIMENSION_CATEGORY:
        query.group_by.push_back(ReportDimension::kCategory);
        break;
      case v1::REPORT_DIMENSION_PRODUCT:
        query.group_by.push_back(ReportDimension::kProduct);
        break;
      case v1::REPORT_DIMENSION_FUNDING:
        query.group_by.push_back(ReportDimension::kFunding);
        break;
      default:
        v.Add(Cat("group_by[", i, "]"), "UNKNOWN_ENUM_VALUE", "is not a report dimension");
        break;
    }
  }
  if (!v.empty()) return v.ToStatus();
  return query;
}

namespace {
v1::ReportFigures FiguresToApi(const ReportRow& row) {
  const v1::ReportCounters& f = row.flows;
  v1::ReportFigures out;
  for (const std::string& g : row.group) out.add_group(g);
  out.set_applications_received(f.applications_received());
  out.set_applications_approved(f.applications_approved());
  out.set_applications_rejected(f.applications_rejected());
  out.set_applications_withdrawn(f.applications_withdrawn());
  out.set_loans_disbursed(f.loans_disbursed());
  out.set_amount_disbursed(Yuan(f.disbursed_fen()));
  out.set_jobs_expected(f.jobs_expected());
  out.set_jobs_reported(f.jobs_reported());
  out.set_repayments_received(Yuan(f.repaid_fen()));
  out.set_loans_outstanding(row.loans_outstanding);
  out.set_outstanding_principal(Yuan(row.outstanding_fen));
  out.set_overdue_principal(Yuan(row.overdue_principal_fen));
  out.set_par30(Yuan(row.par30_fen));
  out.set_par90(Yuan(row.par90_fen));
  out.set_par30_ratio(Ratio(row.par30_fen, row.outstanding_fen));
  out.set_par90_ratio(Ratio(row.par90_fen, row.outstanding_fen));
  out.set_principal_due(Yuan(f.principal_due_fen()));
  out.set_principal_repaid_on_time(Yuan(f.principal_repaid_on_time_fen()));
  out.set_on_time_collection_rate(Ratio(f.principal_repaid_on_time_fen(), f.principal_due_fen()));
  out.set_subsidy_accrued(Yuan(f.subsidy_accrued_fen()));
  out.set_subsidy_settled(Yuan(f.subsidy_settled_fen()));
  out.set_written_off(Yuan(f.written_off_fen()));
  out.set_recovered(Yuan(f.recovered_fen()));
  return out;
}
}  // namespace

v1::ProgrammeReport ReportToApi(const ProgrammeReport& report,
                                const v1::GetProgrammeReportRequest& request) {
  v1::ProgrammeReport out;
  out.set_from(report.from);
  out.set_to(report.to);
  *out.mutable_group_by() = request.group_by();
  for (const ReportRow& row : report.rows) *out.add_rows() = FiguresToApi(row);
  *out.mutable_total() = FiguresToApi(report.total);
  return out;
}

}  // namespace gongdai::server
