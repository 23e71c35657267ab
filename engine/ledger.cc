#include "engine/ledger.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "engine/check.h"
#include "engine/journal_format.h"
#include "engine/loan_math.h"
#include "engine/merkle.h"
#include "engine/money.h"
#include "engine/national_id.h"
#include "engine/programme.h"
#include "engine/read_pool.h"
#include "engine/replay.h"
#include "engine/rules.h"
#include "engine/sha256.h"
#include "engine/status.h"
#include "engine/storage.h"
#include "engine/strings.h"
#include "gongdai/v1/state.pb.h"

namespace gongdai {
namespace {

// The largest written batch whose buffer the committer keeps for the next one.
constexpr size_t kSpareWritesBytesMax = size_t{64} << 20;

// Projections the writer has read or written lately, bounded in bytes, the least recently
// used dropped first. A loan, its summary and the accounts a command touches were mostly
// touched by a recent command too: found here, they cost no search of RocksDB's memtable
// (a skip list of every recent version, a cache miss per level). Writer thread only.
// Batches fold their writes in as they are executed, so for every key it holds it agrees
// with storage once the executed batches are written.
class RecentProjections {
 public:
  explicit RecentProjections(size_t capacity_bytes) : capacity_(capacity_bytes) {}

  const std::string* Find(std::string_view key) {
    auto it = index_.find(AbslView(key));
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->second;
  }

  // Keeps `value` under `key`; false when it is larger than the whole capacity (then
  // `key` is held no more).
  bool Set(std::string_view key, std::string_view value) {
    if (Cost(key, value) > capacity_) {
      Erase(key);
      return false;
    }
    auto it = index_.find(AbslView(key));
    if (it != index_.end()) {
      bytes_ -= Cost(it->second->first, it->second->second);
      it->second->second.assign(value.data(), value.size());
      order_.splice(order_.begin(), order_, it->second);
    } else {
      order_.emplace_front(std::string(key), std::string(value));
      index_.emplace(AbslView(order_.front().first), order_.begin());
    }
    bytes_ += Cost(key, value);
    while (bytes_ > capacity_) Erase(order_.back().first);
    return true;
  }

  void Erase(std::string_view key) {
    auto it = index_.find(AbslView(key));
    if (it == index_.end()) return;
    const auto node = it->second;
    bytes_ -= Cost(node->first, node->second);
    index_.erase(it);
    order_.erase(node);
  }

  void Clear() {
    index_.clear();
    order_.clear();
    bytes_ = 0;
  }

 private:
  // The bytes an entry holds, with the list node and the index slot.
  static size_t Cost(std::string_view key, std::string_view value) {
    return key.size() + value.size() + 128;
  }

  const size_t capacity_;
  size_t bytes_ = 0;
  std::list<std::pair<std::string, std::string>> order_;  // most recently used first
  // Views of the keys in `order_`, whose nodes never move.
  absl::flat_hash_map<absl::string_view, std::list<std::pair<std::string, std::string>>::iterator>
      index_;
};

// Whether the writer's recent projections hold `key` (a projection) once it is read or
// written: what apply reads back, but for the tree's edge, which the writer keeps decoded.
bool HeldInRecent(std::string_view key) { return ApplyReadsBack(key) && key != kTreeEdgeKey; }

// The writer's view of one batch: its own writes (the batch's entries included) until
// they are flushed into the batch's WriteBatch, over the writes of the batch before it
// (which may still be on its way to disk), over storage. Used by the sequencer thread
// only.
class BatchState final : public StateWriter {
 public:
  BatchState(const Storage& storage, std::shared_ptr<BatchState> previous,
             RecentProjections& recent)
      : storage_(storage), previous_(std::move(previous)), recent_(recent) {}

  absl::StatusOr<std::optional<std::string>> Get(Space space, std::string_view key) override {
    absl::StatusOr<std::optional<std::string_view>> found = Find(space, key);
    if (!found.ok()) return found.status();
    if (!found->has_value()) return std::nullopt;
    return std::string(**found);
  }
  // As Get, but lending the bytes where they are kept instead of copying them.
  [[nodiscard]] absl::Status Read(Space space, std::string_view key, ReadFn read) override {
    absl::StatusOr<std::optional<std::string_view>> found = Find(space, key);
    if (!found.ok()) return found.status();
    return read(*found);
  }
  void Put(Space space, std::string_view key, std::string_view value) override {
    writes_[static_cast<size_t>(space)][AbslView(key)] = std::string(value);
    empty_ = false;
  }
  void PutOwned(Space space, std::string_view key, std::string value) override {
    writes_[static_cast<size_t>(space)][AbslView(key)] = std::move(value);
    empty_ = false;
  }
  void Delete(Space space, std::string_view key) override {
    writes_[static_cast<size_t>(space)][AbslView(key)] = std::nullopt;
    empty_ = false;
  }
  bool empty() const { return empty_; }

  // Reads from storage, on `readers` at once, those of `keys` that Find would read from
  // it, so that the batch's commands find their state in memory instead of each waiting
  // for its own disk reads in turn. Called on a fresh state, before the batch executes
  // (so it has neither writes nor reads of its own yet). What it reads is
  // kept for this batch alone (read_cache_, which Find looks at after the recent
  // projections), never in the recent projections that later batches read: a key the
  // previous batch writes may be reaching storage while it is read here, and its older
  // value must not outlive that batch's view of it. Such keys are not read at all (Find
  // takes them from the previous batch's writes). A read that fails is left for Find to
  // repeat and report as the command's failure.
  void ReadAhead(std::vector<std::pair<Space, std::string>> keys, ReadPool& readers) {
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    std::erase_if(keys, [this](const std::pair<Space, std::string>& k) {
      const auto& [space, key] = k;
      if (previous_ != nullptr && previous_->Own(space, key) != nullptr) return true;
      return space == Space::kProjections && recent_.Find(key) != nullptr;
    });
    std::vector<absl::StatusOr<std::optional<std::string>>> read(keys.size());
    readers.ForEach(keys.size(),
                    [&](size_t i) { read[i] = storage_.Get(keys[i].first, keys[i].second); });
    for (size_t i = 0; i < keys.size(); ++i) {
      if (!read[i].ok()) continue;
      auto& [space, key] = keys[i];
      read_cache_[static_cast<size_t>(space)].emplace(std::move(key), *std::move(read[i]));
    }
  }

  // The batch before the previous one is durable by the time this one runs: only one
  // level of unwritten batches is ever read through.
  void ForgetPrevious() { previous_.reset(); }

  // Folds this batch's writes of projections into the writer's recent ones, those it
  // holds (HeldInRecent).
  void FoldIntoRecent() const {
    for (const auto& [key, value] : writes_[static_cast<size_t>(Space::kProjections)]) {
      if (!HeldInRecent(key)) continue;
      if (value.has_value()) {
        recent_.Set(key, *value);
      } else {
        recent_.Erase(key);
      }
    }
  }

  // In key order: RocksDB inserts sorted keys into its memtable fastest.
  void FlushInto(StorageBatch& batch) const {
    std::vector<const std::pair<const std::string, std::optional<std::string>>*> sorted;
    for (size_t s = 0; s < kSpaceCount; ++s) {
      sorted.clear();
      for (const auto& write : writes_[s]) sorted.push_back(&write);
      std::sort(sorted.begin(), sorted.end(),
                [](const auto* a, const auto* b) { return a->first < b->first; });
      for (const auto* write : sorted) {
        if (write->second.has_value()) {
          batch.Put(static_cast<Space>(s), write->first, *write->second);
        } else {
          batch.Delete(static_cast<Space>(s), write->first);
        }
      }
    }
  }

 private:
  // The bytes under `key` where this state keeps them (nullopt when absent), valid until
  // the state next changes: this batch's writes, the previous batch's, the writer's recent
  // projections, or this batch's reads of storage, which a miss fetches and keeps.
  absl::StatusOr<std::optional<std::string_view>> Find(Space space, std::string_view key) {
    auto view = [](const std::optional<std::string>& value) -> std::optional<std::string_view> {
      if (!value.has_value()) return std::nullopt;
      return std::string_view(*value);
    };
    if (const std::optional<std::string>* own = Own(space, key)) return view(*own);
    if (previous_ != nullptr) {
      if (const std::optional<std::string>* theirs = previous_->Own(space, key))
        return view(*theirs);
    }
    // The previous batch's writes, looked at above, are in `recent_` too (those it holds).
    if (space == Space::kProjections) {
      if (const std::string* value = recent_.Find(key)) return std::string_view(*value);
    }
    // Storage changes during this batch only where the previous batch writes, which was
    // looked at above: what it returns for other keys can be kept for the whole batch.
    auto& cache = read_cache_[static_cast<size_t>(space)];
    if (auto it = cache.find(AbslView(key)); it != cache.end()) return view(it->second);
    absl::StatusOr<std::optional<std::string>> stored = storage_.Get(space, key);
    if (!stored.ok()) return stored.status();
    // A projection found is kept in `recent_` alone (one copy of a loan, not two), unless
    // `recent_` cannot hold it (it may be configured to hold nothing) or never holds its
    // kind: batches fold in only what it holds, so anything else would go stale there.
    if (space == Space::kProjections && HeldInRecent(key) && stored->has_value() &&
        recent_.Set(key, **stored)) {
      return std::string_view(*recent_.Find(key));
    }
    return view(cache.emplace(std::string(key), *std::move(stored)).first->second);
  }

  const std::optional<std::string>* Own(Space space, std::string_view key) const {
    const auto& writes = writes_[static_cast<size_t>(space)];
    auto it = writes.find(AbslView(key));
    return it == writes.end() ? nullptr : &it->second;
  }

  const Storage& storage_;
  std::shared_ptr<BatchState> previous_;
  RecentProjections& recent_;
  using Table = absl::flat_hash_map<std::string, std::optional<std::string>>;
  std::array<Table, kSpaceCount> writes_;
  std::array<Table, kSpaceCount> read_cache_;
  bool empty_ = true;
};

// One command's writes over the batch's state: kept apart until the command is known
// to succeed, so that a refused command leaves nothing behind.
class CommandState final : public StateWriter {
 public:
  explicit CommandState(StateWriter& parent) : parent_(parent) {}

