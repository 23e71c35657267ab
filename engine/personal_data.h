// The personal data that journal entries hold: national ID numbers (a borrower's, a
// guarantor's) and phone numbers. `VisitPersonalData` is the one list of where they are,
// for the service that masks them for roles not shown them and for the audit tool that
// recognizes an entry a server masked. A new event holding either must be added there.
#ifndef GONGDAI_ENGINE_PERSONAL_DATA_H_
#define GONGDAI_ENGINE_PERSONAL_DATA_H_

#include <string>
#include <string_view>
#include <type_traits>

#include "gongdai/v1/journal.pb.h"

namespace gongdai {

enum class PersonalData { kNationalId, kPhone };

namespace personal_data_internal {
// The event's parts, as const or as mutable references after `Event`.
inline const v1::BorrowerRegistered& Registered(const v1::Event& e) {
  return e.borrower_registered();
}
inline v1::BorrowerRegistered& Registered(v1::Event& e) { return *e.mutable_borrower_registered(); }
inline const v1::BorrowerDetails& Details(const v1::BorrowerRegistered& e) { return e.details(); }
inline v1::BorrowerDetails& Details(v1::BorrowerRegistered& e) { return *e.mutable_details(); }
inline const v1::BorrowerDetails& Details(const v1::BorrowerUpdated& e) { return e.details(); }
inline v1::BorrowerDetails& Details(v1::BorrowerUpdated& e) { return *e.mutable_details(); }
inline const v1::BorrowerUpdated& Updated(const v1::Event& e) { return e.borrower_updated(); }
inline v1::BorrowerUpdated& Updated(v1::Event& e) { return *e.mutable_borrower_updated(); }
inline const auto& Guarantors(const v1::Event& e) { return e.application_submitted().guarantors(); }
inline auto& Guarantors(v1::Event& e) {
  return *e.mutable_application_submitted()->mutable_guarantors();
}

template <typename Message>
auto& NationalId(Message& m) {
  if constexpr (std::is_const_v<Message>) {
    return m.national_id();
  } else {
    return *m.mutable_national_id();
  }
}
template <typename Message>
auto& Phone(Message& m) {
  if constexpr (std::is_const_v<Message>) {
    return m.phone();
  } else {
    return *m.mutable_phone();
  }
}
}  // namespace personal_data_internal

// Calls `visit(PersonalData, field)` for every national ID and phone number that `event`
// holds, with each field as a `const std::string&` for a const event, a `std::string&`
// otherwise.
template <typename Event, typename Visit>
requires std::is_same_v<std::remove_const_t<Event>, v1::Event>
void VisitPersonalData(Event& event, Visit&& visit) {
  using namespace personal_data_internal;
  switch (event.kind_case()) {
    case v1::Event::kBorrowerRegistered: {
      auto& registered = Registered(event);
      visit(PersonalData::kNationalId, NationalId(registered));
      visit(PersonalData::kPhone, Phone(Details(registered)));
      break;
    }
    case v1::Event::kBorrowerUpdated:
      visit(PersonalData::kPhone, Phone(Details(Updated(event))));
      break;
    case v1::Event::kApplicationSubmitted:
      for (auto& guarantor : Guarantors(event)) {
        visit(PersonalData::kNationalId, NationalId(guarantor));
      }
      break;
    default:
      break;
  }
}

// "138****5678": the first three and last four digits of an 11-digit mobile number, for
// roles that may not see it; anything else all stars.
std::string MaskPhone(std::string_view phone);

// Masks every national ID and phone number of the entry's event (MaskNationalId,
// MaskPhone). The entry's hash fields are left as stored, so a masked entry no longer
// matches its hash.
void MaskPersonalData(v1::Entry& entry);

// Whether a national ID or phone number of the entry's event is masked. Stored numbers
// are digits (and X), never '*'.
bool HoldsMaskedPersonalData(const v1::Entry& entry);

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_PERSONAL_DATA_H_
