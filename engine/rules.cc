#include "engine/rules.h"

#include "engine/journal_format.h"
#include "engine/merkle.h"
#include "engine/money.h"
#include "engine/programme.h"
#include "engine/status.h"
#include "engine/strings.h"
#include "gongdai/v1/state.pb.h"

namespace gongdai {
namespace {

constexpr size_t kRequestIdBytesMax = 128;
constexpr size_t kMemoBytesMax = 512;
constexpr size_t kAccountBytesMax = 128;
constexpr int kAccountSegmentsMin = 2;
constexpr int kAccountSegmentsMax = 8;
constexpr std::string_view kExternalAccountPrefix = "external:";

absl::StatusOr<v1::AccountState> ReadAccount(StateReader& state, std::string_view account) {
  absl::StatusOr<std::optional<std::string>> raw =
      state.Get(Space::kProjections, AccountKey(account));
  if (!raw.ok()) return raw.status();
  v1::AccountState account_state;
  if (raw->has_value() && !account_state.ParseFromString(**raw)) {
    return absl::DataLossError(Cat("projection of account ", account, " does not parse"));
  }
  return account_state;
}

absl::Status ValidateTransfer(const v1::InternalTransfer& transfer) {
  ViolationCollector violations;
  absl::Status from =
      ValidateAccountPath(transfer.from_account(), "event.internal_transfer.from_account");
  if (!from.ok()) violations.AddStatus("event.internal_transfer.from_account", from);
  absl::Status to =
      ValidateAccountPath(transfer.to_account(), "event.internal_transfer.to_account");
  if (!to.ok()) violations.AddStatus("event.internal_transfer.to_account", to);
  if (from.ok() && to.ok() && transfer.from_account() == transfer.to_account()) {
    violations.Add("event.internal_transfer.to_account", "SAME_ACCOUNT",
                   "must differ from from_account");
  }
  if (transfer.amount_fen() <= 0) {
    violations.Add("event.internal_transfer.amount_fen", "AMOUNT_NOT_POSITIVE",
                   "must be greater than zero");
  }
  if (transfer.memo().size() > kMemoBytesMax) {
    violations.Add("event.internal_transfer.memo", "TOO_LONG", "must be at most 512 bytes");
  }
  return violations.ToStatus();
}

absl::StatusOr<Decision> DecideTransfer(StateReader& state, const v1::InternalTransfer& transfer) {
  if (!transfer.from_account().starts_with(kExternalAccountPrefix)) {
    absl::StatusOr<v1::AccountState> source = ReadAccount(state, transfer.from_account());
    if (!source.ok()) return source.status();
    if (source->balance_fen() < transfer.amount_fen()) {
      return Refused("INSUFFICIENT_FUNDS",
                     Cat("account ", transfer.from_account(), " holds ",
                         Money::FromFen(source->balance_fen()).ToString(), ", less than the ",
                         Money::FromFen(transfer.amount_fen()).ToString(), " to move"));
    }
  }
  Decision decision;
  *decision.event.mutable_internal_transfer() = transfer;
  v1::Posting debit;
  debit.set_account(transfer.to_account());
  debit.set_side(v1::POSTING_SIDE_DEBIT);
  debit.set_amount_fen(transfer.amount_fen());
  v1::Posting credit;
  credit.set_account(transfer.from_account());
  credit.set_side(v1::POSTING_SIDE_CREDIT);
  credit.set_amount_fen(transfer.amount_fen());
  decision.postings = {std::move(debit), std::move(credit)};
  return decision;
}

bool IsPrintableAscii(std::string_view text) {
  for (char c : text) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

// Appends `entry` to `edge` as the tree's next leaf and puts the perfect nodes it completes.
absl::Status AppendLeaf(const v1::Entry& entry, CompactRange& edge, StateWriter& state) {
  if (edge.size() + 1 != entry.sequence()) {
    return absl::DataLossError(Cat("entry ", entry.sequence(), ": the tree holds ", edge.size(),
                                   " leaves, so the next leaf is entry ", edge.size() + 1));
  }
  edge.Append(entry.hash(), [&state](int level, uint64_t index, const std::string& hash) {
    state.Put(Space::kProjections, TreeNodeKey(level, index), hash);
  });
  return absl::OkStatus();
}

}  // namespace

std::string AccountKey(std::string_view account) { return Cat(kAccountPrefix, account); }

std::string DateIndexKey(Date date, uint64_t sequence) {
  std::string key(kDateIndexPrefix);
  // Days since 1970 offset to stay positive for every date from 1900, big-endian.
  uint32_t days = static_cast<uint32_t>(date.days_since_epoch() + (1 << 30));
  for (int shift = 24; shift >= 0; shift -= 8) key += static_cast<char>((days >> shift) & 0xff);
  key += SequenceKey(sequence);
  return key;
}

absl::Status ValidateAccountPath(std::string_view path, std::string_view field) {
  auto refuse = [&](std::string_view why) {
    return InvalidField(field, "ACCOUNT_INVALID", Cat("account \"", Excerpt(path), "\" ", why));
  };
  if (path.empty()) return refuse("is empty");
  if (path.size() > kAccountBytesMax) return refuse("is longer than 128 bytes");
  int segments = 1;
  size_t segment_length = 0;
  for (char c : path) {
    if (c == ':') {
      if (segment_length == 0) return refuse("has an empty segment");
      ++segments;
      segment_length = 0;
      continue;
    }
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!allowed) return refuse("may contain only a-z, 0-9, '_', '-' and ':' between segments");
    ++segment_length;
  }
  if (segment_length == 0) return refuse("has an empty segment");
  if (segments < kAccountSegmentsMin || segments > kAccountSegmentsMax) {
    return refuse("must have 2 to 8 colon-separated segments");
  }
  return absl::OkStatus();
}

absl::Status ValidateCommand(const Command& command, Date today) {
  ViolationCollector violations;
  if (command.request_id.empty()) {
    violations.Add("request_id", "REQUIRED", "is required: give a unique id for this request");
  } else if (command.request_id.size() > kRequestIdBytesMax ||
             !IsPrintableAscii(command.request_id)) {
    violations.Add("request_id", "REQUEST_ID_INVALID",
                   "must be 1-128 printable ASCII characters without spaces");
  }
  if (command.actor.principal_id().empty() ||
      command.actor.principal_id().size() > kPrincipalIdBytesMax) {
    violations.Add("actor.principal_id", "REQUIRED", "must be 1-128 bytes");
  }
  if (command.actor.role().empty()) violations.Add("actor.role", "REQUIRED", "is required");
  if (!command.business_date.empty()) {
    absl::StatusOr<Date> date = ParseDate(command.business_date, "business_date");
    if (!date.ok()) violations.AddStatus("business_date", date.status());
  }
  switch (command.event.kind_case()) {
    case v1::Event::kInternalTransfer: {
      absl::Status valid = ValidateTransfer(command.event.internal_transfer());
      for (FieldViolation& v : FieldViolationsOf(valid)) {
        violations.Add(v.field, v.reason, v.description);
      }
      break;
    }
    case v1::Event::KIND_NOT_SET:
      violations.Add("event", "REQUIRED", "must name one event kind");
      break;
    default:
      ValidateProgrammeEvent(command.event, today, violations);
      break;
  }
  if (command.event.has_borrower_updated()) {
    if (command.expected_version == 0) {
      violations.Add("expected_version", "REQUIRED",
                     "is required: give the borrower's version that the new details were made "
                     "from (Borrower.version, as last read)");
    }
  } else if (command.expected_version != 0) {
    violations.Add("expected_version", "NOT_APPLICABLE",
                   "applies only to an update of a borrower's details");
  }
  return violations.ToStatus();
}

absl::StatusOr<Decision> Decide(StateReader& state, const Command& command, Date business_date) {
  switch (command.event.kind_case()) {
    case v1::Event::kInternalTransfer:
      return DecideTransfer(state, command.event.internal_transfer());
    case v1::Event::KIND_NOT_SET:
      return InvalidField("event", "REQUIRED", "must name one event kind");
    default:
      return DecideProgramme(state, command, business_date);
  }
}

absl::Status Apply(const v1::Entry& entry, std::string_view stored, StateWriter& state,
                   CompactRange& edge, ApplyHandOver* hand_over) {
  absl::Status applied = ApplyWithoutTree(entry, stored, state, hand_over);
  if (!applied.ok()) return applied;
  return AppendLeaf(entry, edge, state);
}

absl::Status ApplyPosting(const v1::Posting& posting, uint64_t sequence,
                          v1::AccountState& account) {
  Money balance = Money::FromFen(account.balance_fen());
  Money amount = Money::FromFen(posting.amount_fen());
  absl::StatusOr<Money> next =
      posting.side() == v1::POSTING_SIDE_DEBIT ? balance.Plus(amount) : balance.Minus(amount);
  if (!next.ok()) return next.status();
  absl::StatusOr<int64_t> next_fen = next->ToInt64Fen();
  if (!next_fen.ok()) {
    return Refused("BALANCE_OUT_OF_RANGE",
                   Cat("account ", posting.account(), " would leave the journal's range"));
  }
  account.set_balance_fen(*next_fen);
  account.set_last_sequence(sequence);
  account.set_posting_count(account.posting_count() + 1);
  return absl::OkStatus();
}

absl::Status StateReader::Read(Space space, std::string_view key, ReadFn read) {
  absl::StatusOr<std::optional<std::string>> bytes = Get(space, key);
  if (!bytes.ok()) return bytes.status();
  if (!bytes->has_value()) return read(std::nullopt);
  return read(std::string_view(**bytes));
}

absl::Status StateWriter::Post(const v1::Posting& posting, uint64_t sequence) {
  absl::StatusOr<v1::AccountState> account = ReadAccount(*this, posting.account());
  if (!account.ok()) return account.status();
  absl::Status applied = ApplyPosting(posting, sequence, *account);
  if (!applied.ok()) return applied;
  Put(Space::kProjections, AccountKey(posting.account()), account->SerializeAsString());
  return absl::OkStatus();
}

absl::Status ApplyWithoutTree(const v1::Entry& entry, std::string_view stored, StateWriter& state,
                              ApplyHandOver* hand_over) {
  absl::Status programme = ApplyProgramme(entry, stored, state, hand_over);
  if (!programme.ok()) return programme;
  for (const v1::Posting& posting : entry.postings()) {
    absl::Status posted = state.Post(posting, entry.sequence());
    if (!posted.ok()) return posted;
  }
  absl::StatusOr<Date> date = ParseDate(entry.business_date(), "business_date");
  if (!date.ok()) return date.status();
  state.Put(Space::kIndexes, DateIndexKey(*date, entry.sequence()), "");
  state.Put(Space::kRequestIds, entry.request_id(), SequenceKey(entry.sequence()));
  return absl::OkStatus();
}

std::string TreeNodeKey(int level, uint64_t index) {
  std::string key(kTreeNodePrefix);
  key += static_cast<char>(level);
  key += SequenceKey(index);
  return key;
}

absl::StatusOr<CompactRange> ReadTreeEdge(StateReader& state) {
  absl::StatusOr<std::optional<std::string>> stored = state.Get(Space::kProjections, kTreeEdgeKey);
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) return CompactRange();
  absl::StatusOr<CompactRange> edge = CompactRange::Decode(**stored);
  if (!edge.ok())
    return absl::DataLossError(Cat("projection ", kTreeEdgeKey, ": ", edge.status().message()));
  return edge;
}

void PutTreeEdge(const CompactRange& edge, StateWriter& state) {
  state.Put(Space::kProjections, kTreeEdgeKey, edge.Encode());
}

}  // namespace gongdai