  absl::StatusOr<std::optional<std::string>> Get(Space space, std::string_view key) override {
    for (auto it = writes_.rbegin(); it != writes_.rend(); ++it) {
      if (it->space == space && it->key == key) return it->value;
    }
    return parent_.Get(space, key);
  }
  [[nodiscard]] absl::Status Read(Space space, std::string_view key, ReadFn read) override {
    for (auto it = writes_.rbegin(); it != writes_.rend(); ++it) {
      if (it->space == space && it->key == key) {
        return it->value.has_value() ? read(std::string_view(*it->value)) : read(std::nullopt);
      }
    }
    return parent_.Read(space, key, read);
  }
  void Put(Space space, std::string_view key, std::string_view value) override {
    writes_.push_back({space, std::string(key), std::string(value)});
  }
  void PutOwned(Space space, std::string_view key, std::string value) override {
    writes_.push_back({space, std::string(key), std::move(value)});
  }
  void Delete(Space space, std::string_view key) override {
    writes_.push_back({space, std::string(key), std::nullopt});
  }
  // Hands the writes over to the parent, values moved, and keeps none: a read through
  // this state afterwards reads the parent's.
  void Commit() {
    for (Write& w : writes_) {
      if (w.value.has_value()) {
        parent_.PutOwned(w.space, w.key, std::move(*w.value));
      } else {
        parent_.Delete(w.space, w.key);
      }
    }
    writes_.clear();
  }

 private:
  struct Write {
    Space space;
    std::string key;
    std::optional<std::string> value;
  };
  StateWriter& parent_;
  std::vector<Write> writes_;
};

// Reads of the latest durable state, for the read methods.
class StorageReader final : public StateReader {
 public:
  explicit StorageReader(const Storage& storage) : storage_(storage) {}
  absl::StatusOr<std::optional<std::string>> Get(Space space, std::string_view key) override {
    return storage_.Get(space, key);
  }

 private:
  const Storage& storage_;
};

// The chain head that storage holds (at `snapshot`, or now): the genesis head when the
// journal is empty.
absl::StatusOr<JournalHead> ReadStoredHead(const Storage& storage,
                                           const StorageSnapshot* snapshot = nullptr) {
  absl::StatusOr<std::optional<std::string>> bytes =
      storage.Get(Space::kMeta, kMetaHeadKey, snapshot);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<v1::JournalHead> stored = ParseStoredHead(*bytes);
  if (!stored.ok()) return stored.status();
  return JournalHead{stored->sequence(), stored->hash()};
}

// Why a command or a wait is turned away while the ledger shuts down.
absl::Status LedgerClosing() {
  return WithReason(absl::StatusCode::kUnavailable, "LEDGER_CLOSING",
                    "the ledger is shutting down");
}

// The system would not start another thread (std::thread's constructor threw).
absl::Status CannotStartThreads(const std::system_error& e) {
  return absl::ResourceExhaustedError(Cat("cannot start the ledger's threads: ", e.what()));
}

// The stored tree edge disagrees with the journal it should cover.
absl::Status TreeEdgeMismatch(uint64_t leaves, uint64_t journal_end) {
  return absl::DataLossError(Cat("projection ", kTreeEdgeKey, ": the Merkle tree holds ", leaves,
                                 " leaves but the journal ends at entry ", journal_end));
}

// How many times a statement reads its loan before it gives up when entries on the loan
// keep being committed meanwhile (see ReadLoanWithEntries).
constexpr int kStatementReadRounds = 10;
// How long a read waits for the committer to publish the durable head up to what storage
// already shows: at most a scheduling delay, unless something is badly wrong.
constexpr auto kHeadPublishedWait = std::chrono::seconds(5);

// A page token the ledger did not give would start a page at an arbitrary place, or past
// every loan (an empty page that reads as "no more"): refused.
absl::Status PageTokenInvalid() {
  return InvalidField("page_token", "PAGE_TOKEN_INVALID",
                      "is not a page token of this list: give the previous page's "
                      "next_page_token, or none for the first page");
}

// A page token of a list in id order is the last id of the page before: B000123 for
// borrowers, L000123 for loans.
absl::Status CheckPageToken(std::string_view token, char letter) {
  if (token.empty()) return absl::OkStatus();
  if (IsLedgerId(token, letter)) return absl::OkStatus();
  return PageTokenInvalid();
}

size_t PageSize(size_t requested) {
  if (requested == 0) return kPageSizeDefault;
  return std::min(requested, kPageSizeMax);
}

// Collects the paths of the fields that differ, as the API names them ("amount"), without
// their values. A message whose fields differ is not named itself: its fields are.
class DifferingFields final : public google::protobuf::util::MessageDifferencer::Reporter {
 public:
  using SpecificField = google::protobuf::util::MessageDifferencer::SpecificField;
  void ReportAdded(const google::protobuf::Message&, const google::protobuf::Message&,
                   const std::vector<SpecificField>& path) override {
    Add(path);
  }
  void ReportDeleted(const google::protobuf::Message&, const google::protobuf::Message&,
                     const std::vector<SpecificField>& path) override {
    Add(path);
  }
  void ReportModified(const google::protobuf::Message&, const google::protobuf::Message&,
                      const std::vector<SpecificField>& path) override {
    const google::protobuf::FieldDescriptor* last = path.back().field;
    if (last != nullptr && last->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE)
      return;  // its differing fields are reported one by one
    Add(path);
  }
  std::string Joined() const {
    std::string joined;
    for (const std::string& path : paths_) joined += joined.empty() ? path : Cat(", ", path);
    return joined;
  }

 private:
  void Add(const std::vector<SpecificField>& path) {
    std::string joined = "event";
    for (const SpecificField& field : path) {
      joined += '.';
      joined +=
          field.field != nullptr ? field.field->name() : std::to_string(field.unknown_field_number);
      if (field.index >= 0) joined += Cat("[", field.index, "]");
    }
    joined = ApiFieldPath(joined);
    if (std::find(paths_.begin(), paths_.end(), joined) == paths_.end())
      paths_.push_back(std::move(joined));
  }
  std::vector<std::string> paths_;
};

// Why a retry under an existing request id is not the same command, or "" if it is.
// Request ids are shared by every caller: another caller is told only that the id is
// taken, since which fields differ would let it test guesses at the original (a phone
// number, an ID number). The caller that recorded the original is told which fields of
// its request differ, never the original's values.
std::string DifferenceFromOriginal(const Command& command, const v1::Entry& original) {
  if (command.actor.principal_id() != original.actor().principal_id() ||
      command.actor.role() != original.actor().role()) {
    return Cat("the entry was recorded for another caller or role than ",
               command.actor.principal_id(), "/", command.actor.role());
  }
  std::vector<std::string> differences;
  if (!command.business_date.empty() && command.business_date != original.business_date()) {
    differences.push_back(Cat("business_date: the entry's is ", original.business_date(), ", not ",
                              command.business_date));
  }
  // The recorded event also holds what the engine decided (ids, allocations...); only
  // what the caller asked for is compared.
  v1::Event asked = original.event();
  ClearDecidedFields(command.event, &asked);
  google::protobuf::util::MessageDifferencer differencer;
  DifferingFields fields;
  differencer.ReportDifferencesTo(&fields);
  if (!differencer.Compare(asked, command.event))
    differences.push_back(Cat("fields that differ: ", fields.Joined()));
  std::string joined;
  for (size_t i = 0; i < differences.size(); ++i) {
    if (i > 0) joined += "; ";
    joined += differences[i];
  }
  return joined;
}

}  // namespace

class Ledger::Impl {
 public:
  Impl(LedgerOptions options, std::unique_ptr<Storage> storage)
      : options_(std::move(options)), storage_(std::move(storage)) {}
  // Stops and joins the threads that Start got going, when Open fails after starting some
  // of them (an unjoined thread would end the process). After Ledger's destructor has
  // shut down, a no-op.
  ~Impl() { Shutdown(); }

  absl::Status Start();
  void Shutdown();

  void Submit(Command command, CommandCallback done);
  absl::Status RunOnWriter(std::function<absl::Status()> task);

  absl::StatusOr<v1::Entry> GetEntry(uint64_t sequence) const;
  absl::StatusOr<std::vector<v1::Entry>> ListEntries(uint64_t first, size_t limit) const;
  absl::StatusOr<Money> GetBalance(std::string_view account) const;
  JournalHead Head() const;
  absl::Status WriterStatus() const;
  absl::Status VerifyJournal() const;
  absl::StatusOr<std::optional<ProjectionMismatch>> CompareProjectionsWithRebuild() const;
  // Replays the journal and writes the replay over the derived state; with
  // only_if_differing, compares first and writes nothing when they are the same.
  absl::StatusOr<std::optional<ProjectionMismatch>> RebuildProjectionsOnWriter(
      bool only_if_differing);
  bool projections_rebuilt_on_open() const { return projections_rebuilt_on_open_; }

  absl::StatusOr<v1::ProductState> GetProduct(std::string_view id) const;
  absl::StatusOr<std::vector<v1::ProductState>> ListProducts() const;
  absl::StatusOr<v1::BorrowerState> GetBorrower(std::string_view id) const;
  absl::StatusOr<BorrowerPage> ListBorrowers(const BorrowerQuery& query) const;
  absl::StatusOr<v1::LoanState> GetLoan(std::string_view id) const;
  absl::StatusOr<LoanPage> ListLoans(const LoanQuery& query) const;
  absl::StatusOr<LoanStatement> GetLoanStatement(std::string_view id, std::string_view as_of) const;
  // The loan and its entries, as of one moment (the statement without its as-of figures).
  absl::StatusOr<LoanStatement> ReadLoanWithEntries(std::string_view id) const;
  absl::StatusOr<PortfolioFigures> GetPortfolio(std::string_view as_of) const;
  absl::StatusOr<ProgrammeReport> GetProgrammeReport(const ReportQuery& query) const;
  absl::StatusOr<OverduePage> ListOverdueLoans(const OverdueQuery& query) const;
  Date Today() const { return options_.business_date_today(); }
  PerfectNodeSource Nodes() const;
  absl::StatusOr<TreeHead> GetTreeHead() const;
  absl::Status CheckTreeSize(uint64_t size) const;
  std::optional<absl::Status> NotifyWhenBeyond(uint64_t sequence,
                                               std::function<void(absl::Status)> done);
  // Waits until the durable head reaches `sequence`, which storage already shows. A batch
  // is in storage once RocksDB's synced write has made it visible; the committer publishes
  // the durable head when that write returns, which on a busy machine can be a while later.
  // A read that returns something of storage's that names entries or shows their effect
  // (a statement's entries, a tree's size, a loan's decisions) waits, so that GetEntry,
  // proofs and the journal's head agree with it. UNAVAILABLE after 5 s.
  absl::Status AwaitHeadPublished(uint64_t sequence) const;
  // Waits until the durable head reaches the chain head that storage holds now. Every
  // batch writes its head, so that is at least as far as anything read from storage
  // before the call: a read calls it last. Returns the stored head's sequence.
  absl::StatusOr<uint64_t> AwaitStoredHead() const;

 private:
  // The loan as storage holds it, without waiting for the durable head.
  absl::StatusOr<v1::LoanState> ReadStoredLoan(std::string_view id) const;
  void NotifyWaiters(bool closing);
  std::mutex waiters_mutex_;
  std::vector<std::pair<uint64_t, std::function<void(absl::Status)>>> waiters_;
  bool waiters_closed_ = false;  // after the last NotifyWaiters: no more waiters are taken

