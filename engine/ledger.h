// The ledger: an append-only, hash-chained journal of entries on RocksDB, with the
// projections (account balances, indexes) derived from it by one pure function.
//
// A Ledger is the engine's only handle. Writes are commands: Submit queues one for the
// single writer thread, which validates a batch of commands against current state,
// writes one WriteBatch for the whole batch with sync = true, and only then answers
// each caller (group commit). Reads see only entries that are durable: a read whose answer
// names entries or shows their effect waits, if need be, for the ledger to publish as
// durable the batch that storage already shows (UNAVAILABLE after 5 s).
//
// Thread safety: every method may be called from any thread concurrently.
#ifndef GONGDAI_ENGINE_LEDGER_H_
#define GONGDAI_ENGINE_LEDGER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/money.h"
#include "engine/options.h"
#include "gongdai/v1/journal.pb.h"
#include "gongdai/v1/state.pb.h"

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
  // For an update that replaces a record's details whole (BorrowerUpdated, where it is
  // required): the record's version the new details were made from, the sequence of the
  // entry that last changed it. If the record has changed since, the command is refused
  // with ABORTED, reason BORROWER_CHANGED, so that a stale copy never overwrites a newer
  // one. Not part of the entry: it is a condition on the state, not a fact of the event.
  uint64_t expected_version = 0;
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
  // The loan as this entry left it, when the entry is about a loan; empty on a retry
  // (the loan may have moved on since the original entry).
  std::optional<v1::LoanState> loan = std::nullopt;
  // Likewise the borrower or the product, when the entry registers, changes or defines
  // one, as Apply wrote it (a later command in the batch may change it again before the
  // commit).
  std::optional<v1::BorrowerState> borrower = std::nullopt;
  std::optional<v1::ProductState> product = std::nullopt;
};

// Called exactly once per Submit: on the answering thread after the batch is durable, or
// on the submitting thread when the command is refused before queueing. It must not
// block; it may call Submit.
using CommandCallback = std::function<void(CommandResult)>;

struct JournalHead {
  uint64_t sequence = 0;  // 0 for an empty journal
  std::string hash;       // 32 bytes; 32 zero bytes for an empty journal
};

// The first difference between stored projections and a rebuild from the journal. The
// key and values may hold personal data (an ID number in the identity index, a borrower's
// projection) or a client's request id: show it through DescribeProjectionMismatch
// (below), never field by field.
struct ProjectionMismatch {
  std::string space;                   // "projections", "indexes" or "request_ids"
  std::string key;                     // printable form of the key
  std::optional<std::string> stored;   // the stored value's bytes; nullopt when absent
  std::optional<std::string> rebuilt;  // the rebuilt value's bytes; nullopt when absent
};

// "<space> key <key>: <how the values differ>", as an operator or an auditor is shown it:
// an ID number in the identity index masked as for roles that may not see it, a request
// id not shown, an account's balances compared, and any other value by its size and the
// first byte that differs, never by its content.
std::string DescribeProjectionMismatch(const ProjectionMismatch& mismatch);

// A loan's delinquency as of a date (engine/loan_math.h computes it).
struct Delinquency {
  int64_t outstanding_fen = 0;
  int64_t overdue_principal_fen = 0;
  int overdue_installments = 0;
  // From the due date of the oldest unpaid installment, once the loan is overdue (past
  // the product's grace days); grace does not shorten the count.
  int days_past_due = 0;
  std::string bucket = "current";  // current, 1-30, 31-60, 61-90, 91-180, 180+
};

inline constexpr size_t kPageSizeDefault = 50;
inline constexpr size_t kPageSizeMax = 500;

struct LoanQuery {
  // Each set filter must match. LOAN_STATUS_UNSPECIFIED matches every status.
  v1::LoanStatus status = v1::LOAN_STATUS_UNSPECIFIED;
  std::string borrower_id;
  std::string product_id;
  std::string county;
  // Disbursed on or after / on or before ("YYYY-MM-DD"); either may be empty.
  std::string disbursed_from;
  std::string disbursed_to;
  // 0 means kPageSizeDefault; at most kPageSizeMax.
  size_t page_size = 0;
  // From a previous page's next_page_token; empty for the first page.
  std::string page_token;
};

struct LoanPage {
  std::vector<v1::LoanState> loans;
  // Empty on the last page.
  std::string next_page_token;
};

struct BorrowerQuery {
  v1::TalentPoolStatus status = v1::TALENT_POOL_STATUS_UNSPECIFIED;
  std::string county;
  size_t page_size = 0;
  std::string page_token;
};

struct BorrowerPage {
  std::vector<v1::BorrowerState> borrowers;
  std::string next_page_token;
};

