// Between the API's messages (decimal strings, masked personal data) and the engine's
// (whole fen, full records).
#ifndef GONGDAI_SERVER_CONVERT_H_
#define GONGDAI_SERVER_CONVERT_H_

#include <string>
#include <string_view>

#include "engine/ledger.h"
#include "engine/personal_data.h"
#include "engine/status.h"
#include "gongdai/v1/ledger_service.pb.h"

namespace gongdai::server {

// Amounts in API requests: at most 10^8 yuan, no sign, at most two decimals. A bad
// amount is added to `violations` under `field` and 0 returned. An empty optional amount
// is 0 without a violation.
int64_t AmountFen(std::string_view text, std::string_view field, ViolationCollector& violations,
                  bool optional = false);

std::string Yuan(int64_t fen);

v1::ProductTerms TermsFromInput(const v1::ProductTermsInput& input, ViolationCollector& violations);
v1::BorrowerDetails DetailsFromInput(const v1::BorrowerDetailsInput& input);

v1::Product ProductToApi(const v1::ProductState& product);
// `personal`: whether the caller's role may see national ID and phone numbers in full.
v1::Borrower BorrowerToApi(const v1::BorrowerState& borrower, bool personal);
// A view that is not one of LoanView's values is a violation of `field`.
void CheckLoanView(v1::LoanView view, std::string_view field, ViolationCollector& violations);
// The two below fill `out`, which must be empty (a fresh response), in place.
// `view`: LOAN_VIEW_BASIC leaves out the schedule; any other value gives the whole loan.
void LoanToApi(const v1::LoanState& loan, bool personal, v1::LoanView view, v1::Loan* out);
void StatementToApi(const LoanStatement& statement, bool personal, v1::LoanStatement* out);
v1::Portfolio PortfolioToApi(const PortfolioFigures& figures);

// The period of a report request ("year", "year+quarter", "year+month" or "from/to");
// INVALID_ARGUMENT naming the fields otherwise.
[[nodiscard]] absl::StatusOr<ReportQuery> ReportQueryFromRequest(
    const v1::GetProgrammeReportRequest& request);
v1::ProgrammeReport ReportToApi(const ProgrammeReport& report,
                                const v1::GetProgrammeReportRequest& request);

v1::LoanStatus ToEngineStatus(v1::ApiLoanStatus::Value status);
v1::ApiLoanStatus::Value ToApiStatus(v1::LoanStatus status);

// 4-decimal fraction numerator / denominator, half to even ("0.0525"); "0.0000" when the
// denominator is zero.
std::string Ratio(int64_t numerator, int64_t denominator);

}  // namespace gongdai::server

#endif  // GONGDAI_SERVER_CONVERT_H_