  // Calls `visit` with each projection under `prefix` (keys in order) until it returns
  // false.
  absl::Status ScanPrefix(
      Space space, std::string_view prefix, std::string_view start_after,
      const std::function<bool(std::string_view, std::string_view)>& visit) const;
  // Every disbursed loan's summary with its delinquency as of `as_of`, until `visit`
  // returns false.
  absl::Status ForEachLoanDelinquency(
      Date as_of,
      const std::function<bool(const v1::LoanSummary&, const Delinquency&)>& visit) const;

  struct Pending {
    Command command;
    CommandCallback done;
    // Set instead of a command for maintenance work that must exclude writes.
    std::function<void()> task;
  };

  static std::vector<std::pair<Space, std::string>> KeysReadFirst(
      const std::vector<Pending>& batch);

  // A batch executed by the sequencer, waiting for (or in) its synced write.
  struct Prepared {
    std::vector<Pending> batch;
    std::vector<CommandResult> results;
    std::optional<StorageBatch> writes;  // nullopt when the batch appends nothing
    JournalHead head;                    // the chain head once it is durable
  };

  // Reads the tree's edge from storage into next_edge_, or sets edge_status_ (before the
  // writer starts, and on the writer after maintenance, which may rebuild it).
  void LoadTreeEdge();
  void WriterLoop();
  void CommitterLoop();
  void AnswererLoop();
  void ProcessBatch(std::vector<Pending>& batch);
  void Commit(Prepared& prepared);
  void HandOff(Prepared prepared);
  void WaitUntilCommitted();
  CommandResult Execute(const Command& command, BatchState& state, JournalHead& head, Date today,
                        int64_t now_us);
  absl::StatusOr<v1::Entry> ReadEntry(uint64_t sequence, const StorageSnapshot* snapshot) const;
  // Replays the journal (at `snapshot`) with every check an audit makes.
  absl::Status ReplayInto(Replayer& replay, const StorageSnapshot* snapshot) const;
  void Stop(const absl::Status& why);

  const LedgerOptions options_;
  const std::unique_ptr<Storage> storage_;

  std::mutex queue_mutex_;
  std::condition_variable queue_ready_;
  std::deque<Pending> queue_;
  size_t queued_commands_ = 0;
  bool shutting_down_ = false;
  std::thread writer_;

  // The pipeline: the sequencer (writer_) executes batch k+1 while the committer writes
  // and fsyncs batch k. At most one executed batch waits in the slot, so batch k+1 reads
  // through batch k's writes only, and batch k-1 is already durable.
  std::thread committer_;
  std::mutex commit_mutex_;
  std::condition_variable commit_changed_;
  std::optional<Prepared> commit_slot_;
  bool committing_ = false;
  bool committer_exit_ = false;
  // A written batch's buffer, cleared, for the sequencer's next batch: a batch of 2,048
  // repayments is 6 MB, which a fresh buffer grows to by doubling, copying and faulting
  // in every page. Two buffers take turns (one executing, one being written).
  std::optional<StorageBatch> spare_writes_;
  // The answerer runs the callbacks of committed batches, in order, so that building the
  // answers (a gRPC response, a re-read loan) does not hold up the next batch's write.
  struct Answers {
    std::vector<Pending> batch;
    std::vector<CommandResult> results;
  };
  std::thread answerer_;
  std::mutex answer_mutex_;
  std::condition_variable answer_ready_;
  std::deque<Answers> answers_;
  bool answerer_exit_ = false;
  // Sequencer thread only: the head after the last executed batch, the Merkle tree's edge
  // with it (kept decoded: each batch puts it once, as the last entry left it), and that
  // batch's state.
  JournalHead next_head_;
  CompactRange next_edge_;
  // Why the stored edge could not be loaded (commands are refused with it until
  // maintenance rebuilds the projections), or OK.
  absl::Status edge_status_;
  std::shared_ptr<BatchState> previous_state_;
  RecentProjections recent_projections_{options_.recent_projection_bytes};
  // Null when batch_read_threads is 0.
  std::unique_ptr<ReadPool> batch_readers_ =
      options_.batch_read_threads == 0 ? nullptr
                                       : std::make_unique<ReadPool>(options_.batch_read_threads);

  // The durable head: written only by the writer thread after a synced write.
  mutable std::mutex head_mutex_;
  mutable std::condition_variable head_published_;
  JournalHead head_;
  absl::Status writer_status_;
  std::atomic<uint64_t> durable_sequence_{0};
  std::atomic<bool> stopped_{false};
  bool projections_rebuilt_on_open_ = false;
};

absl::Status Ledger::Impl::Start() {
  absl::StatusOr<std::optional<std::string>> format = storage_->Get(Space::kMeta, kMetaFormatKey);
  if (!format.ok()) return format.status();
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> last =
      storage_->Last(Space::kJournal);
  if (!last.ok()) return last.status();
  if (!format->has_value()) {
    if (last->has_value()) return absl::DataLossError("journal has entries but no format marker");
    // The marker is the first thing a new ledger writes: data without it is not a ledger's.
    for (size_t i = 0; i < kSpaceCount; ++i) {
      const Space space = static_cast<Space>(i);
      absl::StatusOr<std::optional<std::pair<std::string, std::string>>> any =
          storage_->Last(space);
      if (!any.ok()) return any.status();
      if (any->has_value()) {
        return absl::DataLossError(Cat("the ", SpaceName(space),
                                       " space holds data but the database has no format marker"));
      }
    }
    StorageBatch batch = storage_->NewBatch();
    batch.Put(Space::kMeta, kMetaFormatKey, kFormatVersion);
    absl::Status written = storage_->Write(batch, /*sync=*/true);
    if (!written.ok()) return written;
  } else if (**format != kFormatVersion) {
    return absl::FailedPreconditionError(
        Cat("database has format ", **format, ", this engine reads ", kFormatVersion));
  }

  absl::StatusOr<JournalHead> stored_head = ReadStoredHead(*storage_);
  if (!stored_head.ok()) return stored_head.status();
  const JournalHead head = *std::move(stored_head);
  // The head and the last entry are written in one WriteBatch, so they must agree.
  const uint64_t last_sequence = last->has_value() ? DecodeSequenceKey((*last)->first) : 0;
  if (last_sequence != head.sequence) {
    return absl::DataLossError(Cat("chain head names entry ", head.sequence,
                                   " but the journal ends at entry ", last_sequence));
  }
  if (last_sequence > 0) {
    absl::StatusOr<v1::Entry> entry = OpenEntry((*last)->second, last_sequence);
    if (!entry.ok()) return entry.status();
    if (entry->sequence() != last_sequence || entry->hash() != head.hash) {
      return absl::DataLossError(
          Cat("entry ", last_sequence, ": does not match the stored chain head"));
    }
  }
  head_ = head;
  next_head_ = head;
  durable_sequence_.store(head.sequence, std::memory_order_release);

  // Derived state from an engine whose apply differed is rebuilt before anything reads it:
  // the journal is the truth, and a report over stale projections would be wrong without
  // saying so. Before the writer starts, so no command interleaves.
  absl::StatusOr<std::optional<std::string>> projections =
      storage_->Get(Space::kMeta, kMetaProjectionsKey);
  if (!projections.ok()) return projections.status();
  if (*projections != std::optional<std::string>(kProjectionsVersion)) {
    // With no entries the rebuild is a clearing: derived state without a journal (a new
    // database has none) is nothing a replay could give.
    absl::StatusOr<std::optional<ProjectionMismatch>> rebuilt =
        RebuildProjectionsOnWriter(/*only_if_differing=*/false);
    if (!rebuilt.ok()) return rebuilt.status();
    projections_rebuilt_on_open_ = head.sequence > 0;
    StorageBatch batch = storage_->NewBatch();
    batch.Put(Space::kMeta, kMetaProjectionsKey, kProjectionsVersion);
    absl::Status written = storage_->Write(batch, /*sync=*/true);
    if (!written.ok()) return written;
  }
  LoadTreeEdge();
  answerer_ = std::thread([this] { AnswererLoop(); });
  committer_ = std::thread([this] { CommitterLoop(); });
  writer_ = std::thread([this] { WriterLoop(); });
  return absl::OkStatus();
}

void Ledger::Impl::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    shutting_down_ = true;
  }
  queue_ready_.notify_all();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard<std::mutex> lock(commit_mutex_);
    committer_exit_ = true;
  }
  commit_changed_.notify_all();
  if (committer_.joinable()) committer_.join();
  {
    std::lock_guard<std::mutex> lock(answer_mutex_);
    answerer_exit_ = true;
  }
  answer_ready_.notify_all();
  if (answerer_.joinable()) answerer_.join();
  NotifyWaiters(true);
}

std::optional<absl::Status> Ledger::Impl::NotifyWhenBeyond(uint64_t sequence,
                                                           std::function<void(absl::Status)> done) {
  std::lock_guard<std::mutex> lock(waiters_mutex_);
  if (durable_sequence_.load(std::memory_order_acquire) > sequence) return absl::OkStatus();
  if (waiters_closed_) return LedgerClosing();
  waiters_.emplace_back(sequence, std::move(done));
  return std::nullopt;
}

absl::Status Ledger::Impl::AwaitHeadPublished(uint64_t sequence) const {
  if (durable_sequence_.load(std::memory_order_acquire) >= sequence) return absl::OkStatus();
  std::unique_lock<std::mutex> lock(head_mutex_);
  if (head_published_.wait_for(lock, kHeadPublishedWait, [&] {
        return durable_sequence_.load(std::memory_order_acquire) >= sequence;
      })) {
    return absl::OkStatus();
  }
  return absl::UnavailableError(Cat("storage shows entry ", sequence,
                                    " but the durable head has stayed at ", head_.sequence));
}

absl::StatusOr<uint64_t> Ledger::Impl::AwaitStoredHead() const {
  absl::StatusOr<JournalHead> stored = ReadStoredHead(*storage_);
  if (!stored.ok()) return stored.status();
  absl::Status published = AwaitHeadPublished(stored->sequence);
  if (!published.ok()) return published;
  return stored->sequence;
}