// One installment of a statement, as of its date.
struct InstallmentLine {
  v1::Installment installment;
  int64_t paid_fen = 0;
  int64_t unpaid_fen = 0;
  // "paid", "partly paid", "not due", "due" (within grace), "overdue", or, as of the loan's
  // write-off or later, "written off" for what it left unpaid.
  std::string state;
};

struct LoanStatement {
  v1::LoanState loan;
  std::string as_of;
  std::vector<InstallmentLine> installments;
  Delinquency delinquency;
  // Every entry about this loan, oldest first.
  std::vector<v1::Entry> entries;
};

// Portfolio figures as of a date, over every disbursed loan.
struct PortfolioFigures {
  std::string as_of;
  int64_t loans_outstanding = 0;
  int64_t outstanding_fen = 0;
  int64_t overdue_principal_fen = 0;
  // Outstanding principal of loans more than 30 / 90 days past due. PAR30 is
  // par30_fen / outstanding_fen.
  int64_t par30_fen = 0;
  int64_t par90_fen = 0;
  struct Bucket {
    std::string name;
    int64_t loans = 0;
    int64_t outstanding_fen = 0;
  };
  // current, 1-30, 31-60, 61-90, 91-180, 180+, in that order.
  std::vector<Bucket> aging;
};

enum class ReportDimension { kCounty, kCategory, kProduct, kFunding };

struct ReportQuery {
  // The period, both days included ("YYYY-MM-DD").
  std::string from;
  std::string to;
  // Rows are grouped by these, in this order; empty gives the total only.
  std::vector<ReportDimension> group_by;
};

struct ReportRow {
  // One value per group_by dimension: county name, category / funding enum name, product
  // (county, category and product empty in the row of subsidy settled with a bank).
  std::vector<std::string> group;
  // Flows within the period.
  v1::ReportCounters flows;
  // Stocks at the end of the period.
  int64_t loans_outstanding = 0;
  int64_t outstanding_fen = 0;
  int64_t overdue_principal_fen = 0;
  int64_t par30_fen = 0;
  int64_t par90_fen = 0;
};

struct ProgrammeReport {
  std::string from;
  std::string to;
  std::vector<ReportRow> rows;  // sorted by group
  ReportRow total;
};

struct OverdueLoan {
  std::string loan_id;
  std::string borrower_id;
  std::string county;
  int days_past_due = 0;
  std::string bucket;
  int64_t overdue_principal_fen = 0;
  int64_t outstanding_fen = 0;
  std::string oldest_unpaid_due_date;
};

struct OverdueQuery {
  std::string as_of;
  // 0 for the default of 50; at most 500. Pages follow the order of the list: a page
  // token is "<days past due>/<loan id>" of the last loan of the page before.
  size_t page_size = 0;
  std::string page_token;
};

struct OverduePage {
  std::vector<OverdueLoan> loans;
  // Empty on the last page.
  std::string next_page_token;
};

// The Merkle tree over the journal (engine/merkle.h): leaf i is entry i+1.
struct TreeHead {
  uint64_t size = 0;
  std::string root;  // 32 bytes
};

