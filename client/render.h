// The ledger's resources as text for a loan officer: a heading, a block of labelled
// values, and tables (schedules, statements, lists, postings).
#ifndef GONGDAI_CLIENT_RENDER_H_
#define GONGDAI_CLIENT_RENDER_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "gongdai/v1/ledger_service.pb.h"

namespace gongdai::client {

template <typename T>
using Repeated = google::protobuf::RepeatedPtrField<T>;

std::string RenderBorrower(const v1::Borrower& borrower);
std::string RenderBorrowers(const Repeated<v1::Borrower>& borrowers);
std::string RenderLoan(const v1::Loan& loan);
std::string RenderLoans(const Repeated<v1::Loan>& loans);
// `borrower_name` may be empty when it could not be looked up.
std::string RenderStatement(const v1::LoanStatement& statement, std::string_view borrower_name);
std::string RenderProduct(const v1::Product& product);
std::string RenderProducts(const Repeated<v1::Product>& products);
std::string RenderEntry(const v1::Entry& entry);
std::string RenderEntries(const Repeated<v1::Entry>& entries);
std::string RenderBalance(const v1::AccountBalance& balance);
std::string RenderPortfolio(const v1::Portfolio& portfolio);
std::string RenderOverdueLoans(const v1::ListOverdueLoansResponse& overdue);
// CSV for a spreadsheet (UTF-8 with a byte-order mark, plain decimal amounts, one row per
// group and a total row; one row per loan).
std::string RenderProgrammeReportCsv(const v1::ProgrammeReport& report);
std::string RenderOverdueLoansCsv(const v1::ListOverdueLoansResponse& response);
std::string RenderProgrammeReport(const v1::ProgrammeReport& report);

// What an entry's event did, in words, for tables of entries.
struct EventSummary {
  std::string kind;     // "repayment"
  std::string subject;  // "L000001"
  std::string amount;   // "1,500.00", empty when the event moves no money
  std::string detail;   // "bank-transfer, ref 2020-06-30-01"
};
EventSummary Summarize(const v1::Event& event);

// "entry 8 (2020-06-30)".
std::string ReceiptText(const v1::EntryReceipt& receipt);

// The line printed after a write: "<subject> recorded: entry 8 (2020-06-30)<tail>", or,
// when the ledger answered a retry of a request it had already recorded, "<subject>
// already recorded (replayed): entry 8 (2020-06-30)<tail>; nothing new was written".
std::string Confirmation(std::string_view subject, const v1::EntryReceipt& receipt,
                         std::string_view tail = {});

// Microseconds since the epoch as the Asia/Shanghai time "2020-06-30 14:05:09".
std::string ShanghaiTime(int64_t unix_us);

}  // namespace gongdai::client

#endif  // GONGDAI_CLIENT_RENDER_H_
