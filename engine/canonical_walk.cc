#include "engine/canonical_walk.h"

#include <algorithm>
#include <limits>
#include <unordered_map>

namespace gongdai {

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

// How a field's value is encoded and which values re-encode to the same bytes.
enum class Kind : uint8_t {
  kNotModelled,  // absent from the type, or of a form the walk leaves to re-serializing
  kVarint64,     // int64, uint64, sint64: every shortest varint
  kVarint32,     // int32, proto3 enum: sign-extended to 64 bits when negative
  kBool,         // 0 or 1
  kBytes,        // string, bytes (the parser has checked a string's UTF-8)
  kMessage,
};

// Field numbers above this are left to re-serializing (the journal's stop at 15).
constexpr int kHighestWalkedNumber = 4096;
// Oneofs are tracked in one 64-bit mask per message.
constexpr int kMostOneofs = 64;

constexpr int kWireVarint = 0;
constexpr int kWireLength = 2;

Kind KindOf(const FieldDescriptor& field) {
  if (field.is_map()) return Kind::kNotModelled;
  switch (field.type()) {
    case FieldDescriptor::TYPE_INT64:
    case FieldDescriptor::TYPE_UINT64:
    case FieldDescriptor::TYPE_SINT64:
      return Kind::kVarint64;
    case FieldDescriptor::TYPE_INT32:
      return Kind::kVarint32;
    case FieldDescriptor::TYPE_ENUM:
      // A proto3 enum is open: any int32 parses into the field and is written back. A
      // proto2 enum is closed: an undeclared value goes to the unknown fields and is
      // written at the end.
      return field.enum_type()->file()->syntax() == google::protobuf::FileDescriptor::SYNTAX_PROTO3
                 ? Kind::kVarint32
                 : Kind::kNotModelled;
    case FieldDescriptor::TYPE_BOOL:
      return Kind::kBool;
    case FieldDescriptor::TYPE_STRING:
    case FieldDescriptor::TYPE_BYTES:
      return Kind::kBytes;
    case FieldDescriptor::TYPE_MESSAGE:
      return Kind::kMessage;
    default:  // uint32, sint32, fixed-width, floating-point, groups: none in the journal
      return Kind::kNotModelled;
  }
}

// Reads a varint that is in its shortest form: no trailing zero byte (beyond the first),
// at most ten bytes, the tenth holding bit 63 alone. Advances `at` past it.
bool ReadLongerShortestVarint(const uint8_t*& at, const uint8_t* end, uint64_t& value) {
  uint64_t read = 0;
  for (int i = 0; i < 10 && at != end; ++i) {
    const uint8_t byte = *at++;
    read |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) {
      if ((i > 0 && byte == 0) || (i == 9 && byte > 1)) return false;
      value = read;
      return true;
    }
  }
  return false;
}

// Most tags, lengths and values take one byte.
inline bool ReadShortestVarint(const uint8_t*& at, const uint8_t* end, uint64_t& value) {
  if (at != end && *at < 0x80) {
    value = *at++;
    return true;
  }
  return ReadLongerShortestVarint(at, end, value);
}

// Whether `value`, read for a field of `kind`, is what serializing the parsed value
// writes again.
bool InRange(Kind kind, uint64_t value) {
  switch (kind) {
    case Kind::kVarint64:
      return true;
    case Kind::kVarint32: {
      const auto signed_value = static_cast<int64_t>(value);
      return signed_value >= std::numeric_limits<int32_t>::min() &&
             signed_value <= std::numeric_limits<int32_t>::max();
    }
    case Kind::kBool:
      return value <= 1;
    default:
      return false;
  }
}

}  // namespace

struct CanonicalWalk::Message {
  struct Field {
    const Message* message = nullptr;
    Kind kind = Kind::kNotModelled;
    uint8_t wire_type = kWireVarint;
    bool repeated = false;
    bool packed = false;
    bool needs_value = false;  // no presence: written only when not zero or empty
    int8_t oneof = -1;
  };
  std::vector<Field> by_number;
};