class Ledger {
 public:
  // Opens (or creates) the ledger at `path`. Opening reads the chain head and checks it
  // against the last journal entry; it does not replay the journal. RESOURCE_EXHAUSTED
  // when the system will not start the ledger's threads.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Ledger>> Open(const std::string& path,
                                                                    LedgerOptions options);

  // Answers every queued command, stops the writer, ends every wait for more entries still
  // waiting (NotifyWhenBeyond: LEDGER_CLOSING) and closes the database.
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

  // Up to `limit` (at most kListEntriesMax) durable entries from `first_sequence` on, in
  // order without a gap: DATA_LOSS naming a durable entry that is missing, as GetEntry for
  // one that does not match its hash.
  static constexpr size_t kListEntriesMax = 1000;
  [[nodiscard]] absl::StatusOr<std::vector<v1::Entry>> ListEntries(uint64_t first_sequence,
                                                                   size_t limit) const;

  // The balance (debits minus credits) of `account`; zero for an account never posted.
  [[nodiscard]] absl::StatusOr<Money> GetBalance(std::string_view account) const;

  // The durable chain head.
  JournalHead Head() const;

  // The Merkle tree head of the durable journal (DATA_LOSS if the stored tree holds more
  // leaves than the journal has entries).
  [[nodiscard]] absl::StatusOr<TreeHead> GetTreeHead() const;
  // RFC 6962 inclusion proof of leaf `index` (entry index+1) in the tree of `size` leaves,
  // and consistency proof between sizes; sizes must not exceed the durable tree.
  [[nodiscard]] absl::StatusOr<std::vector<std::string>> GetInclusionProof(uint64_t index,
                                                                           uint64_t size) const;
  [[nodiscard]] absl::StatusOr<std::vector<std::string>> GetConsistencyProof(
      uint64_t old_size, uint64_t new_size) const;
  // The root of the tree of `size` leaves (size <= the durable tree).
  [[nodiscard]] absl::StatusOr<std::string> GetTreeRoot(uint64_t size) const;

  // A wait for the journal to go beyond `sequence`. When the answer is known at once it is
  // returned and `done` is never called: OK when the journal already is beyond, UNAVAILABLE
  // with reason LEDGER_CLOSING when the ledger is closing. Otherwise nullopt, and `done` is
  // called once, later: with OK on the committing thread after the batch that takes the
  // journal beyond `sequence` is durable, or with LEDGER_CLOSING on the thread closing the
  // ledger. `done` must not block.
  [[nodiscard]] std::optional<absl::Status> NotifyWhenBeyond(
      uint64_t sequence, std::function<void(absl::Status)> done);

  // The loan programme. NOT_FOUND (reason PRODUCT_NOT_FOUND, BORROWER_NOT_FOUND,
  // LOAN_NOT_FOUND) for an unknown id; INVALID_ARGUMENT for a bad query or page token.
  [[nodiscard]] absl::StatusOr<v1::ProductState> GetProduct(std::string_view product_id) const;
  // Every product (a programme has a handful; at most kPageSizeMax are returned).
  [[nodiscard]] absl::StatusOr<std::vector<v1::ProductState>> ListProducts() const;
  [[nodiscard]] absl::StatusOr<v1::BorrowerState> GetBorrower(std::string_view borrower_id) const;
  [[nodiscard]] absl::StatusOr<BorrowerPage> ListBorrowers(const BorrowerQuery& query) const;
  [[nodiscard]] absl::StatusOr<v1::LoanState> GetLoan(std::string_view loan_id) const;
  [[nodiscard]] absl::StatusOr<LoanPage> ListLoans(const LoanQuery& query) const;
  // The schedule with what is paid and overdue as of `as_of` ("YYYY-MM-DD"), the
  // loan's delinquency then, and its entries. The loan is the result of exactly the
  // entries listed, also while entries on it are being written, and none lies past the
  // durable head. ABORTED (reason LOAN_CHANGING) when new entries on the loan kept
  // arriving while it was read: retry.
  [[nodiscard]] absl::StatusOr<LoanStatement> GetLoanStatement(std::string_view loan_id,
                                                               std::string_view as_of) const;
  [[nodiscard]] absl::StatusOr<PortfolioFigures> GetPortfolio(std::string_view as_of) const;
  // The programme report: flows summed from the per-day report counters, stocks as of
  // the period's end summed from the per-day running changes that apply keeps
  // (docs/journal-format.md, `k/`).
  [[nodiscard]] absl::StatusOr<ProgrammeReport> GetProgrammeReport(const ReportQuery& query) const;
  // Loans overdue as of `query.as_of`, most days past due first (then by loan id), for
  // follow-up visits, a page at a time.
  [[nodiscard]] absl::StatusOr<OverduePage> ListOverdueLoans(const OverdueQuery& query) const;
  // Today's business date, as the writer sees it.
  Date Today() const;

  // OK while writes are accepted; after a failed write or fsync, the error that stopped
  // the writer (every later write is refused with UNAVAILABLE; reads go on).
  absl::Status WriterStatus() const;

  // Walks the whole journal: sequence continuity, every entry's hash and link to its
  // predecessor, balanced postings, and the stored head. Memory stays constant. Returns
  // DATA_LOSS naming the first bad entry. Like CompareProjectionsWithRebuild, it reads at a
  // registered RocksDB snapshot, whose release on a live ledger sets RocksDB rewriting the
  // bottommost files it has not yet rewritten (engine/storage.h): for audits and tests,
  // not for a serving path.
  [[nodiscard]] absl::Status VerifyJournal() const;

  // Replays the journal through apply into memory and compares with what is stored, at
  // one consistent snapshot. nullopt when they are byte-identical.
  [[nodiscard]] absl::StatusOr<std::optional<ProjectionMismatch>> CompareProjectionsWithRebuild()
      const;

  // One replay of the journal on the writer thread (writes wait meanwhile), compared with
  // the stored derived state. Only when they differ is the replay written: every stored
  // projection, index and request id replaced with it, in one synced WriteBatch. Returns
  // the first difference (what was put right), nullopt when nothing was written.
  [[nodiscard]] absl::StatusOr<std::optional<ProjectionMismatch>> RebuildProjectionsIfDiffering();

  // True when Open found derived state written by an engine whose apply differed (its
  // projections version, kept in meta) and rebuilt it from the journal.
  bool ProjectionsRebuiltOnOpen() const;

  class Impl;

 private:
  explicit Ledger(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_LEDGER_H_
