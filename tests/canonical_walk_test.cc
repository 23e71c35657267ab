// The walk that certifies an entry's stored bytes as canonical without serializing the
// entry again: it must agree with serializing again on every encoding that parses, and
// the journal's reader must refuse a non-canonical entry even when its hash is right.
#include "engine/canonical_walk.h"

#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "engine/journal_format.h"
#include "engine/sha256.h"
#include "gongdai/v1/journal.pb.h"

namespace gongdai {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

std::string Deterministic(const Message& message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeWithCachedSizes(&coded);
  }
  return bytes;
}

std::string Canonical(const Message& message) {
  message.ByteSizeLong();
  return Deterministic(message);
}

// Fills `message` with values of every kind its type has: zero and extreme integers
// (negative int32s take ten bytes), empty, short, long (two-byte length) and Chinese
// strings, repeated fields of zero to three elements, one member of each oneof, nested
// messages a few levels deep. A field is left unset a quarter of the time.
void Fill(Message& message, std::mt19937_64& random, int depth) {
  const auto& type = *message.GetDescriptor();
  const Reflection& reflection = *message.GetReflection();
  std::vector<int> chosen_member(static_cast<size_t>(type.oneof_decl_count()));
  for (int i = 0; i < type.oneof_decl_count(); ++i) {
    chosen_member[static_cast<size_t>(i)] =
        static_cast<int>(random() % static_cast<uint64_t>(type.oneof_decl(i)->field_count()));
  }
  static const int64_t kIntegers[] = {0,     1,         -1,        127,       128,      300,
                                      16384, INT32_MIN, INT32_MAX, INT64_MIN, INT64_MAX};
  static const std::string kStrings[] = {"", "r1", "工会创业互助金", std::string(200, 'x')};
  auto integer = [&] {
    return random() % 2 == 0 ? kIntegers[random() % std::size(kIntegers)]
                             : static_cast<int64_t>(random());
  };
  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor& field = *type.field(i);
    if (const auto* oneof = field.real_containing_oneof(); oneof != nullptr) {
      if (oneof->field(chosen_member[static_cast<size_t>(oneof->index())]) != &field) continue;
      if (depth > 3) continue;
    } else if (random() % 4 == 0) {
      continue;
    }
    const int count = field.is_repeated() ? static_cast<int>(random() % 4) : 1;
    for (int n = 0; n < count; ++n) {
      const bool add = field.is_repeated();
      switch (field.cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32: {
          const auto value = static_cast<int32_t>(integer());
          add ? reflection.AddInt32(&message, &field, value)
              : reflection.SetInt32(&message, &field, value);
          break;
        }
        case FieldDescriptor::CPPTYPE_INT64:
          add ? reflection.AddInt64(&message, &field, integer())
              : reflection.SetInt64(&message, &field, integer());
          break;
        case FieldDescriptor::CPPTYPE_UINT32: {
          const auto value = static_cast<uint32_t>(integer());
          add ? reflection.AddUInt32(&message, &field, value)
              : reflection.SetUInt32(&message, &field, value);
          break;
        }
        case FieldDescriptor::CPPTYPE_UINT64: {
          const auto value = static_cast<uint64_t>(integer());
          add ? reflection.AddUInt64(&message, &field, value)
              : reflection.SetUInt64(&message, &field, value);
          break;
        }
        case FieldDescriptor::CPPTYPE_BOOL:
          add ? reflection.AddBool(&message, &field, random() % 2 == 0)
              : reflection.SetBool(&message, &field, random() % 2 == 0);
          break;
        case FieldDescriptor::CPPTYPE_ENUM: {
          // A declared value, or now and then one the enum does not declare (negative
          // ones take ten bytes).
          const auto& values = *field.enum_type();
          const int undeclared = random() % 2 == 0 ? 1000 : -1;
          const int value = random() % 5 == 0
                                ? undeclared
                                : values
                                      .value(static_cast<int>(
                                          random() % static_cast<uint64_t>(values.value_count())))
                                      ->number();
          add ? reflection.AddEnumValue(&message, &field, value)
              : reflection.SetEnumValue(&message, &field, value);
          break;
        }
        case FieldDescriptor::CPPTYPE_STRING: {
          const std::string& value = kStrings[random() % std::size(kStrings)];
          add ? reflection.AddString(&message, &field, value)
              : reflection.SetString(&message, &field, value);
          break;
        }
        case FieldDescriptor::CPPTYPE_MESSAGE: {
          if (depth > 3) break;
          Message* child = add ? reflection.AddMessage(&message, &field)
                               : reflection.MutableMessage(&message, &field);
          Fill(*child, random, depth + 1);
          break;
        }
        default:
          ADD_FAILURE() << "the journal gained a field of a kind this test does not fill: "
                        << field.full_name();
      }
    }
  }
}

