#include "client/product_file.h"

#include <toml++/toml.h>

#include <set>

#include "client/enums.h"
#include "engine/money.h"
#include "engine/status.h"

namespace gongdai::client {

const char kProductFileHelp[] = R"(Product file (TOML; the fields of the API's ProductTermsInput):
  product_id = "fund-2020"            # 1-40 of a-z, 0-9 and '-' (or --product-id)
  name = "庐陵工贷·互助金"
  funding = "union-fund"              # union-fund | partner-bank
  # bank_id = "psbc"                  # partner-bank only: the bank's short id
  # annual_rate = "0.0435"            # partner-bank only: the bank's rate, a string
  # day_count = "act-360"             # partner-bank only: act-360 | act-365
  term_months_min = 3
  term_months_max = 36
  methods = ["monthly"]               # monthly | bullet
  grace_days = 5                      # days after a due date before it is overdue
  dual_approval_above = "200000"      # above this amount, two approvers must approve

  [[limits]]                          # one per category that may borrow
  category = "ordinary-member"        # ordinary-member | model-worker | small-enterprise
  max_amount = "100000"               # yuan, at most two decimals
Amounts and rates are strings ("100000", "1234.50", "0.0435"); whole yuan may also be
written as integers.)";

namespace {

constexpr int64_t kApiAmountFenMax = 10'000'000'000;  // the API's limit: 100 million yuan

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  absl::Status Error(std::string_view key, std::string_view why) const {
    return absl::InvalidArgumentError(path_ + ": " + std::string(key) + ": " + std::string(why));
  }

  absl::Status Text(const toml::table& table, const char* key, std::string_view where,
                    std::string& out) const {
    const toml::node* node = table.get(key);
    if (node == nullptr) return absl::OkStatus();
    std::optional<std::string> value = node->value_exact<std::string>();
    if (!value.has_value()) return Error(Where(where, key), "must be a string in quotes");
    out = *value;
    return absl::OkStatus();
  }

  absl::Status Integer(const toml::table& table, const char* key, int32_t& out) const {
    const toml::node* node = table.get(key);
    if (node == nullptr) return absl::OkStatus();
    std::optional<int64_t> value = node->value_exact<int64_t>();
    if (!value.has_value() || *value < 0 || *value > 100'000) {
      return Error(key, "must be a whole number between 0 and 100000");
    }
    out = static_cast<int32_t>(*value);
    return absl::OkStatus();
  }

  // An amount as a string ("100000.50") or as a whole number of yuan (100000).
  absl::Status Amount(const toml::table& table, const char* key, std::string_view where,
                      bool allow_zero, std::string& out) const {
    const toml::node* node = table.get(key);
    if (node == nullptr) return absl::OkStatus();
    const std::string name = Where(where, key);
    if (std::optional<int64_t> whole = node->value_exact<int64_t>()) {
      out = std::to_string(*whole);
    } else if (std::optional<std::string> text = node->value_exact<std::string>()) {
      out = *text;
    } else {
      return Error(name,
                   "must be an amount in yuan as a string, such as \"100000\" or \"1234.50\"");
    }
    AmountRules rules;
    rules.allow_zero = allow_zero;
    rules.max_fen = kApiAmountFenMax;
    absl::StatusOr<Money> money = ParseAmount(out, name, rules);
    if (!money.ok()) return Error(name, Description(money.status()));
    return absl::OkStatus();
  }

  template <typename Enum>
  absl::Status Word(const std::string& text, std::string_view key, const EnumWords& words,
                    Enum& out) const {
    std::optional<int> value = words.Parse(text);
    if (!value.has_value()) return Error(key, "\"" + text + "\" is not one of " + words.Choices());
    out = static_cast<Enum>(*value);
    return absl::OkStatus();
  }

  static std::string Description(const absl::Status& status) {
    std::vector<FieldViolation> violations = FieldViolationsOf(status);
    return violations.empty() ? std::string(status.message()) : violations.front().description;
  }

 private:
  static std::string Where(std::string_view where, std::string_view key) {
    return where.empty() ? std::string(key) : std::string(where) + "." + std::string(key);
  }

  std::string path_;
};

#define GONGDAI_RETURN_IF_ERROR(expr)  \
  do {                                 \
    absl::Status status_ = (expr);     \
    if (!status_.ok()) return status_; \
  } while (false)

}  // namespace