void Ledger::Impl::NotifyWaiters(bool closing) {
  std::vector<std::pair<std::function<void(absl::Status)>, bool>> ready;  // and beyond?
  {
    std::lock_guard<std::mutex> lock(waiters_mutex_);
    if (closing) waiters_closed_ = true;
    const uint64_t durable = durable_sequence_.load(std::memory_order_acquire);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      const bool beyond = it->first < durable;
      if (beyond || closing) {
        ready.emplace_back(std::move(it->second), beyond);
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [done, beyond] : ready) done(beyond ? absl::OkStatus() : LedgerClosing());
}

PerfectNodeSource Ledger::Impl::Nodes() const {
  return [this](int level, uint64_t index) -> absl::StatusOr<std::string> {
    if (level == 0) {
      absl::StatusOr<v1::Entry> entry = ReadEntry(index + 1, nullptr);
      if (!entry.ok()) return entry.status();
      return entry->hash();
    }
    absl::StatusOr<std::optional<std::string>> node =
        storage_->Get(Space::kProjections, TreeNodeKey(level, index));
    if (!node.ok()) return node.status();
    if (!node->has_value())
      return absl::DataLossError(Cat("tree node ", level, "/", index, " is missing"));
    return **node;
  };
}

absl::StatusOr<TreeHead> Ledger::Impl::GetTreeHead() const {
  StorageReader reader(*storage_);
  absl::StatusOr<CompactRange> edge = ReadTreeEdge(reader);
  if (!edge.ok()) return edge.status();
  // An auditor asks for entries and proofs at the size of the head just read: it waits
  // for the committer to publish the durable head that far (see AwaitHeadPublished).
  absl::StatusOr<uint64_t> stored = AwaitStoredHead();
  if (!stored.ok()) return stored.status();
  if (edge->size() > *stored) return TreeEdgeMismatch(edge->size(), *stored);
  return TreeHead{edge->size(), edge->Root()};
}

absl::Status Ledger::Impl::CheckTreeSize(uint64_t size) const {
  const uint64_t durable = durable_sequence_.load(std::memory_order_acquire);
  if (size > durable) {
    return InvalidField("tree_size", "BEYOND_TREE",
                        Cat("must be at most the tree's size, ", durable));
  }
  return absl::OkStatus();
}

void Ledger::Impl::Submit(Command command, CommandCallback done) {
  if (stopped_.load(std::memory_order_acquire)) {
    done(CommandResult{WriterStatus(), {}, false});
    return;
  }
  {
    std::unique_lock<std::mutex> lock(queue_mutex_);
    if (shutting_down_) {
      lock.unlock();
      done(CommandResult{LedgerClosing(), {}, false});
      return;
    }
    if (queued_commands_ >= options_.queue_commands_max) {
      lock.unlock();
      done(CommandResult{WithReason(absl::StatusCode::kResourceExhausted, "QUEUE_FULL",
                                    Cat("the writer queue is full (", options_.queue_commands_max,
                                        " commands); retry with the same request id")),
                         {},
                         false});
      return;
    }
    queue_.push_back(Pending{std::move(command), std::move(done), nullptr});
    ++queued_commands_;
  }
  queue_ready_.notify_one();
}

absl::Status Ledger::Impl::RunOnWriter(std::function<absl::Status()> task) {
  auto promise = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> result = promise->get_future();
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    if (shutting_down_) return LedgerClosing();
    queue_.push_back(
        Pending{{}, nullptr, [task = std::move(task), promise] { promise->set_value(task()); }});
  }
  queue_ready_.notify_one();
  return result.get();
}

void Ledger::Impl::LoadTreeEdge() {
  StorageReader reader(*storage_);
  absl::StatusOr<CompactRange> edge = ReadTreeEdge(reader);
  if (!edge.ok()) {
    edge_status_ = edge.status();
  } else if (edge->size() != next_head_.sequence) {
    edge_status_ = TreeEdgeMismatch(edge->size(), next_head_.sequence);
  } else {
    next_edge_ = *std::move(edge);
    edge_status_ = absl::OkStatus();
  }
}

void Ledger::Impl::WriterLoop() {
  std::vector<Pending> batch;
  batch.reserve(options_.batch_commands_max);
  while (true) {
    // A batch executes only once the batch before the previous one is durable (the commit
    // slot is free): it then reads through the previous batch's writes and storage, nothing
    // else. The wait comes before the queue is drained, so what arrives meanwhile joins
    // this batch, not the next, and one fsync serves more commands.
    {
      std::unique_lock<std::mutex> lock(commit_mutex_);
      commit_changed_.wait(lock, [this] { return !commit_slot_.has_value(); });
    }
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(queue_mutex_);
      queue_ready_.wait(lock, [this] { return shutting_down_ || !queue_.empty(); });
      if (queue_.empty()) return;  // shutting down with nothing left to answer
      if (queue_.front().task) {
        task = std::move(queue_.front().task);
        queue_.pop_front();
      } else {
        while (!queue_.empty() && !queue_.front().task &&
               batch.size() < options_.batch_commands_max) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        queued_commands_ -= batch.size();
      }
    }
    if (task) {
      // Maintenance sees (and may change) storage with nothing on its way to disk.
      WaitUntilCommitted();
      previous_state_.reset();
      recent_projections_.Clear();
      task();
      LoadTreeEdge();
      continue;
    }
    ProcessBatch(batch);
    batch.clear();
  }
}

void Ledger::Impl::WaitUntilCommitted() {
  std::unique_lock<std::mutex> lock(commit_mutex_);
  commit_changed_.wait(lock, [this] { return !commit_slot_.has_value() && !committing_; });
}

void Ledger::Impl::HandOff(Prepared prepared) {
  {
    std::unique_lock<std::mutex> lock(commit_mutex_);
    // Free by construction (ProcessBatch waits for it before executing), but never
    // overwrite a batch.
    commit_changed_.wait(lock, [this] { return !commit_slot_.has_value(); });
    commit_slot_ = std::move(prepared);
  }
  commit_changed_.notify_all();
}

void Ledger::Impl::CommitterLoop() {
  while (true) {
    Prepared prepared;
    {
      std::unique_lock<std::mutex> lock(commit_mutex_);
      commit_changed_.wait(lock, [this] { return commit_slot_.has_value() || committer_exit_; });
      if (!commit_slot_.has_value()) return;  // exiting with nothing left to write
      prepared = std::move(*commit_slot_);
      commit_slot_.reset();
      committing_ = true;
    }
    commit_changed_.notify_all();
    Commit(prepared);
    std::optional<StorageBatch>& writes = prepared.writes;
    if (writes.has_value() && writes->byte_count() <= kSpareWritesBytesMax) {
      writes->Clear();
    } else {
      writes.reset();  // none, or an outsized batch that gives its memory back
    }
    {
      std::lock_guard<std::mutex> lock(commit_mutex_);
      committing_ = false;
      if (prepared.writes.has_value()) spare_writes_ = std::move(prepared.writes);
    }
    commit_changed_.notify_all();
  }
}

void Ledger::Impl::Commit(Prepared& prepared) {
  // A batch executed on top of one that failed to reach the disk must not be written.
  if (stopped_.load(std::memory_order_acquire)) {
    const absl::Status why = WriterStatus();
    for (CommandResult& result : prepared.results) {
      if (result.status.ok()) result = CommandResult{why, {}, false};
    }
  } else if (prepared.writes.has_value()) {
    absl::Status written = storage_->Write(*prepared.writes, /*sync=*/true);
    if (!written.ok()) {
      Stop(written);
      const absl::Status why = WriterStatus();
      for (CommandResult& result : prepared.results) {
        if (result.status.ok()) result = CommandResult{why, {}, false};
      }
    } else {
      if (options_.before_head_published) options_.before_head_published(prepared.head.sequence);
      {
        std::lock_guard<std::mutex> lock(head_mutex_);
        head_ = prepared.head;
        durable_sequence_.store(prepared.head.sequence, std::memory_order_release);
      }
      head_published_.notify_all();
    }
  }
  {
    std::lock_guard<std::mutex> lock(answer_mutex_);
    answers_.push_back(Answers{std::move(prepared.batch), std::move(prepared.results)});
  }
  answer_ready_.notify_one();
  NotifyWaiters(false);
}

void Ledger::Impl::AnswererLoop() {
  while (true) {
    Answers answers;
    {
      std::unique_lock<std::mutex> lock(answer_mutex_);
      answer_ready_.wait(lock, [this] { return !answers_.empty() || answerer_exit_; });
      if (answers_.empty()) return;  // exiting with every answer given
      answers = std::move(answers_.front());
      answers_.pop_front();
    }
    for (size_t i = 0; i < answers.batch.size(); ++i)
      answers.batch[i].done(std::move(answers.results[i]));
  }
}

// The keys a batch's commands read first, as far as their events tell (AddKeysReadFirst).
// Their request ids are left out: a new one is absent, which the filters RocksDB keeps in
// memory tell without reading the disk, and the writer reads it faster than it could hand
// it to a helper.
std::vector<std::pair<Space, std::string>> Ledger::Impl::KeysReadFirst(
    const std::vector<Pending>& batch) {
  std::vector<std::pair<Space, std::string>> keys;
  keys.reserve(batch.size() * 3);
  // A batch holds commands only: WriterLoop runs maintenance tasks on their own.
  for (const Pending& pending : batch) AddKeysReadFirst(pending.command.event, keys);
  return keys;
}

void Ledger::Impl::ProcessBatch(std::vector<Pending>& batch) {
  Prepared prepared;
  prepared.results.resize(batch.size());
  if (stopped_.load(std::memory_order_acquire)) {
    const absl::Status why = WriterStatus();
    for (CommandResult& result : prepared.results) result = CommandResult{why, {}, false};
    prepared.batch = std::move(batch);
    HandOff(std::move(prepared));
    return;
  }
  if (previous_state_ != nullptr) previous_state_->ForgetPrevious();
  auto state = std::make_shared<BatchState>(*storage_, previous_state_, recent_projections_);
  if (batch_readers_ != nullptr) state->ReadAhead(KeysReadFirst(batch), *batch_readers_);
  JournalHead head = next_head_;
  const uint64_t first_sequence = head.sequence + 1;
  const Date today = options_.business_date_today();
  const int64_t now_us = options_.clock_us();
  for (size_t i = 0; i < batch.size(); ++i) {
    prepared.results[i] = Execute(batch[i].command, *state, head, today, now_us);
  }
  if (head.sequence >= first_sequence) {
    PutTreeEdge(next_edge_, *state);
    {
      std::lock_guard<std::mutex> lock(commit_mutex_);
      prepared.writes = std::exchange(spare_writes_, std::nullopt);
    }
    if (!prepared.writes.has_value()) prepared.writes = storage_->NewBatch();
    state->FlushInto(*prepared.writes);
    v1::JournalHead stored_head;
    stored_head.set_sequence(head.sequence);
    stored_head.set_hash(head.hash);
    prepared.writes->Put(Space::kMeta, kMetaHeadKey, stored_head.SerializeAsString());
  }
  state->FoldIntoRecent();
  if (!state->empty()) previous_state_ = std::move(state);
  next_head_ = head;
  prepared.head = head;
  prepared.batch = std::move(batch);
  HandOff(std::move(prepared));
}

