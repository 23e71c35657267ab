// Resident identity card numbers (GB 11643-1999): 18 characters, the last an ISO 7064
// MOD 11-2 check character (0-9 or X), with the holder's birth date in characters 7-14.
#ifndef GONGDAI_ENGINE_NATIONAL_ID_H_
#define GONGDAI_ENGINE_NATIONAL_ID_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "engine/date.h"

namespace gongdai {

// OK, or INVALID_ARGUMENT naming `field` with reason NATIONAL_ID_INVALID and what is
// wrong (length, characters, birth date, check character). The birth date must be a
// calendar day between 1900-01-01 and `today`.
[[nodiscard]] absl::Status ValidateNationalId(std::string_view id, std::string_view field,
                                              Date today);

// The ISO 7064 MOD 11-2 check character for the first 17 digits.
char NationalIdCheckCharacter(std::string_view first17);

// "3624**********1234": region prefix and last four only, for roles that may not see it.
std::string MaskNationalId(std::string_view id);

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_NATIONAL_ID_H_
