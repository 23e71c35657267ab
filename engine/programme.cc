#include "engine/programme.h"

#include <algorithm>
#include <limits>
#include <set>

#include "engine/check.h"
#include "engine/journal_format.h"
#include "engine/loan_math.h"
#include "engine/money.h"
#include "engine/national_id.h"
#include "engine/strings.h"

namespace gongdai {
namespace {

// Limits on every field (TIGER_STYLE: put a limit on everything).
constexpr int64_t kAmountFenMax = 10'000'000'000;  // 100 million yuan
constexpr int kTermMonthsMax = 120;
constexpr int kGraceDaysMax = 90;
constexpr int kJobsMax = 10'000;
constexpr int kGuarantorsMax = 5;
constexpr size_t kIdBytesMax = 40;
constexpr size_t kNameBytesMax = 128;
constexpr size_t kTextBytesMax = 500;
constexpr size_t kReferenceBytesMax = 64;

// ---------------------------------------------------------------------------------------
// Field validation helpers.

class Fields {
 public:
  Fields(ViolationCollector& violations, std::string prefix)
      : violations_(violations), prefix_(std::move(prefix)) {}

  std::string Path(std::string_view field) const { return Cat(prefix_, field); }
  void Add(std::string_view field, std::string_view reason, std::string_view description) {
    violations_.Add(Path(field), reason, description);
  }
  void AddStatus(std::string_view field, const absl::Status& status) {
    violations_.AddStatus(Path(field), status);
  }

  // Free text is stored as given and grouped on as given (a county's report row): no space
  // around it and no character that cannot be seen (a direction mark, a zero-width space,
  // a line separator), which would make two texts that read alike differ. (Other lookalikes,
  // such as full-width letters or decomposed accents, are not caught.)
  void Text(std::string_view field, std::string_view value, size_t max_bytes, bool required) {
    if (required && value.empty()) {
      Add(field, "REQUIRED", "is required");
      return;
    }
    if (value.size() > max_bytes) {
      Add(field, "TOO_LONG", Cat("must be at most ", max_bytes, " bytes"));
      return;
    }
    const TextScan scan = ScanText(value);
    if (!scan.utf8) {
      Add(field, "INVALID_UTF8", "must be valid UTF-8");
    } else if (scan.control) {
      Add(field, "CONTROL_CHARACTER", "must not contain control characters (tabs, newlines...)");
    } else if (scan.invisible) {
      Add(field, "INVISIBLE_CHARACTER",
          "must not contain invisible characters (direction marks, zero-width spaces, line "
          "or paragraph separators)");
    } else if (!value.empty() && (IsSpace(scan.first) || IsSpace(scan.last))) {
      Add(field, "SURROUNDING_SPACE", "must not begin or end with a space");
    }
  }
  void Slug(std::string_view field, std::string_view value) {
    if (value.empty()) {
      Add(field, "REQUIRED", "is required");
      return;
    }
    const bool ok =
        value.size() <= kIdBytesMax && std::all_of(value.begin(), value.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
        });
    if (!ok) Add(field, "ID_INVALID", "must be 1-40 characters of a-z, 0-9 and '-'");
  }
  void Id(std::string_view field, std::string_view value, char letter) {
    if (value.empty()) {
      Add(field, "REQUIRED", "is required");
      return;
    }
    if (!IsLedgerId(value, letter))
      Add(field, "ID_INVALID", Cat("must look like ", letter, "000123"));
  }
  void AssignedByLedger(std::string_view field, bool set) {
    if (set) Add(field, "ASSIGNED_BY_LEDGER", "is assigned by the ledger; leave it empty");
  }
  void Amount(std::string_view field, int64_t fen) {
    if (fen <= 0) {
      Add(field, "AMOUNT_NOT_POSITIVE", "must be greater than zero");
    } else if (fen > kAmountFenMax) {
      Add(field, "AMOUNT_ABOVE_MAXIMUM",
          Cat("must be at most ", Money::FromFen(kAmountFenMax).ToString()));
    }
  }
  void Range(std::string_view field, int64_t value, int64_t min, int64_t max) {
    if (value < min || value > max) {
      Add(field, "OUT_OF_RANGE", Cat("must be between ", min, " and ", max));
    }
  }
  template <typename IsValid>
  void Enum(std::string_view field, int value, IsValid is_valid) {
    if (value == 0) {
      Add(field, "REQUIRED", "must be set");
    } else if (!is_valid(value)) {
      Add(field, "UNKNOWN_ENUM_VALUE", Cat("has no value ", value));
    }
  }

 private:
  // What Text checks of its code points, read in one pass without copying them.
  struct TextScan {
    bool utf8 = true;  // well-formed: no overlong forms, no surrogates, so names print anywhere
    bool control = false;
    bool invisible = false;
    uint32_t first = 0;  // the first and last code points, of a text not empty
    uint32_t last = 0;
  };
  static TextScan ScanText(std::string_view text) {
    TextScan scan;
    size_t i = 0;
    while (i < text.size()) {
      const unsigned char c = static_cast<unsigned char>(text[i]);
      size_t extra = 0;
      uint32_t code = 0;
      if (c < 0x80) {
        code = c;
      } else if ((c & 0xe0) == 0xc0) {
        extra = 1;
        code = c & 0x1f;
      } else if ((c & 0xf0) == 0xe0) {
        extra = 2;
        code = c & 0x0f;
      } else if ((c & 0xf8) == 0xf0) {
        extra = 3;
        code = c & 0x07;
      } else {
        scan.utf8 = false;
        return scan;
      }
      if (i + extra >= text.size()) {
        scan.utf8 = false;
        return scan;
      }
      for (size_t k = 1; k <= extra; ++k) {
        const unsigned char next = static_cast<unsigned char>(text[i + k]);
        if ((next & 0xc0) != 0x80) {
          scan.utf8 = false;
          return scan;
        }
        code = (code << 6) | (next & 0x3f);
      }
      static constexpr uint32_t kMinimum[4] = {0, 0x80, 0x800, 0x10000};
      if (code < kMinimum[extra] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
        scan.utf8 = false;
        return scan;
      }
      if (i == 0) scan.first = code;
      scan.last = code;
      scan.control = scan.control || IsControl(code);
      scan.invisible = scan.invisible || IsInvisible(code);
      i += extra + 1;
    }
    return scan;
  }
  // C0 and C1 controls and DEL.
  static bool IsControl(uint32_t c) { return c < 0x20 || (c >= 0x7f && c <= 0x9f); }
  // Characters that are not seen: Unicode's Default_Ignorable_Code_Point set (the soft
  // hyphen, joiners, direction marks and isolates, fillers, variation selectors, tags, the
  // byte order mark...), the line and paragraph separators and the blank braille pattern.
  // Emoji joined by U+200D or styled by a variation selector are refused with them.
  static bool IsInvisible(uint32_t c) {
    return c == 0x00ad || c == 0x034f || c == 0x061c || c == 0x115f || c == 0x1160 || c == 0x17b4 ||
           c == 0x17b5 || (c >= 0x180b && c <= 0x180f) || (c >= 0x200b && c <= 0x200f) ||
           (c >= 0x2028 && c <= 0x202e) || (c >= 0x2060 && c <= 0x206f) || c == 0x2800 ||
           c == 0x3164 || (c >= 0xfe00 && c <= 0xfe0f) || c == 0xfeff || c == 0xffa0 ||
           (c >= 0xfff0 && c <= 0xfffb) || (c >= 0x1bca0 && c <= 0x1bca3) ||
           (c >= 0x1d173 && c <= 0x1d17a) || (c >= 0xe0000 && c <= 0xe0fff);
  }
  // Unicode's space separators (the ideographic space of Chinese input among them).
  static bool IsSpace(uint32_t c) {
    return c == 0x20 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x202f ||
           c == 0x205f || c == 0x3000;
  }