std::vector<std::string> SampleEntries(int count) {
  std::mt19937_64 random(20200630);
  std::vector<std::string> samples;
  for (int i = 0; i < count; ++i) {
    v1::Entry entry;
    Fill(entry, random, 0);
    samples.push_back(Canonical(entry));
  }
  return samples;
}

TEST(CanonicalWalk, CertifiesTheDeterministicEncodingOfEveryEventKind) {
  const CanonicalWalk walk(*v1::Entry::descriptor());
  const std::vector<std::string> samples = SampleEntries(400);
  std::set<int> kinds;
  for (const std::string& bytes : samples) {
    v1::Entry entry;
    ASSERT_TRUE(entry.ParseFromString(bytes));
    kinds.insert(static_cast<int>(entry.event().kind_case()));
    EXPECT_TRUE(walk.Certifies(bytes)) << ToHex(bytes);
  }
  // Every member of the event's oneof came up.
  kinds.erase(v1::Event::KIND_NOT_SET);
  EXPECT_EQ(kinds.size(), static_cast<size_t>(v1::Event::descriptor()->field_count()));
}

// Random changes to canonical entries: wherever the changed bytes still parse, the walk
// certifies them exactly when serializing the parsed entry again gives them back. (When
// they hold fields the entry does not declare, the walk leaves them to the serializing.)
TEST(CanonicalWalk, AgreesWithSerializingAgainOnChangedEncodings) {
  const CanonicalWalk walk(*v1::Entry::descriptor());
  const std::vector<std::string> samples = SampleEntries(200);
  std::mt19937_64 random(7);
  google::protobuf::LogSilencer quiet;  // strings that are no longer UTF-8 do not parse
  // Fields that make encodings protobuf parses but does not write, or does (an empty
  // message is written when present): a varint padded with a zero byte, a zero or an
  // empty value written out, a tag padded, a field written twice or out of order, an
  // empty nested field written out; in an event, two members of its oneof, a bool of 2,
  // an empty packed field (a product's repayment methods), negative int32s and enums.
  static const std::string kSnippets[] = {
      std::string("\x08\x81\x00", 3), std::string("\x08\x00", 2), std::string("\x22\x00", 2),
      std::string("\x12\x00", 2), std::string("\x18\xff\xff\xff\xff\x0f", 6),
      std::string("\x88\x00\x01", 3), std::string("\x08\x01", 2), std::string("\x2a\x00", 2),
      std::string("\x3a\x00", 2), std::string("\x42\x00", 2), std::string("\x2a\x02\x0a\x00", 4),
      std::string("\x3a\x04\x0a\x00\x12\x00", 6), std::string("\x3a\x04\x72\x02\x30\x02", 6),
      std::string("\x3a\x04\x72\x02\x30\x01", 6),
      std::string("\x3a\x06\x12\x04\x12\x02\x4a\x00", 8),
      std::string("\x3a\x07\x12\x05\x12\x03\x4a\x01\x01", 9),
      // jobs_reported.jobs_created = -1 in five bytes; repayment methods of -1 in five
      // bytes and in ten
      std::string("\x3a\x09\x8a\x01\x06\x10\xff\xff\xff\xff\x0f", 11),
      std::string("\x3a\x0b\x12\x09\x12\x07\x4a\x05\xff\xff\xff\xff\x0f", 13),
      std::string("\x3a\x10\x12\x0e\x12\x0c\x4a\x0a", 8) + std::string(9, '\xff') + "\x01"};
  auto snippet = [&] { return kSnippets[random() % std::size(kSnippets)]; };
  int certified = 0;
  int refused_non_canonical = 0;
  for (int round = 0; round < 40'000; ++round) {
    std::string bytes = samples[random() % samples.size()];
    const size_t at = random() % (bytes.size() + 1);
    switch (random() % 7) {
      case 0:
        if (at < bytes.size()) bytes[at] = static_cast<char>(bytes[at] ^ (1 << (random() % 8)));
        break;
      case 1:
        if (at < bytes.size()) bytes[at] = static_cast<char>(random());
        break;
      case 2:
        bytes.insert(at, 1, static_cast<char>(random()));
        break;
      case 3:
        if (at < bytes.size()) bytes.erase(at, 1 + random() % 3);
        break;
      case 4: {
        const size_t from = random() % (bytes.size() + 1);
        bytes.insert(at, bytes.substr(from, random() % 40));
        break;
      }
      case 5:
        bytes.insert(random() % 2 == 0 ? 0 : bytes.size(), snippet());
        break;
      default:  // an entry of snippets alone
        bytes = snippet();
        if (random() % 2 == 0) bytes += snippet();
    }
    v1::Entry parsed;
    if (!parsed.ParseFromString(bytes)) continue;
    v1::Entry known = parsed;
    known.DiscardUnknownFields();
    const bool has_unknown_fields = Canonical(known) != Canonical(parsed);
    const bool canonical = Canonical(parsed) == bytes;
    const bool certifies = walk.Certifies(bytes);
    if (certifies) {
      ++certified;
      EXPECT_TRUE(canonical) << "certified a non-canonical encoding: " << ToHex(bytes);
    } else if (!has_unknown_fields) {
      EXPECT_FALSE(canonical) << "refused a canonical encoding: " << ToHex(bytes);
      refused_non_canonical += canonical ? 0 : 1;
    }
  }
  // Both answers came up many times.
  EXPECT_GT(certified, 1000);
  EXPECT_GT(refused_non_canonical, 1000);
}