CommandResult Ledger::Impl::Execute(const Command& command, BatchState& state, JournalHead& head,
                                    Date today, int64_t now_us) {
  CommandResult result;
  result.status = ValidateCommand(command, today);
  if (!result.status.ok()) return result;
  const Date business_date =
      command.business_date.empty() ? today : *ParseDate(command.business_date, "business_date");

  // A request id already committed answers with the original entry, whatever the state
  // is now; with a different command it is refused.
  // The original may be in this batch or the one before it, not yet on disk: it is read
  // through the batch's state, like everything else.
  std::optional<v1::Entry> original;
  absl::StatusOr<std::optional<std::string>> seen =
      state.Get(Space::kRequestIds, command.request_id);
  if (!seen.ok()) return CommandResult{seen.status(), {}, false};
  if (seen->has_value()) {
    const uint64_t sequence = DecodeSequenceKey(**seen);
    absl::StatusOr<std::optional<std::string>> stored =
        state.Get(Space::kJournal, SequenceKey(sequence));
    if (!stored.ok()) return CommandResult{stored.status(), {}, false};
    if (!stored->has_value()) {
      return CommandResult{
          absl::DataLossError(Cat("request id ", command.request_id, " names entry ", sequence,
                                  ", which is missing")),
          {},
          false};
    }
    absl::StatusOr<v1::Entry> entry = OpenEntry(**stored, sequence);
    if (!entry.ok()) return CommandResult{entry.status(), {}, false};
    original = *std::move(entry);
  }
  if (original.has_value()) {
    std::string difference = DifferenceFromOriginal(command, *original);
    if (!difference.empty()) {
      return CommandResult{
          WithReason(absl::StatusCode::kAlreadyExists, "REQUEST_ID_REUSED",
                     Cat("request id ", command.request_id, " was used for entry ",
                         original->sequence(), " with a different command: ", difference)),
          {},
          false};
    }
    return CommandResult{absl::OkStatus(), *std::move(original), true};
  }

  if (business_date > today) {
    return CommandResult{Refused("BUSINESS_DATE_IN_FUTURE",
                                 Cat("business date ", business_date.ToString(),
                                     " is after today's business date ", today.ToString())),
                         {},
                         false};
  }
  absl::StatusOr<Decision> decision = Decide(state, command, business_date);
  if (!decision.ok()) return CommandResult{decision.status(), {}, false};

  v1::Entry entry;
  entry.set_sequence(head.sequence + 1);
  entry.set_previous_hash(head.hash);
  entry.set_recorded_at_us(now_us);
  entry.set_business_date(business_date.ToString());
  *entry.mutable_actor() = command.actor;
  entry.set_request_id(command.request_id);
  *entry.mutable_event() = std::move(decision->event);
  for (v1::Posting& posting : decision->postings) *entry.add_postings() = std::move(posting);
  // Decide must only produce balanced postings: a failure here is a bug, not bad input.
  GONGDAI_CHECK(CheckBalanced(entry).ok());
  std::string stored = SealEntry(&entry);

  if (!edge_status_.ok()) return CommandResult{edge_status_, {}, false};
  CommandState command_state(state);
  ApplyHandOver hand_over;
  hand_over.decided_loan = std::move(decision->loan);
  absl::Status applied = Apply(entry, stored, command_state, next_edge_, &hand_over);
  if (!applied.ok()) return CommandResult{applied, {}, false};
  command_state.Commit();
  state.PutOwned(Space::kJournal, SequenceKey(entry.sequence()), std::move(stored));
  head.sequence = entry.sequence();
  head.hash = entry.hash();
  return CommandResult{absl::OkStatus(),
                       std::move(entry),
                       false,
                       std::move(hand_over.loan),
                       std::move(hand_over.borrower),
                       std::move(hand_over.product)};
}

void Ledger::Impl::Stop(const absl::Status& why) {
  std::lock_guard<std::mutex> lock(head_mutex_);
  writer_status_ = WithReason(
      absl::StatusCode::kUnavailable, "LEDGER_STOPPED",
      Cat("the ledger stopped accepting writes after a storage failure: ", why.message()));
  stopped_.store(true, std::memory_order_release);
}

absl::Status Ledger::Impl::WriterStatus() const {
  std::lock_guard<std::mutex> lock(head_mutex_);
  return writer_status_;
}

JournalHead Ledger::Impl::Head() const {
  std::lock_guard<std::mutex> lock(head_mutex_);
  return head_;
}

absl::StatusOr<v1::Entry> Ledger::Impl::ReadEntry(uint64_t sequence,
                                                  const StorageSnapshot* snapshot) const {
  absl::StatusOr<std::optional<std::string>> stored =
      storage_->Get(Space::kJournal, SequenceKey(sequence), snapshot);
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) return absl::NotFoundError(Cat("no entry ", sequence));
  return OpenEntry(**stored, sequence);
}

absl::StatusOr<v1::Entry> Ledger::Impl::GetEntry(uint64_t sequence) const {
  if (sequence == 0 || sequence > durable_sequence_.load(std::memory_order_acquire)) {
    return WithReason(
        absl::StatusCode::kNotFound, "ENTRY_NOT_FOUND",
        Cat("no entry ", sequence, "; the journal ends at ", durable_sequence_.load()));
  }
  return ReadEntry(sequence, nullptr);
}

absl::StatusOr<std::vector<v1::Entry>> Ledger::Impl::ListEntries(uint64_t first,
                                                                 size_t limit) const {
  if (limit > kListEntriesMax) {
    return InvalidField("limit", "LIMIT_TOO_LARGE", Cat("must be at most ", kListEntriesMax));
  }
  const uint64_t durable = durable_sequence_.load(std::memory_order_acquire);
  std::vector<v1::Entry> entries;
  absl::Status failure;
  // Every durable entry from `first` on is there: a reader is never handed the entries
  // after a missing one as if they came next.
  uint64_t expected = std::max<uint64_t>(first, 1);
  const auto missing = [&] {
    return absl::DataLossError(
        Cat("entry ", expected, " is missing from the journal, which is durable to ", durable));
  };
  absl::Status scanned = storage_->Scan(
      Space::kJournal, SequenceKey(expected), [&](std::string_view key, std::string_view value) {
        const uint64_t sequence = DecodeSequenceKey(key);
        if (entries.size() >= limit || sequence > durable) return false;
        if (sequence != expected) {
          failure = missing();
          return false;
        }
        absl::StatusOr<v1::Entry> entry = OpenEntry(value, sequence);
        if (!entry.ok()) {
          failure = entry.status();
          return false;
        }
        entries.push_back(*std::move(entry));
        ++expected;
        return true;
      });
  if (!scanned.ok()) return scanned;
  if (!failure.ok()) return failure;
  if (entries.size() < limit && expected <= durable) return missing();
  return entries;
}

absl::StatusOr<Money> Ledger::Impl::GetBalance(std::string_view account) const {
  absl::Status valid = ValidateAccountPath(account, "account");
  if (!valid.ok()) return valid;
  absl::StatusOr<std::optional<std::string>> raw =
      storage_->Get(Space::kProjections, AccountKey(account));
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return Money();
  v1::AccountState state;
  if (!state.ParseFromString(**raw)) {
    return absl::DataLossError(Cat("projection of account ", account, " does not parse"));
  }
  return Money::FromFen(state.balance_fen());
}

absl::Status Ledger::Impl::VerifyJournal() const {
  std::unique_ptr<StorageSnapshot> snapshot = storage_->Snapshot();
  uint64_t expected = 1;
  std::string previous = GenesisHash();
  absl::Status failure;
  absl::Status scanned = storage_->Scan(
      Space::kJournal, "",
      [&](std::string_view key, std::string_view value) {
        const uint64_t sequence = DecodeSequenceKey(key);
        if (sequence != expected) {
          failure = absl::DataLossError(
              Cat("entry ", expected, ": missing (next key is ", sequence, ")"));
          return false;
        }
        absl::StatusOr<v1::Entry> entry = OpenEntry(value, sequence);
        if (!entry.ok()) {
          failure = entry.status();
          return false;
        }
        if (entry->previous_hash() != previous) {
          failure =
              absl::DataLossError(Cat("entry ", sequence, ": field previous_hash: expected ",
                                      ToHex(previous), ", found ", ToHex(entry->previous_hash())));
          return false;
        }
        failure = CheckBalanced(*entry);
        if (!failure.ok()) return false;
        previous = entry->hash();
        ++expected;
        return true;
      },
      snapshot.get(), Storage::ScanLength::kWhole);
  if (!scanned.ok()) return scanned;
  if (!failure.ok()) return failure;
  absl::StatusOr<JournalHead> head = ReadStoredHead(*storage_, snapshot.get());
  if (!head.ok()) return head.status();
  if (head->sequence != expected - 1 || (expected > 1 && head->hash != previous)) {
    return absl::DataLossError(Cat("chain head names entry ", head->sequence,
                                   " but the journal ends at entry ", expected - 1));
  }
  return absl::OkStatus();
}

absl::Status Ledger::Impl::ReplayInto(Replayer& replay, const StorageSnapshot* snapshot) const {
  return ForEachOpenedEntry(*storage_, snapshot,
                            [&](const OpenedEntry& opened) { return replay.AddOpened(opened); });
}

absl::StatusOr<std::optional<ProjectionMismatch>> Ledger::Impl::CompareProjectionsWithRebuild()
    const {
  std::unique_ptr<StorageSnapshot> snapshot = storage_->Snapshot();
  Replayer rebuilt(ReplayKeeps::kEverything);
  absl::Status replayed = ReplayInto(rebuilt, snapshot.get());
  if (!replayed.ok()) return replayed;
  return CompareDerivedSpaces(*storage_, snapshot.get(), rebuilt.state());
}

absl::StatusOr<std::optional<ProjectionMismatch>> Ledger::Impl::RebuildProjectionsOnWriter(
    bool only_if_differing) {
  Replayer rebuilt(ReplayKeeps::kEverything);
  absl::Status replayed = ReplayInto(rebuilt, nullptr);
  if (!replayed.ok()) return replayed;
  const MemoryState& state = rebuilt.state();
  // On the writer thread nothing else writes, so the stored state compared here is the
  // state the batch below replaces.
  std::optional<ProjectionMismatch> difference;
  if (only_if_differing) {
    absl::StatusOr<std::optional<ProjectionMismatch>> compared =
        CompareDerivedSpaces(*storage_, nullptr, state);
    if (!compared.ok() || !compared->has_value()) return compared;
    difference = std::move(*compared);
  }
  StorageBatch batch = storage_->NewBatch();
  for (Space space : kDerivedSpaces) {
    absl::Status scanned = storage_->Scan(
        space, "",
        [&](std::string_view key, std::string_view) {
          batch.Delete(space, key);
          return true;
        },
        nullptr, Storage::ScanLength::kWhole);
    if (!scanned.ok()) return scanned;
    for (const auto& [key, value] : state.Sorted(space)) batch.Put(space, key, value);
  }
  absl::Status written = storage_->Write(batch, /*sync=*/true);
  if (!written.ok()) {
    Stop(written);
    return written;
  }
  return difference;
}

