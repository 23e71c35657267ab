#include "engine/money.h"

#include <charconv>
#include <limits>
#include <stdexcept>

#include "engine/status.h"
#include "engine/strings.h"

namespace gongdai {
namespace {

// Runs `f` and turns the checked integer's overflow exception into OUT_OF_RANGE.
template <typename F>
auto Checked(F&& f) -> absl::StatusOr<decltype(f())> {
  try {
    return f();
  } catch (const std::overflow_error& e) {
    return absl::OutOfRangeError(Cat("arithmetic overflow: ", e.what()));
  } catch (const std::range_error& e) {
    return absl::OutOfRangeError(Cat("arithmetic overflow: ", e.what()));
  }
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// The checks on characters shared by amounts and rates. Returns the reason suffix (after
// "AMOUNT_" / "RATE_") and a description, or empty reason when every character is one of
// digits, '.', and a leading '-' / '+'.
struct CharProblem {
  std::string reason;
  std::string description;
};

CharProblem FindCharProblem(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      return {"NON_ASCII", "must use ASCII digits 0-9 only (found a non-ASCII character)"};
    }
  }
  for (char c : text) {
    if (IsSpace(c)) return {"HAS_SPACE", "must not contain spaces"};
  }
  for (char c : text) {
    if (c == 'e' || c == 'E') return {"EXPONENT_NOT_ALLOWED", "must not use an exponent"};
  }
  for (char c : text) {
    if (c == ',' || c == '_' || c == '\'') {
      return {"SEPARATOR_NOT_ALLOWED", "must not contain thousands separators"};
    }
  }
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (IsDigit(c) || c == '.') continue;
    if ((c == '-' || c == '+') && i == 0) continue;
    return {"INVALID_CHARACTER",
            Cat("must contain only digits and one '.' (found '", std::string(1, c), "')")};
  }
  return {};
}

// Splits "123.45" into integer and fraction digits; reports a misplaced dot.
struct DecimalParts {
  std::string_view integer;
  std::string_view fraction;
  bool ok = false;
};

DecimalParts SplitDecimal(std::string_view digits) {
  DecimalParts parts;
  size_t dot = digits.find('.');
  if (dot == std::string_view::npos) {
    parts.integer = digits;
    parts.ok = !digits.empty();
    return parts;
  }
  if (digits.find('.', dot + 1) != std::string_view::npos) return parts;
  parts.integer = digits.substr(0, dot);
  parts.fraction = digits.substr(dot + 1);
  parts.ok = !parts.integer.empty() && !parts.fraction.empty();
  return parts;
}

// Value of a run of ASCII digits; nullopt when it has more digits than could ever fit.
std::optional<Fen> DigitsValue(std::string_view digits) {
  if (digits.size() > 36) return std::nullopt;
  Fen value = 0;
  for (char c : digits) value = value * 10 + (c - '0');
  return value;
}

}  // namespace

absl::StatusOr<Money> Money::Plus(Money other) const {
  return Checked([&] { return Money(fen_ + other.fen_); });
}

absl::StatusOr<Money> Money::Minus(Money other) const {
  return Checked([&] { return Money(fen_ - other.fen_); });
}

absl::StatusOr<Money> Money::Times(int64_t factor) const {
  return Checked([&] { return Money(fen_ * factor); });
}

absl::StatusOr<int64_t> Money::ToInt64Fen() const {
  if (fen_ > std::numeric_limits<int64_t>::max() || fen_ < std::numeric_limits<int64_t>::min()) {
    return absl::OutOfRangeError(Cat("amount ", ToString(), " exceeds the journal's range"));
  }
  return static_cast<int64_t>(fen_);
}

namespace {

// Amounts beyond 64 bits (intermediate sums only), through the 128-bit type.
std::string WideAmountText(const Fen& fen) {
  Fen magnitude = fen < 0 ? Fen(-fen) : fen;
  Fen yuan = magnitude / 100;
  int cents = static_cast<int>(magnitude % 100);
  std::string out = fen < 0 ? "-" : "";
  out += yuan.str();
  out += '.';
  out += static_cast<char>('0' + cents / 10);
  out += static_cast<char>('0' + cents % 10);
  return out;
}

}  // namespace

