#include "engine/date.h"

#include <cstdio>

#include "engine/status.h"
#include "engine/strings.h"

namespace gongdai {
namespace {

using std::chrono::days;
using std::chrono::sys_days;
using std::chrono::year_month_day;

year_month_day Civil(int32_t days_since_epoch) {
  return year_month_day(sys_days(days(days_since_epoch)));
}

}  // namespace

Date Date::FromCivil(int year, unsigned month, unsigned day) {
  year_month_day ymd{std::chrono::year(year), std::chrono::month(month), std::chrono::day(day)};
  return Date(static_cast<int32_t>(sys_days(ymd).time_since_epoch().count()));
}

int Date::year() const { return static_cast<int>(Civil(days_).year()); }
unsigned Date::month() const { return static_cast<unsigned>(Civil(days_).month()); }
unsigned Date::day() const { return static_cast<unsigned>(Civil(days_).day()); }

Date Date::PlusMonthsClamped(int months) const {
  const year_month_day start = Civil(days_);
  const std::chrono::year_month shifted =
      std::chrono::year_month(start.year(), start.month()) + std::chrono::months(months);
  const std::chrono::year_month_day_last last(shifted.year(),
                                              std::chrono::month_day_last(shifted.month()));
  const std::chrono::day day = std::min(start.day(), last.day());
  return FromCivil(static_cast<int>(shifted.year()), static_cast<unsigned>(shifted.month()),
                   static_cast<unsigned>(day));
}

std::string Date::ToString() const {
  const year_month_day ymd = Civil(days_);
  const int year = static_cast<int>(ymd.year());
  const unsigned month = static_cast<unsigned>(ymd.month());
  const unsigned day = static_cast<unsigned>(ymd.day());
  if (year < 0 || year > 9999) {
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%04d-%02u-%02u", year, month, day);
    return buffer;
  }
  // Entries and projections carry dates, so this runs several times per command: the
  // digits by hand, not through printf.
  std::string text(10, '-');
  text[0] = static_cast<char>('0' + year / 1000);
  text[1] = static_cast<char>('0' + year / 100 % 10);
  text[2] = static_cast<char>('0' + year / 10 % 10);
  text[3] = static_cast<char>('0' + year % 10);
  text[5] = static_cast<char>('0' + month / 10);
  text[6] = static_cast<char>('0' + month % 10);
  text[8] = static_cast<char>('0' + day / 10);
  text[9] = static_cast<char>('0' + day % 10);
  return text;
}

absl::StatusOr<Date> ParseDate(std::string_view text, std::string_view field) {
  auto refuse = [&](std::string_view why) {
    return InvalidField(field, "DATE_INVALID", Cat("date \"", Excerpt(text), "\" ", why));
  };
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') {
    return refuse("must have the form YYYY-MM-DD");
  }
  int parts[3] = {0, 0, 0};
  const size_t starts[3] = {0, 5, 8};
  const size_t lengths[3] = {4, 2, 2};
  for (int p = 0; p < 3; ++p) {
    for (size_t i = 0; i < lengths[p]; ++i) {
      char c = text[starts[p] + i];
      if (c < '0' || c > '9') return refuse("must have the form YYYY-MM-DD");
      parts[p] = parts[p] * 10 + (c - '0');
    }
  }
  if (parts[0] < 1900) return refuse("is before 1900");
  year_month_day ymd{std::chrono::year(parts[0]), std::chrono::month(parts[1]),
                     std::chrono::day(parts[2])};
  if (!ymd.ok()) return refuse("is not a calendar day");
  return Date::FromCivil(parts[0], static_cast<unsigned>(parts[1]),
                         static_cast<unsigned>(parts[2]));
}

Date ShanghaiDateAt(int64_t unix_us) {
  constexpr int64_t kOffsetUs = int64_t{8} * 3600 * 1'000'000;
  constexpr int64_t kDayUs = int64_t{86400} * 1'000'000;
  int64_t local = unix_us + kOffsetUs;
  int64_t day = local / kDayUs;
  if (local % kDayUs < 0) --day;
  return Date::FromDays(static_cast<int32_t>(day));
}

int64_t NowUnixMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace gongdai
