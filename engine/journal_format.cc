#include "engine/journal_format.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cstring>

#include "engine/canonical_walk.h"
#include "engine/money.h"
#include "engine/sha256.h"
#include "engine/strings.h"

namespace gongdai {

std::string SequenceKey(uint64_t sequence) {
  std::string key(8, '\0');
  for (int i = 7; i >= 0; --i) {
    key[static_cast<size_t>(i)] = static_cast<char>(sequence & 0xff);
    sequence >>= 8;
  }
  return key;
}

uint64_t DecodeSequenceKey(std::string_view key) {
  if (key.size() != 8) return 0;
  uint64_t sequence = 0;
  for (unsigned char c : key) sequence = (sequence << 8) | c;
  return sequence;
}

namespace {

// Writes the deterministic encoding of `message`, whose sizes ByteSizeLong has just
// cached, to `stream`. Returns the bytes written, or -1 if the stream ran out of room.
int64_t EncodeWithCachedSizes(const google::protobuf::MessageLite& message,
                              google::protobuf::io::ZeroCopyOutputStream& stream) {
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  message.SerializeWithCachedSizes(&coded);
  return coded.HadError() ? -1 : coded.ByteCount();
}

std::string DeterministicBytes(const google::protobuf::MessageLite& message) {
  const size_t size = message.ByteSizeLong();
  std::string bytes;
  bytes.reserve(size);
  google::protobuf::io::StringOutputStream stream(&bytes);
  EncodeWithCachedSizes(message, stream);
  return bytes;
}

// Whether the deterministic encoding of `message` is exactly `stored`, encoded into a
// buffer the thread keeps (an audit checks every entry this way).
bool EncodesTo(const google::protobuf::MessageLite& message, std::string_view stored) {
  const size_t size = message.ByteSizeLong();
  if (size != stored.size()) return false;
  thread_local std::string buffer;
  if (buffer.size() < size) buffer.resize(size);
  google::protobuf::io::ArrayOutputStream stream(buffer.data(), static_cast<int>(size));
  return EncodeWithCachedSizes(message, stream) == static_cast<int64_t>(size) &&
         std::memcmp(buffer.data(), stored.data(), size) == 0;
}

// Every kind of event: its case and its field. The switches below name every case, so a
// kind added to the journal and not here is a -Wswitch warning (an error in CI's build);
// until it is added, the kind message of such entries is not kept between parses.
#define GONGDAI_EVENT_KINDS(X)                            \
  X(kInternalTransfer, internal_transfer)                 \
  X(kProductDefined, product_defined)                     \
  X(kProductAmended, product_amended)                     \
  X(kBorrowerRegistered, borrower_registered)             \
  X(kBorrowerUpdated, borrower_updated)                   \
  X(kTalentPoolStatusChanged, talent_pool_status_changed) \
  X(kFundContributed, fund_contributed)                   \
  X(kApplicationSubmitted, application_submitted)         \
  X(kApprovalGranted, approval_granted)                   \
  X(kApplicationRejected, application_rejected)           \
  X(kApplicationWithdrawn, application_withdrawn)         \
  X(kApprovalRevoked, approval_revoked)                   \
  X(kLoanDisbursed, loan_disbursed)                       \
  X(kRepaymentRecorded, repayment_recorded)               \
  X(kSubsidyAccrued, subsidy_accrued)                     \
  X(kSubsidySettled, subsidy_settled)                     \
  X(kJobsReported, jobs_reported)                         \
  X(kLoanWrittenOff, loan_written_off)                    \
  X(kRecoveryRecorded, recovery_recorded)                 \
  X(kEntryReversed, entry_reversed)

// The event's kind message, taken out of it (and its case), or nullptr.
google::protobuf::MessageLite* ReleaseKind(v1::Event& event, v1::Event::KindCase& kind) {
  kind = event.kind_case();
  switch (kind) {
#define GONGDAI_RELEASE(kase, field) \
  case v1::Event::kase:              \
    return event.release_##field();
    GONGDAI_EVENT_KINDS(GONGDAI_RELEASE)
#undef GONGDAI_RELEASE
    case v1::Event::KIND_NOT_SET:
      break;
  }
  return nullptr;
}

// Puts back a kind message taken out by ReleaseKind.
void AttachKind(v1::Event& event, v1::Event::KindCase kind,
                google::protobuf::MessageLite* message) {
  switch (kind) {
#define GONGDAI_ATTACH(kase, field)                                                       \
  case v1::Event::kase:                                                                   \
    event.set_allocated_##field(                                                          \
        static_cast<std::remove_pointer_t<decltype(event.release_##field())>*>(message)); \
    return;
    GONGDAI_EVENT_KINDS(GONGDAI_ATTACH)
#undef GONGDAI_ATTACH
    case v1::Event::KIND_NOT_SET:
      break;
  }
}

// The event's kind message (nullptr for none).
const google::protobuf::MessageLite* KindOf(const v1::Event& event) {
  switch (event.kind_case()) {
#define GONGDAI_KIND(kase, field) \
  case v1::Event::kase:           \
    return &event.field();
    GONGDAI_EVENT_KINDS(GONGDAI_KIND)
#undef GONGDAI_KIND
    case v1::Event::KIND_NOT_SET:
      break;
  }
  return nullptr;
}

#undef GONGDAI_EVENT_KINDS

// Parses `stored` into `entry` as ParseFromArray does, but keeps the entry's actor, event
// and event kind allocated, cleared, for the parse to fill: protobuf 3.21's Clear deletes
// them, and the reader of an audit would otherwise delete and allocate three messages (and
// the kind's strings) for every entry. A kept message that the parse leaves empty may stand
// for a field that the bytes lack (which a plain parse leaves absent): such an entry is
// parsed again plainly.
bool ParseReusing(std::string_view stored, v1::Entry& entry) {
  v1::Actor* actor = entry.has_actor() ? entry.release_actor() : nullptr;
  v1::Event* event = entry.has_event() ? entry.release_event() : nullptr;
  v1::Event::KindCase kind = v1::Event::KIND_NOT_SET;
  google::protobuf::MessageLite* kind_message =
      event != nullptr ? ReleaseKind(*event, kind) : nullptr;
  entry.Clear();
  if (actor != nullptr) {
    actor->Clear();
    entry.set_allocated_actor(actor);
  }
  if (event != nullptr) {
    event->Clear();
    if (kind_message != nullptr) {
      kind_message->Clear();
      AttachKind(*event, kind, kind_message);
    }
    entry.set_allocated_event(event);
  }
  // ParseFromArray without its Clear (protobuf 3.21's public ParseFrom).
  const bool parsed = entry.ParseFrom<google::protobuf::MessageLite::kMerge>(
      google::protobuf::StringPiece(stored.data(), stored.size()));
  const bool ambiguous =
      parsed && ((actor != nullptr && entry.actor().ByteSizeLong() == 0) ||
                 (event != nullptr && entry.event().kind_case() == v1::Event::KIND_NOT_SET) ||
                 (kind_message != nullptr && entry.event().kind_case() == kind &&
                  KindOf(entry.event())->ByteSizeLong() == 0));
  if (parsed && !ambiguous) return true;
  return entry.ParseFromArray(stored.data(), static_cast<int>(stored.size()));
}

}  // namespace

bool IsEarlierProjectionsVersion(std::string_view version) {
  static constexpr std::string_view kPrefix = "gongdai-projections-";
  // The number after the prefix: digits only, no leading zero; 0 when there is none.
  const auto number = [](std::string_view name) -> uint64_t {
    if (!name.starts_with(kPrefix)) return 0;
    std::string_view digits = name.substr(kPrefix.size());
    if (digits.empty() || digits.size() > 9 || digits[0] == '0') return 0;
    uint64_t n = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return 0;
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    return n;
  };
  static const uint64_t current = number(kProjectionsVersion);
  const uint64_t n = number(version);
  return n >= 2 && n < current;
}

std::string CanonicalBytes(const v1::Entry& entry) {
  v1::Entry copy_without_hash;
  const v1::Entry* source = &entry;
  if (!entry.hash().empty()) {
    copy_without_hash = entry;
    copy_without_hash.clear_hash();
    source = &copy_without_hash;
  }
  return DeterministicBytes(*source);
}

std::string SealEntry(v1::Entry* entry) {
  entry->clear_hash();
  std::string stored = CanonicalBytes(*entry);
  std::string hash = ThreadSha256().Digest({std::string_view(&kLeafPrefix, 1), stored});
  stored = StoredBytes(std::move(stored), hash);
  entry->set_hash(std::move(hash));
  return stored;
}

std::string StoredBytes(std::string canonical, std::string_view hash) {
  canonical += kHashFieldTag;
  canonical += kHashFieldLength;
  canonical += hash;
  return canonical;
}

absl::StatusOr<v1::Entry> OpenEntry(std::string_view stored, uint64_t key_sequence) {
  v1::Entry entry;
  absl::Status opened = OpenEntryInto(stored, key_sequence, entry);
  if (!opened.ok()) return opened;
  return entry;
}

absl::Status OpenEntryInto(std::string_view stored, uint64_t key_sequence, v1::Entry& entry) {
  absl::Status parsed = ParseStoredEntry(stored, key_sequence, entry);
  if (!parsed.ok()) return parsed;
  return CheckStoredEntry(stored, key_sequence, entry);
}

absl::Status ParseStoredEntry(std::string_view stored, uint64_t key_sequence, v1::Entry& entry) {
  if (!ParseReusing(stored, entry)) {
    return absl::DataLossError(
        Cat("entry ", key_sequence, ": stored bytes do not parse as an entry"));
  }
  return absl::OkStatus();
}

absl::Status CheckStoredEntry(std::string_view stored, uint64_t key_sequence,
                              const v1::Entry& entry) {
  if (stored.size() < kHashFieldBytes || entry.hash().size() != kSha256Bytes) {
    return absl::DataLossError(Cat("entry ", key_sequence,
                                   ": field hash: expected 32 bytes, found ", entry.hash().size()));
  }
  std::string_view body = stored.substr(0, stored.size() - kHashFieldBytes);
  std::string_view trailer = stored.substr(body.size());
  if (trailer[0] != kHashFieldTag || trailer[1] != kHashFieldLength ||
      trailer.substr(2) != entry.hash()) {
    return absl::DataLossError(
        Cat("entry ", key_sequence, ": field hash: not stored last as the format requires"));
  }
  // The hash has the highest field number, so the deterministic encoding of the whole
  // entry is the canonical body followed by the hash field. A walk over the stored bytes
  // certifies nearly every entry; what it does not, one serialization decides. Top-level
  // unknown fields would be encoded after the hash, so such an entry takes the longer way
  // (its canonical body, without the hash, must equal the stored body).
  static const CanonicalWalk* const kEntryWalk = new CanonicalWalk(*v1::Entry::descriptor());
  const bool canonical =
      kEntryWalk->Certifies(stored) ||
      (entry.GetReflection()->GetUnknownFields(entry).empty() ? EncodesTo(entry, stored)
                                                              : CanonicalBytes(entry) == body);
  if (!canonical) {
    return absl::DataLossError(
        Cat("entry ", key_sequence, ": stored bytes are not the canonical encoding of the entry"));
  }
  std::string expected = ThreadSha256().Digest({std::string_view(&kLeafPrefix, 1), body});
  if (expected != entry.hash()) {
    return absl::DataLossError(Cat("entry ", key_sequence, ": field hash: expected ",
                                   ToHex(expected), ", stored ", ToHex(entry.hash())));
  }
  if (entry.sequence() != key_sequence) {
    return absl::DataLossError(Cat("entry ", key_sequence, ": field sequence: expected ",
                                   key_sequence, ", found ", entry.sequence()));
  }
  return absl::OkStatus();
}

absl::Status CheckBalanced(const v1::Entry& entry) {
  // Every amount is below 2^63 and an entry holds fewer than 2^31 postings, so neither
  // sum can leave the 128 bits of Fen: adding cannot overflow, and needs no status.
  Fen debits = 0;
  Fen credits = 0;
  for (int i = 0; i < entry.postings_size(); ++i) {
    const v1::Posting& posting = entry.postings(i);
    if (posting.amount_fen() <= 0) {
      return absl::DataLossError(Cat("entry ", entry.sequence(), ": field postings[", i,
                                     "].amount_fen: must be positive, found ",
                                     posting.amount_fen()));
    }
    if (posting.side() == v1::POSTING_SIDE_DEBIT) {
      debits += posting.amount_fen();
    } else if (posting.side() == v1::POSTING_SIDE_CREDIT) {
      credits += posting.amount_fen();
    } else {
      return absl::DataLossError(
          Cat("entry ", entry.sequence(), ": field postings[", i, "].side: unspecified"));
    }
  }
  if (debits != credits) {
    return absl::DataLossError(Cat("entry ", entry.sequence(), ": postings do not balance: debits ",
                                   Money::FromFen(debits).ToString(), ", credits ",
                                   Money::FromFen(credits).ToString()));
  }
  return absl::OkStatus();
}

const std::string& GenesisHash() {
  static const std::string* const kGenesis = new std::string(kSha256Bytes, '\0');
  return *kGenesis;
}

absl::StatusOr<v1::JournalHead> ParseStoredHead(const std::optional<std::string>& stored) {
  v1::JournalHead head;
  if (!stored.has_value()) {
    head.set_hash(GenesisHash());
    return head;
  }
  if (!head.ParseFromString(*stored)) return absl::DataLossError("chain head does not parse");
  // Written with entries only: it names one, and its hash.
  if (head.sequence() == 0) return absl::DataLossError("chain head names no entry");
  if (head.hash().size() != kSha256Bytes) {
    return absl::DataLossError(
        Cat("chain head's hash is ", head.hash().size(), " bytes, not ", kSha256Bytes));
  }
  return head;
}

}  // namespace gongdai
