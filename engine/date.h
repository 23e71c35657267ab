// Calendar dates of the business (the Asia/Shanghai calendar: UTC+8, no daylight saving
// since 1991), as "YYYY-MM-DD" strings at every edge.
#ifndef GONGDAI_ENGINE_DATE_H_
#define GONGDAI_ENGINE_DATE_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace gongdai {

class Date {
 public:
  Date() = default;  // 1970-01-01
  static Date FromDays(int32_t days_since_epoch) { return Date(days_since_epoch); }
  // Requires a valid civil date (checked by the caller); see ParseDate for strings.
  static Date FromCivil(int year, unsigned month, unsigned day);

  int32_t days_since_epoch() const { return days_; }
  int year() const;
  unsigned month() const;
  unsigned day() const;

  Date PlusDays(int32_t days) const { return Date(days_ + days); }
  // Same day of month `months` later, clamped to that month's last day.
  Date PlusMonthsClamped(int months) const;
  std::string ToString() const;  // "2020-03-15"

  friend auto operator<=>(const Date&, const Date&) = default;

 private:
  explicit Date(int32_t days) : days_(days) {}
  int32_t days_ = 0;
};

// Strict "YYYY-MM-DD" with a real calendar day, years 1900-9999. INVALID_ARGUMENT naming
// `field` (reason DATE_INVALID) otherwise.
[[nodiscard]] absl::StatusOr<Date> ParseDate(std::string_view text, std::string_view field);

// The Asia/Shanghai calendar date at `unix_us` microseconds since the epoch.
Date ShanghaiDateAt(int64_t unix_us);

// Microseconds since the epoch, from the system clock.
int64_t NowUnixMicros();

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_DATE_H_
