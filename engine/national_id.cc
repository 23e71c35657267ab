#include "engine/national_id.h"

#include "engine/status.h"
#include "engine/strings.h"

namespace gongdai {

char NationalIdCheckCharacter(std::string_view first17) {
  static constexpr int kWeights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  static constexpr char kCheck[11] = {'1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'};
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (first17[static_cast<size_t>(i)] - '0') * kWeights[i];
  return kCheck[sum % 11];
}

absl::Status ValidateNationalId(std::string_view id, std::string_view field, Date today) {
  auto refuse = [&](std::string_view why) {
    return InvalidField(field, "NATIONAL_ID_INVALID", Cat("national ID number ", why));
  };
  if (id.size() != 18) return refuse(Cat("must have 18 characters, found ", id.size()));
  for (size_t i = 0; i < 17; ++i) {
    if (id[i] < '0' || id[i] > '9') return refuse("must have digits in its first 17 places");
  }
  const char last = id[17];
  if (!((last >= '0' && last <= '9') || last == 'X')) {
    return refuse("must end in a digit or an upper-case X");
  }
  const std::string birth = Cat(id.substr(6, 4), "-", id.substr(10, 2), "-", id.substr(12, 2));
  absl::StatusOr<Date> born = ParseDate(birth, field);
  if (!born.ok() || *born > today) return refuse(Cat("has no valid birth date (", birth, ")"));
  const char expected = NationalIdCheckCharacter(id.substr(0, 17));
  if (last != expected) {
    return refuse(Cat("fails its check character: expected ", expected, ", found ", last));
  }
  return absl::OkStatus();
}

std::string MaskNationalId(std::string_view id) {
  if (id.size() != 18) return std::string(id.size(), '*');
  return Cat(id.substr(0, 4), std::string(10, '*'), id.substr(14));
}

}  // namespace gongdai
