#include "client/render.h"

#include <cstdio>

#include "client/enums.h"
#include "client/table.h"
#include "engine/date.h"
#include "engine/sha256.h"

namespace gongdai::client {
namespace {

std::string OrDash(const std::string& text) { return text.empty() ? "-" : text; }

// A count with thousands separators: 2,556.
std::string Count(int64_t n) {
  const std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (n < 0 ? "-" : "") + out;
}

std::string Decision(const v1::LoanDecision& d) {
  std::string out = d.date() + " by " + d.principal_id();
  if (!d.role().empty()) out += " (" + d.role() + ")";
  if (!d.note().empty()) out += ": " + d.note();
  return out;
}

std::string Months(int32_t months) {
  return std::to_string(months) + (months == 1 ? " month" : " months");
}

std::string Plural(int64_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

std::string Joined(const google::protobuf::RepeatedField<int>& values, const EnumWords& words) {
  std::string out;
  for (int v : values) out += (out.empty() ? "" : ", ") + words.Name(v);
  return out;
}

std::string FundingText(int funding, const std::string& bank_id, const std::string& rate,
                        int day_count) {
  std::string out = FundingWords().Name(funding);
  if (funding == v1::FUNDING_PARTNER_BANK) {
    out += " " + bank_id;
    if (!rate.empty()) out += " at " + FormatPercent(rate) + " a year";
    if (day_count != 0) out += " (" + DayCountWords().Name(day_count) + ")";
  }
  return out;
}

// "Heading\n" then the rendered table, for a section after a blank line.
std::string Section(std::string_view heading, const Table& table) {
  return "\n" + std::string(heading) + "\n" + table.Render();
}

std::string Channel(int channel, const std::string& reference) {
  std::string out = ChannelWords().Name(channel);
  if (!reference.empty()) out += ", ref " + reference;
  return out;
}

int64_t AccrualTotal(const Repeated<v1::AccrualPeriod>& periods) {
  int64_t total = 0;
  for (const v1::AccrualPeriod& p : periods) total += p.amount_fen();
  return total;
}

std::string Installments(const Repeated<v1::Allocation>& allocations) {
  if (allocations.empty()) return "";
  const int first = allocations.begin()->installment();
  const int last = allocations.rbegin()->installment();
  return first == last ? "installment " + std::to_string(first)
                       : "installments " + std::to_string(first) + "-" + std::to_string(last);
}

Table EntriesTable(bool with_subject) {
  std::vector<Table::Column> columns = {{"Entry", Align::kRight},
                                        {"Date", Align::kLeft},
                                        {"Recorded", Align::kLeft},
                                        {"By", Align::kLeft},
                                        {"Event", Align::kLeft}};
  if (with_subject) columns.push_back({"Subject", Align::kLeft});
  columns.push_back({"Amount", Align::kRight});
  columns.push_back({"Detail", Align::kLeft});
  return Table(std::move(columns));
}

void AddEntryRow(Table& table, const v1::Entry& entry, bool with_subject) {
  const EventSummary s = Summarize(entry.event());
  std::vector<std::string> row = {std::to_string(entry.sequence()), entry.business_date(),
                                  ShanghaiTime(entry.recorded_at_us()),
                                  entry.actor().principal_id(), s.kind};
  if (with_subject) row.push_back(s.subject);
  row.push_back(s.amount);
  row.push_back(s.detail);
  table.AddRow(std::move(row));
}

}  // namespace

std::string ShanghaiTime(int64_t unix_us) {
  if (unix_us == 0) return "-";
  int64_t seconds = unix_us / 1'000'000 + int64_t{8} * 3600;
  if (unix_us < 0 && unix_us % 1'000'000 != 0) seconds -= 1;
  int64_t days = seconds / 86'400;
  int64_t in_day = seconds % 86'400;
  if (in_day < 0) {
    in_day += 86'400;
    days -= 1;
  }
  char time[16];
  std::snprintf(time, sizeof(time), " %02d:%02d:%02d", static_cast<int>(in_day / 3600),
                static_cast<int>(in_day / 60 % 60), static_cast<int>(in_day % 60));
  return Date::FromDays(static_cast<int32_t>(days)).ToString() + time;
}

std::string ReceiptText(const v1::EntryReceipt& receipt) {
  return "entry " + std::to_string(receipt.sequence()) + " (" + receipt.business_date() + ")";
}

std::string Confirmation(std::string_view subject, const v1::EntryReceipt& receipt,
                         std::string_view tail) {
  std::string out(subject);
  if (receipt.replayed()) {
    out += " already recorded (replayed): " + ReceiptText(receipt) + std::string(tail) +
           "; this request id was answered before and nothing new was written";
  } else {
    out += " recorded: " + ReceiptText(receipt) + std::string(tail);
  }
  return out + "\n";
}

EventSummary Summarize(const v1::Event& event) {
  EventSummary s;
  switch (event.kind_case()) {
    case v1::Event::kInternalTransfer: {
      const auto& e = event.internal_transfer();
      s = {"transfer", "", FormatFen(e.amount_fen()), e.from_account() + " -> " + e.to_account()};
      if (!e.memo().empty()) s.detail += ": " + e.memo();
      break;
    }
    case v1::Event::kProductDefined:
      s = {"product defined", event.product_defined().product_id(), "",
           event.product_defined().terms().name()};
      break;
    case v1::Event::kProductAmended:
      s = {"product amended", event.product_amended().product_id(), "",
           event.product_amended().terms().name()};
      break;
    case v1::Event::kBorrowerRegistered:
      s = {"borrower registered", event.borrower_registered().borrower_id(), "",
           event.borrower_registered().details().name()};
      break;
    case v1::Event::kBorrowerUpdated:
      s = {"borrower updated", event.borrower_updated().borrower_id(), "",
           event.borrower_updated().details().name()};
      break;
    case v1::Event::kTalentPoolStatusChanged: {
      const auto& e = event.talent_pool_status_changed();
      s = {"borrower " + TalentPoolWords().Name(e.status()), e.borrower_id(), "", e.reason()};
      break;
    }
    case v1::Event::kFundContributed: {
      const auto& e = event.fund_contributed();
      s = {"fund contribution", "union fund", FormatFen(e.amount_fen()), e.source()};
      if (!e.reference().empty()) s.detail += ", ref " + e.reference();
      break;
    }
    case v1::Event::kApplicationSubmitted: {
      const auto& e = event.application_submitted();
      s = {"application", e.loan_id(), FormatFen(e.amount_fen()),
           e.borrower_id() + ", " + e.product_id() + ", " + Months(e.term_months()) + ", " +
               MethodWords().Name(e.method())};
      break;
    }
    case v1::Event::kApprovalGranted: {
      const auto& e = event.approval_granted();
      s = {"approval", e.loan_id(), "",
           std::to_string(e.approvals()) + " of " + std::to_string(e.approvals_required())};
      if (!e.note().empty()) s.detail += ": " + e.note();
      break;
    }
    case v1::Event::kApplicationRejected:
      s = {"rejection", event.application_rejected().loan_id(), "",
           event.application_rejected().reason()};
      break;
    case v1::Event::kApplicationWithdrawn:
      s = {"withdrawal", event.application_withdrawn().loan_id(), "",
           event.application_withdrawn().reason()};
      break;
    case v1::Event::kApprovalRevoked:
      s = {"approval revoked", event.approval_revoked().loan_id(), "",
           event.approval_revoked().reason()};
      break;
    case v1::Event::kLoanDisbursed: {
      const auto& e = event.loan_disbursed();
      s = {"disbursement", e.loan_id(), FormatFen(e.amount_fen()),
           Plural(e.schedule_size(), "installment", "installments")};
      break;
    }
    case v1::Event::kRepaymentRecorded: {
      const auto& e = event.repayment_recorded();
      s = {"repayment", e.loan_id(), FormatFen(e.amount_fen()),
           Channel(e.channel(), e.reference())};
      const std::string paid = Installments(e.allocations());
      if (!paid.empty()) s.detail += "; " + paid;
      if (e.paid_off()) s.detail += "; paid off";
      break;
    }
    case v1::Event::kSubsidyAccrued: {
      const auto& e = event.subsidy_accrued();
      s = {"subsidy accrued", e.loan_id(), FormatFen(AccrualTotal(e.accruals())),
           Plural(e.accruals_size(), "period", "periods")};
      break;
    }
    case v1::Event::kSubsidySettled: {
      const auto& e = event.subsidy_settled();
      s = {"subsidy settled", e.bank_id(), FormatFen(e.amount_fen()),
           e.reference().empty() ? "" : "ref " + e.reference()};
      break;
    }
    case v1::Event::kJobsReported: {
      const auto& e = event.jobs_reported();
      s = {"jobs reported", e.loan_id(), "", Plural(e.jobs_created(), "job", "jobs")};
      if (!e.note().empty()) s.detail += ": " + e.note();
      break;
    }
    case v1::Event::kLoanWrittenOff: {
      const auto& e = event.loan_written_off();
      s = {"write-off", e.loan_id(), FormatFen(e.amount_fen()), e.reason()};
      break;
    }
    case v1::Event::kRecoveryRecorded: {
      const auto& e = event.recovery_recorded();
      s = {"recovery", e.loan_id(), FormatFen(e.amount_fen()), Channel(e.channel(), e.reference())};
      break;
    }
    case v1::Event::kEntryReversed: {
      const auto& e = event.entry_reversed();
      s = {"reversal",
           e.loan_id().empty() ? "entry " + std::to_string(e.reversed_sequence()) : e.loan_id(), "",
           "reverses entry " + std::to_string(e.reversed_sequence()) + ": " + e.reason()};
      break;
    }
    case v1::Event::KIND_NOT_SET:
      s = {"(none)", "", "", ""};
      break;
  }
  return s;
}

std::string RenderBorrower(const v1::Borrower& b) {
  Table kv = Table::KeyValue();
  kv.AddRow({"Name", b.name()});
  kv.AddRow({"National ID", b.national_id()});
  kv.AddRow({"Phone", b.phone()});
  kv.AddRow({"Member no.", b.union_member_number()});
  kv.AddRow({"Category", CategoryWords().Name(b.category())});
  kv.AddRow({"County", b.county()});
  kv.AddRow({"Enterprise", b.enterprise_name()});
  kv.AddRow({"Sector", b.sector()});
  std::string status = TalentPoolWords().Name(b.status());
  if (!b.status_reason().empty()) status += ": " + b.status_reason();
  kv.AddRow({"Status", status});
  kv.AddRow({"Registered", b.registered_date()});
  return "Borrower " + b.borrower_id() + "\n" + kv.Render();
}

std::string RenderBorrowers(const Repeated<v1::Borrower>& borrowers) {
  Table table({{"Borrower"},
               {"Name"},
               {"County"},
               {"Category"},
               {"Enterprise"},
               {"Sector"},
               {"Phone"},
               {"Status"},
               {"Registered"}});
  for (const v1::Borrower& b : borrowers) {
    table.AddRow({b.borrower_id(), b.name(), b.county(), CategoryWords().Name(b.category()),
                  b.enterprise_name(), b.sector(), b.phone(), TalentPoolWords().Name(b.status()),
                  b.registered_date()});
  }
  return table.Render();
}

std::string RenderLoan(const v1::Loan& loan) {
  Table kv = Table::KeyValue();
  kv.AddRow({"Borrower", loan.borrower_id()});
  kv.AddRow({"Product", loan.product_id() + ", " +
                            FundingText(loan.funding(), loan.bank_id(), loan.annual_rate(), 0)});
  kv.AddRow({"Amount", FormatAmount(loan.amount())});
  kv.AddRow({"Term",
             Months(loan.term_months()) + ", " + MethodWords().Name(loan.method()) + " repayment"});
  kv.AddRow({"Purpose", loan.purpose()});
  kv.AddRow({"County", loan.county()});
  kv.AddRow({"Category", CategoryWords().Name(loan.category())});
  kv.AddRow({"Jobs", std::to_string(loan.jobs_expected()) + " expected, " +
                         std::to_string(loan.jobs_reported()) + " reported"});
  if (loan.has_submitted()) kv.AddRow({"Submitted", Decision(loan.submitted())});
  kv.AddRow({"Approvals", std::to_string(loan.approvals_size()) + " of " +
                              std::to_string(loan.approvals_required()) + " needed"});
  for (const v1::LoanDecision& d : loan.approvals()) kv.AddRow({"Approved", Decision(d)});
  if (loan.has_closed_by()) {
    kv.AddRow({loan.status() == v1::ApiLoanStatus::REJECTED ? "Rejected" : "Closed by",
               Decision(loan.closed_by())});
  }
  kv.AddRow({"Grace days", std::to_string(loan.grace_days())});
  if (!loan.disbursed_date().empty()) {
    kv.AddRow({"Disbursed", loan.disbursed_date()});
    kv.AddRow({"Outstanding", FormatAmount(loan.principal_outstanding())});
    kv.AddRow({"Repaid", FormatAmount(loan.principal_repaid())});
  }
  if (loan.funding() == v1::FUNDING_PARTNER_BANK)
    kv.AddRow({"Subsidy accrued", FormatAmount(loan.subsidy_accrued())});
  if (loan.status() == v1::ApiLoanStatus::WRITTEN_OFF || loan.written_off() != "0.00") {
    kv.AddRow({"Written off", FormatAmount(loan.written_off())});
    kv.AddRow({"Recovered", FormatAmount(loan.recovered())});
  }
  if (!loan.closed_date().empty()) kv.AddRow({"Closed", loan.closed_date()});
  std::string out =
      "Loan " + loan.loan_id() + " (" + LoanStatusWords().Name(loan.status()) + ")\n" + kv.Render();
  if (!loan.guarantors().empty()) {
    Table guarantors({{"Guarantor"}, {"National ID"}, {"Relationship"}});
    for (const v1::Guarantor& g : loan.guarantors())
      guarantors.AddRow({g.name(), g.national_id(), g.relationship()});
    out += Section("Guarantors", guarantors);
  }
  if (!loan.schedule().empty()) {
    Table schedule({{"No.", Align::kRight},
                    {"Due date"},
                    {"Principal", Align::kRight},
                    {"Paid", Align::kRight}});
    for (const v1::ScheduledInstallment& i : loan.schedule()) {
      schedule.AddRow({std::to_string(i.number()), i.due_date(), FormatAmount(i.principal()),
                       FormatAmount(i.paid())});
    }
    out += Section("Schedule", schedule);
  }
  return out;
}

std::string RenderLoans(const Repeated<v1::Loan>& loans) {
  Table table({{"Loan"},
               {"Borrower"},
               {"Product"},
               {"County"},
               {"Amount", Align::kRight},
               {"Outstanding", Align::kRight},
               {"Term", Align::kRight},
               {"Status"},
               {"Disbursed"}});
  for (const v1::Loan& l : loans) {
    table.AddRow({l.loan_id(), l.borrower_id(), l.product_id(), l.county(),
                  FormatAmount(l.amount()),
                  l.disbursed_date().empty() ? "" : FormatAmount(l.principal_outstanding()),
                  std::to_string(l.term_months()) + " mo", LoanStatusWords().Name(l.status()),
                  OrDash(l.disbursed_date())});
  }
  return table.Render();
}

std::string RenderStatement(const v1::LoanStatement& s, std::string_view borrower_name) {
  const v1::Loan& loan = s.loan();
  Table kv = Table::KeyValue();
  std::string borrower = loan.borrower_id();
  if (!borrower_name.empty()) borrower += " " + std::string(borrower_name);
  kv.AddRow({"Borrower", borrower});
  kv.AddRow({"County", loan.county()});
  kv.AddRow({"Product", loan.product_id()});
  kv.AddRow({"Amount", FormatAmount(loan.amount()) + " over " + Months(loan.term_months()) + ", " +
                           MethodWords().Name(loan.method())});
  kv.AddRow({"Status", LoanStatusWords().Name(loan.status())});
  kv.AddRow({"Disbursed", OrDash(loan.disbursed_date())});
  kv.AddRow({"Outstanding", FormatAmount(s.outstanding())});
  kv.AddRow({"Overdue principal", FormatAmount(s.overdue_principal())});
  kv.AddRow({"Days past due", std::to_string(s.days_past_due())});
  kv.AddRow({"Aging", OrDash(s.aging_bucket())});
  std::string out =
      "Statement of loan " + loan.loan_id() + " as of " + s.as_of() + "\n" + kv.Render();

  Table installments({{"No.", Align::kRight},
                      {"Due date"},
                      {"Principal", Align::kRight},
                      {"Paid", Align::kRight},
                      {"Unpaid", Align::kRight},
                      {"State"}});
  for (const v1::StatementLine& line : s.installments()) {
    installments.AddRow({std::to_string(line.number()), line.due_date(),
                         FormatAmount(line.principal()), FormatAmount(line.paid()),
                         FormatAmount(line.unpaid()), line.state()});
  }
  if (!installments.empty()) out += Section("Installments", installments);

  Table entries = EntriesTable(/*with_subject=*/false);
  for (const v1::Entry& entry : s.entries()) AddEntryRow(entries, entry, false);
  if (!entries.empty()) out += Section("Entries", entries);
  return out;
}

std::string RenderProduct(const v1::Product& p) {
  Table kv = Table::KeyValue();
  kv.AddRow({"Name", p.name()});
  kv.AddRow({"Funding", FundingText(p.funding(), p.bank_id(), p.annual_rate(), p.day_count())});
  kv.AddRow({"Term", std::to_string(p.term_months_min()) + "-" + Months(p.term_months_max())});
  kv.AddRow({"Methods", Joined(p.methods(), MethodWords())});
  kv.AddRow({"Grace days", std::to_string(p.grace_days())});
  kv.AddRow({"Dual approval above", FormatAmount(p.dual_approval_above())});
  std::string out = "Product " + p.product_id() + "\n" + kv.Render();
  Table limits({{"Category"}, {"Max amount", Align::kRight}});
  for (const v1::CategoryLimitSpec& l : p.limits()) {
    limits.AddRow({CategoryWords().Name(l.category()), FormatAmount(l.max_amount())});
  }
  if (!limits.empty()) out += Section("Limits", limits);
  return out;
}

std::string RenderProducts(const Repeated<v1::Product>& products) {
  Table table({{"Product"},
               {"Name"},
               {"Funding"},
               {"Months", Align::kRight},
               {"Methods"},
               {"Grace", Align::kRight},
               {"Dual approval above", Align::kRight}});
  for (const v1::Product& p : products) {
    table.AddRow({p.product_id(), p.name(),
                  FundingText(p.funding(), p.bank_id(), p.annual_rate(), 0),
                  std::to_string(p.term_months_min()) + "-" + std::to_string(p.term_months_max()),
                  Joined(p.methods(), MethodWords()), std::to_string(p.grace_days()),
                  FormatAmount(p.dual_approval_above())});
  }
  return table.Render();
}

std::string RenderEntry(const v1::Entry& entry) {
  const EventSummary s = Summarize(entry.event());
  Table kv = Table::KeyValue();
  kv.AddRow({"Business date", entry.business_date()});
  kv.AddRow({"Recorded", ShanghaiTime(entry.recorded_at_us()) + " (Asia/Shanghai)"});
  kv.AddRow({"By", entry.actor().principal_id() + " (" + entry.actor().role() + ")"});
  kv.AddRow({"Request id", entry.request_id()});
  kv.AddRow({"Event", s.kind});
  if (!s.subject.empty()) kv.AddRow({"Subject", s.subject});
  if (!s.amount.empty()) kv.AddRow({"Amount", s.amount});
  if (!s.detail.empty()) kv.AddRow({"Detail", s.detail});
  kv.AddRow({"Hash", ToHex(entry.hash())});
  kv.AddRow({"Previous hash", ToHex(entry.previous_hash())});
  std::string out = "Entry " + std::to_string(entry.sequence()) + "\n" + kv.Render();
  Table postings({{"Account"}, {"Debit", Align::kRight}, {"Credit", Align::kRight}});
  for (const v1::Posting& p : entry.postings()) {
    const std::string amount = FormatFen(p.amount_fen());
    postings.AddRow({p.account(), p.side() == v1::POSTING_SIDE_DEBIT ? amount : "",
                     p.side() == v1::POSTING_SIDE_CREDIT ? amount : ""});
  }
  if (!postings.empty()) out += Section("Postings", postings);
  return out;
}

std::string RenderEntries(const Repeated<v1::Entry>& entries) {
  Table table = EntriesTable(/*with_subject=*/true);
  for (const v1::Entry& entry : entries) AddEntryRow(table, entry, true);
  return table.Render();
}

std::string RenderBalance(const v1::AccountBalance& balance) {
  Table table({{"Account"}, {"Balance", Align::kRight}});
  table.AddRow({balance.account(), FormatAmount(balance.balance())});
  return table.Render();
}

std::string RenderPortfolio(const v1::Portfolio& p) {
  Table kv = Table::KeyValue();
  kv.AddRow({"Loans outstanding", std::to_string(p.loans_outstanding())});
  kv.AddRow({"Outstanding principal", FormatAmount(p.outstanding())});
  kv.AddRow({"Overdue principal", FormatAmount(p.overdue_principal())});
  kv.AddRow({"PAR30", FormatAmount(p.par30()) + " (" + FormatPercent(p.par30_ratio()) + ")"});
  kv.AddRow({"PAR90", FormatAmount(p.par90()) + " (" + FormatPercent(p.par90_ratio()) + ")"});
  std::string out = "Portfolio as of " + p.as_of() + "\n" + kv.Render();
  Table aging({{"Days past due"}, {"Loans", Align::kRight}, {"Outstanding", Align::kRight}});
  for (const v1::AgingBucket& b : p.aging()) {
    aging.AddRow({b.bucket(), std::to_string(b.loans()), FormatAmount(b.outstanding())});
  }
  if (!aging.empty()) out += Section("Aging", aging);
  return out;
}

std::string RenderOverdueLoans(const v1::ListOverdueLoansResponse& overdue) {
  if (overdue.loans().empty()) return "No loan is overdue as of " + overdue.as_of() + ".\n";
  Table table({{"Loan"},
               {"Borrower"},
               {"County"},
               {"Days past due", Align::kRight},
               {"Aging"},
               {"Overdue", Align::kRight},
               {"Outstanding", Align::kRight},
               {"Oldest unpaid due"}});
  for (const v1::OverdueLoan& l : overdue.loans()) {
    table.AddRow({l.loan_id(), l.borrower_id(), l.county(), std::to_string(l.days_past_due()),
                  l.aging_bucket(), FormatAmount(l.overdue_principal()),
                  FormatAmount(l.outstanding()), l.oldest_unpaid_due_date()});
  }
  return "Overdue loans as of " + overdue.as_of() + ", most days past due first\n" + table.Render();
}

namespace {

// A report row's group, one cell per dimension, in the client's words: categories and
// funding come as enum names. Figures that belong to no group (a bank's subsidy
// settlement has no county) are "(no county)".
std::vector<std::string> GroupCells(const v1::ProgrammeReport& report,
                                    const v1::ReportFigures& row) {
  std::vector<std::string> group;
  for (int i = 0; i < report.group_by_size(); ++i) {
    const int dimension = report.group_by(i);
    std::string value = i < row.group_size() ? row.group(i) : "";
    const EnumWords* words = dimension == v1::REPORT_DIMENSION_CATEGORY  ? &CategoryWords()
                             : dimension == v1::REPORT_DIMENSION_FUNDING ? &FundingWords()
                                                                         : nullptr;
    if (words != nullptr)
      value = words->Parse(value).has_value() ? words->Name(*words->Parse(value)) : "";
    if (value.empty()) value = "(no " + ReportDimensionWords().Name(dimension) + ")";
    group.push_back(std::move(value));
  }
  return group;
}

}  // namespace

std::string RenderProgrammeReport(const v1::ProgrammeReport& report) {
  std::string by;
  for (int d : report.group_by())
    by += (by.empty() ? ", by " : " and ") + ReportDimensionWords().Name(d);
  std::string out = "Programme report " + report.from() + " to " + report.to() + by + "\n";
  const v1::ReportFigures& t = report.total();
  if (report.group_by().empty()) {
    Table kv = Table::KeyValue();
    kv.AddRow({"Applications received", Count(t.applications_received())});
    kv.AddRow({"Approved", Count(t.applications_approved())});
    kv.AddRow({"Rejected", Count(t.applications_rejected())});
    kv.AddRow({"Withdrawn", Count(t.applications_withdrawn())});
    kv.AddRow({"Loans disbursed", Count(t.loans_disbursed())});
    kv.AddRow({"Amount disbursed", FormatAmount(t.amount_disbursed())});
    kv.AddRow({"Jobs expected", Count(t.jobs_expected())});
    kv.AddRow({"Jobs reported", Count(t.jobs_reported())});
    kv.AddRow({"Repayments received", FormatAmount(t.repayments_received())});
    kv.AddRow({"Principal due", FormatAmount(t.principal_due())});
    kv.AddRow({"Repaid on time", FormatAmount(t.principal_repaid_on_time()) + " (" +
                                     FormatPercent(t.on_time_collection_rate()) + ")"});
    kv.AddRow({"Subsidy accrued", FormatAmount(t.subsidy_accrued())});
    kv.AddRow({"Subsidy settled", FormatAmount(t.subsidy_settled())});
    kv.AddRow({"Written off", FormatAmount(t.written_off())});
    kv.AddRow({"Recovered", FormatAmount(t.recovered())});
    kv.AddRow({"At the end of the period", ""});
    kv.AddRow({"  Loans outstanding", Count(t.loans_outstanding())});
    kv.AddRow({"  Outstanding principal", FormatAmount(t.outstanding_principal())});
    kv.AddRow({"  Overdue principal", FormatAmount(t.overdue_principal())});
    kv.AddRow({"  PAR30", FormatAmount(t.par30()) + " (" + FormatPercent(t.par30_ratio()) + ")"});
    kv.AddRow({"  PAR90", FormatAmount(t.par90()) + " (" + FormatPercent(t.par90_ratio()) + ")"});
    return out + kv.Render();
  }
  std::vector<Table::Column> columns;
  for (int d : report.group_by()) {
    std::string name = ReportDimensionWords().Name(d);
    if (!name.empty()) name[0] = static_cast<char>(name[0] - 'a' + 'A');
    columns.push_back({name});
  }
  for (const char* number : {"Applied", "Approved", "Loans"}) {
    columns.push_back({number, Align::kRight});
  }
  for (const char* figure : {"Disbursed", "Jobs exp.", "Jobs rep.", "Repaid", "Outstanding",
                             "Overdue", "PAR30", "On time", "Written off", "Subsidy", "Settled"}) {
    columns.push_back({figure, Align::kRight});
  }
  Table table(std::move(columns));
  const auto add = [&](std::vector<std::string> cells, const v1::ReportFigures& f) {
    for (std::string cell :
         {Count(f.applications_received()), Count(f.applications_approved()),
          Count(f.loans_disbursed()), FormatAmount(f.amount_disbursed()), Count(f.jobs_expected()),
          Count(f.jobs_reported()), FormatAmount(f.repayments_received()),
          FormatAmount(f.outstanding_principal()), FormatAmount(f.overdue_principal()),
          FormatPercent(f.par30_ratio()), FormatPercent(f.on_time_collection_rate()),
          FormatAmount(f.written_off()), FormatAmount(f.subsidy_accrued()),
          FormatAmount(f.subsidy_settled())}) {
      cells.push_back(std::move(cell));
    }
    table.AddRow(std::move(cells));
  };
  for (const v1::ReportFigures& row : report.rows()) add(GroupCells(report, row), row);
  std::vector<std::string> total(static_cast<size_t>(report.group_by_size()));
  total[0] = "Total";
  add(std::move(total), t);
  return out + table.Render();
}

namespace {

std::string CsvCell(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string CsvLine(const std::vector<std::string>& cells) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) line += (i > 0 ? "," : "") + CsvCell(cells[i]);
  return line + "\r\n";
}

constexpr std::string_view kByteOrderMark = "\xef\xbb\xbf";

}  // namespace

std::string RenderProgrammeReportCsv(const v1::ProgrammeReport& report) {
  std::vector<std::string> header;
  for (int d : report.group_by()) header.push_back(ReportDimensionWords().Name(d));
  for (const char* column : {"from",
                             "to",
                             "applications_received",
                             "applications_approved",
                             "applications_rejected",
                             "applications_withdrawn",
                             "loans_disbursed",
                             "amount_disbursed",
                             "jobs_expected",
                             "jobs_reported",
                             "repayments_received",
                             "loans_outstanding",
                             "outstanding_principal",
                             "overdue_principal",
                             "par30",
                             "par90",
                             "par30_ratio",
                             "par90_ratio",
                             "principal_due",
                             "principal_repaid_on_time",
                             "on_time_collection_rate",
                             "subsidy_accrued",
                             "subsidy_settled",
                             "written_off",
                             "recovered"}) {
    header.push_back(column);
  }
  std::string out = std::string(kByteOrderMark) + CsvLine(header);
  auto row = [&](std::vector<std::string> cells, const v1::ReportFigures& f) {
    for (const std::string& cell : {report.from(),
                                    report.to(),
                                    std::to_string(f.applications_received()),
                                    std::to_string(f.applications_approved()),
                                    std::to_string(f.applications_rejected()),
                                    std::to_string(f.applications_withdrawn()),
                                    std::to_string(f.loans_disbursed()),
                                    f.amount_disbursed(),
                                    std::to_string(f.jobs_expected()),
                                    std::to_string(f.jobs_reported()),
                                    f.repayments_received(),
                                    std::to_string(f.loans_outstanding()),
                                    f.outstanding_principal(),
                                    f.overdue_principal(),
                                    f.par30(),
                                    f.par90(),
                                    f.par30_ratio(),
                                    f.par90_ratio(),
                                    f.principal_due(),
                                    f.principal_repaid_on_time(),
                                    f.on_time_collection_rate(),
                                    f.subsidy_accrued(),
                                    f.subsidy_settled(),
                                    f.written_off(),
                                    f.recovered()}) {
      cells.push_back(cell);
    }
    out += CsvLine(cells);
  };
  // Without a dimension the one row is the total: it is written once.
  if (!report.group_by().empty()) {
    for (const v1::ReportFigures& f : report.rows()) row(GroupCells(report, f), f);
  }
  std::vector<std::string> total(static_cast<size_t>(report.group_by_size()), "");
  if (!total.empty()) total[0] = "total";
  row(total, report.total());
  return out;
}

std::string RenderOverdueLoansCsv(const v1::ListOverdueLoansResponse& response) {
  std::string out =
      std::string(kByteOrderMark) +
      CsvLine({"as_of", "loan_id", "borrower_id", "county", "days_past_due", "aging_bucket",
               "oldest_unpaid_due_date", "overdue_principal", "outstanding"});
  for (const v1::OverdueLoan& loan : response.loans()) {
    out += CsvLine({response.as_of(), loan.loan_id(), loan.borrower_id(), loan.county(),
                    std::to_string(loan.days_past_due()), loan.aging_bucket(),
                    loan.oldest_unpaid_due_date(), loan.overdue_principal(), loan.outstanding()});
  }
  return out;
}

}  // namespace gongdai::client