std::string Money::ToString() const {
  // Every amount a projection or an answer holds fits in 64 bits: format those directly
  // (the multiprecision conversion to text is most of the cost of an answer's amounts).
  static const Fen kInt64Max(std::numeric_limits<int64_t>::max());
  if (fen_ > kInt64Max || fen_ < -kInt64Max) return WideAmountText(fen_);
  const int64_t fen = static_cast<int64_t>(fen_);
  const uint64_t magnitude = fen < 0 ? static_cast<uint64_t>(-fen) : static_cast<uint64_t>(fen);
  char text[48];  // a sign, at most 18 digits of yuan, the point and two digits
  char* end = text;
  if (fen < 0) *end++ = '-';
  end = std::to_chars(end, text + 32, magnitude / 100).ptr;
  const int cents = static_cast<int>(magnitude % 100);
  *end++ = '.';
  *end++ = static_cast<char>('0' + cents / 10);
  *end++ = static_cast<char>('0' + cents % 10);
  return std::string(text, end);
}

absl::StatusOr<Money> ParseAmount(std::string_view text, std::string_view field,
                                  const AmountRules& rules) {
  auto refuse = [&](std::string_view reason, std::string_view description) {
    return InvalidField(field, Cat("AMOUNT_", reason),
                        Cat("amount \"", Excerpt(text), "\" ", description));
  };
  if (text.empty()) return refuse("EMPTY", "is empty: give a decimal number such as 1234.50");
  CharProblem problem = FindCharProblem(text);
  if (!problem.reason.empty()) return refuse(problem.reason, problem.description);

  bool negative = false;
  std::string_view digits = text;
  if (digits.front() == '+') return refuse("SIGN_NOT_ALLOWED", "must not have a '+' sign");
  if (digits.front() == '-') {
    if (!rules.allow_negative) {
      return refuse("SIGN_NOT_ALLOWED", "must not be negative (no '-' sign allowed here)");
    }
    negative = true;
    digits.remove_prefix(1);
  }
  if (digits.empty()) return refuse("EMPTY", "has a sign but no digits");

  DecimalParts parts = SplitDecimal(digits);
  if (!parts.ok) {
    return refuse("MISPLACED_DOT",
                  "must have digits on both sides of a single '.' (for example 12.50)");
  }
  if (parts.fraction.size() > 2) {
    return refuse("TOO_MANY_DECIMALS", "has more than 2 decimals (the smallest unit is 0.01)");
  }
  std::string fraction(parts.fraction);
  fraction.resize(2, '0');
  std::optional<Fen> yuan = DigitsValue(parts.integer);
  absl::StatusOr<Fen> fen = absl::OutOfRangeError("too many digits");
  if (yuan.has_value()) {
    fen = Checked([&] { return *yuan * 100 + (fraction[0] - '0') * 10 + (fraction[1] - '0'); });
  }
  const Money maximum = Money::FromFen(rules.max_fen);
  if (!fen.ok() || *fen > maximum.fen()) {
    return refuse("ABOVE_MAXIMUM", Cat("is above the maximum of ", maximum.ToString()));
  }
  if (*fen == 0 && !rules.allow_zero) return refuse("ZERO", "must be greater than zero");
  return Money::FromFen(negative ? Fen(-*fen) : *fen);
}

std::string Rate::ToString() const {
  std::string out = std::to_string(units_ / kUnitsPerOne);
  int64_t fraction = units_ % kUnitsPerOne;
  if (fraction == 0) return out;
  std::string digits = std::to_string(fraction);
  digits.insert(0, kDecimalsMax - digits.size(), '0');
  while (!digits.empty() && digits.back() == '0') digits.pop_back();
  return out + "." + digits;
}