std::string DescribeProjectionMismatch(const ProjectionMismatch& mismatch) {
  std::string key = mismatch.key;
  if (mismatch.space == SpaceName(Space::kRequestIds)) {
    key = "(a request id, not shown)";  // chosen by the client, so it may carry anything
  } else if (mismatch.space == SpaceName(Space::kIndexes) &&
             key.starts_with(kNationalIdIndexPrefix)) {
    key = Cat(kNationalIdIndexPrefix,
              MaskNationalId(std::string_view(key).substr(kNationalIdIndexPrefix.size())));
  }
  std::string out = Cat(mismatch.space, " key ", key, ": ");
  auto bytes = [](size_t n) { return Cat(n, n == 1 ? " byte" : " bytes"); };
  const std::optional<std::string>& stored = mismatch.stored;
  const std::optional<std::string>& rebuilt = mismatch.rebuilt;
  if (!stored.has_value() || !rebuilt.has_value()) {
    return Cat(out,
               stored ? Cat("stored (", bytes(stored->size()), ")") : std::string("not stored"),
               rebuilt ? Cat(", the replay gives ", bytes(rebuilt->size()))
                       : std::string(", absent from the replay"));
  }
  // An account's state holds no personal data: its fields are shown, unless they read the
  // same (the bytes differ elsewhere: an unknown field, a zero written out).
  auto account = [](const std::string& value) -> std::optional<std::string> {
    v1::AccountState a;
    if (!a.ParseFromString(value)) return std::nullopt;
    return Cat("balance ", Money::FromFen(a.balance_fen()).ToString(), " after ", a.posting_count(),
               " postings (last entry ", a.last_sequence(), ")");
  };
  if (mismatch.space == SpaceName(Space::kProjections) &&
      mismatch.key.starts_with(kAccountPrefix)) {
    const std::optional<std::string> was = account(*stored), is = account(*rebuilt);
    if (was && is && *was != *is) return Cat(out, "stored ", *was, ", the replay gives ", *is);
  }
  const auto [first, ignored] =
      std::mismatch(stored->begin(), stored->end(), rebuilt->begin(), rebuilt->end());
  return Cat(out, "stored ", bytes(stored->size()), ", the replay gives ", bytes(rebuilt->size()),
             ", first different at byte ", first - stored->begin());
}

absl::Status Ledger::Impl::ScanPrefix(
    Space space, std::string_view prefix, std::string_view start_after,
    const std::function<bool(std::string_view, std::string_view)>& visit) const {
  std::string start = start_after.empty() ? std::string(prefix) : Cat(prefix, start_after);
  return storage_->Scan(space, start, [&](std::string_view key, std::string_view value) {
    if (!key.starts_with(prefix)) return false;
    std::string_view rest = key.substr(prefix.size());
    if (!start_after.empty() && rest == start_after) return true;  // the page's last item
    return visit(rest, value);
  });
}

absl::Status Ledger::Impl::ForEachLoanDelinquency(
    Date as_of,
    const std::function<bool(const v1::LoanSummary&, const Delinquency&)>& visit) const {
  absl::Status failure;
  absl::Status scanned =
      ScanPrefix(Space::kProjections, kLoanSummaryPrefix, "",
                 [&](std::string_view id, std::string_view value) {
                   v1::LoanSummary loan;
                   if (!loan.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
                     failure = absl::DataLossError(Cat("loan summary ", id, " does not parse"));
                     return false;
                   }
                   return visit(loan, SummaryDelinquencyAsOf(loan, as_of));
                 });
  if (!scanned.ok()) return scanned;
  return failure;
}

absl::StatusOr<v1::ProductState> Ledger::Impl::GetProduct(std::string_view id) const {
  StorageReader reader(*storage_);
  absl::StatusOr<std::optional<v1::ProductState>> product = ReadProduct(reader, id);
  if (!product.ok()) return product.status();
  if (!product->has_value()) {
    return WithReason(absl::StatusCode::kNotFound, "PRODUCT_NOT_FOUND",
                      Cat("no product ", Excerpt(id)));
  }
  return std::move(**product);
}

absl::StatusOr<std::vector<v1::ProductState>> Ledger::Impl::ListProducts() const {
  std::vector<v1::ProductState> products;
  absl::Status failure;
  absl::Status scanned = ScanPrefix(
      Space::kProjections, kProductPrefix, "", [&](std::string_view, std::string_view value) {
        v1::ProductState product;
        if (!product.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          failure = absl::DataLossError("product projection does not parse");
          return false;
        }
        products.push_back(std::move(product));
        return products.size() < kPageSizeMax;
      });
  if (!scanned.ok()) return scanned;
  if (!failure.ok()) return failure;
  return products;
}

absl::StatusOr<v1::BorrowerState> Ledger::Impl::GetBorrower(std::string_view id) const {
  StorageReader reader(*storage_);
  absl::StatusOr<std::optional<v1::BorrowerState>> borrower = ReadBorrower(reader, id);
  if (!borrower.ok()) return borrower.status();
  if (!borrower->has_value()) {
    return WithReason(absl::StatusCode::kNotFound, "BORROWER_NOT_FOUND",
                      Cat("no borrower ", Excerpt(id)));
  }
  return std::move(**borrower);
}

absl::StatusOr<BorrowerPage> Ledger::Impl::ListBorrowers(const BorrowerQuery& query) const {
  if (absl::Status token = CheckPageToken(query.page_token, 'B'); !token.ok()) return token;
  const size_t page_size = PageSize(query.page_size);
  BorrowerPage page;
  absl::Status failure;
  absl::Status scanned = ScanPrefix(
      Space::kProjections, kBorrowerPrefix, query.page_token,
      [&](std::string_view id, std::string_view value) {
        v1::BorrowerState borrower;
        if (!borrower.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          failure = absl::DataLossError(Cat("borrower ", id, " projection does not parse"));
          return false;
        }
        if (query.status != v1::TALENT_POOL_STATUS_UNSPECIFIED && borrower.status() != query.status)
          return true;
        if (!query.county.empty() && borrower.details().county() != query.county) return true;
        if (page.borrowers.size() == page_size) {
          page.next_page_token = page.borrowers.back().borrower_id();
          return false;
        }
        page.borrowers.push_back(std::move(borrower));
        return true;
      });
  if (!scanned.ok()) return scanned;
  if (!failure.ok()) return failure;
  return page;
}

absl::StatusOr<v1::LoanState> Ledger::Impl::ReadStoredLoan(std::string_view id) const {
  StorageReader reader(*storage_);
  absl::StatusOr<std::optional<v1::LoanState>> loan = ReadLoan(reader, id);
  if (!loan.ok()) return loan.status();
  if (!loan->has_value())
    return WithReason(absl::StatusCode::kNotFound, "LOAN_NOT_FOUND", Cat("no loan ", Excerpt(id)));
  return std::move(**loan);
}

absl::StatusOr<v1::LoanState> Ledger::Impl::GetLoan(std::string_view id) const {
  absl::StatusOr<v1::LoanState> loan = ReadStoredLoan(id);
  if (!loan.ok()) return loan.status();
  // A loan names entries (its decisions) and shows the effect of others: it waits for
  // them to be durable, so that GetEntry and the journal's head agree with it.
  absl::StatusOr<uint64_t> stored = AwaitStoredHead();
  if (!stored.ok()) return stored.status();
  return loan;
}

absl::StatusOr<LoanPage> Ledger::Impl::ListLoans(const LoanQuery& query) const {
  ViolationCollector violations;
  if (!query.disbursed_from.empty()) {
    absl::Status valid = ParseDate(query.disbursed_from, "disbursed_from").status();
    if (!valid.ok()) violations.AddStatus("disbursed_from", valid);
  }
  if (!query.disbursed_to.empty()) {
    absl::Status valid = ParseDate(query.disbursed_to, "disbursed_to").status();
    if (!valid.ok()) violations.AddStatus("disbursed_to", valid);
  }
  // A range the wrong way round would list nothing, as if no loan were disbursed in it.
  if (violations.empty() && !query.disbursed_from.empty() && !query.disbursed_to.empty() &&
      query.disbursed_to < query.disbursed_from) {
    violations.Add("disbursed_to", "BEFORE_FROM", "must not be before disbursed_from");
  }
  if (!v1::LoanStatus_IsValid(query.status))
    violations.Add("status", "UNKNOWN_ENUM_VALUE", "is not a loan status");
  if (absl::Status token = CheckPageToken(query.page_token, 'L'); !token.ok())
    violations.AddStatus("page_token", token);
  if (!violations.empty()) return violations.ToStatus();
  const size_t page_size = PageSize(query.page_size);
  StorageReader reader(*storage_);
  LoanPage page;
  absl::Status failure;
  // Loan ids sort in the order they were assigned, so a page token is the last loan id.
  auto consider = [&](const v1::LoanState& loan) {
    if (query.status != v1::LOAN_STATUS_UNSPECIFIED && loan.position().status() != query.status)
      return true;
    if (!query.borrower_id.empty() && loan.borrower_id() != query.borrower_id) return true;
    if (!query.product_id.empty() && loan.product_id() != query.product_id) return true;
    if (!query.county.empty() && loan.county() != query.county) return true;
    const std::string& disbursed = loan.position().disbursed_date();
    if (!query.disbursed_from.empty() && (disbursed.empty() || disbursed < query.disbursed_from))
      return true;
    if (!query.disbursed_to.empty() && (disbursed.empty() || disbursed > query.disbursed_to))
      return true;
    if (page.loans.size() == page_size) {
      page.next_page_token = page.loans.back().loan_id();
      return false;
    }
    page.loans.push_back(loan);
    return true;
  };
  auto from_index = [&](std::string_view loan_id, std::string_view) {
    absl::StatusOr<std::optional<v1::LoanState>> loan = ReadLoan(reader, loan_id);
    if (!loan.ok() || !loan->has_value()) {
      failure = loan.ok() ? absl::DataLossError(Cat("index names unknown loan ", loan_id))
                          : loan.status();
      return false;
    }
    return consider(**loan);
  };
  absl::Status scanned;
  if (!query.borrower_id.empty()) {
    scanned = ScanPrefix(Space::kIndexes, LoansByBorrowerPrefix(query.borrower_id),
                         query.page_token, from_index);
  } else if (query.status != v1::LOAN_STATUS_UNSPECIFIED) {
    scanned = ScanPrefix(Space::kIndexes, LoansByStatusPrefix(query.status), query.page_token,
                         from_index);
  } else {
    scanned = ScanPrefix(
        Space::kProjections, kLoanPrefix, query.page_token,
        [&](std::string_view id, std::string_view value) {
          v1::LoanState loan;
          if (!loan.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
            failure = absl::DataLossError(Cat("loan ", id, " projection does not parse"));
            return false;
          }
          return consider(loan);
        });
  }
  if (!scanned.ok()) return scanned;
  if (!failure.ok()) return failure;
  absl::StatusOr<uint64_t> stored = AwaitStoredHead();  // as GetLoan
  if (!stored.ok()) return stored.status();
  return page;
}

