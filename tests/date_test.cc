#include "engine/date.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "engine/status.h"

namespace gongdai {
namespace {

TEST(Date, ParsesAndFormats) {
  absl::StatusOr<Date> date = ParseDate("2020-03-15", "business_date");
  ASSERT_TRUE(date.ok());
  EXPECT_EQ(date->ToString(), "2020-03-15");
  EXPECT_EQ(date->year(), 2020);
  EXPECT_EQ(date->month(), 3u);
  EXPECT_EQ(date->day(), 15u);
}

TEST(Date, FormatsEveryDayAsItsCalendarDay) {
  // Every day from 1900 to 2199, against a calendar kept here by the Gregorian rule: the
  // text is that day's YYYY-MM-DD, and it parses back to the same day.
  auto days_in = [](int year, int month) {
    static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : kDays[month - 1];
  };
  int year = 1900, month = 1, day = 1;
  int days = 0;
  for (Date d = Date::FromCivil(1900, 1, 1); year < 2200; d = d.PlusDays(1), ++days) {
    char expected[40];
    std::snprintf(expected, sizeof(expected), "%04d-%02d-%02d", year, month, day);
    const std::string text = d.ToString();
    ASSERT_EQ(text, expected);
    absl::StatusOr<Date> back = ParseDate(text, "d");
    ASSERT_TRUE(back.ok()) << text;
    ASSERT_EQ(back->days_since_epoch(), d.days_since_epoch()) << text;
    if (++day > days_in(year, month)) {
      day = 1;
      if (++month > 12) {
        month = 1;
        ++year;
      }
    }
  }
  EXPECT_EQ(days, 300 * 365 + 73);  // 73 leap years: not 1900 nor 2100, but 2000
  // Years are zero-padded to four digits, and a fifth digit is not cut off.
  EXPECT_EQ(Date::FromCivil(7, 3, 5).ToString(), "0007-03-05");
  EXPECT_EQ(Date::FromCivil(9999, 12, 31).ToString(), "9999-12-31");
  EXPECT_EQ(Date::FromCivil(10000, 1, 1).ToString(), "10000-01-01");
}

TEST(Date, RefusesNonDates) {
  for (const char* text : {"", "2020-3-15", "2020/03/15", "2020-02-30", "2021-02-29", "2020-13-01",
                           "2020-00-10", "20200315", "1899-12-31", "2020-03-15Z"}) {
    absl::StatusOr<Date> date = ParseDate(text, "business_date");
    ASSERT_FALSE(date.ok()) << text;
    EXPECT_EQ(FieldViolationsOf(date.status())[0].field, "business_date");
    EXPECT_EQ(FieldViolationsOf(date.status())[0].reason, "DATE_INVALID");
  }
  EXPECT_TRUE(ParseDate("2020-02-29", "d").ok());
}

TEST(Date, ScheduleClampsToMonthEnd) {
  const Date start = *ParseDate("2020-01-31", "d");
  EXPECT_EQ(start.PlusMonthsClamped(1).ToString(), "2020-02-29");
  EXPECT_EQ(start.PlusMonthsClamped(2).ToString(), "2020-03-31");
  EXPECT_EQ(start.PlusMonthsClamped(3).ToString(), "2020-04-30");
  EXPECT_EQ(start.PlusMonthsClamped(13).ToString(), "2021-02-28");
  EXPECT_EQ(ParseDate("2020-11-30", "d")->PlusMonthsClamped(3).ToString(), "2021-02-28");
  EXPECT_EQ(ParseDate("2020-12-15", "d")->PlusMonthsClamped(1).ToString(), "2021-01-15");
}

TEST(Date, ShanghaiCalendarIsUtcPlusEight) {
  // 2020-12-31T15:59:59Z is 23:59:59 in Shanghai; one second later it is 2021-01-01.
  const int64_t before = int64_t{1609430399} * 1'000'000;
  EXPECT_EQ(ShanghaiDateAt(before).ToString(), "2020-12-31");
  EXPECT_EQ(ShanghaiDateAt(before + 1'000'000).ToString(), "2021-01-01");
}

}  // namespace
}  // namespace gongdai
