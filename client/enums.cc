#include "client/enums.h"

namespace gongdai::client {
namespace {

// Lower case with '-' for '_': "MODEL_WORKER" -> "model-worker".
std::string Normalize(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c == '_') c = '-';
  }
  return out;
}

}  // namespace

EnumWords::EnumWords(std::string_view proto_prefix, std::vector<Word> words)
    : prefix_(Normalize(proto_prefix)), words_(std::move(words)) {}

std::string EnumWords::Name(int value) const {
  if (value == 0) return "-";
  for (const Word& w : words_) {
    if (w.value == value) return std::string(w.word);
  }
  return "unknown (" + std::to_string(value) + ")";
}

std::optional<int> EnumWords::Parse(std::string_view text) const {
  std::string word = Normalize(text);
  if (!prefix_.empty() && word.starts_with(prefix_)) word.erase(0, prefix_.size());
  for (const Word& w : words_) {
    if (w.word == word) return w.value;
  }
  return std::nullopt;
}

std::string EnumWords::Choices() const {
  std::string out;
  for (const std::string& word : List()) out += (out.empty() ? "" : "|") + word;
  return out;
}

std::vector<std::string> EnumWords::List() const {
  std::vector<std::string> out;
  for (const Word& w : words_) {
    if (!w.alias) out.emplace_back(w.word);
  }
  return out;
}

const EnumWords& CategoryWords() {
  static const EnumWords kWords("BORROWER_CATEGORY_",
                                {{v1::BORROWER_CATEGORY_ORDINARY_MEMBER, "ordinary-member"},
                                 {v1::BORROWER_CATEGORY_MODEL_WORKER, "model-worker"},
                                 {v1::BORROWER_CATEGORY_SMALL_ENTERPRISE, "small-enterprise"}});
  return kWords;
}

const EnumWords& FundingWords() {
  static const EnumWords kWords("FUNDING_", {{v1::FUNDING_UNION_FUND, "union-fund"},
                                             {v1::FUNDING_PARTNER_BANK, "partner-bank"}});
  return kWords;
}

const EnumWords& DayCountWords() {
  static const EnumWords kWords("DAY_COUNT_CONVENTION_",
                                {{v1::DAY_COUNT_CONVENTION_ACT_360, "act-360"},
                                 {v1::DAY_COUNT_CONVENTION_ACT_365, "act-365"}});
  return kWords;
}

const EnumWords& MethodWords() {
  static const EnumWords kWords(
      "REPAYMENT_METHOD_",
      {{v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY, "monthly"},
       {v1::REPAYMENT_METHOD_BULLET, "bullet"},
       {v1::REPAYMENT_METHOD_EQUAL_PRINCIPAL_MONTHLY, "equal-principal-monthly", true}});
  return kWords;
}

const EnumWords& ChannelWords() {
  static const EnumWords kWords("PAYMENT_CHANNEL_",
                                {{v1::PAYMENT_CHANNEL_BANK_TRANSFER, "bank-transfer"},
                                 {v1::PAYMENT_CHANNEL_CASH, "cash"},
                                 {v1::PAYMENT_CHANNEL_AUTO_DEBIT, "auto-debit"}});
  return kWords;
}

const EnumWords& TalentPoolWords() {
  static const EnumWords kWords("TALENT_POOL_STATUS_",
                                {{v1::TALENT_POOL_STATUS_ACTIVE, "active"},
                                 {v1::TALENT_POOL_STATUS_SUSPENDED, "suspended"},
                                 {v1::TALENT_POOL_STATUS_REMOVED, "removed"}});
  return kWords;
}

const EnumWords& LoanStatusWords() {
  static const EnumWords kWords("", {{v1::ApiLoanStatus::SUBMITTED, "submitted"},
                                     {v1::ApiLoanStatus::APPROVED, "approved"},
                                     {v1::ApiLoanStatus::REJECTED, "rejected"},
                                     {v1::ApiLoanStatus::WITHDRAWN, "withdrawn"},
                                     {v1::ApiLoanStatus::ACTIVE, "active"},
                                     {v1::ApiLoanStatus::CLOSED, "closed"},
                                     {v1::ApiLoanStatus::WRITTEN_OFF, "written-off"}});
  return kWords;
}

const EnumWords& ReportDimensionWords() {
  static const EnumWords kWords("REPORT_DIMENSION_", {{v1::REPORT_DIMENSION_COUNTY, "county"},
                                                      {v1::REPORT_DIMENSION_CATEGORY, "category"},
                                                      {v1::REPORT_DIMENSION_PRODUCT, "product"},
                                                      {v1::REPORT_DIMENSION_FUNDING, "funding"}});
  return kWords;
}

}  // namespace gongdai::client
