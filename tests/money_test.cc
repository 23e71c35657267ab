#include "engine/money.h"

#include <gtest/gtest.h>

#include "engine/status.h"

namespace gongdai {
namespace {

struct ParseCase {
  const char* text;
  int64_t fen;
};

TEST(ParseAmount, AcceptsPlainDecimals) {
  const ParseCase cases[] = {
      {"1234.5", 123450}, {"0.10", 10},        {"300000", 30000000}, {"0", 0},
      {"0.01", 1},        {"1234.50", 123450}, {"007", 700},         {"62470000.00", 6247000000},
  };
  for (const ParseCase& c : cases) {
    absl::StatusOr<Money> money = ParseAmount(c.text, "amount");
    ASSERT_TRUE(money.ok()) << c.text << ": " << money.status();
    EXPECT_EQ(money->fen(), c.fen) << c.text;
  }
}

struct RefusalCase {
  const char* text;
  const char* reason;
};

TEST(ParseAmount, RefusesMalformedInputWithSpecificReason) {
  const RefusalCase cases[] = {
      {"", "AMOUNT_EMPTY"},
      {" 100", "AMOUNT_HAS_SPACE"},
      {"100 ", "AMOUNT_HAS_SPACE"},
      {"1 000", "AMOUNT_HAS_SPACE"},
      {"10\t0", "AMOUNT_HAS_SPACE"},
      {"+100", "AMOUNT_SIGN_NOT_ALLOWED"},
      {"-100", "AMOUNT_SIGN_NOT_ALLOWED"},
      {"1.234", "AMOUNT_TOO_MANY_DECIMALS"},
      {"0.001", "AMOUNT_TOO_MANY_DECIMALS"},
      {"1e5", "AMOUNT_EXPONENT_NOT_ALLOWED"},
      {"1E5", "AMOUNT_EXPONENT_NOT_ALLOWED"},
      {"1,000", "AMOUNT_SEPARATOR_NOT_ALLOWED"},
      {"1_000", "AMOUNT_SEPARATOR_NOT_ALLOWED"},
      {"1'000", "AMOUNT_SEPARATOR_NOT_ALLOWED"},
      {"\xef\xbc\x91\xef\xbc\x90\xef\xbc\x90", "AMOUNT_NON_ASCII"},  // fullwidth "100"
      {"\xd9\xa1\xd9\xa0", "AMOUNT_NON_ASCII"},                      // Arabic-Indic "10"
      {"100\xe5\x85\x83", "AMOUNT_NON_ASCII"},                       // "100元"
      {".5", "AMOUNT_MISPLACED_DOT"},
      {"5.", "AMOUNT_MISPLACED_DOT"},
      {".", "AMOUNT_MISPLACED_DOT"},
      {"1.2.3", "AMOUNT_MISPLACED_DOT"},
      {"12a", "AMOUNT_INVALID_CHARACTER"},
      {"0x10", "AMOUNT_INVALID_CHARACTER"},
      {"1-0", "AMOUNT_INVALID_CHARACTER"},
      {"99999999999999999999999999999999999999999", "AMOUNT_ABOVE_MAXIMUM"},
      {"92233720368547758.08", "AMOUNT_ABOVE_MAXIMUM"},
  };
  for (const RefusalCase& c : cases) {
    absl::StatusOr<Money> money = ParseAmount(c.text, "amount");
    ASSERT_FALSE(money.ok()) << "accepted \"" << c.text << "\"";
    EXPECT_EQ(money.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    std::vector<FieldViolation> violations = FieldViolationsOf(money.status());
    ASSERT_EQ(violations.size(), 1u) << c.text;
    EXPECT_EQ(violations[0].field, "amount");
    EXPECT_EQ(violations[0].reason, c.reason) << "\"" << c.text << "\": " << money.status();
  }
}

TEST(ParseAmount, NegativeOnlyWhereAllowed) {
  AmountRules rules;
  rules.allow_negative = true;
  absl::StatusOr<Money> money = ParseAmount("-12.3", "adjustment", rules);
  ASSERT_TRUE(money.ok()) << money.status();
  EXPECT_EQ(money->fen(), -1230);
  EXPECT_EQ(FieldViolationsOf(ParseAmount("+12.3", "adjustment", rules).status())[0].reason,
            "AMOUNT_SIGN_NOT_ALLOWED");
  EXPECT_EQ(FieldViolationsOf(ParseAmount("-", "adjustment", rules).status())[0].reason,
            "AMOUNT_EMPTY");
}

TEST(ParseAmount, MaximumIsConfigured) {
  AmountRules rules;
  rules.max_fen = 30000000;  // 300,000 yuan
  EXPECT_TRUE(ParseAmount("300000", "amount", rules).ok());
  EXPECT_TRUE(ParseAmount("300000.00", "amount", rules).ok());
  absl::StatusOr<Money> over = ParseAmount("300000.01", "amount", rules);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(FieldViolationsOf(over.status())[0].reason, "AMOUNT_ABOVE_MAXIMUM");
  EXPECT_NE(over.status().message().find("300000.00"), absl::string_view::npos);
}

TEST(ParseAmount, ZeroRefusedWhereRequired) {
  AmountRules rules;
  rules.allow_zero = false;
  EXPECT_EQ(FieldViolationsOf(ParseAmount("0.00", "amount", rules).status())[0].reason,
            "AMOUNT_ZERO");
}

TEST(Money, FormatsWithTwoDecimals) {
  EXPECT_EQ(Money::FromFen(123450).ToString(), "1234.50");
  EXPECT_EQ(Money::FromFen(10).ToString(), "0.10");
  EXPECT_EQ(Money::FromFen(0).ToString(), "0.00");
  EXPECT_EQ(Money::FromFen(-7).ToString(), "-0.07");
  EXPECT_EQ(Money::FromFen(6247000000).ToString(), "62470000.00");
  EXPECT_EQ(Money::FromFen(-100).ToString(), "-1.00");
  // The edges of 64 bits, and beyond them (sums are 128-bit).
  EXPECT_EQ(Money::FromFen(std::numeric_limits<int64_t>::max()).ToString(), "92233720368547758.07");
  EXPECT_EQ(Money::FromFen(-std::numeric_limits<int64_t>::max()).ToString(),
            "-92233720368547758.07");
  EXPECT_EQ(Money::FromFen(std::numeric_limits<int64_t>::min()).ToString(),
            "-92233720368547758.08");
  EXPECT_EQ(Money::FromFen(Fen(std::numeric_limits<int64_t>::max()) * 10).ToString(),
            "922337203685477580.70");
  EXPECT_EQ(Money::FromFen(-Fen(std::numeric_limits<int64_t>::max()) * 10 - 5).ToString(),
            "-922337203685477580.75");
}

TEST(Money, ParseFormatRoundTrip) {
  for (int64_t fen : {int64_t{0}, int64_t{1}, int64_t{99}, int64_t{100}, int64_t{123456789},
                      std::numeric_limits<int64_t>::max()}) {
    absl::StatusOr<Money> back = ParseAmount(Money::FromFen(fen).ToString(), "amount");
    ASSERT_TRUE(back.ok()) << fen;
    EXPECT_EQ(back->fen(), fen);
  }
}

TEST(Money, ArithmeticOverflowIsAnErrorNotAWrap) {
  const Money max = Money::FromFen(std::numeric_limits<Fen>::max());
  absl::StatusOr<Money> sum = max.Plus(Money::FromFen(1));
  ASSERT_FALSE(sum.ok());
  EXPECT_EQ(sum.status().code(), absl::StatusCode::kOutOfRange);
  const Money min = Money::FromFen(std::numeric_limits<Fen>::min());
  EXPECT_EQ(min.Minus(Money::FromFen(1)).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(max.Times(2).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Money::FromFen(int64_t{5}).Times(3)->fen(), 15);
}

TEST(Money, ValuesBeyondTheJournalRangeDoNotNarrow) {
  absl::StatusOr<Money> big =
      Money::FromFen(std::numeric_limits<int64_t>::max()).Plus(Money::FromFen(1));
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->ToInt64Fen().status().code(), absl::StatusCode::kOutOfRange);
}

TEST(ParseRate, AcceptsDecimalRates) {
  absl::StatusOr<Rate> rate = ParseRate("0.0435", "rate");
  ASSERT_TRUE(rate.ok());
  EXPECT_EQ(rate->units(), 435'000'000);
  EXPECT_EQ(rate->ToString(), "0.0435");
  EXPECT_EQ(ParseRate("1", "rate")->ToString(), "1");
  EXPECT_EQ(ParseRate("0.0000000001", "rate")->units(), 1);
}

TEST(ParseRate, RefusesMalformedRates) {
  const RefusalCase cases[] = {
      {"", "RATE_EMPTY"},
      {"-0.01", "RATE_INVALID_CHARACTER"},
      {"4.35%", "RATE_INVALID_CHARACTER"},
      {"4e-2", "RATE_INVALID_CHARACTER"},
      {"0.00000000001", "RATE_TOO_MANY_DECIMALS"},
      {".05", "RATE_MISPLACED_DOT"},
      {"1.5", "RATE_ABOVE_MAXIMUM"},
      {"12", "RATE_ABOVE_MAXIMUM"},
  };
  for (const RefusalCase& c : cases) {
    absl::StatusOr<Rate> rate = ParseRate(c.text, "annual_rate");
    ASSERT_FALSE(rate.ok()) << c.text;
    EXPECT_EQ(FieldViolationsOf(rate.status())[0].reason, c.reason) << c.text;
    EXPECT_EQ(FieldViolationsOf(rate.status())[0].field, "annual_rate");
  }
}

TEST(RoundHalfEven, TiesGoToTheEvenNeighbour) {
  EXPECT_EQ(*DivideRoundHalfEven(5, 2), 2);    // 2.5 -> 2
  EXPECT_EQ(*DivideRoundHalfEven(7, 2), 4);    // 3.5 -> 4
  EXPECT_EQ(*DivideRoundHalfEven(-5, 2), -2);  // -2.5 -> -2
  EXPECT_EQ(*DivideRoundHalfEven(-7, 2), -4);  // -3.5 -> -4
  EXPECT_EQ(*DivideRoundHalfEven(1, 2), 0);    // 0.5 -> 0
  EXPECT_EQ(*DivideRoundHalfEven(3, 2), 2);    // 1.5 -> 2
}

TEST(RoundHalfEven, NonTiesRoundToNearest) {
  EXPECT_EQ(*DivideRoundHalfEven(2501, 1000), 3);
  EXPECT_EQ(*DivideRoundHalfEven(2499, 1000), 2);
  EXPECT_EQ(*DivideRoundHalfEven(-2501, 1000), -3);
  EXPECT_EQ(*DivideRoundHalfEven(10, 5), 2);
  EXPECT_FALSE(DivideRoundHalfEven(1, 0).ok());
}

TEST(SimpleInterest, ExactAndRoundedOnce) {
  // 100,000.00 yuan at 4.35% for 30 days on ACT/360: 10,000,000 x 0.0435 x 30 / 360
  // = 36,250 fen exactly.
  EXPECT_EQ(
      SimpleInterest(Money::FromFen(10'000'000), *ParseRate("0.0435", "r"), 30, DayCount::kAct360)
          ->fen(),
      36250);
  // ACT/365: 10,000,000 x 0.0435 x 30 / 365 = 35753.424... -> 35753 fen.
  EXPECT_EQ(
      SimpleInterest(Money::FromFen(10'000'000), *ParseRate("0.0435", "r"), 30, DayCount::kAct365)
          ->fen(),
      35753);
}

TEST(SimpleInterest, HalfFenTiesRoundToEven) {
  // 25 fen x 0.02 x 1 / 1 ... choose inputs that land exactly on .5 fen:
  // 36 fen x 0.5 x 1 day / 360 = 0.05 -> 0; use rate 1 for clarity:
  // 180 fen x 1 x 1 / 360 = 0.5 fen -> 0 (even); 540 fen x 1 x 1 / 360 = 1.5 -> 2 (even).
  const Rate one = *ParseRate("1", "r");
  EXPECT_EQ(SimpleInterest(Money::FromFen(180), one, 1, DayCount::kAct360)->fen(), 0);
  EXPECT_EQ(SimpleInterest(Money::FromFen(540), one, 1, DayCount::kAct360)->fen(), 2);
  EXPECT_EQ(SimpleInterest(Money::FromFen(900), one, 1, DayCount::kAct360)->fen(), 2);   // 2.5
  EXPECT_EQ(SimpleInterest(Money::FromFen(1260), one, 1, DayCount::kAct360)->fen(), 4);  // 3.5
  // 0.0365 a year on ACT/365 is 0.0001 a day: 5,000 fen for 1 day = 0.5 fen -> 0;
  // 15,000 fen = 1.5 -> 2.
  const Rate r = *ParseRate("0.0365", "r");
  EXPECT_EQ(SimpleInterest(Money::FromFen(5000), r, 1, DayCount::kAct365)->fen(), 0);
  EXPECT_EQ(SimpleInterest(Money::FromFen(15000), r, 1, DayCount::kAct365)->fen(), 2);
  EXPECT_EQ(SimpleInterest(Money::FromFen(15001), r, 1, DayCount::kAct365)->fen(), 2);
  EXPECT_EQ(SimpleInterest(Money::FromFen(14999), r, 1, DayCount::kAct365)->fen(), 1);
}

TEST(SimpleInterest, OverflowIsAnError) {
  absl::StatusOr<Money> huge = SimpleInterest(Money::FromFen(std::numeric_limits<Fen>::max() / 2),
                                              *ParseRate("1", "r"), 365, DayCount::kAct365);
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kOutOfRange);
}

TEST(Split, InstallmentsSumExactlyWithRemainderInTheLast) {
  for (int64_t total : {int64_t{0}, int64_t{1}, int64_t{99}, int64_t{10'000'000},
                        int64_t{30'000'001}, int64_t{6'247'000'000}}) {
    for (int parts = 1; parts <= 60; ++parts) {
      absl::StatusOr<std::vector<Money>> split =
          SplitFloorRemainderLast(Money::FromFen(total), parts);
      ASSERT_TRUE(split.ok());
      ASSERT_EQ(split->size(), static_cast<size_t>(parts));
      Fen sum = 0;
      for (const Money& m : *split) sum += m.fen();
      EXPECT_EQ(sum, total);
      for (int i = 0; i + 1 < parts; ++i) EXPECT_EQ((*split)[i].fen(), total / parts);
      EXPECT_EQ(split->back().fen(), total / parts + total % parts);
    }
  }
}

TEST(Split, RefusesBadPartCounts) {
  EXPECT_FALSE(SplitFloorRemainderLast(Money::FromFen(100), 0).ok());
  EXPECT_FALSE(SplitFloorRemainderLast(Money::FromFen(100), kSplitPartsMax + 1).ok());
  EXPECT_FALSE(SplitFloorRemainderLast(Money::FromFen(-100), 3).ok());
}

}  // namespace
}  // namespace gongdai
