// Exact money: whole fen (0.01 yuan) in a checked 128-bit integer.
//
// Overflow in any arithmetic is an error (absl::OutOfRangeError), never a wrap; nothing
// is ever rounded silently. At the API edge amounts are decimal strings ("300000",
// "1234.5", "1234.50"), parsed by ParseAmount with a specific refusal reason for every
// kind of malformed input.
//
// Thread safety: all types here are values; distinct objects may be used concurrently.
#ifndef GONGDAI_ENGINE_MONEY_H_
#define GONGDAI_ENGINE_MONEY_H_

#include <boost/multiprecision/cpp_int.hpp>
#include <compare>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace gongdai {

using Fen = boost::multiprecision::checked_int128_t;

class Money {
 public:
  Money() = default;  // zero
  static Money FromFen(Fen fen) { return Money(fen); }
  static Money FromFen(int64_t fen) { return Money(Fen(fen)); }

  const Fen& fen() const { return fen_; }
  bool is_zero() const { return fen_ == 0; }
  bool is_negative() const { return fen_ < 0; }

  // Checked arithmetic: OUT_OF_RANGE on overflow.
  [[nodiscard]] absl::StatusOr<Money> Plus(Money other) const;
  [[nodiscard]] absl::StatusOr<Money> Minus(Money other) const;
  [[nodiscard]] absl::StatusOr<Money> Times(int64_t factor) const;
  Money Negated() const { return Money(-fen_); }

  // The amount as int64 fen (the journal's width); OUT_OF_RANGE when it does not fit.
  [[nodiscard]] absl::StatusOr<int64_t> ToInt64Fen() const;

  // Canonical decimal form with exactly two decimals: "1234.50", "-0.07", "0.00".
  std::string ToString() const;

  friend bool operator==(const Money& a, const Money& b) { return a.fen_ == b.fen_; }
  friend std::strong_ordering operator<=>(const Money& a, const Money& b) {
    if (a.fen_ < b.fen_) return std::strong_ordering::less;
    if (a.fen_ > b.fen_) return std::strong_ordering::greater;
    return std::strong_ordering::equal;
  }

 private:
  explicit Money(Fen fen) : fen_(fen) {}
  Fen fen_ = 0;
};

// What ParseAmount accepts beyond the grammar digits[.d[d]].
struct AmountRules {
  // A leading '-' is accepted. Default: false ('+' is never accepted).
  bool allow_negative = false;
  // "0" / "0.00" is accepted. Default: true.
  bool allow_zero = true;
  // Largest accepted absolute value, in fen. Default: the journal's limit, INT64_MAX fen.
  int64_t max_fen = std::numeric_limits<int64_t>::max();
};

// Parses a decimal amount in yuan. Refusals are INVALID_ARGUMENT naming `field`, with
// one of these reasons: AMOUNT_EMPTY, AMOUNT_HAS_SPACE, AMOUNT_SIGN_NOT_ALLOWED,
// AMOUNT_TOO_MANY_DECIMALS, AMOUNT_EXPONENT_NOT_ALLOWED, AMOUNT_SEPARATOR_NOT_ALLOWED,
// AMOUNT_NON_ASCII, AMOUNT_MISPLACED_DOT, AMOUNT_INVALID_CHARACTER, AMOUNT_ZERO,
// AMOUNT_ABOVE_MAXIMUM.
[[nodiscard]] absl::StatusOr<Money> ParseAmount(std::string_view text, std::string_view field,
                                                const AmountRules& rules = {});

enum class DayCount {
  kAct360 = 360,
  kAct365 = 365,
};

// An exact non-negative decimal rate such as an annual interest rate "0.0435", held as
// a whole number of units of 10^-10.
class Rate {
 public:
  static constexpr int kDecimalsMax = 10;
  static constexpr int64_t kUnitsPerOne = 10'000'000'000;

  Rate() = default;  // zero
  static Rate FromUnits(int64_t units) { return Rate(units); }
  int64_t units() const { return units_; }
  // Canonical form without trailing zeros: "0.0435", "0", "1".
  std::string ToString() const;
  friend bool operator==(const Rate&, const Rate&) = default;

 private:
  explicit Rate(int64_t units) : units_(units) {}
  int64_t units_ = 0;
};

// Parses a rate: digits, optionally '.' and at most 10 decimals; no sign, no exponent,
// at most 1 (100%). Refusals are INVALID_ARGUMENT naming `field` (reasons RATE_EMPTY,
// RATE_INVALID_CHARACTER, RATE_TOO_MANY_DECIMALS, RATE_MISPLACED_DOT, RATE_ABOVE_MAXIMUM).
[[nodiscard]] absl::StatusOr<Rate> ParseRate(std::string_view text, std::string_view field);

// numerator / denominator rounded half to even; denominator > 0.
[[nodiscard]] absl::StatusOr<Fen> DivideRoundHalfEven(const Fen& numerator, const Fen& denominator);

// amount x rate x days / basis, computed exactly and rounded once, half to even, to the
// fen. `days` >= 0. OUT_OF_RANGE on overflow.
[[nodiscard]] absl::StatusOr<Money> SimpleInterest(Money amount, Rate rate, int64_t days,
                                                   DayCount basis);

// (sum over days of principal) x rate / basis, rounded once, half to even: the accrual
// of a period whose daily principals add up to `principal_fen_days`.
[[nodiscard]] absl::StatusOr<Money> AccrualForPrincipalDays(const Fen& principal_fen_days,
                                                            Rate rate, DayCount basis);

// Splits `total` (>= 0) into `parts` (1 ... kSplitPartsMax) amounts: each gets the floor
// of total / parts and the last also gets the remainder, so they sum to `total` exactly.
inline constexpr int kSplitPartsMax = 1200;
[[nodiscard]] absl::StatusOr<std::vector<Money>> SplitFloorRemainderLast(Money total, int parts);

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_MONEY_H_