absl::StatusOr<LoanStatement> Ledger::Impl::GetLoanStatement(std::string_view id,
                                                             std::string_view as_of_text) const {
  absl::StatusOr<Date> as_of = ParseDate(as_of_text, "as_of");
  if (!as_of.ok()) return as_of.status();
  absl::StatusOr<LoanStatement> statement = ReadLoanWithEntries(id);
  if (!statement.ok()) return statement.status();
  statement->as_of = as_of->ToString();
  const v1::LoanState& loan = statement->loan;
  const v1::LoanPosition& position = loan.position();
  // Before its disbursement the loan had no schedule in force: its installments would read
  // as unpaid while nothing was outstanding.
  if (!position.disbursed_date().empty() && statement->as_of < position.disbursed_date()) {
    return WithReason(absl::StatusCode::kFailedPrecondition, "BEFORE_DISBURSEMENT",
                      Cat("loan ", id, " was disbursed on ", position.disbursed_date(),
                          ": a statement as of ", statement->as_of, " would precede it"));
  }
  const std::vector<int64_t> paid = PaidAsOf(position, *as_of);
  // From its write-off on, what a loan left unpaid is written off, not overdue.
  const bool written_off = position.status() == v1::LOAN_STATUS_WRITTEN_OFF &&
                           !position.closed_date().empty() &&
                           statement->as_of >= position.closed_date();
  for (int i = 0; i < position.schedule_size(); ++i) {
    InstallmentLine line;
    line.installment = position.schedule(i);
    line.paid_fen = paid[static_cast<size_t>(i)];
    line.unpaid_fen = line.installment.principal_fen() - line.paid_fen;
    const Date due = *ParseDate(line.installment.due_date(), "due_date");
    if (line.unpaid_fen == 0) {
      line.state = "paid";
    } else if (written_off) {
      line.state = "written off";
    } else if (*as_of > due.PlusDays(loan.grace_days())) {
      line.state = "overdue";
    } else if (*as_of >= due) {
      line.state = "due";
    } else {
      line.state = line.paid_fen > 0 ? "partly paid" : "not due";
    }
    statement->installments.push_back(std::move(line));
  }
  statement->delinquency = DelinquencyAsOf(position, loan.grace_days(), *as_of);
  return statement;
}

absl::StatusOr<LoanStatement> Ledger::Impl::ReadLoanWithEntries(std::string_view id) const {
  // The loan (projections) and its entries (indexes) are stored apart, and every entry on
  // the loan rewrites both in one batch: a batch committed between two reads would leave
  // a loan that disagrees with the entries listed. Entries on a loan become visible in
  // sequence order, so what one scan lists is everything up to some moment, and anything
  // committed later lies past it. The loan is read after its entries, then the index is
  // looked at again past the last one listed: when nothing new is there, nothing was
  // committed on the loan between the scan and that look, and the loan read in between is
  // the result of exactly the entries listed. Otherwise the new entries are listed and the
  // loan read again. A later round reads the new entries and the loan, which is in the
  // block cache by then, so a loan repaid many times a second still settles. (This holds
  // while only batches change the derived state: a rebuild rewrites it wholesale, and runs
  // before the ledger serves reads.)
  //
  // The loan-entries index keeps a copy of each of the loan's entries, next to each other:
  // one short scan reads them all, where the journal would need a read for each.
  const std::string prefix = LoanEntriesPrefix(id);
  LoanStatement statement;
  std::optional<v1::LoanState> loan;
  for (int round = 0;; ++round) {
    const size_t listed = statement.entries.size();
    absl::Status failure;
    absl::Status scanned =
        ScanPrefix(Space::kIndexes, prefix,
                   listed == 0 ? std::string() : SequenceKey(statement.entries.back().sequence()),
                   [&](std::string_view key, std::string_view stored) {
                     absl::StatusOr<v1::Entry> entry = OpenEntry(stored, DecodeSequenceKey(key));
                     if (!entry.ok()) {
                       // The index is damaged, not the journal: a rebuild of the derived state puts
                       // the copy right.
                       failure = absl::DataLossError(
                           Cat("the loan-entries index's copy of ", entry.status().message()));
                       return false;
                     }
                     statement.entries.push_back(*std::move(entry));
                     return true;
                   });
    if (!scanned.ok()) return scanned;
    if (!failure.ok()) return failure;
    if (loan.has_value() && statement.entries.size() == listed) {
      statement.loan = *std::move(loan);
      // What storage holds is on disk (a batch becomes visible only once synced), but the
      // committer publishes the durable head after: a statement waits for it, so that it
      // never lists an entry that GetEntry would not yet return.
      absl::StatusOr<uint64_t> stored = AwaitStoredHead();
      if (!stored.ok()) return stored.status();
      return statement;
    }
    if (round == kStatementReadRounds) {
      return WithReason(absl::StatusCode::kAborted, "LOAN_CHANGING",
                        Cat("loan ", id, " had new entries each of the ", kStatementReadRounds,
                            " times its statement was read; retry"));
    }
    absl::StatusOr<v1::LoanState> read = ReadStoredLoan(id);
    if (!read.ok()) return read.status();
    loan = *std::move(read);
  }
}

absl::StatusOr<PortfolioFigures> Ledger::Impl::GetPortfolio(std::string_view as_of_text) const {
  absl::StatusOr<Date> as_of = ParseDate(as_of_text, "as_of");
  if (!as_of.ok()) return as_of.status();
  PortfolioFigures figures;
  figures.as_of = as_of->ToString();
  for (const char* name : {"current", "1-30", "31-60", "61-90", "91-180", "180+"}) {
    figures.aging.push_back(PortfolioFigures::Bucket{name, 0, 0});
  }
  absl::Status scanned =
      ForEachLoanDelinquency(*as_of, [&](const v1::LoanSummary&, const Delinquency& d) {
        if (d.outstanding_fen <= 0) return true;
        ++figures.loans_outstanding;
        figures.outstanding_fen += d.outstanding_fen;
        figures.overdue_principal_fen += d.overdue_principal_fen;
        if (d.days_past_due > 30) figures.par30_fen += d.outstanding_fen;
        if (d.days_past_due > 90) figures.par90_fen += d.outstanding_fen;
        for (PortfolioFigures::Bucket& bucket : figures.aging) {
          if (bucket.name == d.bucket) {
            ++bucket.loans;
            bucket.outstanding_fen += d.outstanding_fen;
          }
        }
        return true;
      });
  if (!scanned.ok()) return scanned;
  return figures;
}

namespace {

std::vector<std::string> GroupOf(const ReportDims& dims,
                                 const std::vector<ReportDimension>& group_by) {
  std::vector<std::string> group;
  for (ReportDimension d : group_by) {
    switch (d) {
      case ReportDimension::kCounty:
        group.push_back(dims.county);
        break;
      case ReportDimension::kCategory:
        // Settled subsidy belongs to no borrower: its row's category is empty, as the API
        // says, not the enum's UNSPECIFIED name.
        group.push_back(dims.category == v1::BORROWER_CATEGORY_UNSPECIFIED
                            ? std::string()
                            : v1::BorrowerCategory_Name(dims.category));
        break;
      case ReportDimension::kProduct:
        group.push_back(dims.product_id);
        break;
      case ReportDimension::kFunding:
        group.push_back(v1::Funding_Name(dims.funding));
        break;
    }
  }
  return group;
}

void AddFlows(v1::ReportCounters& into, const v1::ReportCounters& delta) {
  const google::protobuf::Descriptor* descriptor = v1::ReportCounters::descriptor();
  const google::protobuf::Reflection* reflection = v1::ReportCounters::GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor->field(i);
    reflection->SetInt64(&into, field,
                         reflection->GetInt64(into, field) + reflection->GetInt64(delta, field));
  }
}

// A visitor of the report's keys under `prefix` before `end` ("g/" counters or "k/" stock
// changes): each key's dimensions and its value, parsed as `Message`, go to `add(key,
// dims, message)`. A key or value that does not parse sets `failure` (DATA_LOSS naming
// `what` and the key) and stops this scan and every later one.
template <typename Message, typename Add>
Storage::Visitor ReportKeys(std::string_view prefix, std::string end, std::string_view what,
                            absl::Status& failure, Add add) {
  return [prefix, end = std::move(end), what, &failure, add](std::string_view key,
                                                             std::string_view value) {
    if (!failure.ok() || !key.starts_with(prefix) || key >= end) return false;
    std::optional<std::pair<std::string, ReportDims>> parsed = ParseReportKey(key);
    Message message;
    if (!parsed.has_value() ||
        !message.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      failure = absl::DataLossError(Cat(what, " under ", key, " do not parse"));
      return false;
    }
    add(key, std::move(parsed->second), message);
    return true;
  };
}

}  // namespace

absl::StatusOr<ProgrammeReport> Ledger::Impl::GetProgrammeReport(const ReportQuery& query) const {
  ViolationCollector violations;
  absl::StatusOr<Date> from = ParseDate(query.from, "from");
  absl::StatusOr<Date> to = ParseDate(query.to, "to");
  if (!from.ok()) violations.AddStatus("from", from.status());
  if (!to.ok()) violations.AddStatus("to", to.status());
  if (from.ok() && to.ok() && *to < *from)
    violations.Add("to", "BEFORE_FROM", "must not be before from");
  const Date today = Today();
  if (from.ok() && *from > today) {
    violations.Add("from", "AFTER_TODAY",
                   Cat("the period starts on ", from->ToString(), ", after today's business date ",
                       today.ToString()));
  }
  if (!violations.empty()) return violations.ToStatus();
  ProgrammeReport report;
  report.from = from->ToString();
  // A period not yet over is reported up to today: its stocks at a later end would count
  // installments not yet due as overdue, and its flows principal not yet due. The
  // report's `to` says where it ends.
  report.to = std::min(*to, today).ToString();
  std::map<std::vector<std::string>, ReportRow> rows;
  auto row = [&](const ReportDims& dims) -> ReportRow& {
    std::vector<std::string> group = GroupOf(dims, query.group_by);
    ReportRow& r = rows[group];
    r.group = std::move(group);
    return r;
  };
  // Flows and stocks in one consistent view (not a registered snapshot: see
  // StorageSnapshot).
  absl::Status failure;
  Storage::Visitor flows = ReportKeys<v1::ReportCounters>(
      kReportPrefix, Cat(kReportPrefix, report.to, "0"),  // '0' sorts after '/'
      "report counters", failure,
      [&](std::string_view, const ReportDims& dims, const v1::ReportCounters& counters) {
        AddFlows(row(dims).flows, counters);
        AddFlows(report.total.flows, counters);
      });
  // Stocks as of `to`: the running changes of every day up to it, summed per dimension.
  std::map<std::string, std::pair<ReportDims, Stocks>> stocks;
  Storage::Visitor stock_changes = ReportKeys<v1::StockChange>(
      kStockPrefix, Cat(kStockPrefix, report.to, "0"), "stock changes", failure,
      [&](std::string_view key, ReportDims dims, const v1::StockChange& change) {
        // Key without the date: "k/" + "YYYY-MM-DD/".
        auto [at, inserted] = stocks.try_emplace(std::string(key.substr(kStockPrefix.size() + 11)));
        if (inserted) at->second.first = std::move(dims);
        at->second.second += StocksOf(change);
      });
  const std::string flows_start = Cat(kReportPrefix, report.from);
  absl::Status scanned = storage_->ScanConsistently(
      Space::kProjections, {{flows_start, flows}, {kStockPrefix, stock_changes}});
  if (!scanned.ok()) return scanned;
  if (!failure.ok()) return failure;
  for (const auto& [unused, dims_and_sum] : stocks) {
    const auto& [dims, sum] = dims_and_sum;
    if (sum.loans_outstanding <= 0) continue;
    for (ReportRow* into : {&row(dims), &report.total}) {
      into->loans_outstanding += sum.loans_outstanding;
      into->outstanding_fen += sum.outstanding_fen;
      into->overdue_principal_fen += sum.overdue_principal_fen;
      into->par30_fen += sum.par30_fen;
      into->par90_fen += sum.par90_fen;
    }
  }
  for (auto& [group, r] : rows) report.rows.push_back(std::move(r));
  return report;
}

