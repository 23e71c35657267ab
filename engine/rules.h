// The ledger's rules: Decide turns a command into an entry's event and postings (or a
// refusal), and Apply derives projections from an entry. Private to engine/.
//
// Apply is the one pure function from (state, entry) to new state. The writer, a rebuild
// and an auditor's replay all use it, so they cannot disagree.
#ifndef GONGDAI_ENGINE_RULES_H_
#define GONGDAI_ENGINE_RULES_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/date.h"
#include "engine/ledger.h"
#include "engine/merkle.h"
#include "engine/storage.h"
#include "gongdai/v1/journal.pb.h"
#include "gongdai/v1/state.pb.h"

namespace gongdai {

// Read access to derived state (projections, indexes, request ids).
class StateReader {
 public:
  virtual ~StateReader() = default;
  [[nodiscard]] virtual absl::StatusOr<std::optional<std::string>> Get(Space space,
                                                                       std::string_view key) = 0;
  // Calls `read` with the bytes under `key` (nullopt when absent) and returns what it
  // returns. The bytes are valid only during the call: a state that holds them can lend
  // them instead of copying them out, as Get does.
  using ReadFn = absl::FunctionRef<absl::Status(std::optional<std::string_view>)>;
  [[nodiscard]] virtual absl::Status Read(Space space, std::string_view key, ReadFn read);
};

// Read and write access; Apply writes through this.
class StateWriter : public StateReader {
 public:
  virtual void Put(Space space, std::string_view key, std::string_view value) = 0;
  // Put of a value the caller gives up (a freshly serialized projection): a state that
  // keeps values may keep this one rather than a copy.
  virtual void PutOwned(Space space, std::string_view key, std::string value) {
    Put(space, key, value);
  }
  virtual void Delete(Space space, std::string_view key) = 0;
  // Applies `posting` of entry `sequence` to its account (ApplyPosting). By default the
  // account's projection is read, changed and put back; a state that keeps accounts
  // decoded (a replay's) changes them in place, to the same effect.
  [[nodiscard]] virtual absl::Status Post(const v1::Posting& posting, uint64_t sequence);
};

// Applies `posting` of entry `sequence` to `account`: its balance, its last sequence and
// its count of postings. BALANCE_OUT_OF_RANGE when the balance would leave the range of
// an amount, leaving `account` as it was.
[[nodiscard]] absl::Status ApplyPosting(const v1::Posting& posting, uint64_t sequence,
                                        v1::AccountState& account);

// The recorded form of a command: what goes into the entry besides its envelope.
struct Decision {
  v1::Event event;
  std::vector<v1::Posting> postings;
  // The loan the command is about, as Decide read it (unchanged), for Apply to start from
  // (ApplyHandOver::decided_loan); empty when Decide read no loan.
  std::optional<v1::LoanState> loan = std::nullopt;
};

// What a writer carries from Decide through Apply to its answer.
struct ApplyHandOver {
  // In: the loan as Decide read it (Decision::loan). Apply takes it instead of reading
  // and parsing it again; nothing writes to the state between the two.
  std::optional<v1::LoanState> decided_loan;
  // Out: what the entry left, as Apply wrote it: the loan when the entry is about one, the
  // borrower when it registers or changes one, the product when it defines or amends one.
  // Each is empty otherwise, and none is to be used when Apply fails.
  std::optional<v1::LoanState> loan;
  std::optional<v1::BorrowerState> borrower;
  std::optional<v1::ProductState> product;
};

// Checks everything about a command that does not depend on state: the envelope
// (request id, actor, the form of the business date) and every field of the event.
// INVALID_ARGUMENT with every bad field at once. Pure: callers may run it before queueing.
// `today` bounds dates of birth in national ID numbers.
[[nodiscard]] absl::Status ValidateCommand(const Command& command, Date today);

// Checks `command` (already valid) against `state` and decides its postings: refusals
// are FAILED_PRECONDITION with a reason. Refusals write nothing.
[[nodiscard]] absl::StatusOr<Decision> Decide(StateReader& state, const Command& command,
                                              Date business_date);

// Derives the projection changes of `entry` into `state`, and appends it to the Merkle
// tree whose right edge is `edge`: the caller (the writer, a replay) keeps the edge
// decoded, and PutTreeEdge puts it into the state before the state is read or written
// out; Apply puts only the perfect nodes the entry completes. Fails only when the state
// is inconsistent with the entry (an overflow, a corrupt projection), leaving `edge` as it
// was: the writer then refuses the command; a replay reports the entry.
// `stored` is the entry as the journal stores it (StoredBytes; SealEntry's result), which
// the loan-entries index keeps a copy of. `hand_over`, when given, takes the loan Decide
// read and gives back what the entry left (ApplyHandOver).
[[nodiscard]] absl::Status Apply(const v1::Entry& entry, std::string_view stored,
                                 StateWriter& state, CompactRange& edge,
                                 ApplyHandOver* hand_over = nullptr);

// Apply without the Merkle tree, for a replay "as of a date" that skips later-dated
// entries (each loan's entries are in date order, so the skipped ones are suffixes).
[[nodiscard]] absl::Status ApplyWithoutTree(const v1::Entry& entry, std::string_view stored,
                                            StateWriter& state, ApplyHandOver* hand_over = nullptr);

// Account paths: 2-8 colon-separated segments of [a-z0-9_-], at most 128 bytes in all.
[[nodiscard]] absl::Status ValidateAccountPath(std::string_view path, std::string_view field);

// Projection keys (docs/journal-format.md, "Column families").
std::string AccountKey(std::string_view account);
std::string DateIndexKey(Date date, uint64_t sequence);

// The Merkle tree (engine/merkle.h): its right edge and its perfect subtrees of two or
// more leaves, kept as projections; Apply adds an entry as the next leaf.
inline constexpr std::string_view kTreeEdgeKey = "t/edge";
inline constexpr std::string_view kTreeNodePrefix = "m/";
std::string TreeNodeKey(int level, uint64_t index);
// The edge stored in `state` (an empty tree when there is none; DATA_LOSS naming the
// projection when it does not decode), and putting it back.
[[nodiscard]] absl::StatusOr<CompactRange> ReadTreeEdge(StateReader& state);
void PutTreeEdge(const CompactRange& edge, StateWriter& state);

// Who wrote an entry (Actor.principal_id) is 1-128 bytes: a token's principal longer than
// that could not write.
inline constexpr size_t kPrincipalIdBytesMax = 128;

// Roles the rules themselves check (the service checks every method's roles as well).
inline constexpr std::string_view kRoleApprover = "approver";
inline constexpr std::string_view kRoleSupervisor = "supervisor";

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_RULES_H_