// A proto2 enum is closed: an undeclared value parses into the unknown fields and is
// written last, so the walk leaves such fields to serializing. (The journal is proto3;
// protobuf's own FieldDescriptorProto is proto2.)
TEST(CanonicalWalk, LeavesClosedEnumsToSerializing) {
  const CanonicalWalk walk(*google::protobuf::FieldDescriptorProto::descriptor());
  // name "x", label 99 (undeclared), type_name "y"
  const std::string undeclared("\x0a\x01x\x20\x63\x32\x01y", 8);
  google::protobuf::FieldDescriptorProto parsed;
  ASSERT_TRUE(parsed.ParseFromString(undeclared));
  EXPECT_EQ(ToHex(Canonical(parsed)),
            "0a0178320179"
            "2063");
  EXPECT_FALSE(walk.Certifies(undeclared));
  // Without the enum the rest of the type is walked as usual.
  const std::string no_label("\x0a\x01x\x32\x01y", 6);
  ASSERT_TRUE(parsed.ParseFromString(no_label));
  EXPECT_EQ(Canonical(parsed), no_label);
  EXPECT_TRUE(walk.Certifies(no_label));
}

// An entry whose bytes parse to the same entry as the canonical ones but differ from them,
// with a hash computed over those very bytes: the hash alone would pass it.
std::string Resealed(std::string body) {
  const std::string hash = ThreadSha256().Digest({std::string_view("\0", 1), body});
  return body + std::string("\x7a\x20", 2) + hash;
}