CanonicalWalk::CanonicalWalk(const Descriptor& type) {
  std::unordered_map<const Descriptor*, Message*> built;
  std::vector<const Descriptor*> pending;
  auto message_of = [&](const Descriptor* descriptor) {
    auto [it, inserted] = built.try_emplace(descriptor, nullptr);
    if (inserted) {
      messages_.push_back(std::make_unique<Message>());
      it->second = messages_.back().get();
      pending.push_back(descriptor);
    }
    return it->second;
  };
  message_of(&type);
  while (!pending.empty()) {
    const Descriptor* descriptor = pending.back();
    pending.pop_back();
    Message& message = *built.at(descriptor);
    int highest = 0;
    for (int i = 0; i < descriptor->field_count(); ++i) {
      highest = std::max(highest, descriptor->field(i)->number());
    }
    message.by_number.resize(static_cast<size_t>(std::min(highest, kHighestWalkedNumber)) + 1);
    for (int i = 0; i < descriptor->field_count(); ++i) {
      const FieldDescriptor& field = *descriptor->field(i);
      if (field.number() > kHighestWalkedNumber) continue;
      Message::Field& rule = message.by_number[static_cast<size_t>(field.number())];
      rule.kind = KindOf(field);
      rule.repeated = field.is_repeated();
      rule.packed = field.is_packed();
      rule.needs_value = !field.is_repeated() && !field.has_presence();
      if (const auto* oneof = field.real_containing_oneof(); oneof != nullptr) {
        if (oneof->index() < kMostOneofs) {
          rule.oneof = static_cast<int8_t>(oneof->index());
        } else {
          rule.kind = Kind::kNotModelled;
        }
      }
      rule.wire_type = rule.packed || rule.kind == Kind::kBytes || rule.kind == Kind::kMessage
                           ? kWireLength
                           : kWireVarint;
      if (rule.kind == Kind::kMessage) rule.message = message_of(field.message_type());
    }
  }
}

CanonicalWalk::~CanonicalWalk() = default;

bool CanonicalWalk::Certifies(std::string_view bytes) const {
  const auto* at = reinterpret_cast<const uint8_t*>(bytes.data());
  return Walk(*messages_.front(), at, at + bytes.size());
}

bool CanonicalWalk::Walk(const Message& message, const uint8_t* at, const uint8_t* end) const {
  const Message::Field* const fields = message.by_number.data();
  const uint64_t numbers = message.by_number.size();
  uint64_t previous_number = 0;
  uint64_t oneofs_seen = 0;
  while (at != end) {
    uint64_t tag = 0;
    if (!ReadShortestVarint(at, end, tag)) return false;
    const uint64_t number = tag >> 3;
    if (number >= numbers) return false;
    const Message::Field& field = fields[number];
    if (field.kind == Kind::kNotModelled || (tag & 7) != field.wire_type) {
      return false;
    }
    if (number < previous_number) return false;
    if (number == previous_number && (!field.repeated || field.packed)) return false;
    if (number != previous_number && field.oneof >= 0) {
      const uint64_t bit = uint64_t{1} << field.oneof;
      if ((oneofs_seen & bit) != 0) return false;
      oneofs_seen |= bit;
    }
    previous_number = number;

    uint64_t value = 0;
    if (!ReadShortestVarint(at, end, value)) return false;
    if (field.wire_type == kWireVarint) {
      if (!InRange(field.kind, value) || (field.needs_value && value == 0)) return false;
      continue;
    }
    // Length-delimited: `value` is the length.
    if (value > static_cast<uint64_t>(end - at)) return false;
    const uint8_t* const field_end = at + value;
    if (field.packed) {
      if (value == 0) return false;  // an empty packed field is not written
      while (at != field_end) {
        uint64_t element = 0;
        if (!ReadShortestVarint(at, field_end, element) || !InRange(field.kind, element)) {
          return false;
        }
      }
    } else if (field.kind == Kind::kMessage) {
      if (!Walk(*field.message, at, field_end)) return false;
    } else if (field.needs_value && value == 0) {
      return false;
    }
    at = field_end;
  }
  return true;
}

}  // namespace gongdai