  ViolationCollector& violations_;
  std::string prefix_;
};

bool IsPhone(std::string_view phone) {
  return phone.size() == 11 && phone[0] == '1' &&
         std::all_of(phone.begin(), phone.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void ValidateTerms(const v1::ProductTerms& terms, Fields& f) {
  f.Text("terms.name", terms.name(), kNameBytesMax, true);
  f.Enum("terms.funding", terms.funding(), v1::Funding_IsValid);
  if (terms.funding() == v1::FUNDING_PARTNER_BANK) {
    f.Slug("terms.bank_id", terms.bank_id());
    absl::StatusOr<Rate> rate = ParseRate(terms.annual_rate(), f.Path("terms.annual_rate"));
    if (!rate.ok()) {
      f.AddStatus("terms.annual_rate", rate.status());
    } else if (rate->units() == 0) {
      f.Add("terms.annual_rate", "RATE_ZERO", "must be above zero for a partner-bank product");
    }
    f.Enum("terms.day_count", terms.day_count(), v1::DayCountConvention_IsValid);
  } else if (terms.funding() == v1::FUNDING_UNION_FUND) {
    if (!terms.bank_id().empty())
      f.Add("terms.bank_id", "NOT_ALLOWED", "must be empty for a union-fund product");
    if (!terms.annual_rate().empty()) {
      f.Add("terms.annual_rate", "NOT_ALLOWED",
            "must be empty: union-fund loans are interest-free");
    }
    if (terms.day_count() != 0)
      f.Add("terms.day_count", "NOT_ALLOWED", "must be unset for a union-fund product");
  }
  if (terms.limits().empty())
    f.Add("terms.limits", "REQUIRED", "must name at least one borrower category");
  std::set<int> categories;
  for (int i = 0; i < terms.limits_size(); ++i) {
    const std::string at = Cat("terms.limits[", i, "]");
    f.Enum(Cat(at, ".category"), terms.limits(i).category(), v1::BorrowerCategory_IsValid);
    if (!categories.insert(terms.limits(i).category()).second) {
      f.Add(Cat(at, ".category"), "DUPLICATE", "is listed twice");
    }
    f.Amount(Cat(at, ".max_amount_fen"), terms.limits(i).max_amount_fen());
  }
  f.Range("terms.term_months_min", terms.term_months_min(), 1, kTermMonthsMax);
  f.Range("terms.term_months_max", terms.term_months_max(), 1, kTermMonthsMax);
  if (terms.term_months_min() > terms.term_months_max()) {
    f.Add("terms.term_months_max", "BELOW_MINIMUM", "must not be below term_months_min");
  }
  if (terms.methods().empty())
    f.Add("terms.methods", "REQUIRED", "must allow at least one repayment method");
  std::set<int> methods;
  for (int i = 0; i < terms.methods_size(); ++i) {
    f.Enum(Cat("terms.methods[", i, "]"), terms.methods(i), v1::RepaymentMethod_IsValid);
    if (!methods.insert(terms.methods(i)).second) {
      f.Add(Cat("terms.methods[", i, "]"), "DUPLICATE", "is listed twice");
    }
  }
  f.Range("terms.grace_days", terms.grace_days(), 0, kGraceDaysMax);
  f.Range("terms.dual_approval_above_fen", terms.dual_approval_above_fen(), 0, kAmountFenMax);
}

void ValidateDetails(const v1::BorrowerDetails& d, Fields& f) {
  f.Text("details.name", d.name(), kNameBytesMax, true);
  if (!IsPhone(d.phone()))
    f.Add("details.phone", "PHONE_INVALID", "must be an 11-digit mobile number starting with 1");
  f.Text("details.union_member_number", d.union_member_number(), 32, true);
  f.Enum("details.category", d.category(), v1::BorrowerCategory_IsValid);
  f.Text("details.county", d.county(), 64, true);
  f.Text("details.enterprise_name", d.enterprise_name(), kNameBytesMax, true);
  f.Text("details.sector", d.sector(), 64, true);
}

// ---------------------------------------------------------------------------------------
// Projections.

template <typename Message>
absl::StatusOr<std::optional<Message>> ReadProto(StateReader& state, Space space,
                                                 const std::string& key) {
  std::optional<Message> message;
  absl::Status read =
      state.Read(space, key, [&](std::optional<std::string_view> bytes) -> absl::Status {
        if (!bytes.has_value()) return absl::OkStatus();
        message.emplace();
        if (!message->ParseFromArray(bytes->data(), static_cast<int>(bytes->size())))
          return absl::DataLossError(Cat("projection ", key, " does not parse"));
        return absl::OkStatus();
      });
  if (!read.ok()) return read;
  return message;
}

void WriteProto(StateWriter& state, Space space, const std::string& key,
                const google::protobuf::Message& message) {
  state.PutOwned(space, key, message.SerializeAsString());
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Next number of a counter in projections ("n/borrower", "n/loan").
absl::StatusOr<uint64_t> NextNumber(StateReader& state, std::string_view counter) {
  absl::StatusOr<std::optional<std::string>> raw =
      state.Get(Space::kProjections, Cat("n/", counter));
  if (!raw.ok()) return raw.status();
  return (raw->has_value() ? DecodeSequenceKey(**raw) : 0) + 1;
}

std::string NumberedId(char letter, uint64_t number) {
  std::string digits = std::to_string(number);
  if (digits.size() < 6) digits.insert(0, 6 - digits.size(), '0');
  return Cat(letter, digits);
}

uint64_t IdNumber(std::string_view id) { return std::stoull(std::string(id.substr(1))); }

v1::Posting MakePosting(std::string account, v1::PostingSide side, int64_t fen) {
  v1::Posting posting;
  posting.set_account(std::move(account));
  posting.set_side(side);
  posting.set_amount_fen(fen);
  return posting;
}

void Move(Decision& decision, std::string debit, std::string credit, int64_t fen) {
  if (fen == 0) return;
  decision.postings.push_back(MakePosting(std::move(debit), v1::POSTING_SIDE_DEBIT, fen));
  decision.postings.push_back(MakePosting(std::move(credit), v1::POSTING_SIDE_CREDIT, fen));
}

bool IsBank(const v1::LoanState& loan) { return loan.funding() == v1::FUNDING_PARTNER_BANK; }

// Where a loan's principal comes from and goes back to.
std::string FundingAccount(const v1::LoanState& loan) {
  return IsBank(loan) ? Cat("bank:", loan.bank_id(), ":principal_lent")
                      : std::string(kFundCashAccount);
}
std::string WriteOffAccount(const v1::LoanState& loan) {
  return IsBank(loan) ? Cat("bank:", loan.bank_id(), ":writeoffs")
                      : std::string("union:fund:writeoffs");
}
std::string RecoveryAccount(const v1::LoanState& loan) {
  return IsBank(loan) ? Cat("bank:", loan.bank_id(), ":recoveries")
                      : std::string("union:fund:recoveries");
}

DayCount BasisOf(v1::DayCountConvention convention) {
  return convention == v1::DAY_COUNT_CONVENTION_ACT_360 ? DayCount::kAct360 : DayCount::kAct365;
}

int64_t AccrualTotal(const google::protobuf::RepeatedPtrField<v1::AccrualPeriod>& periods) {
  int64_t total = 0;
  for (const v1::AccrualPeriod& p : periods) total += p.amount_fen();
  return total;
}

std::string StatusName(v1::LoanStatus status) {
  std::string name = v1::LoanStatus_Name(status);
  constexpr std::string_view kPrefix = "LOAN_STATUS_";
  if (name.starts_with(kPrefix)) name = Lower(name.substr(kPrefix.size()));
  return name;
}

absl::Status WrongState(const v1::LoanState& loan, std::string_view wanted) {
  return Refused("INVALID_LOAN_STATE",
                 Cat("loan ", loan.loan_id(), " is ", StatusName(loan.position().status()),
                     "; it must be ", wanted));
}

// ---------------------------------------------------------------------------------------
// Decide.

struct Context {
  StateReader& state;
  const Command& command;
  Date date;
  const v1::Actor& actor() const { return command.actor; }
  // The loan the command is about, as LoanForEntry read it. Decide only looks at it, and
  // hands it on with the decision, so that Apply need not read and parse it again.
  std::optional<v1::LoanState> loan = std::nullopt;
};

// Reads loan `loan_id` into `c.loan`. Refuses a missing loan, and a business date before
// the loan's latest entry.
absl::StatusOr<const v1::LoanState*> LoanForEntry(Context& c, std::string_view loan_id) {
  absl::StatusOr<std::optional<v1::LoanState>> loan = ReadLoan(c.state, loan_id);
  if (!loan.ok()) return loan.status();
  if (!loan->has_value()) {
    return WithReason(absl::StatusCode::kNotFound, "LOAN_NOT_FOUND",
                      Cat("no loan ", Excerpt(loan_id)));
  }
  if (!(*loan)->last_entry_date().empty() && c.date.ToString() < (*loan)->last_entry_date()) {
    return Refused(
        "BUSINESS_DATE_BEFORE_LOAN_HISTORY",
        Cat("business date ", c.date.ToString(), " is before loan ", loan_id, "'s latest entry (",
            (*loan)->last_entry_date(), "); the ledger never rewrites a loan's history"));
  }
  c.loan = std::move(**loan);
  return &*c.loan;
}

absl::StatusOr<v1::BorrowerState> ExistingBorrower(StateReader& state, std::string_view id) {
  absl::StatusOr<std::optional<v1::BorrowerState>> borrower = ReadBorrower(state, id);
  if (!borrower.ok()) return borrower.status();
  if (!borrower->has_value()) {
    return WithReason(absl::StatusCode::kNotFound, "BORROWER_NOT_FOUND",
                      Cat("no borrower ", Excerpt(id)));
  }
  return std::move(**borrower);
}

absl::StatusOr<v1::ProductState> ExistingProduct(StateReader& state, std::string_view id) {
  absl::StatusOr<std::optional<v1::ProductState>> product = ReadProduct(state, id);
  if (!product.ok()) return product.status();
  if (!product->has_value()) {
    return WithReason(absl::StatusCode::kNotFound, "PRODUCT_NOT_FOUND",
                      Cat("no product ", Excerpt(id)));
  }
  return std::move(**product);
}

// The terms of `product` in force on `date`: those of its latest definition or amendment
// dated on or before it; nullptr before its definition.
const v1::ProductTerms* TermsInForce(const v1::ProductState& product, std::string_view date) {
  const v1::ProductTerms* in_force = nullptr;
  for (const v1::DatedProductTerms& version : product.versions()) {
    if (version.from_date() <= date) in_force = &version.terms();
  }
  return in_force;
}

absl::StatusOr<int64_t> AccountBalance(StateReader& state, std::string_view account) {
  absl::StatusOr<std::optional<v1::AccountState>> raw =
      ReadProto<v1::AccountState>(state, Space::kProjections, AccountKey(account));
  if (!raw.ok()) return raw.status();
  return raw->has_value() ? (*raw)->balance_fen() : 0;
}

bool MayDecide(const v1::Actor& actor) {
  return actor.role() == kRoleApprover || actor.role() == kRoleSupervisor;
}

absl::StatusOr<Decision> DecideProduct(Context& c, const std::string& product_id, bool amend) {
  absl::StatusOr<std::optional<v1::ProductState>> existing = ReadProduct(c.state, product_id);
  if (!existing.ok()) return existing.status();
  if (!amend && existing->has_value()) {
    return WithReason(absl::StatusCode::kAlreadyExists, "PRODUCT_EXISTS",
                      Cat("product ", product_id, " is already defined; amend it instead"));
  }
  if (amend && !existing->has_value()) {
    return WithReason(absl::StatusCode::kNotFound, "PRODUCT_NOT_FOUND",
                      Cat("no product ", Excerpt(product_id)));
  }
  if (amend &&
      (*existing)->terms().funding() != c.command.event.product_amended().terms().funding()) {
    return Refused("FUNDING_IS_FIXED", "a product's funding cannot change; define a new product");
  }
  // Terms take effect in date order: an amendment dated before the terms in force would
  // change, after the fact, the terms that applications since were checked against.
  if (amend && !(*existing)->versions().empty() &&
      c.date.ToString() < (*existing)->versions().rbegin()->from_date()) {
    return Refused(
        "BEFORE_PRODUCT_TERMS",
        Cat("business date ", c.date.ToString(), " is before product ", product_id,
            "'s current terms, in force from ", (*existing)->versions().rbegin()->from_date()));
  }
  // Applications dated from an amendment's date on take its terms: one already recorded
  // on or after that date took the terms before it.
  if (amend && c.date.ToString() <= (*existing)->last_application_date()) {
    return Refused("BEFORE_PRODUCT_APPLICATION",
                   Cat("business date ", c.date.ToString(), " is not after ",
                       (*existing)->last_application_date(),
                       ", the date of the latest application ", "checked against product ",
                       product_id, "'s current terms; date the amendment after it"));
  }
  return Decision{c.command.event, {}};
}

// Keeps each borrower's history in date order, as an auditor's replay as of a date needs:
// refuses a change to borrower `b`, or an application of theirs, dated before the
// borrower's latest change (its registration at first); and a change dated before their
// latest application (`with_applications`), which took the details and status in force on
// its date.
absl::Status BorrowerHistoryAllows(const Context& c, const v1::BorrowerState& b,
                                   bool with_applications) {
  std::string_view latest = b.changed_date().empty() ? b.registered_date() : b.changed_date();
  std::string_view what = "change";
  if (with_applications && b.last_application_date() > latest) {
    latest = b.last_application_date();
    what = "application";
  }
  if (c.date.ToString() >= latest) return absl::OkStatus();
  return Refused(
      "BUSINESS_DATE_BEFORE_BORROWER_HISTORY",
      Cat("business date ", c.date.ToString(), " is before borrower ", b.borrower_id(),
          "'s latest ", what, " (", latest, "); the ledger never rewrites a borrower's history"));
}

absl::StatusOr<Decision> DecideRegister(Context& c) {
  const v1::BorrowerRegistered& event = c.command.event.borrower_registered();
  absl::StatusOr<std::optional<std::string>> holder =
      c.state.Get(Space::kIndexes, NationalIdIndexKey(event.national_id()));
  if (!holder.ok()) return holder.status();
  if (holder->has_value()) {
    return WithReason(
        absl::StatusCode::kAlreadyExists, "BORROWER_ALREADY_REGISTERED",
        Cat("a borrower with this national ID number is already registered as ", **holder));
  }
  absl::StatusOr<uint64_t> number = NextNumber(c.state, "borrower");
  if (!number.ok()) return number.status();
  Decision decision{c.command.event, {}};
  decision.event.mutable_borrower_registered()->set_borrower_id(NumberedId('B', *number));
  return decision;
}

absl::StatusOr<Decision> DecideSubmit(Context& c) {
  const v1::ApplicationSubmitted& event = c.command.event.application_submitted();
  absl::StatusOr<v1::BorrowerState> borrower = ExistingBorrower(c.state, event.borrower_id());
  if (!borrower.ok()) return borrower.status();
  absl::StatusOr<v1::ProductState> product = ExistingProduct(c.state, event.product_id());
  if (!product.ok()) return product.status();
  if (borrower->status() != v1::TALENT_POOL_STATUS_ACTIVE) {
    return Refused("BORROWER_NOT_ACTIVE", Cat("borrower ", borrower->borrower_id(),
                                              " is not an active member of the talent pool"));
  }
  // An application dated before its borrower joined the talent pool would put a loan to
  // someone not yet a member into that period's report.
  if (c.date.ToString() < borrower->registered_date()) {
    return Refused("BEFORE_REGISTRATION", Cat("business date ", c.date.ToString(),
                                              " is before borrower ", borrower->borrower_id(),
                                              "'s registration on ", borrower->registered_date()));
  }
  // Nor before the borrower's latest change: it takes their status, category and county as
  // they are now, which were not yet so on an earlier date.
  if (absl::Status dated = BorrowerHistoryAllows(c, *borrower, false); !dated.ok()) return dated;
  // It is checked against the product's terms in force on its date; before the product
  // was defined there were none.
  const v1::ProductTerms* in_force = TermsInForce(*product, c.date.ToString());
  if (in_force == nullptr) {
    if (product->versions().empty())
      return absl::DataLossError(Cat("product ", product->product_id(), " holds no terms"));
    return Refused("BEFORE_PRODUCT", Cat("business date ", c.date.ToString(), " is before product ",
                                         product->product_id(), "'s definition on ",
                                         product->versions(0).from_date()));
  }
  const v1::ProductTerms& terms = *in_force;
  const v1::CategoryLimit* limit = nullptr;
  for (const v1::CategoryLimit& l : terms.limits()) {
    if (l.category() == borrower->details().category()) limit = &l;
  }
  if (limit == nullptr) {
    return Refused(
        "CATEGORY_NOT_ELIGIBLE",
        Cat("product ", product->product_id(), " does not lend to borrowers of category ",
            v1::BorrowerCategory_Name(borrower->details().category())));
  }
  if (event.amount_fen() > limit->max_amount_fen()) {
    return Refused("EXCEEDS_PRODUCT_LIMIT",
                   Cat("amount ", Money::FromFen(event.amount_fen()).ToString(),
                       " is above product ", product->product_id(), "'s limit of ",
                       Money::FromFen(limit->max_amount_fen()).ToString(), " for this category"));
  }
  if (event.term_months() < terms.term_months_min() ||
      event.term_months() > terms.term_months_max()) {
    return Refused(
        "TERM_OUTSIDE_PRODUCT_LIMITS",
        Cat("term of ", event.term_months(), " months is outside product ", product->product_id(),
            "'s ", terms.term_months_min(), "-", terms.term_months_max(), " months"));
  }
  if (std::find(terms.methods().begin(), terms.methods().end(), event.method()) ==
      terms.methods().end()) {
    return Refused("METHOD_NOT_ALLOWED", Cat("product ", product->product_id(), " does not allow ",
                                             v1::RepaymentMethod_Name(event.method())));
  }
  absl::StatusOr<uint64_t> number = NextNumber(c.state, "loan");
  if (!number.ok()) return number.status();
  Decision decision{c.command.event, {}};
  decision.event.mutable_application_submitted()->set_loan_id(NumberedId('L', *number));
  return decision;
}

absl::StatusOr<Decision> DecideApprove(Context& c) {
  const v1::ApprovalGranted& event = c.command.event.approval_granted();
  absl::StatusOr<const v1::LoanState*> read = LoanForEntry(c, event.loan_id());
  if (!read.ok()) return read.status();
  const v1::LoanState& loan = **read;
  if (!MayDecide(c.actor())) {
    return WithReason(absl::StatusCode::kPermissionDenied, "APPROVER_ROLE_REQUIRED",
                      "only an approver or a supervisor may approve a loan");
  }
  if (loan.position().status() != v1::LOAN_STATUS_SUBMITTED) return WrongState(loan, "submitted");
  if (loan.submitted().principal_id() == c.actor().principal_id()) {
    return Refused("SELF_APPROVAL_FORBIDDEN",
                   Cat(c.actor().principal_id(), " submitted loan ", loan.loan_id(),
                       " and so cannot approve it (four eyes)"));
  }
  for (const v1::Decision& approval : loan.approvals()) {
    if (approval.principal_id() == c.actor().principal_id()) {
      return Refused("DUPLICATE_APPROVAL",
                     Cat(c.actor().principal_id(), " has already approved loan ", loan.loan_id(),
                         "; a second approval must come from a different approver"));
    }
  }
  Decision decision{c.command.event, {}};
  decision.event.mutable_approval_granted()->set_approvals(loan.approvals_size() + 1);
  decision.event.mutable_approval_granted()->set_approvals_required(loan.approvals_required());
  return decision;
}

absl::StatusOr<Decision> DecideCloseApplication(Context& c, const std::string& loan_id,
                                                bool reject) {
  absl::StatusOr<const v1::LoanState*> read = LoanForEntry(c, loan_id);
  if (!read.ok()) return read.status();
  const v1::LoanState& loan = **read;
  const v1::LoanStatus status = loan.position().status();
  if (reject) {
    if (!MayDecide(c.actor())) {
      return WithReason(absl::StatusCode::kPermissionDenied, "APPROVER_ROLE_REQUIRED",
                        "only an approver or a supervisor may reject an application");
    }
    if (status != v1::LOAN_STATUS_SUBMITTED) return WrongState(loan, "submitted");
  } else if (status != v1::LOAN_STATUS_SUBMITTED && status != v1::LOAN_STATUS_APPROVED) {
    return WrongState(loan, "submitted or approved (not yet disbursed)");
  }
  return Decision{c.command.event, {}};
}

absl::StatusOr<Decision> DecideRevoke(Context& c) {
  absl::StatusOr<const v1::LoanState*> read =
      LoanForEntry(c, c.command.event.approval_revoked().loan_id());
  if (!read.ok()) return read.status();
  const v1::LoanState& loan = **read;
  if (!MayDecide(c.actor())) {
    return WithReason(absl::StatusCode::kPermissionDenied, "APPROVER_ROLE_REQUIRED",
                      "only an approver or a supervisor may revoke an approval");
  }
  if (loan.approvals().empty() || (loan.position().status() != v1::LOAN_STATUS_APPROVED &&
                                   loan.position().status() != v1::LOAN_STATUS_SUBMITTED)) {
    return Refused("NOTHING_TO_REVOKE", Cat("loan ", loan.loan_id(), " has no approval to revoke"));
  }
  return Decision{c.command.event, {}};
}

absl::StatusOr<Decision> DecideDisburse(Context& c) {
  const v1::LoanDisbursed& event = c.command.event.loan_disbursed();
  absl::StatusOr<const v1::LoanState*> read = LoanForEntry(c, event.loan_id());
  if (!read.ok()) return read.status();
  const v1::LoanState& loan = **read;
  if (loan.position().status() != v1::LOAN_STATUS_APPROVED) return WrongState(loan, "approved");
  if (event.amount_fen() != 0 && event.amount_fen() != loan.amount_fen()) {
    return Refused("AMOUNT_MISMATCH", Cat("loan ", loan.loan_id(), " was approved for ",
                                          Money::FromFen(loan.amount_fen()).ToString(), ", not ",
                                          Money::FromFen(event.amount_fen()).ToString()));
  }
  if (!IsBank(loan)) {
    absl::StatusOr<int64_t> cash = AccountBalance(c.state, kFundCashAccount);
    if (!cash.ok()) return cash.status();
    if (*cash < loan.amount_fen()) {
      return Refused(
          "FUND_INSUFFICIENT",
          Cat("the union fund holds ", Money::FromFen(*cash).ToString(), ", less than the ",
              Money::FromFen(loan.amount_fen()).ToString(), " to disburse"));
    }
  }
  absl::StatusOr<std::vector<v1::Installment>> schedule =
      BuildSchedule(c.date, loan.amount_fen(), loan.term_months(), loan.method());
  if (!schedule.ok()) return schedule.status();
  Decision decision{c.command.event, {}};
  v1::LoanDisbursed* recorded = decision.event.mutable_loan_disbursed();
  recorded->set_amount_fen(loan.amount_fen());
  for (v1::Installment& installment : *schedule) *recorded->add_schedule() = std::move(installment);
  Move(decision, LoanPrincipalAccount(loan.loan_id()), FundingAccount(loan), loan.amount_fen());
  return decision;
}

// The final subsidy periods of a partner-bank loan ending at `date`, priced.
absl::StatusOr<std::vector<v1::AccrualPeriod>> FinalAccruals(const v1::LoanState& loan, Date date) {
  if (!IsBank(loan)) return std::vector<v1::AccrualPeriod>{};
  v1::LoanPosition position = loan.position();
  absl::StatusOr<Rate> rate = ParseRate(loan.annual_rate(), "annual_rate");
  if (!rate.ok())
    return absl::DataLossError(Cat("loan ", loan.loan_id(), " has an unreadable rate"));
  return TakeAccrualPeriods(position, date, /*final=*/true, *rate, BasisOf(loan.day_count()));
}

void PostAccruals(Decision& decision, const v1::LoanState& loan,
                  const std::vector<v1::AccrualPeriod>& periods) {
  int64_t total = 0;
  for (const v1::AccrualPeriod& p : periods) total += p.amount_fen();
  Move(decision, std::string(kSubsidyExpenseAccount), BankSubsidyPayableAccount(loan.bank_id()),
       total);
}

absl::StatusOr<Decision> DecideRepay(Context& c) {
  const v1::RepaymentRecorded& event = c.command.event.repayment_recorded();
  absl::StatusOr<const v1::LoanState*> read = LoanForEntry(c, event.loan_id());
  if (!read.ok()) return read.status();
  const v1::LoanState& loan = **read;
  if (loan.position().status() != v1::LOAN_STATUS_ACTIVE) return WrongState(loan, "active");
  const int64_t outstanding = loan.position().principal_outstanding_fen();
  if (event.amount_fen() > outstanding) {
    return Refused("EXCEEDS_OUTSTANDING",
                   Cat("repayment of ", Money::FromFen(event.amount_fen()).ToString(),
                       " is more than loan ", loan.loan_id(), "'s outstanding principal of ",
                       Money::FromFen(outstanding).ToString()));
  }
  Decision decision{c.command.event, {}};
  v1::RepaymentRecorded* recorded = decision.event.mutable_repayment_recorded();
  int64_t left = event.amount_fen();
  for (int i = 0; i < loan.position().schedule_size() && left > 0; ++i) {
    const int64_t unpaid =
        loan.position().schedule(i).principal_fen() - loan.position().paid_fen(i);
    if (unpaid <= 0) continue;
    const int64_t take = std::min(unpaid, left);
    v1::Allocation* allocation = recorded->add_allocations();
    allocation->set_installment(i + 1);
    allocation->set_principal_fen(take);
    left -= take;
  }
  GONGDAI_CHECK(left == 0);
  Move(decision, FundingAccount(loan), LoanPrincipalAccount(loan.loan_id()), event.amount_fen());
  if (event.amount_fen() == outstanding) {
    recorded->set_paid_off(true);
    absl::StatusOr<std::vector<v1::AccrualPeriod>> accruals = FinalAccruals(loan, c.date);
    if (!accruals.ok()) return accruals.status();
    for (const v1::AccrualPeriod& p : *accruals) *recorded->add_accruals() = p;
    PostAccruals(decision, loan, *accruals);
  }
  return decision;
}

absl::StatusOr<Decision> DecideAccrue(Context& c) {
  absl::StatusOr<const v1::LoanState*> read =
      LoanForEntry(c, c.command.event.subsidy_accrued().loan_id());
  if (!read.ok()) return read.status();
  const v1::LoanState& loan = **read;
  if (!IsBank(loan)) {
    return Refused("NOT_BANK_FUNDED", Cat("loan ", loan.loan_id(),
                                          " is lent by the union fund, interest-free: no subsidy"));
  }
  if (loan.position().status() != v1::LOAN_STATUS_ACTIVE) return WrongState(loan, "active");
  v1::LoanPosition position = loan.position();
  absl::StatusOr<Rate> rate = ParseRate(loan.annual_rate(), "annual_rate");
  if (!rate.ok())
    return absl::DataLossError(Cat("loan ", loan.loan_id(), " has an unreadable rate"));
  absl::StatusOr<std::vector<v1::AccrualPeriod>> periods =
      TakeAccrualPeriods(position, c.date, /*final=*/false, *rate, BasisOf(loan.day_count()));
  if (!periods.ok()) return periods.status();
  if (periods->empty()) {
    return Refused(
        "NOTHING_TO_ACCRUE",
        Cat("loan ", loan.loan_id(), " has no complete month to accrue by ", c.date.ToString()));
  }
  Decision decision{c.command.event, {}};
  for (const v1::AccrualPeriod& p : *periods)
    *decision.event.mutable_subsidy_accrued()->add_accruals() = p;
  PostAccruals(decision, loan, *periods);
  return decision;
}

absl::StatusOr<Decision> DecideSettle(Context& c) {
  const v1::SubsidySettled& event = c.command.event.subsidy_settled();
  absl::StatusOr<int64_t> payable =
      AccountBalance(c.state, BankSubsidyPayableAccount(event.bank_id()));
  if (!payable.ok()) return payable.status();
  const int64_t owed = -*payable;  // a liability: credit balance
  if (event.amount_fen() > owed) {
    return Refused("EXCEEDS_SUBSIDY_OWED",
                   Cat("the union owes bank ", event.bank_id(), " ",
                       Money::FromFen(owed).ToString(), " of subsidy, less than the ",
                       Money::FromFen(event.amount_fen()).ToString(), " to settle"));
  }
  Decision decision{c.command.event, {}};
  Move(decision, BankSubsidyPayableAccount(event.bank_id()), std::string(kOperatingAccount),
       event.amount_fen());
  return decision;
}

absl::StatusOr<Decision> DecideJobs(Context& c) {
  absl::StatusOr<const v1::LoanState*> read =
      LoanForEntry(c, c.command.event.jobs_reported().loan_id());
  if (!read.ok()) return read.status();
  const v1::LoanState& loan = **read;
  if (loan.position().disbursed_date().empty()) return WrongState(loan, "disbursed");
  return Decision{c.command.event, {}};
}

absl::StatusOr<Decision> DecideWriteOff(Context& c) {
  const v1::LoanWrittenOff& event = c.command.event.loan_written_off();
  absl::StatusOr<const v1::LoanState*> read = LoanForEntry(c, event.loan_id());
  if (!read.ok()) return read.status();
  const v1::LoanState& loan = **read;
  if (c.actor().role() != kRoleSupervisor) {
    return WithReason(absl::StatusCode::kPermissionDenied, "SUPERVISOR_REQUIRED",
                      "only a supervisor may write a loan off");
  }
  if (loan.position().status() != v1::LOAN_STATUS_ACTIVE) return WrongState(loan, "active");
  const int64_t outstanding = loan.position().principal_outstanding_fen();
  if (event.amount_fen() != 0 && event.amount_fen() != outstanding) {
    return Refused("AMOUNT_MISMATCH", Cat("a write-off takes the whole outstanding principal of ",
                                          Money::FromFen(outstanding).ToString()));
  }
  Decision decision{c.command.event, {}};
  v1::LoanWrittenOff* recorded = decision.event.mutable_loan_written_off();
  recorded->set_amount_fen(outstanding);
  Move(decision, WriteOffAccount(loan), LoanPrincipalAccount(loan.loan_id()), outstanding);
  absl::StatusOr<std::vector<v1::AccrualPeriod>> accruals = FinalAccruals(loan, c.date);
  if (!accruals.ok()) return accruals.status();
  for (const v1::AccrualPeriod& p : *accruals) *recorded->add_accruals() = p;
  PostAccruals(decision, loan, *accruals);
  return decision;
}

absl::StatusOr<Decision> DecideRecovery(Context& c) {
  const v1::RecoveryRecorded& event = c.command.event.recovery_recorded();
  absl::StatusOr<const v1::LoanState*> read = LoanForEntry(c, event.loan_id());
  if (!read.ok()) return read.status();
  const v1::LoanState& loan = **read;
  if (loan.position().status() != v1::LOAN_STATUS_WRITTEN_OFF)
    return WrongState(loan, "written off");
  const int64_t recoverable = loan.position().written_off_fen() - loan.position().recovered_fen();
  if (event.amount_fen() > recoverable) {
    return Refused(
        "EXCEEDS_WRITTEN_OFF",
        Cat("recovery of ", Money::FromFen(event.amount_fen()).ToString(), " is more than the ",
            Money::FromFen(recoverable).ToString(), " written off and not yet recovered"));
  }
  Decision decision{c.command.event, {}};
  Move(decision, FundingAccount(loan), RecoveryAccount(loan), event.amount_fen());
  return decision;
}

absl::StatusOr<Decision> DecideFund(Context& c) {
  Decision decision{c.command.event, {}};
  Move(decision, std::string(kFundCashAccount), std::string(kFundCapitalAccount),
       c.command.event.fund_contributed().amount_fen());
  return decision;
}

std::string LoanIdOf(const v1::Event& event) {
  switch (event.kind_case()) {
    case v1::Event::kApplicationSubmitted:
      return event.application_submitted().loan_id();
    case v1::Event::kApprovalGranted:
      return event.approval_granted().loan_id();
    case v1::Event::kApplicationRejected:
      return event.application_rejected().loan_id();
    case v1::Event::kApplicationWithdrawn:
      return event.application_withdrawn().loan_id();
    case v1::Event::kApprovalRevoked:
      return event.approval_revoked().loan_id();
    case v1::Event::kLoanDisbursed:
      return event.loan_disbursed().loan_id();
    case v1::Event::kRepaymentRecorded:
      return event.repayment_recorded().loan_id();
    case v1::Event::kSubsidyAccrued:
      return event.subsidy_accrued().loan_id();
    case v1::Event::kJobsReported:
      return event.jobs_reported().loan_id();
    case v1::Event::kLoanWrittenOff:
      return event.loan_written_off().loan_id();
    case v1::Event::kRecoveryRecorded:
      return event.recovery_recorded().loan_id();
    case v1::Event::kEntryReversed:
      return event.entry_reversed().loan_id();
    default:
      return "";
  }
}

bool IsReversible(const v1::Event& event) {
  switch (event.kind_case()) {
    case v1::Event::kFundContributed:
    case v1::Event::kLoanDisbursed:
    case v1::Event::kRepaymentRecorded:
    case v1::Event::kSubsidyAccrued:
    case v1::Event::kSubsidySettled:
    case v1::Event::kLoanWrittenOff:
    case v1::Event::kRecoveryRecorded:
      return true;
    default:
      return false;
  }
}

std::string ReversedKey(uint64_t sequence) { return Cat("r/", SequenceKey(sequence)); }

// What `entry` posted to `account` on `side`, less what it posted there on the other side.
int64_t NetPosted(const v1::Entry& entry, std::string_view account, v1::PostingSide side) {
  int64_t net = 0;
  for (const v1::Posting& posting : entry.postings()) {
    if (posting.account() != account) continue;
    net += posting.side() == side ? posting.amount_fen() : -posting.amount_fen();
  }
  return net;
}

absl::StatusOr<Decision> DecideReverse(Context& c) {
  const v1::EntryReversed& event = c.command.event.entry_reversed();
  if (c.actor().role() != kRoleSupervisor) {
    return WithReason(absl::StatusCode::kPermissionDenied, "SUPERVISOR_REQUIRED",
                      "only a supervisor may reverse an entry");
  }
  absl::StatusOr<std::optional<std::string>> stored =
      c.state.Get(Space::kJournal, SequenceKey(event.reversed_sequence()));
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) {
    return WithReason(absl::StatusCode::kNotFound, "ENTRY_NOT_FOUND",
                      Cat("no entry ", event.reversed_sequence()));
  }
  absl::StatusOr<v1::Entry> target = OpenEntry(**stored, event.reversed_sequence());
  if (!target.ok()) return target.status();
  if (!IsReversible(target->event())) {
    return Refused("NOT_REVERSIBLE",
                   Cat("entry ", target->sequence(),
                       " is not a financial entry; record a new decision instead"));
  }
  absl::StatusOr<std::optional<std::string>> reversed =
      c.state.Get(Space::kProjections, ReversedKey(target->sequence()));
  if (!reversed.ok()) return reversed.status();
  if (reversed->has_value()) {
    return Refused("ALREADY_REVERSED",
                   Cat("entry ", target->sequence(), " was already reversed by entry ",
                       DecodeSequenceKey(**reversed)));
  }
  // A correction comes after what it corrects: dated before it, a contribution's reversal
  // would take cash out of the fund before it came in. (A loan's entries are held to the
  // loan's latest entry below.)
  if (c.date.ToString() < target->business_date()) {
    return Refused("BEFORE_REVERSED_ENTRY",
                   Cat("business date ", c.date.ToString(), " is before entry ", target->sequence(),
                       "'s own (", target->business_date(), ")"));
  }
  Decision decision{c.command.event, {}};
  const std::string loan_id = LoanIdOf(target->event());
  if (!loan_id.empty()) {
    absl::StatusOr<const v1::LoanState*> read = LoanForEntry(c, loan_id);
    if (!read.ok()) return read.status();
    const v1::LoanState& loan = **read;
    if (loan.position().last_financial_sequence() != target->sequence() ||
        !loan.has_position_before_last()) {
      return Refused(
          "NOT_LATEST_LOAN_ENTRY",
          Cat("entry ", target->sequence(), " is not loan ", loan_id, "'s latest financial entry (",
              loan.position().last_financial_sequence(), "); reverse the later entries first"));
    }
    // Jobs are reported on a disbursed loan: its disbursement taken back, the report would
    // keep jobs created by a loan never made, and they could no longer be corrected.
    if (target->event().has_loan_disbursed() && loan.jobs_reported() != 0) {
      return Refused("JOBS_REPORTED",
                     Cat("loan ", loan_id, " has ", loan.jobs_reported(),
                         " jobs reported; report 0 jobs created before reversing its "
                         "disbursement"));
    }
    decision.event.mutable_entry_reversed()->set_loan_id(loan_id);
  }
  // The fund's cash never goes below zero: reversing an entry that brought cash in (a
  // contribution, a repayment or recovery of a union-fund loan) needs that cash still there.
  const int64_t cash_in = NetPosted(*target, kFundCashAccount, v1::POSTING_SIDE_DEBIT);
  if (cash_in > 0) {
    absl::StatusOr<int64_t> cash = AccountBalance(c.state, kFundCashAccount);
    if (!cash.ok()) return cash.status();
    if (*cash < cash_in) {
      return Refused("FUND_INSUFFICIENT",
                     Cat("the fund holds ", Money::FromFen(*cash).ToString(), ", less than the ",
                         Money::FromFen(cash_in).ToString(), " entry ", target->sequence(),
                         " brought in; it cannot be reversed until the fund has it again"));
    }
  }
  // Nor does a bank's subsidy payable turn into a claim on the bank: reversing an entry
  // that accrued subsidy (an accrual, a payoff or a write-off) needs that much still owed,
  // not yet settled.
  std::set<std::string_view> payables;
  for (const v1::Posting& posting : target->postings()) {
    if (IsBankSubsidyPayable(posting.account())) payables.insert(posting.account());
  }
  for (std::string_view account : payables) {
    const int64_t amount = NetPosted(*target, account, v1::POSTING_SIDE_CREDIT);
    if (amount <= 0) continue;
    absl::StatusOr<int64_t> payable = AccountBalance(c.state, account);
    if (!payable.ok()) return payable.status();
    const int64_t owed = -*payable;  // a liability: credit balance
    if (owed < amount) {
      return Refused(
          "SUBSIDY_ALREADY_SETTLED",
          Cat("the union owes ", Money::FromFen(owed).ToString(), " on ", account,
              ", less than the ", Money::FromFen(amount).ToString(), " entry ", target->sequence(),
              " accrued: that subsidy was settled; reverse the settlement first"));
    }
  }
  for (const v1::Posting& posting : target->postings()) {
    decision.postings.push_back(MakePosting(
        posting.account(),
        posting.side() == v1::POSTING_SIDE_DEBIT ? v1::POSTING_SIDE_CREDIT : v1::POSTING_SIDE_DEBIT,
        posting.amount_fen()));
  }
  return decision;
}

// ---------------------------------------------------------------------------------------
// Report counters.

// Adds `sign` times every counter of `delta` into `into` (every field is an int64).
void AddCounters(v1::ReportCounters& into, const v1::ReportCounters& delta, int64_t sign) {
  const google::protobuf::Descriptor* descriptor = v1::ReportCounters::descriptor();
  const google::protobuf::Reflection* reflection = v1::ReportCounters::GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor->field(i);
    reflection->SetInt64(
        &into, field,
        reflection->GetInt64(into, field) + sign * reflection->GetInt64(delta, field));
  }
}

absl::Status AddToReport(StateWriter& state, const ReportDims& dims, const v1::Contribution& c,
                         int64_t sign) {
  const std::string key = ReportKey(c.date(), dims);
  absl::StatusOr<std::optional<v1::ReportCounters>> stored =
      ReadProto<v1::ReportCounters>(state, Space::kProjections, key);
  if (!stored.ok()) return stored.status();
  v1::ReportCounters counters = stored->value_or(v1::ReportCounters());
  AddCounters(counters, c.counters(), sign);
  WriteProto(state, Space::kProjections, key, counters);
  return absl::OkStatus();
}

ReportDims DimsOf(const v1::LoanState& loan) {
  return ReportDims{loan.county(), loan.category(), loan.product_id(), loan.funding()};
}

class Contributions {
 public:
  v1::ReportCounters& On(const std::string& date) {
    for (v1::Contribution& c : list_) {
      if (c.date() == date) return *c.mutable_counters();
    }
    list_.emplace_back();
    list_.back().set_date(date);
    return *list_.back().mutable_counters();
  }
  const std::vector<v1::Contribution>& list() const { return list_; }

 private:
  std::vector<v1::Contribution> list_;
};

// ---------------------------------------------------------------------------------------
// Apply.

struct ApplyContext {
  const v1::Entry& entry;
  std::string_view stored;  // the entry as the journal stores it
  StateWriter& state;
  Date date;
  ApplyHandOver* hand_over;  // may be null
  v1::Decision Who(std::string note = "") const {
    v1::Decision who;
    who.set_principal_id(entry.actor().principal_id());
    who.set_role(entry.actor().role());
    who.set_sequence(entry.sequence());
    who.set_date(entry.business_date());
    who.set_note(std::move(note));
    return who;
  }
};

absl::StatusOr<v1::LoanState> MustReadLoan(StateWriter& state, std::string_view loan_id) {
  absl::StatusOr<std::optional<v1::LoanState>> loan = ReadLoan(state, loan_id);
  if (!loan.ok()) return loan.status();
  if (!loan->has_value()) return absl::DataLossError(Cat("entry refers to unknown loan ", loan_id));
  return std::move(**loan);
}

void SetStatus(StateWriter& state, v1::LoanState& loan, v1::LoanStatus status) {
  const v1::LoanStatus old = loan.position().status();
  if (old != v1::LOAN_STATUS_UNSPECIFIED)
    state.Delete(Space::kIndexes, Cat(LoansByStatusPrefix(old), loan.loan_id()));
  state.Put(Space::kIndexes, Cat(LoansByStatusPrefix(status), loan.loan_id()), "");
  loan.mutable_position()->set_status(status);
}

// Moves the report's running stocks from the loan's old step function to its new one:
// only the days whose change differs are rewritten (a repayment touches two or three).
absl::Status UpdateStocks(StateWriter& state, const ReportDims& dims,
                          const std::optional<v1::LoanSummary>& before,
                          const std::optional<v1::LoanSummary>& after) {
  // Both step functions are in ascending day order: walk them together.
  const std::vector<std::pair<int32_t, Stocks>> old_steps =
      before.has_value() ? StockSteps(*before) : std::vector<std::pair<int32_t, Stocks>>();
  const std::vector<std::pair<int32_t, Stocks>> new_steps =
      after.has_value() ? StockSteps(*after) : std::vector<std::pair<int32_t, Stocks>>();
  size_t o = 0;
  size_t n = 0;
  while (o < old_steps.size() || n < new_steps.size()) {
    int32_t day = std::numeric_limits<int32_t>::max();
    if (o < old_steps.size()) day = old_steps[o].first;
    if (n < new_steps.size()) day = std::min(day, new_steps[n].first);
    Stocks d;
    if (n < new_steps.size() && new_steps[n].first == day) d += new_steps[n++].second;
    if (o < old_steps.size() && old_steps[o].first == day) d -= old_steps[o++].second;
    if (d == Stocks{}) continue;
    const std::string key = StockKey(Date::FromDays(day).ToString(), dims);
    absl::StatusOr<std::optional<v1::StockChange>> stored =
        ReadProto<v1::StockChange>(state, Space::kProjections, key);
    if (!stored.ok()) return stored.status();
    Stocks sum = stored->has_value() ? StocksOf(**stored) : Stocks{};
    sum += d;
    if (sum == Stocks{}) {
      state.Delete(Space::kProjections, key);  // the day's changes cancel out
    } else {
      WriteProto(state, Space::kProjections, key, StockChangeOf(sum));
    }
  }
  return absl::OkStatus();
}

// Saves `loan` as an entry left it, with its summary and the report's stocks where the
// summary changed. `summary_before` is the summary of the loan as stored before the entry
// (SummaryOf of it): the stored summary is always that, so it is derived rather than read,
// and a loan not yet in memory costs one read fewer (on a large book, a disk read).
absl::Status SaveLoan(ApplyContext& a, v1::LoanState& loan,
                      const std::optional<v1::LoanSummary>& summary_before) {
  loan.set_last_entry_date(a.entry.business_date());
  WriteProto(a.state, Space::kProjections, LoanKey(loan.loan_id()), loan);
  // The small record the portfolio and the report read; only disbursed loans have one.
  // Entries that leave it as it was (jobs reported, an accrual) change no stocks.
  const std::optional<v1::LoanSummary> summary = SummaryOf(loan);
  std::string bytes = summary.has_value() ? summary->SerializeAsString() : "";
  if (summary.has_value() != summary_before.has_value() ||
      (summary.has_value() && summary_before->SerializeAsString() != bytes)) {
    const std::string summary_key = LoanSummaryKey(loan.loan_id());
    if (summary.has_value()) {
      a.state.PutOwned(Space::kProjections, summary_key, std::move(bytes));
    } else {
      a.state.Delete(Space::kProjections, summary_key);  // a disbursement reversed
    }
    absl::Status updated = UpdateStocks(a.state, DimsOf(loan), summary_before, summary);
    if (!updated.ok()) return updated;
  }
  // A copy of the entry, kept with the loan's others: a statement reads them together
  // instead of one by one from the journal, where they lie far apart.
  a.state.Put(Space::kIndexes,
              Cat(LoanEntriesPrefix(loan.loan_id()), SequenceKey(a.entry.sequence())), a.stored);
  return absl::OkStatus();
}

// Swaps a position's history (its schedule and its repayments' allocations), which a
// financial entry only appends to, with another's.
void SwapHistory(v1::LoanPosition& a, v1::LoanPosition& b) {
  a.mutable_schedule()->Swap(b.mutable_schedule());
  a.mutable_allocation_day()->Swap(b.mutable_allocation_day());
  a.mutable_allocation_installment()->Swap(b.mutable_allocation_installment());
  a.mutable_allocation_fen()->Swap(b.mutable_allocation_fen());
}

// Keeps the position before a financial entry, for its reversal.
void BeginFinancial(ApplyContext& a, v1::LoanState& loan) {
  // Everything but the history, which every financial entry would otherwise copy whole:
  // the reversal keeps the history's first entries instead.
  v1::LoanPosition& position = *loan.mutable_position();
  v1::LoanPosition history;
  SwapHistory(history, position);
  *loan.mutable_position_before_last() = position;
  SwapHistory(history, position);
  loan.set_allocations_before_last(position.allocation_day_size());
  loan.set_schedule_before_last(position.schedule_size());
  position.set_last_financial_sequence(a.entry.sequence());
}

// Removes the pending subsidy months an entry posted, checking they are the ones the
// position holds.
absl::Status ConsumeAccruals(v1::LoanState& loan, Date date,
                             const google::protobuf::RepeatedPtrField<v1::AccrualPeriod>& periods) {
  if (!IsBank(loan)) {
    if (!periods.empty()) return absl::DataLossError("accruals recorded on a union-fund loan");
    return absl::OkStatus();
  }
  v1::LoanPosition& position = *loan.mutable_position();
  AdvanceAccrual(position, date);
  if (periods.size() > position.pending_size())
    return absl::DataLossError("more accrual periods than pending months");
  for (int i = 0; i < periods.size(); ++i) {
    if (periods[i].start_date() != position.pending(i).start_date() ||
        periods[i].principal_fen_days() != position.pending(i).principal_fen_days()) {
      return absl::DataLossError(Cat("accrual period ", i,
                                     " does not match the loan's pending month ",
                                     position.pending(i).start_date()));
    }
  }
  position.mutable_pending()->DeleteSubrange(0, periods.size());
  position.set_subsidy_accrued_fen(position.subsidy_accrued_fen() + AccrualTotal(periods));
  return absl::OkStatus();
}

// The loan `loan_id` to apply an entry to: the one Decide read, if it was handed over,
// or else read from the state.
absl::StatusOr<v1::LoanState> LoanToApply(ApplyContext& a, std::string_view loan_id) {
  if (a.hand_over != nullptr && a.hand_over->decided_loan.has_value() &&
      a.hand_over->decided_loan->loan_id() == loan_id) {
    v1::LoanState loan = std::move(*a.hand_over->decided_loan);
    a.hand_over->decided_loan.reset();
    return loan;
  }
  return MustReadLoan(a.state, loan_id);
}

// Hands the loan, borrower or product as the entry left it to the writer (ApplyHandOver).
void HandBack(ApplyContext& a, v1::LoanState& loan) {
  if (a.hand_over != nullptr) a.hand_over->loan = std::move(loan);
}
void HandBack(ApplyContext& a, v1::BorrowerState& borrower) {
  if (a.hand_over != nullptr) a.hand_over->borrower = std::move(borrower);
}
void HandBack(ApplyContext& a, v1::ProductState& product) {
  if (a.hand_over != nullptr) a.hand_over->product = std::move(product);
}

absl::Status ApplyLoanEvent(ApplyContext& a) {
  const v1::Event& event = a.entry.event();
  absl::StatusOr<v1::LoanState> read = LoanToApply(a, LoanIdOf(event));
  if (!read.ok()) return read.status();
  v1::LoanState& loan = *read;
  const std::optional<v1::LoanSummary> summary_before = SummaryOf(loan);
  v1::LoanPosition& position = *loan.mutable_position();
  const std::string& date = a.entry.business_date();
  Contributions report;
  bool financial = false;
  switch (event.kind_case()) {
    case v1::Event::kApprovalGranted:
      *loan.add_approvals() = a.Who(event.approval_granted().note());
      if (loan.approvals_size() >= loan.approvals_required()) {
        SetStatus(a.state, loan, v1::LOAN_STATUS_APPROVED);
        report.On(date).set_applications_approved(1);
      }
      break;
    case v1::Event::kApplicationRejected:
      *loan.mutable_closed_by() = a.Who(event.application_rejected().reason());
      SetStatus(a.state, loan, v1::LOAN_STATUS_REJECTED);
      report.On(date).set_applications_rejected(1);
      break;
    case v1::Event::kApplicationWithdrawn:
      if (position.status() == v1::LOAN_STATUS_APPROVED)
        report.On(date).set_applications_approved(-1);
      *loan.mutable_closed_by() = a.Who(event.application_withdrawn().reason());
      SetStatus(a.state, loan, v1::LOAN_STATUS_WITHDRAWN);
      report.On(date).set_applications_withdrawn(1);
      break;
    case v1::Event::kApprovalRevoked:
      if (position.status() == v1::LOAN_STATUS_APPROVED)
        report.On(date).set_applications_approved(-1);
      loan.clear_approvals();
      SetStatus(a.state, loan, v1::LOAN_STATUS_SUBMITTED);
      break;
    case v1::Event::kJobsReported:
      report.On(date).set_jobs_reported(event.jobs_reported().jobs_created() -
                                        loan.jobs_reported());
      loan.set_jobs_reported(event.jobs_reported().jobs_created());
      break;
    case v1::Event::kLoanDisbursed: {
      BeginFinancial(a, loan);
      financial = true;
      const v1::LoanDisbursed& d = event.loan_disbursed();
      v1::ReportCounters& today = report.On(date);
      today.set_loans_disbursed(1);
      today.set_disbursed_fen(d.amount_fen());
      today.set_jobs_expected(loan.jobs_expected());
      for (const v1::Installment& installment : d.schedule()) {
        v1::ReportCounters& due = report.On(installment.due_date());
        due.set_principal_due_fen(due.principal_due_fen() + installment.principal_fen());
      }
      position.set_disbursed_date(a.entry.business_date());
      *position.mutable_schedule() = d.schedule();
      position.clear_paid_fen();
      for (int i = 0; i < d.schedule_size(); ++i) position.add_paid_fen(0);
      position.set_principal_outstanding_fen(d.amount_fen());
      if (IsBank(loan)) position.set_accrued_through_date(a.entry.business_date());
      SetStatus(a.state, loan, v1::LOAN_STATUS_ACTIVE);
      break;
    }
    case v1::Event::kRepaymentRecorded: {
      BeginFinancial(a, loan);
      financial = true;
      const v1::RepaymentRecorded& r = event.repayment_recorded();
      report.On(date).set_repaid_fen(r.amount_fen());
      for (const v1::Allocation& allocation : r.allocations()) {
        const int index = allocation.installment() - 1;
        if (index < 0 || index >= position.schedule_size())
          return absl::DataLossError("allocation to no installment");
        const std::string& due_date = position.schedule(index).due_date();
        absl::StatusOr<Date> due = ParseDate(due_date, "due_date");
        if (!due.ok()) return due.status();
        if (a.date <= due->PlusDays(loan.grace_days())) {
          v1::ReportCounters& due_day = report.On(due_date);
          due_day.set_principal_repaid_on_time_fen(due_day.principal_repaid_on_time_fen() +
                                                   allocation.principal_fen());
        }
      }
      if (r.paid_off()) {
        v1::ReportCounters& today = report.On(date);
        today.set_subsidy_accrued_fen(today.subsidy_accrued_fen() + AccrualTotal(r.accruals()));
      }
      if (IsBank(loan)) AdvanceAccrual(position, a.date);
      for (const v1::Allocation& allocation : r.allocations()) {
        const int index = allocation.installment() - 1;
        if (index < 0 || index >= position.paid_fen_size())
          return absl::DataLossError("allocation to no installment");
        position.set_paid_fen(index, position.paid_fen(index) + allocation.principal_fen());
        if (position.paid_fen(index) > position.schedule(index).principal_fen()) {
          return absl::DataLossError(Cat("installment ", index + 1, " paid beyond its principal"));
        }
      }
      position.set_principal_outstanding_fen(position.principal_outstanding_fen() - r.amount_fen());
      position.set_principal_repaid_fen(position.principal_repaid_fen() + r.amount_fen());
      if (position.principal_outstanding_fen() < 0)
        return absl::DataLossError("repaid beyond the principal");
      for (const v1::Allocation& allocation : r.allocations()) {
        position.add_allocation_day(a.date.days_since_epoch());
        position.add_allocation_installment(allocation.installment());
        position.add_allocation_fen(allocation.principal_fen());
      }
      if (r.paid_off()) {
        absl::Status consumed = ConsumeAccruals(loan, a.date, r.accruals());
        if (!consumed.ok()) return consumed;
        position.set_closed_date(a.entry.business_date());
        SetStatus(a.state, loan, v1::LOAN_STATUS_CLOSED);
      }
      break;
    }
    case v1::Event::kSubsidyAccrued: {
      BeginFinancial(a, loan);
      financial = true;
      report.On(date).set_subsidy_accrued_fen(AccrualTotal(event.subsidy_accrued().accruals()));
      absl::Status consumed = ConsumeAccruals(loan, a.date, event.subsidy_accrued().accruals());
      if (!consumed.ok()) return consumed;
      break;
    }
    case v1::Event::kLoanWrittenOff: {
      BeginFinancial(a, loan);
      financial = true;
      report.On(date).set_written_off_fen(event.loan_written_off().amount_fen());
      report.On(date).set_subsidy_accrued_fen(AccrualTotal(event.loan_written_off().accruals()));
      // Installments that would have fallen due after the write-off no longer fall due:
      // left in, they would count as principal due and missed in every later period's
      // collection rate. What was prepaid on them stays, as does what was due by then.
      for (int i = 0; i < position.schedule_size() && i < position.paid_fen_size(); ++i) {
        const v1::Installment& installment = position.schedule(i);
        const int64_t unpaid = installment.principal_fen() - position.paid_fen(i);
        if (installment.due_date() <= a.entry.business_date() || unpaid == 0) continue;
        v1::ReportCounters& due = report.On(installment.due_date());
        due.set_principal_due_fen(due.principal_due_fen() - unpaid);
      }
      absl::Status consumed = ConsumeAccruals(loan, a.date, event.loan_written_off().accruals());
      if (!consumed.ok()) return consumed;
      position.set_written_off_fen(event.loan_written_off().amount_fen());
      position.set_principal_outstanding_fen(0);
      position.set_closed_date(a.entry.business_date());
      SetStatus(a.state, loan, v1::LOAN_STATUS_WRITTEN_OFF);
      break;
    }
    case v1::Event::kRecoveryRecorded:
      BeginFinancial(a, loan);
      financial = true;
      report.On(date).set_recovered_fen(event.recovery_recorded().amount_fen());
      position.set_recovered_fen(position.recovered_fen() + event.recovery_recorded().amount_fen());
      break;
    case v1::Event::kEntryReversed: {
      if (!loan.has_position_before_last())
        return absl::DataLossError("reversal with nothing to restore");
      const v1::LoanStatus restored = loan.position_before_last().status();
      v1::LoanPosition before = loan.position_before_last();
      const int kept = loan.allocations_before_last();
      const int now = loan.position().allocation_day_size();
      const int kept_installments = loan.schedule_before_last();
      const int installments = loan.position().schedule_size();
      if (kept < 0 || kept > now || loan.position().allocation_installment_size() != now ||
          loan.position().allocation_fen_size() != now || kept_installments < 0 ||
          kept_installments > installments)
        return absl::DataLossError("reversal keeps more than the loan has");
      SwapHistory(before, *loan.mutable_position());
      before.mutable_allocation_day()->Truncate(kept);
      before.mutable_allocation_installment()->Truncate(kept);
      before.mutable_allocation_fen()->Truncate(kept);
      before.mutable_schedule()->DeleteSubrange(kept_installments,
                                                installments - kept_installments);
      // SetStatus moves the status index; then the whole position is restored.
      SetStatus(a.state, loan, restored);
      *loan.mutable_position() = std::move(before);
      loan.clear_position_before_last();
      loan.clear_allocations_before_last();
      loan.clear_schedule_before_last();
      // The reversed entry's report counters are taken back.
      for (const v1::Contribution& c : loan.last_contributions()) {
        absl::Status taken = AddToReport(a.state, DimsOf(loan), c, -1);
        if (!taken.ok()) return taken;
      }
      loan.clear_last_contributions();
      break;
    }
    default:
      return absl::InternalError("not a loan event");
  }
  for (const v1::Contribution& c : report.list()) {
    absl::Status added = AddToReport(a.state, DimsOf(loan), c, 1);
    if (!added.ok()) return added;
  }
  if (financial) {
    loan.clear_last_contributions();
    for (const v1::Contribution& c : report.list()) *loan.add_last_contributions() = c;
  }
  absl::Status saved = SaveLoan(a, loan, summary_before);
  if (saved.ok()) HandBack(a, loan);
  return saved;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Public functions.

namespace {

std::string DatedDimsKey(std::string_view prefix, std::string_view date, const ReportDims& dims) {
  return Cat(prefix, date, "/", dims.county, kReportSeparator, static_cast<int>(dims.category),
             kReportSeparator, dims.product_id, kReportSeparator, static_cast<int>(dims.funding));
}

}  // namespace

std::string ReportKey(std::string_view date, const ReportDims& dims) {
  return DatedDimsKey(kReportPrefix, date, dims);
}

std::string StockKey(std::string_view date, const ReportDims& dims) {
  return DatedDimsKey(kStockPrefix, date, dims);
}

std::optional<std::pair<std::string, ReportDims>> ParseReportKey(std::string_view key) {
  std::string_view prefix;
  if (key.starts_with(kReportPrefix)) prefix = kReportPrefix;
  if (key.starts_with(kStockPrefix)) prefix = kStockPrefix;
  if (prefix.empty() || key.size() < prefix.size() + 11) return std::nullopt;
  key.remove_prefix(prefix.size());
  std::string date(key.substr(0, 10));
  key.remove_prefix(11);
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t at = key.find(kReportSeparator); at != std::string_view::npos;
       at = key.find(kReportSeparator, start)) {
    parts.emplace_back(key.substr(start, at - start));
    start = at + 1;
  }
  parts.emplace_back(key.substr(start));
  if (parts.size() != 4) return std::nullopt;
  ReportDims dims{parts[0], static_cast<v1::BorrowerCategory>(std::atoi(parts[1].c_str())),
                  parts[2], static_cast<v1::Funding>(std::atoi(parts[3].c_str()))};
  return std::make_pair(std::move(date), std::move(dims));
}

ReportDims SettlementDims() {
  return ReportDims{"", v1::BORROWER_CATEGORY_UNSPECIFIED, "", v1::FUNDING_PARTNER_BANK};
}

bool IsLedgerId(std::string_view value, char letter) {
  return value.size() >= 2 && value.size() <= 12 && value[0] == letter &&
         std::all_of(value.begin() + 1, value.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string ProductKey(std::string_view id) { return Cat(kProductPrefix, id); }
std::string BorrowerKey(std::string_view id) { return Cat(kBorrowerPrefix, id); }
std::string LoanKey(std::string_view id) { return Cat(kLoanPrefix, id); }
std::string LoanSummaryKey(std::string_view id) { return Cat(kLoanSummaryPrefix, id); }
bool ApplyReadsBack(std::string_view key) {
  return !key.starts_with(kTreeNodePrefix) && !key.starts_with(kLoanSummaryPrefix);
}
std::string NationalIdIndexKey(std::string_view national_id) {
  return Cat(kNationalIdIndexPrefix, national_id);
}
std::string LoansByBorrowerPrefix(std::string_view borrower_id) {
  return Cat("lb/", borrower_id, "/");
}
std::string LoansByStatusPrefix(v1::LoanStatus status) {
  return Cat("ls/", static_cast<char>('a' + static_cast<int>(status)), "/");
}
std::string LoanEntriesPrefix(std::string_view loan_id) {
  return Cat(kLoanEntriesPrefix, loan_id, "/");
}
std::string LoanPrincipalAccount(std::string_view loan_id) {
  return Cat("loan:", Lower(loan_id), ":principal");
}
std::string BankSubsidyPayableAccount(std::string_view bank_id) {
  return Cat("bank:", bank_id, ":subsidy_payable");
}

bool IsBankSubsidyPayable(std::string_view account) {
  constexpr std::string_view kPrefix = "bank:";
  constexpr std::string_view kSuffix = ":subsidy_payable";
  return account.size() > kPrefix.size() + kSuffix.size() && account.starts_with(kPrefix) &&
         account.ends_with(kSuffix);
}

absl::StatusOr<std::optional<v1::ProductState>> ReadProduct(StateReader& state,
                                                            std::string_view id) {
  return ReadProto<v1::ProductState>(state, Space::kProjections, ProductKey(id));
}
absl::StatusOr<std::optional<v1::BorrowerState>> ReadBorrower(StateReader& state,
                                                              std::string_view id) {
  return ReadProto<v1::BorrowerState>(state, Space::kProjections, BorrowerKey(id));
}
absl::StatusOr<std::optional<v1::LoanState>> ReadLoan(StateReader& state, std::string_view id) {
  return ReadProto<v1::LoanState>(state, Space::kProjections, LoanKey(id));
}

std::string ProgrammeLoanId(const v1::Event& event) { return LoanIdOf(event); }

// The borrower an entry registers or changes, or "".
std::string_view BorrowerIdOf(const v1::Event& event) {
  switch (event.kind_case()) {
    case v1::Event::kBorrowerRegistered:
      return event.borrower_registered().borrower_id();
    case v1::Event::kBorrowerUpdated:
      return event.borrower_updated().borrower_id();
    case v1::Event::kTalentPoolStatusChanged:
      return event.talent_pool_status_changed().borrower_id();
    default:
      return {};
  }
}

void AddKeysReadFirst(const v1::Event& event, std::vector<std::pair<Space, std::string>>& keys) {
  const std::string loan_id = LoanIdOf(event);
  if (!loan_id.empty()) {
    keys.emplace_back(Space::kProjections, LoanKey(loan_id));
    // Only these events post to the loan's principal.
    if (event.has_loan_disbursed() || event.has_repayment_recorded() ||
        event.has_loan_written_off()) {
      keys.emplace_back(Space::kProjections, AccountKey(LoanPrincipalAccount(loan_id)));
    }
  }
  // An application reads its borrower; a registration has none to read yet.
  std::string_view borrower_id;
  if (event.has_application_submitted()) {
    borrower_id = event.application_submitted().borrower_id();
  } else if (!event.has_borrower_registered()) {
    borrower_id = BorrowerIdOf(event);
  }
  if (!borrower_id.empty()) keys.emplace_back(Space::kProjections, BorrowerKey(borrower_id));
}

void ClearDecidedFields(const v1::Event& request, v1::Event* recorded) {
  switch (recorded->kind_case()) {
    case v1::Event::kBorrowerRegistered:
      recorded->mutable_borrower_registered()->clear_borrower_id();
      break;
    case v1::Event::kApplicationSubmitted:
      recorded->mutable_application_submitted()->clear_loan_id();
      break;
    case v1::Event::kApprovalGranted:
      recorded->mutable_approval_granted()->clear_approvals();
      recorded->mutable_approval_granted()->clear_approvals_required();
      break;
    case v1::Event::kLoanDisbursed:
      recorded->mutable_loan_disbursed()->clear_schedule();
      if (request.loan_disbursed().amount_fen() == 0)
        recorded->mutable_loan_disbursed()->clear_amount_fen();
      break;
    case v1::Event::kRepaymentRecorded:
      recorded->mutable_repayment_recorded()->clear_allocations();
      recorded->mutable_repayment_recorded()->clear_paid_off();
      recorded->mutable_repayment_recorded()->clear_accruals();
      break;
    case v1::Event::kSubsidyAccrued:
      recorded->mutable_subsidy_accrued()->clear_accruals();
      break;
    case v1::Event::kLoanWrittenOff:
      recorded->mutable_loan_written_off()->clear_accruals();
      if (request.loan_written_off().amount_fen() == 0)
        recorded->mutable_loan_written_off()->clear_amount_fen();
      break;
    case v1::Event::kEntryReversed:
      recorded->mutable_entry_reversed()->clear_loan_id();
      break;
    default:
      break;
  }
}

void ValidateProgrammeEvent(const v1::Event& event, Date today, ViolationCollector& violations) {
  switch (event.kind_case()) {
    case v1::Event::kProductDefined:
    case v1::Event::kProductAmended: {
      const bool define = event.has_product_defined();
      Fields f(violations, define ? "event.product_defined." : "event.product_amended.");
      f.Slug("product_id",
             define ? event.product_defined().product_id() : event.product_amended().product_id());
      ValidateTerms(define ? event.product_defined().terms() : event.product_amended().terms(), f);
      break;
    }
    case v1::Event::kBorrowerRegistered: {
      Fields f(violations, "event.borrower_registered.");
      const v1::BorrowerRegistered& e = event.borrower_registered();
      f.AssignedByLedger("borrower_id", !e.borrower_id().empty());
      absl::Status id = ValidateNationalId(e.national_id(), f.Path("national_id"), today);
      if (!id.ok()) f.AddStatus("national_id", id);
      ValidateDetails(e.details(), f);
      break;
    }
    case v1::Event::kBorrowerUpdated: {
      Fields f(violations, "event.borrower_updated.");
      f.Id("borrower_id", event.borrower_updated().borrower_id(), 'B');
      ValidateDetails(event.borrower_updated().details(), f);
      break;
    }
    case v1::Event::kTalentPoolStatusChanged: {
      Fields f(violations, "event.talent_pool_status_changed.");
      const v1::TalentPoolStatusChanged& e = event.talent_pool_status_changed();
      f.Id("borrower_id", e.borrower_id(), 'B');
      f.Enum("status", e.status(), v1::TalentPoolStatus_IsValid);
      f.Text("reason", e.reason(), kTextBytesMax, true);
      break;
    }
    case v1::Event::kFundContributed: {
      Fields f(violations, "event.fund_contributed.");
      f.Amount("amount_fen", event.fund_contributed().amount_fen());
      f.Text("source", event.fund_contributed().source(), kNameBytesMax, true);
      f.Text("reference", event.fund_contributed().reference(), kReferenceBytesMax, false);
      break;
    }
    case v1::Event::kApplicationSubmitted: {
      Fields f(violations, "event.application_submitted.");
      const v1::ApplicationSubmitted& e = event.application_submitted();
      f.AssignedByLedger("loan_id", !e.loan_id().empty());
      f.Id("borrower_id", e.borrower_id(), 'B');
      f.Slug("product_id", e.product_id());
      f.Amount("amount_fen", e.amount_fen());
      f.Range("term_months", e.term_months(), 1, kTermMonthsMax);
      f.Enum("method", e.method(), v1::RepaymentMethod_IsValid);
      f.Text("purpose", e.purpose(), kTextBytesMax, true);
      f.Range("jobs_expected", e.jobs_expected(), 0, kJobsMax);
      if (e.guarantors_size() > kGuarantorsMax)
        f.Add("guarantors", "TOO_MANY", "at most 5 guarantors");
      for (int i = 0; i < e.guarantors_size() && i < kGuarantorsMax; ++i) {
        const std::string at = Cat("guarantors[", i, "].");
        f.Text(Cat(at, "name"), e.guarantors(i).name(), kNameBytesMax, true);
        absl::Status id = ValidateNationalId(e.guarantors(i).national_id(),
                                             f.Path(Cat(at, "national_id")), today);
        if (!id.ok()) f.AddStatus(Cat(at, "national_id"), id);
        f.Text(Cat(at, "relationship"), e.guarantors(i).relationship(), 64, false);
      }
      break;
    }
    case v1::Event::kApprovalGranted: {
      Fields f(violations, "event.approval_granted.");
      f.Id("loan_id", event.approval_granted().loan_id(), 'L');
      f.Text("note", event.approval_granted().note(), kTextBytesMax, false);
      f.AssignedByLedger("approvals", event.approval_granted().approvals() != 0 ||
                                          event.approval_granted().approvals_required() != 0);
      break;
    }
    case v1::Event::kApplicationRejected: {
      Fields f(violations, "event.application_rejected.");
      f.Id("loan_id", event.application_rejected().loan_id(), 'L');
      f.Text("reason", event.application_rejected().reason(), kTextBytesMax, true);
      break;
    }
    case v1::Event::kApplicationWithdrawn: {
      Fields f(violations, "event.application_withdrawn.");
      f.Id("loan_id", event.application_withdrawn().loan_id(), 'L');
      f.Text("reason", event.application_withdrawn().reason(), kTextBytesMax, true);
      break;
    }
    case v1::Event::kApprovalRevoked: {
      Fields f(violations, "event.approval_revoked.");
      f.Id("loan_id", event.approval_revoked().loan_id(), 'L');
      f.Text("reason", event.approval_revoked().reason(), kTextBytesMax, true);
      break;
    }
    case v1::Event::kLoanDisbursed: {
      Fields f(violations, "event.loan_disbursed.");
      f.Id("loan_id", event.loan_disbursed().loan_id(), 'L');
      if (event.loan_disbursed().amount_fen() < 0)
        f.Add("amount_fen", "AMOUNT_NOT_POSITIVE", "must not be negative");
      f.AssignedByLedger("schedule", event.loan_disbursed().schedule_size() > 0);
      break;
    }
    case v1::Event::kRepaymentRecorded: {
      Fields f(violations, "event.repayment_recorded.");
      const v1::RepaymentRecorded& e = event.repayment_recorded();
      f.Id("loan_id", e.loan_id(), 'L');
      f.Amount("amount_fen", e.amount_fen());
      f.Enum("channel", e.channel(), v1::PaymentChannel_IsValid);
      f.Text("reference", e.reference(), kReferenceBytesMax, false);
      f.AssignedByLedger("allocations",
                         e.allocations_size() > 0 || e.paid_off() || e.accruals_size() > 0);
      break;
    }
    case v1::Event::kSubsidyAccrued: {
      Fields f(violations, "event.subsidy_accrued.");
      f.Id("loan_id", event.subsidy_accrued().loan_id(), 'L');
      f.AssignedByLedger("accruals", event.subsidy_accrued().accruals_size() > 0);
      break;
    }
    case v1::Event::kSubsidySettled: {
      Fields f(violations, "event.subsidy_settled.");
      f.Slug("bank_id", event.subsidy_settled().bank_id());
      f.Amount("amount_fen", event.subsidy_settled().amount_fen());
      f.Text("reference", event.subsidy_settled().reference(), kReferenceBytesMax, false);
      break;
    }
    case v1::Event::kJobsReported: {
      Fields f(violations, "event.jobs_reported.");
      f.Id("loan_id", event.jobs_reported().loan_id(), 'L');
      f.Range("jobs_created", event.jobs_reported().jobs_created(), 0, kJobsMax);
      f.Text("note", event.jobs_reported().note(), kTextBytesMax, false);
      break;
    }
    case v1::Event::kLoanWrittenOff: {
      Fields f(violations, "event.loan_written_off.");
      f.Id("loan_id", event.loan_written_off().loan_id(), 'L');
      if (event.loan_written_off().amount_fen() < 0)
        f.Add("amount_fen", "AMOUNT_NOT_POSITIVE", "must not be negative");
      f.Text("reason", event.loan_written_off().reason(), kTextBytesMax, true);
      f.AssignedByLedger("accruals", event.loan_written_off().accruals_size() > 0);
      break;
    }
    case v1::Event::kRecoveryRecorded: {
      Fields f(violations, "event.recovery_recorded.");
      f.Id("loan_id", event.recovery_recorded().loan_id(), 'L');
      f.Amount("amount_fen", event.recovery_recorded().amount_fen());
      f.Enum("channel", event.recovery_recorded().channel(), v1::PaymentChannel_IsValid);
      f.Text("reference", event.recovery_recorded().reference(), kReferenceBytesMax, false);
      break;
    }
    case v1::Event::kEntryReversed: {
      Fields f(violations, "event.entry_reversed.");
      if (event.entry_reversed().reversed_sequence() == 0) {
        f.Add("reversed_sequence", "REQUIRED", "must name the entry to reverse");
      }
      f.Text("reason", event.entry_reversed().reason(), kTextBytesMax, true);
      f.AssignedByLedger("loan_id", !event.entry_reversed().loan_id().empty());
      break;
    }
    case v1::Event::kInternalTransfer:
    case v1::Event::KIND_NOT_SET:
      break;
  }
}

namespace {

// Whether journal entry `sequence` changed borrower `id` (registered it, updated its
// details or changed its talent-pool status), that is, gave it a version. Read only on
// the way to refusing a stale update, to name the version right.
absl::StatusOr<bool> ChangedBorrower(StateReader& state, uint64_t sequence, std::string_view id) {
  absl::StatusOr<std::optional<std::string>> stored =
      state.Get(Space::kJournal, SequenceKey(sequence));
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) {
    return absl::DataLossError(Cat("borrower ", id, " is past version ", sequence,
                                   ", but journal entry ", sequence, " is missing"));
  }
  absl::StatusOr<v1::Entry> entry = OpenEntry(**stored, sequence);
  if (!entry.ok()) return entry.status();
  const v1::Event& event = entry->event();
  switch (event.kind_case()) {
    case v1::Event::kBorrowerRegistered:
      return event.borrower_registered().borrower_id() == id;
    case v1::Event::kBorrowerUpdated:
      return event.borrower_updated().borrower_id() == id;
    case v1::Event::kTalentPoolStatusChanged:
      return event.talent_pool_status_changed().borrower_id() == id;
    default:
      return false;
  }
}

absl::StatusOr<Decision> DecideKind(Context& c) {
  StateReader& state = c.state;
  const v1::Event& event = c.command.event;
  switch (event.kind_case()) {
    case v1::Event::kProductDefined:
      return DecideProduct(c, event.product_defined().product_id(), false);
    case v1::Event::kProductAmended:
      return DecideProduct(c, event.product_amended().product_id(), true);
    case v1::Event::kBorrowerRegistered:
      return DecideRegister(c);
    case v1::Event::kBorrowerUpdated: {
      absl::StatusOr<v1::BorrowerState> b =
          ExistingBorrower(state, event.borrower_updated().borrower_id());
      if (!b.ok()) return b.status();
      if (absl::Status dated = BorrowerHistoryAllows(c, *b, true); !dated.ok()) return dated;
      const uint64_t version = b->changed_sequence();
      // Ahead of the borrower, before its registration, or an entry in between that did not
      // change it: no version it ever had, so no change by someone else.
      bool known = c.command.expected_version <= version &&
                   c.command.expected_version >= b->registered_sequence();
      if (known && c.command.expected_version != version) {
        absl::StatusOr<bool> changed =
            ChangedBorrower(state, c.command.expected_version, b->borrower_id());
        if (!changed.ok()) return changed.status();
        known = *changed;
      }
      if (!known) {
        return Refused("VERSION_UNKNOWN",
                       Cat("borrower ", b->borrower_id(), " has never been at version ",
                           c.command.expected_version, ": it was registered at version ",
                           b->registered_sequence(), " and is at version ", version,
                           "; give the version as read (Borrower.version)"));
      }
      if (version != c.command.expected_version) {
        return WithReason(
            absl::StatusCode::kAborted, "BORROWER_CHANGED",
            Cat("borrower ", b->borrower_id(), " has changed since version ",
                c.command.expected_version, ": it is at version ", version, " (entry ", version,
                "); read it again and make the change on its current details"));
      }
      return Decision{event, {}};
    }
    case v1::Event::kTalentPoolStatusChanged: {
      const v1::TalentPoolStatusChanged& e = event.talent_pool_status_changed();
      absl::StatusOr<v1::BorrowerState> b = ExistingBorrower(state, e.borrower_id());
      if (!b.ok()) return b.status();
      if (absl::Status dated = BorrowerHistoryAllows(c, *b, true); !dated.ok()) return dated;
      if (b->status() == e.status()) {
        return Refused(
            "STATUS_UNCHANGED",
            Cat("borrower ", e.borrower_id(), " is already ",
                Lower(v1::TalentPoolStatus_Name(e.status()).substr(19)), " in the talent pool"));
      }
      return Decision{event, {}};
    }
    case v1::Event::kFundContributed:
      return DecideFund(c);
    case v1::Event::kApplicationSubmitted:
      return DecideSubmit(c);
    case v1::Event::kApprovalGranted:
      return DecideApprove(c);
    case v1::Event::kApplicationRejected:
      return DecideCloseApplication(c, event.application_rejected().loan_id(), true);
    case v1::Event::kApplicationWithdrawn:
      return DecideCloseApplication(c, event.application_withdrawn().loan_id(), false);
    case v1::Event::kApprovalRevoked:
      return DecideRevoke(c);
    case v1::Event::kLoanDisbursed:
      return DecideDisburse(c);
    case v1::Event::kRepaymentRecorded:
      return DecideRepay(c);
    case v1::Event::kSubsidyAccrued:
      return DecideAccrue(c);
    case v1::Event::kSubsidySettled:
      return DecideSettle(c);
    case v1::Event::kJobsReported:
      return DecideJobs(c);
    case v1::Event::kLoanWrittenOff:
      return DecideWriteOff(c);
    case v1::Event::kRecoveryRecorded:
      return DecideRecovery(c);
    case v1::Event::kEntryReversed:
      return DecideReverse(c);
    case v1::Event::kInternalTransfer:
    case v1::Event::KIND_NOT_SET:
      break;
  }
  return absl::InternalError("not a programme event");
}

}  // namespace

absl::StatusOr<Decision> DecideProgramme(StateReader& state, const Command& command, Date date) {
  Context c{state, command, date};
  absl::StatusOr<Decision> decision = DecideKind(c);
  if (decision.ok()) decision->loan = std::move(c.loan);
  return decision;
}

absl::Status ApplyProgramme(const v1::Entry& entry, std::string_view stored, StateWriter& state,
                            ApplyHandOver* hand_over) {
  if (hand_over != nullptr) {
    hand_over->loan.reset();
    hand_over->borrower.reset();
    hand_over->product.reset();
  }
  const v1::Event& event = entry.event();
  absl::StatusOr<Date> date = ParseDate(entry.business_date(), "business_date");
  if (!date.ok()) return date.status();
  ApplyContext a{entry, stored, state, *date, hand_over};
  switch (event.kind_case()) {
    case v1::Event::kProductDefined:
    case v1::Event::kProductAmended: {
      const bool define = event.has_product_defined();
      const std::string& id =
          define ? event.product_defined().product_id() : event.product_amended().product_id();
      v1::ProductState product;
      if (!define) {
        absl::StatusOr<std::optional<v1::ProductState>> existing = ReadProduct(state, id);
        if (!existing.ok()) return existing.status();
        if (!existing->has_value())
          return absl::DataLossError(Cat("amendment of unknown product ", id));
        product = **existing;
        product.set_amended_sequence(entry.sequence());
      } else {
        product.set_defined_sequence(entry.sequence());
      }
      product.set_product_id(id);
      *product.mutable_terms() =
          define ? event.product_defined().terms() : event.product_amended().terms();
      v1::DatedProductTerms* version = product.add_versions();
      version->set_from_date(entry.business_date());
      *version->mutable_terms() = product.terms();
      WriteProto(state, Space::kProjections, ProductKey(id), product);
      HandBack(a, product);
      return absl::OkStatus();
    }
    case v1::Event::kBorrowerRegistered: {
      const v1::BorrowerRegistered& e = event.borrower_registered();
      v1::BorrowerState borrower;
      borrower.set_borrower_id(e.borrower_id());
      borrower.set_national_id(e.national_id());
      *borrower.mutable_details() = e.details();
      borrower.set_status(v1::TALENT_POOL_STATUS_ACTIVE);
      borrower.set_registered_sequence(entry.sequence());
      borrower.set_registered_date(entry.business_date());
      borrower.set_changed_sequence(entry.sequence());
      borrower.set_changed_date(entry.business_date());
      WriteProto(state, Space::kProjections, BorrowerKey(e.borrower_id()), borrower);
      state.Put(Space::kIndexes, NationalIdIndexKey(e.national_id()), e.borrower_id());
      state.Put(Space::kProjections, "n/borrower", SequenceKey(IdNumber(e.borrower_id())));
      HandBack(a, borrower);
      return absl::OkStatus();
    }
    case v1::Event::kBorrowerUpdated:
    case v1::Event::kTalentPoolStatusChanged: {
      const bool update = event.has_borrower_updated();
      const std::string& id = update ? event.borrower_updated().borrower_id()
                                     : event.talent_pool_status_changed().borrower_id();
      absl::StatusOr<std::optional<v1::BorrowerState>> borrower = ReadBorrower(state, id);
      if (!borrower.ok()) return borrower.status();
      if (!borrower->has_value())
        return absl::DataLossError(Cat("entry refers to unknown borrower ", id));
      if (update) {
        *(*borrower)->mutable_details() = event.borrower_updated().details();
      } else {
        (*borrower)->set_status(event.talent_pool_status_changed().status());
        (*borrower)->set_status_reason(event.talent_pool_status_changed().reason());
      }
      (*borrower)->set_changed_sequence(entry.sequence());
      (*borrower)->set_changed_date(entry.business_date());
      WriteProto(state, Space::kProjections, BorrowerKey(id), **borrower);
      HandBack(a, **borrower);
      return absl::OkStatus();
    }
    case v1::Event::kApplicationSubmitted: {
      const v1::ApplicationSubmitted& e = event.application_submitted();
      absl::StatusOr<std::optional<v1::BorrowerState>> borrower =
          ReadBorrower(state, e.borrower_id());
      absl::StatusOr<std::optional<v1::ProductState>> product = ReadProduct(state, e.product_id());
      if (!borrower.ok()) return borrower.status();
      if (!product.ok()) return product.status();
      if (!borrower->has_value() || !product->has_value()) {
        return absl::DataLossError("application names an unknown borrower or product");
      }
      const v1::ProductTerms* in_force = TermsInForce(**product, entry.business_date());
      if (in_force == nullptr) {
        return absl::DataLossError(Cat("application dated ", entry.business_date(),
                                       " is before its product's definition"));
      }
      const v1::ProductTerms& terms = *in_force;
      v1::LoanState loan;
      loan.set_loan_id(e.loan_id());
      loan.set_borrower_id(e.borrower_id());
      loan.set_product_id(e.product_id());
      loan.set_amount_fen(e.amount_fen());
      loan.set_term_months(e.term_months());
      loan.set_method(e.method());
      loan.set_purpose(e.purpose());
      loan.set_jobs_expected(e.jobs_expected());
      *loan.mutable_guarantors() = e.guarantors();
      loan.set_funding(terms.funding());
      loan.set_bank_id(terms.bank_id());
      loan.set_annual_rate(terms.annual_rate());
      loan.set_day_count(terms.day_count());
      loan.set_grace_days(terms.grace_days());
      loan.set_county((*borrower)->details().county());
      loan.set_category((*borrower)->details().category());
      *loan.mutable_submitted() = a.Who();
      loan.set_submitted_date(entry.business_date());
      loan.set_approvals_required(e.amount_fen() > terms.dual_approval_above_fen() ? 2 : 1);
      SetStatus(state, loan, v1::LOAN_STATUS_SUBMITTED);
      absl::Status saved = SaveLoan(a, loan, std::nullopt);  // a new loan has no summary
      if (!saved.ok()) return saved;
      v1::Contribution received;
      received.set_date(entry.business_date());
      received.mutable_counters()->set_applications_received(1);
      absl::Status added = AddToReport(state, DimsOf(loan), received, 1);
      if (!added.ok()) return added;
      state.Put(Space::kIndexes, Cat(LoansByBorrowerPrefix(e.borrower_id()), e.loan_id()), "");
      state.Put(Space::kProjections, "n/loan", SequenceKey(IdNumber(e.loan_id())));
      if ((*product)->last_application_date() < entry.business_date()) {
        (*product)->set_last_application_date(entry.business_date());
        WriteProto(state, Space::kProjections, ProductKey(e.product_id()), **product);
      }
      if ((*borrower)->last_application_date() < entry.business_date()) {
        (*borrower)->set_last_application_date(entry.business_date());
        WriteProto(state, Space::kProjections, BorrowerKey(e.borrower_id()), **borrower);
      }
      HandBack(a, loan);
      return absl::OkStatus();
    }
    case v1::Event::kEntryReversed: {
      state.Put(Space::kProjections, ReversedKey(event.entry_reversed().reversed_sequence()),
                SequenceKey(entry.sequence()));
      if (event.entry_reversed().loan_id().empty()) {
        // A reversed settlement takes its amount back from the report.
        for (const v1::Posting& p : entry.postings()) {
          if (p.side() == v1::POSTING_SIDE_CREDIT && IsBankSubsidyPayable(p.account())) {
            v1::Contribution c;
            c.set_date(entry.business_date());
            c.mutable_counters()->set_subsidy_settled_fen(p.amount_fen());
            absl::Status taken = AddToReport(state, SettlementDims(), c, -1);
            if (!taken.ok()) return taken;
          }
        }
        return absl::OkStatus();
      }
      return ApplyLoanEvent(a);
    }
    case v1::Event::kSubsidySettled: {
      v1::Contribution c;
      c.set_date(entry.business_date());
      c.mutable_counters()->set_subsidy_settled_fen(event.subsidy_settled().amount_fen());
      return AddToReport(state, SettlementDims(), c, 1);
    }
    case v1::Event::kFundContributed:
    case v1::Event::kInternalTransfer:
    case v1::Event::KIND_NOT_SET:
      return absl::OkStatus();  // postings only
    default:
      return ApplyLoanEvent(a);
  }
}

}  // namespace gongdai
