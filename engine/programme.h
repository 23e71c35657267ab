// The loan programme's rules: products, the talent pool of borrowers, applications with
// four eyes, disbursement, repayment, the interest subsidy, write-offs, recoveries and
// reversals. Each event has three parts: field validation (pure), Decide (checks against
// state and computes what the entry records) and Apply (derives projections from the
// entry alone). Private to engine/; rules.cc dispatches here.
#ifndef GONGDAI_ENGINE_PROGRAMME_H_
#define GONGDAI_ENGINE_PROGRAMME_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/date.h"
#include "engine/rules.h"
#include "engine/status.h"
#include "gongdai/v1/journal.pb.h"
#include "gongdai/v1/state.pb.h"

namespace gongdai {

void ValidateProgrammeEvent(const v1::Event& event, Date today, ViolationCollector& violations);

[[nodiscard]] absl::StatusOr<Decision> DecideProgramme(StateReader& state, const Command& command,
                                                       Date business_date);

// Programme projections of `entry` (account balances are applied by the caller); `stored`
// and `hand_over` as for Apply.
[[nodiscard]] absl::Status ApplyProgramme(const v1::Entry& entry, std::string_view stored,
                                          StateWriter& state, ApplyHandOver* hand_over = nullptr);

// Clears from `recorded` (an entry's event) what the engine decided rather than the caller
// asked (assigned ids, allocations, schedules, accruals, confirmed amounts left empty in
// `request`), so a retried request can be compared with the one that was recorded.
void ClearDecidedFields(const v1::Event& request, v1::Event* recorded);

// The loan a programme event concerns, "" for none.
std::string ProgrammeLoanId(const v1::Event& event);
// The borrower an event registers or changes, "" for none (a registration's id is decided
// by the ledger: "" in a command, set in the entry).
std::string_view BorrowerIdOf(const v1::Event& event);

// Appends the projections that deciding and applying `event` reads first and that are
// particular to it: the loan it names (its state, and its principal account for a
// disbursement, a repayment or a write-off; its summary is derived, not read) and the
// borrower an application, a borrower's update or a talent-pool change names. The writer
// reads them for a whole batch at once (LedgerOptions::batch_read_threads). A key missing
// here is read when it is needed; one listed but not needed costs a read.
void AddKeysReadFirst(const v1::Event& event, std::vector<std::pair<Space, std::string>>& keys);

// Whether `value` is an id the ledger assigns with `letter`: the letter, then 1-11 digits
// (B000123 for a borrower, L000123 for a loan).
bool IsLedgerId(std::string_view value, char letter);

// Keys of the programme's projections and indexes.
std::string ProductKey(std::string_view product_id);
std::string BorrowerKey(std::string_view borrower_id);
std::string LoanKey(std::string_view loan_id);
std::string NationalIdIndexKey(std::string_view national_id);
std::string LoansByBorrowerPrefix(std::string_view borrower_id);
std::string LoansByStatusPrefix(v1::LoanStatus status);
inline constexpr std::string_view kLoanEntriesPrefix = "le/";
std::string LoanEntriesPrefix(std::string_view loan_id);
inline constexpr std::string_view kNationalIdIndexPrefix = "nid/";
inline constexpr std::string_view kProductPrefix = "p/";
inline constexpr std::string_view kBorrowerPrefix = "b/";
inline constexpr std::string_view kLoanPrefix = "l/";
inline constexpr std::string_view kLoanSummaryPrefix = "s/";
std::string LoanSummaryKey(std::string_view loan_id);
// Whether apply ever reads the projection under `key` back. It writes but never reads the
// Merkle tree's nodes (proofs read them from storage) and the loans' summaries (it derives
// a loan's summary from the loan): the writer and a verifying replay need not hold those.
bool ApplyReadsBack(std::string_view key);

// Report counters are kept under "g/<date>/<county>\x1f<category>\x1f<product>\x1f<funding>".
struct ReportDims {
  std::string county;
  v1::BorrowerCategory category = v1::BORROWER_CATEGORY_UNSPECIFIED;
  std::string product_id;
  v1::Funding funding = v1::FUNDING_UNSPECIFIED;
};
inline constexpr std::string_view kReportPrefix = "g/";
inline constexpr char kReportSeparator = '\x1f';
std::string ReportKey(std::string_view date, const ReportDims& dims);
// The report's running stocks: one StockChange per day and dimension, under
// "k/<date>/<dims>" (dims as in ReportKey).
inline constexpr std::string_view kStockPrefix = "k/";
std::string StockKey(std::string_view date, const ReportDims& dims);
// Parses a ReportKey or a StockKey into its date and dimensions.
std::optional<std::pair<std::string, ReportDims>> ParseReportKey(std::string_view key);
// Subsidy settlements belong to no loan: they are counted under partner-bank funding.
ReportDims SettlementDims();

// Chart of accounts.
inline constexpr std::string_view kFundCashAccount = "union:fund:cash";
inline constexpr std::string_view kFundCapitalAccount = "union:fund:capital";
inline constexpr std::string_view kSubsidyExpenseAccount = "union:subsidy:expense";
inline constexpr std::string_view kOperatingAccount = "external:union:operating";
std::string LoanPrincipalAccount(std::string_view loan_id);
std::string BankSubsidyPayableAccount(std::string_view bank_id);
// Whether `account` is a bank's subsidy payable, as BankSubsidyPayableAccount forms it.
bool IsBankSubsidyPayable(std::string_view account);

// Typed reads of projections; nullopt when absent.
[[nodiscard]] absl::StatusOr<std::optional<v1::ProductState>> ReadProduct(StateReader& state,
                                                                          std::string_view id);
[[nodiscard]] absl::StatusOr<std::optional<v1::BorrowerState>> ReadBorrower(StateReader& state,
                                                                            std::string_view id);
[[nodiscard]] absl::StatusOr<std::optional<v1::LoanState>> ReadLoan(StateReader& state,
                                                                    std::string_view id);

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_PROGRAMME_H_
