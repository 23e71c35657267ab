#include "engine/personal_data.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gongdai {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr char kNationalId[] = "11010519491231002X";
constexpr char kPhone[] = "13812345678";

bool IsPersonal(const FieldDescriptor& field) {
  return field.name() == "national_id" || field.name() == "phone";
}

// Sets every string field of `message` and of the messages it holds (two of each
// repeated one): national IDs and phones to real-looking numbers, the rest to "x".
void Fill(Message& message, int depth = 0) {
  ASSERT_LT(depth, 8) << "messages nest too deep to fill";
  const Reflection& reflection = *message.GetReflection();
  const auto& descriptor = *message.GetDescriptor();
  for (int i = 0; i < descriptor.field_count(); ++i) {
    const FieldDescriptor& field = *descriptor.field(i);
    const std::string text = field.name() == "national_id" ? kNationalId
                             : field.name() == "phone"     ? kPhone
                                                           : "x";
    if (field.cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      if (field.is_repeated()) {
        reflection.AddString(&message, &field, text);
      } else {
        reflection.SetString(&message, &field, text);
      }
    } else if (field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field.is_repeated()) {
        for (int n = 0; n < 2; ++n) Fill(*reflection.AddMessage(&message, &field), depth + 1);
      } else if (field.containing_oneof() == nullptr) {
        Fill(*reflection.MutableMessage(&message, &field), depth + 1);
      }
    }
  }
}

// The values of every national ID and phone field, at any depth.
void Collect(const Message& message, std::vector<std::string>& out) {
  const Reflection& reflection = *message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection.ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING && IsPersonal(*field)) {
      if (field->is_repeated()) {
        for (int n = 0; n < reflection.FieldSize(message, field); ++n)
          out.push_back(reflection.GetRepeatedString(message, field, n));
      } else {
        out.push_back(reflection.GetString(message, field));
      }
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int n = 0; n < reflection.FieldSize(message, field); ++n)
          Collect(reflection.GetRepeatedMessage(message, field, n), out);
      } else {
        Collect(reflection.GetMessage(message, field), out);
      }
    }
  }
}

// An entry whose event is of the kind `field` of Event's oneof, every field filled.
v1::Entry EntryOfKind(const FieldDescriptor& kind) {
  v1::Entry entry;
  Fill(entry);
  v1::Event& event = *entry.mutable_event();
  Fill(*event.GetReflection()->MutableMessage(&event, &kind));
  return entry;
}

// Every national ID and phone number an entry can hold, whatever its event, is masked:
// an event added with either must be added to VisitPersonalData's list.
TEST(PersonalData, EveryNationalIdAndPhoneOfEveryEventIsMasked) {
  const auto& oneof = *v1::Event::descriptor()->FindOneofByName("kind");
  int with_personal_data = 0;
  for (int i = 0; i < oneof.field_count(); ++i) {
    const FieldDescriptor& kind = *oneof.field(i);
    SCOPED_TRACE(kind.name());
    v1::Entry entry = EntryOfKind(kind);
    ASSERT_EQ(entry.event().kind_case(), kind.number());
    std::vector<std::string> stored;
    Collect(entry, stored);
    EXPECT_FALSE(HoldsMaskedPersonalData(entry));

    const std::string hash = entry.hash();
    MaskPersonalData(entry);
    std::vector<std::string> shown;
    Collect(entry, shown);
    ASSERT_EQ(shown.size(), stored.size());
    for (size_t n = 0; n < shown.size(); ++n) {
      EXPECT_NE(shown[n], stored[n]) << "field " << n << " left as stored";
      EXPECT_NE(shown[n].find('*'), std::string::npos) << shown[n];
    }
    EXPECT_EQ(HoldsMaskedPersonalData(entry), !stored.empty());
    EXPECT_EQ(entry.hash(), hash);
    if (!stored.empty()) ++with_personal_data;
  }
  // A registration, an update of details and an application's guarantors.
  EXPECT_EQ(with_personal_data, 3);
}

TEST(PersonalData, MasksKeepTheEndsOfTheNumbers) {
  v1::Entry entry = EntryOfKind(*v1::Event::descriptor()->FindFieldByName("borrower_registered"));
  MaskPersonalData(entry);
  EXPECT_EQ(entry.event().borrower_registered().national_id(), "1101**********002X");
  EXPECT_EQ(entry.event().borrower_registered().details().phone(), "138****5678");
  EXPECT_EQ(MaskPhone("12345"), "*****");
  EXPECT_EQ(MaskPhone(""), "");
}

// A single masked field is enough: an auditor must not check a partly masked entry.
TEST(PersonalData, OneMaskedGuarantorMakesTheEntryMasked) {
  v1::Entry entry = EntryOfKind(*v1::Event::descriptor()->FindFieldByName("application_submitted"));
  ASSERT_EQ(entry.event().application_submitted().guarantors_size(), 2);
  EXPECT_FALSE(HoldsMaskedPersonalData(entry));
  entry.mutable_event()->mutable_application_submitted()->mutable_guarantors(1)->set_national_id(
      "1101**********002X");
  EXPECT_TRUE(HoldsMaskedPersonalData(entry));
}

}  // namespace
}  // namespace gongdai