absl::StatusOr<OverduePage> Ledger::Impl::ListOverdueLoans(const OverdueQuery& query) const {
  absl::StatusOr<Date> as_of = ParseDate(query.as_of, "as_of");
  if (!as_of.ok()) return as_of.status();
  // The list's order: most days past due first, then by loan id. A page starts after the
  // loan its token names in that order.
  auto before = [](int days_a, std::string_view loan_a, int days_b, std::string_view loan_b) {
    return days_a != days_b ? days_a > days_b : loan_a < loan_b;
  };
  int after_days = 0;
  std::string after_loan;
  if (!query.page_token.empty()) {
    const size_t slash = query.page_token.find('/');
    const std::string_view days =
        std::string_view(query.page_token).substr(0, std::min(slash, query.page_token.size()));
    const bool ok =
        slash != std::string::npos && !days.empty() && days.size() <= 6 &&
        std::all_of(days.begin(), days.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        IsLedgerId(std::string_view(query.page_token).substr(slash + 1), 'L');
    if (!ok) return PageTokenInvalid();
    after_days = std::stoi(std::string(days));
    after_loan = query.page_token.substr(slash + 1);
  }
  std::vector<OverdueLoan> overdue;
  absl::Status scanned =
      ForEachLoanDelinquency(*as_of, [&](const v1::LoanSummary& loan, const Delinquency& d) {
        if (d.overdue_installments == 0) return true;
        if (!query.page_token.empty() &&
            !before(after_days, after_loan, d.days_past_due, loan.loan_id()))
          return true;
        // The oldest unpaid installment's due date: what the follow-up visit is about.
        const Date oldest = as_of->PlusDays(-d.days_past_due);
        overdue.push_back(OverdueLoan{loan.loan_id(), loan.borrower_id(), loan.county(),
                                      d.days_past_due, d.bucket, d.overdue_principal_fen,
                                      d.outstanding_fen, oldest.ToString()});
        return true;
      });
  if (!scanned.ok()) return scanned;
  const size_t page_size = PageSize(query.page_size);
  OverduePage page;
  const size_t kept = std::min(page_size, overdue.size());
  std::partial_sort(overdue.begin(), overdue.begin() + static_cast<std::ptrdiff_t>(kept),
                    overdue.end(), [&](const OverdueLoan& a, const OverdueLoan& b) {
                      return before(a.days_past_due, a.loan_id, b.days_past_due, b.loan_id);
                    });
  if (overdue.size() > page_size) {
    page.next_page_token = Cat(overdue[kept - 1].days_past_due, "/", overdue[kept - 1].loan_id);
  }
  overdue.resize(kept);
  page.loans = std::move(overdue);
  return page;
}

Ledger::Ledger(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

// Shuts down here, with impl_ whole: the answers given while the ledger shuts down may call
// back into it (a fill reading a loan, a stream listing entries). ~Impl's Shutdown is then
// a no-op.
Ledger::~Ledger() { impl_->Shutdown(); }

absl::StatusOr<std::unique_ptr<Ledger>> Ledger::Open(const std::string& path,
                                                     LedgerOptions options) {
  if (options.queue_commands_max == 0 || options.batch_commands_max == 0) {
    return absl::InvalidArgumentError("queue_commands_max and batch_commands_max must be positive");
  }
  if (options.batch_read_threads > kBatchReadThreadsMax) {
    return absl::InvalidArgumentError(
        Cat("batch_read_threads must be at most ", kBatchReadThreadsMax));
  }
  if (!options.clock_us) options.clock_us = NowUnixMicros;
  if (!options.business_date_today) {
    options.business_date_today = [clock = options.clock_us] { return ShanghaiDateAt(clock()); };
  }
  absl::StatusOr<std::unique_ptr<Storage>> storage =
      Storage::Open(path, options, OpenMode::kReadWrite);
  if (!storage.ok()) return storage.status();
  // The Impl's read helpers, Start's threads, and the pipelined replay of a rebuild at
  // Start each start threads.
  std::unique_ptr<Impl> impl;
  try {
    impl = std::make_unique<Impl>(std::move(options), *std::move(storage));
    absl::Status started = impl->Start();
    if (!started.ok()) return started;
  } catch (const std::system_error& e) {
    return CannotStartThreads(e);
  }
  return std::unique_ptr<Ledger>(new Ledger(std::move(impl)));
}

void Ledger::Submit(Command command, CommandCallback done) {
  impl_->Submit(std::move(command), std::move(done));
}

CommandResult Ledger::SubmitAndWait(Command command) {
  std::promise<CommandResult> promise;
  std::future<CommandResult> future = promise.get_future();
  impl_->Submit(std::move(command),
                [&promise](CommandResult result) { promise.set_value(std::move(result)); });
  return future.get();
}

absl::StatusOr<v1::Entry> Ledger::GetEntry(uint64_t sequence) const {
  return impl_->GetEntry(sequence);
}

absl::StatusOr<std::vector<v1::Entry>> Ledger::ListEntries(uint64_t first_sequence,
                                                           size_t limit) const {
  return impl_->ListEntries(first_sequence, limit);
}

absl::StatusOr<Money> Ledger::GetBalance(std::string_view account) const {
  return impl_->GetBalance(account);
}

JournalHead Ledger::Head() const { return impl_->Head(); }

absl::StatusOr<v1::ProductState> Ledger::GetProduct(std::string_view id) const {
  return impl_->GetProduct(id);
}
absl::StatusOr<std::vector<v1::ProductState>> Ledger::ListProducts() const {
  return impl_->ListProducts();
}
absl::StatusOr<v1::BorrowerState> Ledger::GetBorrower(std::string_view id) const {
  return impl_->GetBorrower(id);
}
absl::StatusOr<BorrowerPage> Ledger::ListBorrowers(const BorrowerQuery& query) const {
  return impl_->ListBorrowers(query);
}
absl::StatusOr<v1::LoanState> Ledger::GetLoan(std::string_view id) const {
  return impl_->GetLoan(id);
}
absl::StatusOr<LoanPage> Ledger::ListLoans(const LoanQuery& query) const {
  return impl_->ListLoans(query);
}
absl::StatusOr<LoanStatement> Ledger::GetLoanStatement(std::string_view id,
                                                       std::string_view as_of) const {
  return impl_->GetLoanStatement(id, as_of);
}
absl::StatusOr<PortfolioFigures> Ledger::GetPortfolio(std::string_view as_of) const {
  return impl_->GetPortfolio(as_of);
}
absl::StatusOr<TreeHead> Ledger::GetTreeHead() const { return impl_->GetTreeHead(); }

absl::StatusOr<std::vector<std::string>> Ledger::GetInclusionProof(uint64_t index,
                                                                   uint64_t size) const {
  absl::Status valid = impl_->CheckTreeSize(size);
  if (!valid.ok()) return valid;
  if (index >= size) {
    return InvalidField("leaf_index", "BEYOND_TREE", Cat("must be below the tree size ", size));
  }
  return MerkleInclusionProof(impl_->Nodes(), index, size);
}

absl::StatusOr<std::vector<std::string>> Ledger::GetConsistencyProof(uint64_t old_size,
                                                                     uint64_t new_size) const {
  absl::Status valid = impl_->CheckTreeSize(new_size);
  if (!valid.ok()) return valid;
  if (old_size == 0 || old_size > new_size) {
    return InvalidField("old_size", "OUT_OF_RANGE", "must be between 1 and the new size");
  }
  return MerkleConsistencyProof(impl_->Nodes(), old_size, new_size);
}

absl::StatusOr<std::string> Ledger::GetTreeRoot(uint64_t size) const {
  absl::Status valid = impl_->CheckTreeSize(size);
  if (!valid.ok()) return valid;
  return MerkleRoot(impl_->Nodes(), size);
}

std::optional<absl::Status> Ledger::NotifyWhenBeyond(uint64_t sequence,
                                                     std::function<void(absl::Status)> done) {
  return impl_->NotifyWhenBeyond(sequence, std::move(done));
}

absl::StatusOr<ProgrammeReport> Ledger::GetProgrammeReport(const ReportQuery& query) const {
  return impl_->GetProgrammeReport(query);
}
absl::StatusOr<OverduePage> Ledger::ListOverdueLoans(const OverdueQuery& query) const {
  return impl_->ListOverdueLoans(query);
}
Date Ledger::Today() const { return impl_->Today(); }

absl::Status Ledger::WriterStatus() const { return impl_->WriterStatus(); }

absl::Status Ledger::VerifyJournal() const { return impl_->VerifyJournal(); }

absl::StatusOr<std::optional<ProjectionMismatch>> Ledger::CompareProjectionsWithRebuild() const {
  return impl_->CompareProjectionsWithRebuild();
}

bool Ledger::ProjectionsRebuiltOnOpen() const { return impl_->projections_rebuilt_on_open(); }

absl::StatusOr<std::optional<ProjectionMismatch>> Ledger::RebuildProjectionsIfDiffering() {
  absl::StatusOr<std::optional<ProjectionMismatch>> result;
  absl::Status ran = impl_->RunOnWriter([this, &result] {
    result = impl_->RebuildProjectionsOnWriter(/*only_if_differing=*/true);
    return result.status();
  });
  if (!ran.ok()) return ran;
  return result;
}

}  // namespace gongdai
