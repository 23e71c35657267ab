#include "engine/personal_data.h"

#include "engine/national_id.h"
#include "engine/strings.h"

namespace gongdai {

std::string MaskPhone(std::string_view phone) {
  if (phone.size() != 11) return std::string(phone.size(), '*');
  return Cat(phone.substr(0, 3), "****", phone.substr(7));
}

void MaskPersonalData(v1::Entry& entry) {
  if (!entry.has_event()) return;
  VisitPersonalData(*entry.mutable_event(), [](PersonalData kind, std::string& field) {
    field = kind == PersonalData::kNationalId ? MaskNationalId(field) : MaskPhone(field);
  });
}

bool HoldsMaskedPersonalData(const v1::Entry& entry) {
  bool masked = false;
  VisitPersonalData(entry.event(), [&](PersonalData, const std::string& field) {
    masked = masked || field.find('*') != std::string::npos;
  });
  return masked;
}

}  // namespace gongdai