absl::StatusOr<ProductFile> ReadProductFile(const std::string& path) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(path + ": " + std::string(e.description()) + " at line " +
                                      std::to_string(e.source().begin.line));
  }
  const Reader r(path);
  static const std::set<std::string> kKeys = {
      "product_id",      "name",      "funding",    "bank_id",
      "annual_rate",     "day_count", "limits",     "term_months_min",
      "term_months_max", "methods",   "grace_days", "dual_approval_above"};
  for (const auto& [key, value] : root) {
    if (!kKeys.count(std::string(key.str()))) {
      return r.Error(key.str(), "unknown field (see gongdai product define --help)");
    }
  }
  ProductFile file;
  v1::ProductTermsInput& t = file.terms;
  GONGDAI_RETURN_IF_ERROR(r.Text(root, "product_id", "", file.product_id));
  GONGDAI_RETURN_IF_ERROR(r.Text(root, "name", "", *t.mutable_name()));
  std::string word;
  GONGDAI_RETURN_IF_ERROR(r.Text(root, "funding", "", word));
  if (!word.empty()) {
    v1::Funding funding{};
    GONGDAI_RETURN_IF_ERROR(r.Word(word, "funding", FundingWords(), funding));
    t.set_funding(funding);
  }
  GONGDAI_RETURN_IF_ERROR(r.Text(root, "bank_id", "", *t.mutable_bank_id()));
  if (const toml::node* rate = root.get("annual_rate")) {
    if (!rate->is_string()) {
      return r.Error("annual_rate",
                     "must be a string in quotes, such as \"0.0435\", so that it stays exact");
    }
    t.set_annual_rate(*rate->value<std::string>());
    absl::StatusOr<Rate> parsed = ParseRate(t.annual_rate(), "annual_rate");
    if (!parsed.ok()) return r.Error("annual_rate", Reader::Description(parsed.status()));
  }
  word.clear();
  GONGDAI_RETURN_IF_ERROR(r.Text(root, "day_count", "", word));
  if (!word.empty()) {
    v1::DayCountConvention day_count{};
    GONGDAI_RETURN_IF_ERROR(r.Word(word, "day_count", DayCountWords(), day_count));
    t.set_day_count(day_count);
  }
  int32_t number = 0;
  GONGDAI_RETURN_IF_ERROR(r.Integer(root, "term_months_min", number));
  t.set_term_months_min(number);
  number = 0;
  GONGDAI_RETURN_IF_ERROR(r.Integer(root, "term_months_max", number));
  t.set_term_months_max(number);
  number = 0;
  GONGDAI_RETURN_IF_ERROR(r.Integer(root, "grace_days", number));
  t.set_grace_days(number);
  GONGDAI_RETURN_IF_ERROR(r.Amount(root, "dual_approval_above", "", /*allow_zero=*/true,
                                   *t.mutable_dual_approval_above()));
  if (const toml::node* methods = root.get("methods")) {
    const toml::array* list = methods->as_array();
    if (list == nullptr)
      return r.Error("methods", "must be a list, such as [\"monthly\", \"bullet\"]");
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string key = "methods[" + std::to_string(i) + "]";
      std::optional<std::string> text = list->get(i)->value_exact<std::string>();
      if (!text.has_value()) return r.Error(key, "must be a string: " + MethodWords().Choices());
      v1::RepaymentMethod method{};
      GONGDAI_RETURN_IF_ERROR(r.Word(*text, key, MethodWords(), method));
      t.add_methods(method);
    }
  }
  if (const toml::node* limits = root.get("limits")) {
    const toml::array* list = limits->as_array();
    if (list == nullptr)
      return r.Error("limits", "must be tables: [[limits]] with category and max_amount");
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string where = "limits[" + std::to_string(i) + "]";
      const toml::table* table = list->get(i)->as_table();
      if (table == nullptr) return r.Error(where, "must be a table with category and max_amount");
      for (const auto& [key, value] : *table) {
        if (key.str() != "category" && key.str() != "max_amount") {
          return r.Error(where + "." + std::string(key.str()),
                         "unknown field (category, max_amount)");
        }
      }
      v1::CategoryLimitSpec* limit = t.add_limits();
      std::string category;
      GONGDAI_RETURN_IF_ERROR(r.Text(*table, "category", where, category));
      if (!category.empty()) {
        v1::BorrowerCategory value{};
        GONGDAI_RETURN_IF_ERROR(r.Word(category, where + ".category", CategoryWords(), value));
        limit->set_category(value);
      }
      GONGDAI_RETURN_IF_ERROR(r.Amount(*table, "max_amount", where, /*allow_zero=*/false,
                                       *limit->mutable_max_amount()));
    }
  }
  return file;
}

}  // namespace gongdai::client
