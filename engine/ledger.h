// The ledger: an append-only, hash-chained journal of entries on RocksDB, with the
// projections (account balances, indexes) derived from it by one pure function.
//
// A Ledger is the engine's only handle. Writes are commands: Submit queues one for the
// single writer thread, which validates a batch of commands against current state,
// writes one WriteBatch for the whole batch with sync = true, and only then answers
// each caller (group commit). Reads see only entries that are durable.
//
// Thread safety: every method may be called from any thread concurrently.
#ifndef GONGDAI_ENGINE_LEDGER_H_
#define GONGDAI_ENGINE_LEDGER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/money.h"
#include "engine/options.h"
#include "gongdai/v1/journal.pb.h"

namespace gongdai {

// A request to append one entry.
struct Command {
  // The client's idempotency key: 1-128 printable ASCII characters. A command with the
  // request id of a committed entry and the same actor, date and event returns that
  // entry (no new entry); with anything different it is refused with ALREADY_EXISTS.
  std::string request_id;
  // The authenticated principal. The service fills it in; it never comes from a body.
  v1::Actor actor;
  // "YYYY-MM-DD"; empty means today's business date. Never after today.
  std::string business_date;
  v1::Event event;
};

struct CommandResult {
  // OK, or why the command wrote nothing: INVALID_ARGUMENT (with field violations),
  // FAILED_PRECONDITION (with a reason), ALREADY_EXISTS (request id reused with a
  // different command), RESOURCE_EXHAUSTED (queue full), UNAVAILABLE (writer stopped).
  absl::Status status;
  // The committed entry; on a retry, the original one.
  v1::Entry entry;
  // True when this answers a retry of a request id that was already committed.
  bool replayed = false;
};

// Called exactly once per Submit: on the writer thread after the batch is durable, or
// on the submitting thread when the command is refused before queueing. It must not
// block; it may call Submit.
using CommandCallback = std::function<void(CommandResult)>;

struct JournalHead {
  uint64_t sequence = 0;  // 0 for an empty journal
  std::string hash;       // 32 bytes; 32 zero bytes for an empty journal
};

// The first difference between stored projections and a rebuild from the journal.
struct ProjectionMismatch {
  std::string space;     // "projections", "indexes" or "request_ids"
  std::string key;       // printable form of the key
  std::string stored;    // printable form of the stored value ("<absent>" if none)
  std::string rebuilt;   // printable form of the rebuilt value ("<absent>" if none)
};

class Ledger {
 public:
  // Opens (or creates) the ledger at `path`. Opening reads the chain head and checks it
  // against the last journal entry; it does not replay the journal.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Ledger>> Open(const std::string& path,
                                                                    LedgerOptions options);

  // Answers every queued command, stops the writer and closes the database.
  ~Ledger();

  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // Queues `command`; never blocks. `done` is called exactly once (see CommandCallback).
  void Submit(Command command, CommandCallback done);

  // Submit and wait for the answer.
  CommandResult SubmitAndWait(Command command);

  // The entry with this sequence number. NOT_FOUND beyond the durable head; DATA_LOSS
  // when the stored bytes do not match their hash.
  [[nodiscard]] absl::StatusOr<v1::Entry> GetEntry(uint64_t sequence) const;

  // Up to `limit` (at most kListEntriesMax) durable entries from `first_sequence` on.
  static constexpr size_t kListEntriesMax = 1000;
  [[nodiscard]] absl::StatusOr<std::vector<v1::Entry>> ListEntries(uint64_t first_sequence,
                                                                    size_t limit) const;

  // The balance (debits minus credits) of `account`; zero for an account never posted.
  [[nodiscard]] absl::StatusOr<Money> GetBalance(std::string_view account) const;

  // The durable chain head.
  JournalHead Head() const;

  // OK while writes are accepted; after a failed write or fsync, the error that stopped
  // the writer (every later write is refused with UNAVAILABLE; reads go on).
  absl::Status WriterStatus() const;

  // Walks the whole journal: sequence continuity, every entry's hash and link to its
  // predecessor, balanced postings, and the stored head. Memory stays constant. Returns
  // DATA_LOSS naming the first bad entry.
  [[nodiscard]] absl::Status VerifyJournal() const;

  // Replays the journal through apply into memory and compares with what is stored, at
  // one consistent snapshot. nullopt when they are byte-identical.
  [[nodiscard]] absl::StatusOr<std::optional<ProjectionMismatch>> CompareProjectionsWithRebuild()
      const;

  // Replaces every stored projection, index and request id with a rebuild from the
  // journal, on the writer thread (writes wait meanwhile), in one synced WriteBatch.
  [[nodiscard]] absl::Status RebuildProjections();

  class Impl;

 private:
  explicit Ledger(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_LEDGER_H_