absl::StatusOr<Rate> ParseRate(std::string_view text, std::string_view field) {
  auto refuse = [&](std::string_view reason, std::string_view description) {
    return InvalidField(field, Cat("RATE_", reason),
                        Cat("rate \"", Excerpt(text), "\" ", description));
  };
  if (text.empty()) return refuse("EMPTY", "is empty: give a decimal such as 0.0435");
  for (char c : text) {
    if (!IsDigit(c) && c != '.') {
      return refuse("INVALID_CHARACTER",
                    "must contain only ASCII digits and one '.' (no sign, exponent or spaces)");
    }
  }
  DecimalParts parts = SplitDecimal(text);
  if (!parts.ok) return refuse("MISPLACED_DOT", "must have digits on both sides of a single '.'");
  if (parts.fraction.size() > static_cast<size_t>(Rate::kDecimalsMax)) {
    return refuse("TOO_MANY_DECIMALS", "has more than 10 decimals");
  }
  std::string_view integer = parts.integer;
  while (integer.size() > 1 && integer.front() == '0') integer.remove_prefix(1);
  if (integer.size() > 1 || integer[0] > '1') {
    return refuse("ABOVE_MAXIMUM", "is above the maximum of 1 (100%)");
  }
  int64_t units = (integer[0] - '0') * Rate::kUnitsPerOne;
  int64_t scale = Rate::kUnitsPerOne / 10;
  for (char c : parts.fraction) {
    units += (c - '0') * scale;
    scale /= 10;
  }
  if (units > Rate::kUnitsPerOne)
    return refuse("ABOVE_MAXIMUM", "is above the maximum of 1 (100%)");
  return Rate::FromUnits(units);
}

absl::StatusOr<Fen> DivideRoundHalfEven(const Fen& numerator, const Fen& denominator) {
  if (denominator <= 0) return absl::InvalidArgumentError("denominator must be positive");
  return Checked([&]() -> Fen {
    const bool negative = numerator < 0;
    const Fen magnitude = negative ? Fen(-numerator) : numerator;
    Fen quotient = magnitude / denominator;
    const Fen remainder = magnitude % denominator;
    const Fen twice = remainder * 2;
    if (twice > denominator || (twice == denominator && quotient % 2 == 1)) quotient += 1;
    return negative ? Fen(-quotient) : quotient;
  });
}

absl::StatusOr<Money> SimpleInterest(Money amount, Rate rate, int64_t days, DayCount basis) {
  if (days < 0) return absl::InvalidArgumentError("days must not be negative");
  absl::StatusOr<Fen> principal_days = Checked([&] { return amount.fen() * days; });
  if (!principal_days.ok()) return principal_days.status();
  return AccrualForPrincipalDays(*principal_days, rate, basis);
}

absl::StatusOr<Money> AccrualForPrincipalDays(const Fen& principal_fen_days, Rate rate,
                                              DayCount basis) {
  absl::StatusOr<Fen> numerator = Checked([&] { return principal_fen_days * rate.units(); });
  if (!numerator.ok()) return numerator.status();
  const Fen denominator = Fen(Rate::kUnitsPerOne) * static_cast<int64_t>(basis);
  absl::StatusOr<Fen> rounded = DivideRoundHalfEven(*numerator, denominator);
  if (!rounded.ok()) return rounded.status();
  return Money::FromFen(*rounded);
}

absl::StatusOr<std::vector<Money>> SplitFloorRemainderLast(Money total, int parts) {
  if (parts < 1 || parts > kSplitPartsMax) {
    return absl::InvalidArgumentError(
        Cat("parts must be between 1 and ", kSplitPartsMax, ", got ", parts));
  }
  if (total.is_negative()) return absl::InvalidArgumentError("total must not be negative");
  const Fen each = total.fen() / parts;
  const Fen last = total.fen() - each * (parts - 1);
  std::vector<Money> out(static_cast<size_t>(parts), Money::FromFen(each));
  out.back() = Money::FromFen(last);
  return out;
}

}  // namespace gongdai