TEST(CanonicalWalk, TheJournalRefusesAnEntryInAnotherEncodingEvenWithItsOwnHash) {
  v1::Entry entry;
  entry.set_sequence(1);
  entry.set_business_date("2020-06-30");
  entry.set_request_id("r1");
  const std::string canonical = CanonicalBytes(entry);
  ASSERT_TRUE(OpenEntry(Resealed(canonical), 1).ok());
  const std::string variants[] = {
      // sequence = 1 as a two-byte varint
      std::string("\x08\x81\x00", 3) + canonical.substr(2),
      // recorded_at_us = 0 written out
      canonical.substr(0, 2) + std::string("\x18\x00", 2) + canonical.substr(2),
      // request_id before business_date
      canonical.substr(0, 2) + canonical.substr(14) + canonical.substr(2, 12),
  };
  for (const std::string& body : variants) {
    v1::Entry parsed;
    ASSERT_TRUE(parsed.ParseFromString(body));
    EXPECT_EQ(CanonicalBytes(parsed), canonical);
    const absl::StatusOr<v1::Entry> opened = OpenEntry(Resealed(body), 1);
    ASSERT_FALSE(opened.ok()) << ToHex(body);
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_EQ(opened.status().message(),
              "entry 1: stored bytes are not the canonical encoding of the entry");
  }
}

// The journal's reader opens entry after entry into one message, keeping its actor, event
// and event kind allocated for the next parse. Each must come out exactly as a fresh parse
// gives it, presence of every message included: entries of every kind one after another,
// and entries that lack what the one before had, or hold it empty.
TEST(OpenEntryInto, AReusedEntryOpensEveryEntryAsAFreshOneDoes) {
  std::vector<v1::Entry> entries;
  std::mt19937_64 random(20200630);
  for (const std::string& bytes : SampleEntries(300)) {
    v1::Entry entry;
    ASSERT_TRUE(entry.ParseFromString(bytes));
    entries.push_back(entry);
    // After each entry, the same entry changed in one of these ways, or left as it is.
    v1::Entry changed = entry;
    switch (random() % 7) {
      case 0:
        changed.clear_actor();
        break;
      case 1:
        changed.mutable_actor()->Clear();  // present and empty
        break;
      case 2:
        changed.clear_event();
        break;
      case 3:
        changed.mutable_event()->Clear();  // present, no kind
        break;
      case 4: {
        // The same kind, present and empty.
        const FieldDescriptor* kind = v1::Event::descriptor()->FindFieldByNumber(
            static_cast<int>(changed.event().kind_case()));
        if (kind != nullptr) {
          changed.mutable_event()
              ->GetReflection()
              ->MutableMessage(changed.mutable_event(), kind)
              ->Clear();
        }
        break;
      }
      default:
        break;
    }
    entries.push_back(changed);
  }
  v1::Entry reused;
  std::set<std::tuple<bool, bool, int>> seen;
  for (size_t i = 0; i < entries.size(); ++i) {
    v1::Entry entry = entries[i];
    entry.set_sequence(i + 1);
    entry.clear_hash();
    const std::string stored = SealEntry(&entry);
    const absl::StatusOr<v1::Entry> fresh = OpenEntry(stored, i + 1);
    ASSERT_TRUE(fresh.ok()) << fresh.status();
    ASSERT_TRUE(OpenEntryInto(stored, i + 1, reused).ok()) << i;
    EXPECT_EQ(reused.has_actor(), fresh->has_actor()) << i;
    EXPECT_EQ(reused.has_event(), fresh->has_event()) << i;
    EXPECT_EQ(reused.event().kind_case(), fresh->event().kind_case()) << i;
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(reused, *fresh))
        << i << ":\n"
        << reused.DebugString() << "\nagainst\n"
        << fresh->DebugString();
    EXPECT_EQ(reused.SerializeAsString(), fresh->SerializeAsString()) << i;
    seen.emplace(fresh->has_actor(), fresh->has_event(),
                 static_cast<int>(fresh->event().kind_case()));
  }
  // Entries without an actor, without an event and without a kind came up.
  EXPECT_TRUE(std::any_of(seen.begin(), seen.end(), [](auto& s) { return !std::get<0>(s); }));
  EXPECT_TRUE(std::any_of(seen.begin(), seen.end(), [](auto& s) { return !std::get<1>(s); }));
  EXPECT_TRUE(std::any_of(seen.begin(), seen.end(),
                          [](auto& s) { return std::get<1>(s) && std::get<2>(s) == 0; }));
}

}  // namespace
}  // namespace gongdai
