#include "client/audit/audit.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include "engine/checkpoint.h"
#include "engine/date.h"
#include "engine/journal_format.h"
#include "engine/loan_math.h"
#include "engine/merkle.h"
#include "engine/personal_data.h"
#include "engine/pipeline.h"
#include "engine/replay.h"
#include "engine/sha256.h"
#include "engine/strings.h"
#include "gongdai/v1/ledger_service.grpc.pb.h"

namespace gongdai::audit {
namespace {

struct Options {
  std::string db;
  std::string export_file;
  std::string server;
  std::string token_file;
  std::string as = "auditor";
  std::string ca_file;
  std::string tls_server_name;
  std::string public_key;
  std::string checkpoint_file;
  std::string previous_checkpoint_file;
  // verify --db: check the journal and its replay, but not the copy's derived state.
  bool journal_only = false;
};

// A fault found in what was checked: exit 1. Anything else that stops the run is a
// problem with the source or the flags.
struct Outcome {
  int code = kExitOk;
  std::string message;
};

Outcome Fault(std::string message) { return {kExitFailed, std::move(message)}; }
Outcome Trouble(int code, std::string message) { return {code, std::move(message)}; }
std::string Message(const absl::Status& s) {
  return std::string(s.message().data(), s.message().size());
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(Cat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A file written beside its destination and moved over it only once complete, so that a
// failed or refused command leaves what was there (an export given as its own source, an
// earlier export) as it was.
class ReplacingFile {
 public:
  // A symbolic link's target is replaced; a destination that is not a regular file (a
  // pipe, /dev/stdout) is written directly.
  explicit ReplacingFile(const std::string& path) {
    std::error_code unknown;
    const std::filesystem::file_status status = std::filesystem::status(path, unknown);
    direct_ = std::filesystem::exists(status) && !std::filesystem::is_regular_file(status);
    path_ =
        std::filesystem::exists(status) ? std::filesystem::canonical(path, unknown).string() : path;
    if (path_.empty()) path_ = path;
    mode_ =
        std::filesystem::exists(status) ? status.permissions() : std::filesystem::perms::unknown;
    partial_ = direct_ ? path_ : Cat(path_, ".partial-", ::getpid());
  }
  ReplacingFile(const ReplacingFile&) = delete;
  ReplacingFile& operator=(const ReplacingFile&) = delete;
  ~ReplacingFile() {
    if (stream_.is_open()) stream_.close();
    if (!committed_ && !direct_) std::filesystem::remove(partial_, ignored_);
  }
  // False when the file cannot be created. It keeps the permissions of the file it
  // replaces (an auditor's export of personal data may be owner-only).
  bool Open(std::ios::openmode mode = std::ios::out) {
    stream_.open(partial_, mode | std::ios::trunc);
    if (stream_.is_open() && !direct_ && mode_ != std::filesystem::perms::unknown)
      std::filesystem::permissions(partial_, mode_, ignored_);
    return stream_.is_open();
  }
  bool is_open() const { return stream_.is_open(); }
  std::ofstream& stream() { return stream_; }
  // Closes the file and moves it over the destination; false, with the destination left
  // as it was, when any write failed.
  bool Commit() {
    stream_.close();
    if (stream_.fail()) return false;
    if (direct_) return committed_ = true;
    std::filesystem::rename(partial_, path_, ignored_);
    committed_ = !ignored_;
    return committed_;
  }

 private:
  std::string path_;
  std::string partial_;
  bool direct_ = false;
  std::filesystem::perms mode_ = std::filesystem::perms::unknown;
  std::ofstream stream_;
  std::error_code ignored_;
  bool committed_ = false;
};

std::string Yuan(int64_t fen) {
  std::string plain = Money::FromFen(fen).ToString();
  const bool negative = plain.starts_with('-');
  if (negative) plain.erase(0, 1);
  const size_t dot = plain.find('.');
  std::string out;
  for (size_t i = 0; i < dot; ++i) {
    if (i > 0 && (dot - i) % 3 == 0) out += ',';
    out += plain[i];
  }
  return (negative ? "-" : "") + out + plain.substr(dot);
}

// ---- The live server ----------------------------------------------------------------

absl::StatusOr<std::string> LoadToken(const Options& o) {
  std::string path = o.token_file;
  if (path.empty()) path = "gongdai-data/dev-tokens.toml";
  absl::StatusOr<std::string> text = ReadText(path);
  if (!text.ok())
    return absl::InvalidArgumentError(
        Cat("no token: give --token-file (", Message(text.status()), ")"));
  try {
    toml::table table = toml::parse(*text);
    if (const toml::table* tokens = table.get_as<toml::table>("tokens")) {
      if (const toml::node* token = tokens->get(o.as)) return token->value_or(std::string());
      return absl::InvalidArgumentError(Cat(path, " has no token for \"", o.as, "\""));
    }
  } catch (const toml::parse_error&) {
    // Not TOML: the file holds the token alone.
  }
  std::string token = *text;
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
    token.pop_back();
  return token;
}

class Server {
 public:
  static absl::StatusOr<Server> Connect(const Options& o) {
    absl::StatusOr<std::string> token = LoadToken(o);
    if (!token.ok()) return token.status();
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    if (!o.ca_file.empty()) {
      absl::StatusOr<std::string> ca = ReadText(o.ca_file);
      if (!ca.ok()) return ca.status();
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = *ca;
      credentials = grpc::SslCredentials(ssl);
      if (!o.tls_server_name.empty()) args.SetSslTargetNameOverride(o.tls_server_name);
    }
    Server server;
    server.token_ = *token;
    server.stub_ = v1::LoanLedger::NewStub(grpc::CreateCustomChannel(o.server, credentials, args));
    return server;
  }
  std::unique_ptr<grpc::ClientContext> Context() const {
    auto context = std::make_unique<grpc::ClientContext>();
    context->AddMetadata("authorization", "Bearer " + token_);
    return context;
  }
  v1::LoanLedger::Stub& stub() { return *stub_; }

 private:
  std::string token_;
  std::unique_ptr<v1::LoanLedger::Stub> stub_;
};

Outcome FromRpc(const grpc::Status& status, std::string_view what) {
  const std::string text = Cat(what, ": ", status.error_message());
  switch (status.error_code()) {
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return Trouble(kExitAuth, text);
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Trouble(kExitUnreachable, text);
    default:
      return Trouble(kExitUsage, text);
  }
}

// ---- Sources ------------------------------------------------------------------------

// PERMISSION_DENIED for an entry whose personal data a server masked (for a role it does
// not give entries as stored): no hash matches it, and checking it would report tampering
// where there is none. ForEachEntry exits 4 for a server, 2 for an export.
absl::Status RefuseMasked(const v1::Entry& entry, const Options& o) {
  if (!HoldsMaskedPersonalData(entry)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      Cat("entry ", entry.sequence(), " has its personal data masked, which no hash matches: ",
          o.server.empty()
              ? "the export was taken with a role that is not given entries as stored; take it "
                "with an auditor's token"
              : "the server gives entries as stored, for their hashes to be checked, only to the "
                "auditor, officer, approver, supervisor and admin roles; use an auditor's token"));
}

// Feeds every entry of the chosen source, in order, to `visit` (entries opened from their
// stored bytes, on a second thread, for a database copy; parsed entries otherwise).
struct Item {
  const v1::Entry* parsed = nullptr;    // from an export or a server
  const OpenedEntry* opened = nullptr;  // from a database copy
  uint64_t key = 0;
};

// The entry of an item, or why its stored bytes could not be opened.
absl::StatusOr<v1::Entry> EntryOf(const Item& item) {
  if (item.parsed != nullptr) return *item.parsed;
  if (!item.opened->status.ok()) return item.opened->status;
  return item.opened->entry;
}

// A copy that cannot be opened: damage the ledger would also refuse (a journal without
// its format marker) is a fault; anything else, an unreadable source.
Outcome CannotOpen(const absl::Status& status) {
  return status.code() == absl::StatusCode::kDataLoss ? Fault(Message(status))
                                                      : Trouble(kExitUsage, Message(status));
}

// The server's checkpoint did not verify: a malformed --public-key is the auditor's flag,
// anything else the checkpoint's fault.
Outcome ServerCheckpointRefused(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kInvalidArgument)
    return Trouble(kExitUsage, Cat("--public-key: ", Message(status)));
  return Fault(Cat("the server's checkpoint: ", Message(status)));
}

// `opened`, when given, is the --db copy already open, read at its snapshot instead of
// opening it again.
Outcome ForEachEntry(const Options& o, const std::function<absl::Status(const Item&)>& visit,
                     uint64_t start_sequence = 1, const DatabaseCopy* opened = nullptr) {
  int sources = !o.db.empty() + !o.export_file.empty() + !o.server.empty();
  if (sources != 1)
    return Trouble(kExitUsage,
                   "give exactly one source: --db DIR, --export FILE or --server ADDRESS");
  if (!o.db.empty()) {
    std::unique_ptr<DatabaseCopy> own;
    if (opened == nullptr) {
      absl::StatusOr<std::unique_ptr<DatabaseCopy>> copy = DatabaseCopy::Open(o.db);
      if (!copy.ok()) return CannotOpen(copy.status());
      own = *std::move(copy);
      opened = own.get();
    }
    absl::Status visited = opened->ForEachOpenedEntry([&](const OpenedEntry& entry) {
      return visit(Item{nullptr, &entry, entry.key_sequence});
    });
    if (!visited.ok()) return Fault(Message(visited));
    return {};
  }
  if (!o.export_file.empty()) {
    std::error_code unknown;
    if (std::filesystem::is_directory(o.export_file, unknown))
      return Trouble(kExitUsage, Cat("cannot read ", o.export_file, ": a directory"));
    std::ifstream in(o.export_file);
    if (!in) return Trouble(kExitUsage, Cat("cannot read ", o.export_file));
    // Parsing JSON is most of the work: a second thread reads the lines, and the two
    // threads share the parsing (RunPipelined's `finish`).
    struct ExportText {
      uint64_t number = 0;  // the line's number in the file
      std::string text;
      bool valid = false;  // `text` parsed as an export line, into `line`
      v1::ExportLine line;
    };
    absl::Status visited = RunPipelined<ExportText>(
        [&](PipelineFeed<ExportText>& feed) {
          pthread_setname_np(pthread_self(), "export-reader");
          uint64_t number = 0;
          while (true) {
            ExportText& slot = feed.Slot();
            if (!std::getline(in, slot.text)) break;
            ++number;
            if (slot.text.empty()) continue;
            slot.number = number;
            if (!feed.Filled()) break;
          }
          return absl::OkStatus();
        },
        [&](const ExportText& slot) {
          if (!slot.valid) {
            return absl::DataLossError(
                Cat("line ", slot.number, " of ", o.export_file, " is not an export line"));
          }
          // The hex copies of the hashes are what a reader of the file sees: they must be
          // the entry's own.
          const v1::Entry& entry = slot.line.entry();
          if (slot.line.hash() != ToHex(entry.hash()) ||
              slot.line.previous_hash() != ToHex(entry.previous_hash())) {
            return absl::DataLossError(
                Cat("entry ", entry.sequence(), " (line ", slot.number, "): field ",
                    slot.line.hash() != ToHex(entry.hash()) ? "hash" : "previous_hash",
                    ": the hex copy differs from the entry's"));
          }
          return visit(Item{&slot.line.entry(), nullptr, slot.line.entry().sequence()});
        },
        [](ExportText& slot) {
          slot.line.Clear();
          slot.valid = google::protobuf::util::JsonStringToMessage(slot.text, &slot.line).ok();
        });
    if (visited.code() == absl::StatusCode::kPermissionDenied)
      return Trouble(kExitUsage, Message(visited));  // an export taken with masked entries
    if (!visited.ok()) return Fault(Message(visited));
    return {};
  }
  absl::StatusOr<Server> server = Server::Connect(o);
  if (!server.ok()) return Trouble(kExitUsage, Message(server.status()));
  v1::StreamEntriesRequest request;
  request.set_start_sequence(start_sequence);
  auto context = server->Context();
  std::unique_ptr<grpc::ClientReader<v1::Entry>> reader =
      server->stub().StreamEntries(context.get(), request);
  v1::Entry entry;
  absl::Status visited;
  while (visited.ok() && reader->Read(&entry))
    visited = visit(Item{&entry, nullptr, entry.sequence()});
  if (!visited.ok()) {
    context->TryCancel();
    reader->Finish().IgnoreError();
    if (visited.code() == absl::StatusCode::kPermissionDenied)
      return Trouble(kExitAuth, Message(visited));  // entries masked for the token's role
    return Fault(Message(visited));
  }
  grpc::Status finished = reader->Finish();
  if (!finished.ok()) return FromRpc(finished, "streaming the journal");
  return {};
}

// ---- Checkpoints ----------------------------------------------------------------------

absl::StatusOr<std::optional<Checkpoint>> LoadCheckpoint(const std::string& path,
                                                         const Options& o) {
  if (path.empty()) return std::nullopt;
  if (o.public_key.empty())
    return absl::InvalidArgumentError("a checkpoint needs --public-key to check it");
  absl::StatusOr<std::string> note = ReadText(path);
  if (!note.ok()) return note.status();
  absl::StatusOr<Checkpoint> checkpoint = VerifyCheckpoint(*note, o.public_key);
  if (!checkpoint.ok()) {
    // A malformed --public-key is the auditor's flag, not the checkpoint's fault.
    if (checkpoint.status().code() == absl::StatusCode::kInvalidArgument)
      return absl::InvalidArgumentError(Cat("--public-key: ", Message(checkpoint.status())));
    return absl::DataLossError(Cat(path, ": ", Message(checkpoint.status())));
  }
  return *checkpoint;
}

// ---- Commands -------------------------------------------------------------------------

struct Progress {
  bool terminal = ::isatty(STDERR_FILENO) == 1;
  void Tick(uint64_t n, std::ostream& err) const {
    if (terminal && n % 10'000 == 0) err << "\rverified " << n << " entries" << std::flush;
  }
  void Done(std::ostream& err) const {
    if (terminal) err << "\r" << std::string(40, ' ') << "\r" << std::flush;
  }
};

Outcome CompareBalances(Server& server, const Replayer& replay, std::ostream&) {
  for (const auto& [account, fen] : replay.Balances()) {
    v1::GetAccountBalanceRequest request;
    request.set_account(account);
    v1::AccountBalance balance;
    auto context = server.Context();
    grpc::Status got = server.stub().GetAccountBalance(context.get(), request, &balance);
    if (!got.ok()) return FromRpc(got, Cat("reading account ", account));
    if (balance.balance() != Money::FromFen(fen).ToString()) {
      return Fault(Cat("account ", account, ": the server says ", balance.balance(),
                       ", the replay gives ", Money::FromFen(fen).ToString()));
    }
  }
  return {};
}

Outcome Verify(const Options& o, std::ostream& out, std::ostream& err) {
  // With no source at all, the source is what is missing (ForEachEntry says so).
  if (o.journal_only && o.db.empty() && (!o.export_file.empty() || !o.server.empty())) {
    return Trouble(kExitUsage,
                   "--journal-only goes with --db: an export or a server holds no projections "
                   "to compare");
  }
  absl::StatusOr<std::optional<Checkpoint>> checkpoint = LoadCheckpoint(o.checkpoint_file, o);
  if (!checkpoint.ok()) {
    return checkpoint.status().code() == absl::StatusCode::kDataLoss
               ? Fault(Message(checkpoint.status()))
               : Trouble(kExitUsage, Message(checkpoint.status()));
  }
  absl::StatusOr<std::optional<Checkpoint>> previous =
      LoadCheckpoint(o.previous_checkpoint_file, o);
  if (!previous.ok()) {
    return previous.status().code() == absl::StatusCode::kDataLoss
               ? Fault(Message(previous.status()))
               : Trouble(kExitUsage, Message(previous.status()));
  }
  if (!o.server.empty() && !checkpoint->has_value()) {
    // Against a live server, its latest checkpoint, checked with the auditor's own key.
    if (o.public_key.empty()) return Trouble(kExitUsage, "verifying a server needs --public-key");
    absl::StatusOr<Server> server = Server::Connect(o);
    if (!server.ok()) return Trouble(kExitUsage, Message(server.status()));
    v1::SignedCheckpoint signed_checkpoint;
    auto context = server->Context();
    grpc::Status got =
        server->stub().GetCheckpoint(context.get(), v1::GetCheckpointRequest(), &signed_checkpoint);
    if (!got.ok()) return FromRpc(got, "fetching the checkpoint");
    absl::StatusOr<Checkpoint> verified = VerifyCheckpoint(signed_checkpoint.note(), o.public_key);
    if (!verified.ok()) return ServerCheckpointRefused(verified.status());
    *checkpoint = *verified;
  }
  if (checkpoint->has_value() && previous->has_value() && (*previous)->size > (*checkpoint)->size) {
    return Trouble(kExitUsage, "the previous checkpoint is larger than the checkpoint");
  }

  // Only a database copy holds the indexes, request ids and tree nodes to compare with.
  bool compare_projections = !o.db.empty() && !o.journal_only;
  // Derived state written by an earlier engine differs from this one's replay by design;
  // a ledger rebuilds it from the journal before it reads any (clears it, with no
  // entries), which would also undo an edit of it. It is reported, not compared, and the
  // replay need not keep what only the comparison reads. A version no gongdai wrote is a
  // fault: it would hide the derived state from the comparison.
  std::string earlier_projections;  // the copy's derived-state version, when earlier
  // A --db copy is opened once: its version, entries, head and derived state are all read
  // at the one snapshot (each open of a copy also replays its unflushed log again).
  std::unique_ptr<DatabaseCopy> copy;
  if (!o.db.empty() && o.export_file.empty() && o.server.empty()) {
    absl::StatusOr<std::unique_ptr<DatabaseCopy>> opened = DatabaseCopy::Open(o.db);
    if (!opened.ok()) return CannotOpen(opened.status());
    copy = *std::move(opened);
  }
  if (compare_projections && copy != nullptr) {
    absl::StatusOr<std::optional<std::string>> version = copy->ProjectionsVersion();
    if (!version.ok()) return Fault(Message(version.status()));
    if (*version != std::optional<std::string>(kProjectionsVersion)) {
      const std::string named = Printable(version->value_or(""));
      if (!named.empty() && !IsEarlierProjectionsVersion(**version)) {
        return Fault(Cat("meta key projections: the copy's derived state names version \"", named,
                         "\", which no version of gongdai up to ", kProjectionsVersion, " wrote"));
      }
      compare_projections = false;
      earlier_projections = named.empty() ? "none recorded" : named;
    }
  }
  Replayer replay(compare_projections ? ReplayKeeps::kEverything : ReplayKeeps::kWhatApplyReads);
  Progress progress;
  std::optional<std::string> root_at_checkpoint, root_at_previous;
  if (checkpoint->has_value() && (*checkpoint)->size == 0) root_at_checkpoint = MerkleEmptyRoot();
  if (previous->has_value() && (*previous)->size == 0) root_at_previous = MerkleEmptyRoot();
  Outcome read = ForEachEntry(
      o,
      [&](const Item& item) -> absl::Status {
        if (item.parsed != nullptr) {
          absl::Status stored = RefuseMasked(*item.parsed, o);
          if (!stored.ok()) return stored;
        }
        absl::Status added = item.parsed != nullptr ? replay.AddParsed(*item.parsed)
                                                    : replay.AddOpened(*item.opened);
        if (!added.ok()) return added;
        if (checkpoint->has_value() && replay.size() == (*checkpoint)->size)
          root_at_checkpoint = replay.root();
        if (previous->has_value() && replay.size() == (*previous)->size)
          root_at_previous = replay.root();
        progress.Tick(replay.size(), err);
        return absl::OkStatus();
      },
      1, copy.get());
  progress.Done(err);
  if (read.code != kExitOk) return read;

  if (copy != nullptr) {
    absl::StatusOr<v1::JournalHead> stored_head = copy->Head();
    if (!stored_head.ok()) return Fault(Message(stored_head.status()));
    const uint64_t head = stored_head->sequence();
    if (head != replay.size()) {
      return Fault(head > replay.size()
                       ? Cat("entry ", replay.size() + 1, ": missing (the chain head names entry ",
                             head, " but the journal ends at entry ", replay.size(), ")")
                   : head == 0 ? Cat("meta key head: missing, but the journal holds ",
                                     replay.size(), " entries")
                               : Cat("entry ", head + 1, ": beyond the chain head (", head, ")"));
    }
    // A ledger refuses to open a copy whose head disagrees with its last entry.
    if (head > 0 && stored_head->hash() != replay.last_hash()) {
      return Fault(Cat("meta key head: names entry ", head, " with hash ",
                       ToHex(stored_head->hash()), ", but entry ", head, " has hash ",
                       ToHex(replay.last_hash())));
    }
    if (compare_projections) {
      absl::StatusOr<std::optional<ProjectionMismatch>> mismatch = copy->CompareWith(replay);
      if (!mismatch.ok()) return Fault(Message(mismatch.status()));
      if (mismatch->has_value()) {
        return Fault(DescribeProjectionMismatch(**mismatch));
      }
    }
  }
  bool balances_compared = false;
  if (!o.server.empty()) {
    // The server's own answers must agree with the replay. A ledger in use moves on while
    // it is read: catch up until the server's tree is the replay's, then compare.
    absl::StatusOr<Server> server = Server::Connect(o);
    if (!server.ok()) return Trouble(kExitUsage, Message(server.status()));
    for (int attempt = 0; attempt < 5 && !balances_compared; ++attempt) {
      v1::SignedCheckpoint now;
      auto context = server->Context();
      grpc::Status got =
          server->stub().GetCheckpoint(context.get(), v1::GetCheckpointRequest(), &now);
      if (!got.ok()) return FromRpc(got, "fetching the checkpoint");
      if (now.tree_size() > replay.size()) {
        Outcome more = ForEachEntry(
            o,
            [&](const Item& item) -> absl::Status {
              absl::Status stored = RefuseMasked(*item.parsed, o);
              if (!stored.ok()) return stored;
              absl::Status added = replay.AddParsed(*item.parsed);
              if (!added.ok()) return added;
              if (checkpoint->has_value() && replay.size() == (*checkpoint)->size)
                root_at_checkpoint = replay.root();
              return absl::OkStatus();
            },
            replay.size() + 1);
        if (more.code != kExitOk) return more;
        continue;
      }
      Outcome compared = CompareBalances(*server, replay, err);
      if (compared.code == kExitFailed) {
        v1::SignedCheckpoint after;
        auto again = server->Context();
        if (server->stub().GetCheckpoint(again.get(), v1::GetCheckpointRequest(), &after).ok() &&
            after.tree_size() == replay.size()) {
          return compared;  // nothing moved: a real difference
        }
        balances_compared = false;
        continue;
      }
      if (compared.code != kExitOk) return compared;
      balances_compared = true;
    }
  }
  if (checkpoint->has_value()) {
    const Checkpoint& c = **checkpoint;
    if (!root_at_checkpoint.has_value()) {
      return Fault(Cat("entry ", replay.size() + 1, ": missing (the checkpoint covers ", c.size,
                       " entries; the source has ", replay.size(), ")"));
    }
    if (*root_at_checkpoint != c.root) {
      return Fault(Cat("the tree of the first ", c.size, " entries has root ",
                       ToHex(*root_at_checkpoint), "; the signed checkpoint says ", ToHex(c.root)));
    }
  }
  if (previous->has_value()) {
    if (!root_at_previous.has_value() || *root_at_previous != (*previous)->root) {
      return Fault(Cat("the journal is not consistent with the earlier checkpoint of ",
                       (*previous)->size, " entries: its first ", (*previous)->size,
                       " entries have another root"));
    }
  }

  int64_t disbursed = 0, outstanding = 0;
  std::map<std::string, int> by_status;
  for (const v1::LoanState& loan : replay.Loans()) {
    ++by_status[v1::LoanStatus_Name(loan.position().status()).substr(12)];
    if (!loan.position().disbursed_date().empty()) disbursed += loan.amount_fen();
    outstanding += loan.position().principal_outstanding_fen();
  }
  out << "verified " << replay.size()
      << " entries: hashes, sequence, chain links, balanced postings, replay\n";
  out << "tree root " << ToHex(replay.root()) << "\n";
  if (checkpoint->has_value()) {
    out << "checkpoint: signature good, root of the first " << (*checkpoint)->size
        << " entries matches\n";
  }
  if (previous->has_value())
    out << "consistent with the earlier checkpoint of " << (*previous)->size << " entries\n";
  if (compare_projections) {
    out << "every stored projection, index and request id equals the replay\n";
  } else if (!earlier_projections.empty()) {
    out << "the copy's projections, indexes and request ids not compared: written by an "
           "earlier version ("
        << earlier_projections << ", this one writes " << kProjectionsVersion
        << "); a ledger rebuilds them from the journal when it opens\n";
  } else if (!o.db.empty()) {
    out << "the copy's projections, indexes and request ids not compared (--journal-only)\n";
  }
  if (balances_compared) out << "every account balance the server reports equals the replay\n";
  if (!o.server.empty() && !balances_compared) {
    out << "the ledger kept moving: balances not compared (entries and checkpoint verified)\n";
  }
  out << "loans: " << replay.Loans().size();
  for (const auto& [status, count] : by_status) out << ", " << count << " " << status;
  out << "\ndisbursed " << Yuan(disbursed) << ", principal outstanding " << Yuan(outstanding)
      << ", union fund cash " << Yuan(static_cast<int64_t>(replay.Balance("union:fund:cash").fen()))
      << "\n";
  return {};
}

std::string CsvField(std::string_view text) {
  if (text.find_first_of(",\"\n") == std::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

Outcome Export(const Options& o, const std::string& jsonl, const std::string& csv,
               std::ostream& out) {
  if (jsonl.empty() && csv.empty())
    return Trouble(kExitUsage, "give --jsonl FILE and/or --csv FILE");
  ReplacingFile json_file(jsonl), csv_file(csv);
  if (!jsonl.empty() && !json_file.Open()) return Trouble(kExitUsage, Cat("cannot write ", jsonl));
  if (!csv.empty()) {
    if (!csv_file.Open(std::ios::binary)) return Trouble(kExitUsage, Cat("cannot write ", csv));
    // UTF-8 with a byte-order mark, so a spreadsheet shows Chinese names.
    csv_file.stream() << "\xef\xbb\xbf"
                      << "seq,date,actor,role,event,loan,account,debit,credit\r\n";
  }
  std::ofstream& json_out = json_file.stream();
  std::ofstream& csv_out = csv_file.stream();
  // An entry's JSON line and CSV rows.
  auto format = [&](const v1::Entry& entry, std::string& json, std::string& rows) {
    json.clear();
    rows.clear();
    if (json_out.is_open()) {
      v1::ExportLine line;
      *line.mutable_entry() = entry;
      line.set_hash(ToHex(entry.hash()));
      line.set_previous_hash(ToHex(entry.previous_hash()));
      google::protobuf::util::JsonPrintOptions options;
      options.preserve_proto_field_names = true;
      if (!google::protobuf::util::MessageToJsonString(line, &json, options).ok()) {
        return absl::InternalError("cannot write JSON");
      }
      json += "\n";
    }
    if (csv_out.is_open()) {
      const std::string kind = EventKindName(entry.event());
      const std::string loan = LoanIdOfEvent(entry.event());
      for (const v1::Posting& p : entry.postings()) {
        const std::string amount = Money::FromFen(p.amount_fen()).ToString();
        const bool debit = p.side() == v1::POSTING_SIDE_DEBIT;
        rows += Cat(entry.sequence(), ",", entry.business_date(), ",",
                    CsvField(entry.actor().principal_id()), ",", entry.actor().role(), ",", kind,
                    ",", loan, ",", CsvField(p.account()), ",", debit ? amount : "", ",",
                    debit ? "" : amount, "\r\n");
      }
    }
    return absl::OkStatus();
  };
  // Formatting is most of the work: a second thread gathers the entries from the source,
  // and the two threads share the formatting (RunPipelined's `finish`).
  struct Formatted {
    absl::Status status;  // why the entry could not be opened or formatted
    v1::Entry entry;
    std::string json;
    std::string rows;
  };
  uint64_t count = 0;
  Outcome read;
  absl::Status written = RunPipelined<Formatted>(
      [&](PipelineFeed<Formatted>& feed) {
        pthread_setname_np(pthread_self(), "export-reader");
        read = ForEachEntry(o, [&](const Item& item) -> absl::Status {
          Formatted& slot = feed.Slot();
          absl::StatusOr<v1::Entry> opened = EntryOf(item);
          slot.status = opened.status();
          if (opened.ok()) slot.entry = *std::move(opened);
          if (!feed.Filled()) return absl::CancelledError("the export stopped");
          return absl::OkStatus();
        });
        return absl::OkStatus();
      },
      [&](const Formatted& slot) -> absl::Status {
        if (!slot.status.ok()) return slot.status;
        if (json_out.is_open()) json_out << slot.json;
        if (csv_out.is_open()) csv_out << slot.rows;
        ++count;
        return absl::OkStatus();
      },
      [&](Formatted& slot) {
        if (slot.status.ok()) slot.status = format(slot.entry, slot.json, slot.rows);
      });
  if (!written.ok()) return Fault(Message(written));
  if (read.code != kExitOk) return read;
  if (!jsonl.empty() && !json_file.Commit())
    return Trouble(kExitUsage, Cat("cannot write ", jsonl));
  if (!csv.empty() && !csv_file.Commit()) return Trouble(kExitUsage, Cat("cannot write ", csv));
  out << "exported " << count << " entries" << (jsonl.empty() ? "" : " to " + jsonl)
      << (csv.empty() ? "" : " (postings to " + csv + ")") << "\n";
  return {};
}

Outcome Replay(const Options& o, const std::string& as_of, const std::string& loan_id,
               const std::string& borrower_id, const std::string& account, std::ostream& out) {
  uint64_t last_sequence = UINT64_MAX;
  std::optional<Date> last_date;
  if (!as_of.empty()) {
    if (as_of.find('-') != std::string::npos) {
      absl::StatusOr<Date> date = ParseDate(as_of, "--as-of");
      if (!date.ok())
        return Trouble(kExitUsage, "--as-of must be a sequence number or a date YYYY-MM-DD");
      last_date = *date;
    } else {
      try {
        last_sequence = std::stoull(as_of);
      } catch (const std::exception&) {
        return Trouble(kExitUsage, "--as-of must be a sequence number or a date YYYY-MM-DD");
      }
    }
  }
  // Every entry read is checked (hash, sequence, chain link, balance, apply), also as of a
  // date: the figures of a journal that does not verify are not given. As of a date, a
  // second replay applies only the entries dated up to it.
  Replayer checked(ReplayKeeps::kWhatApplyReads);
  std::unique_ptr<Replayer> dated;
  if (last_date.has_value()) dated = std::make_unique<Replayer>(ReplayKeeps::kWhatApplyReads);
  std::string latest_date;
  Outcome read = ForEachEntry(o, [&](const Item& item) -> absl::Status {
    absl::StatusOr<v1::Entry> opened = EntryOf(item);
    if (!opened.ok()) return opened.status();
    const v1::Entry& entry = *opened;
    if (entry.sequence() > last_sequence) return absl::CancelledError("done");
    if (item.parsed != nullptr) {
      absl::Status stored = RefuseMasked(entry, o);
      if (!stored.ok()) return stored;
    }
    absl::Status added = checked.AddParsed(entry);
    if (!added.ok()) return added;
    if (!last_date.has_value()) {
      latest_date = std::max(latest_date, entry.business_date());
      return absl::OkStatus();
    }
    absl::StatusOr<Date> date = ParseDate(entry.business_date(), "business_date");
    if (!date.ok()) {
      return absl::DataLossError(
          Cat("entry ", entry.sequence(), ": field business_date: ", Message(date.status())));
    }
    if (*date > *last_date) return absl::OkStatus();
    return dated->ApplyOnly(entry);
  });
  if (read.code != kExitOk && read.message != "done") return read;
  Replayer& replay = dated != nullptr ? *dated : checked;
  const Date date = last_date.has_value()
                        ? *last_date
                        : *ParseDate(latest_date.empty() ? "1970-01-01" : latest_date, "d");
  out << "as of "
      << (last_date.has_value()
              ? Cat("business date ", date.ToString(), " (", checked.size(), " entries verified)")
              : Cat("entry ", replay.size()))
      << "\n";
  if (!account.empty()) {
    out << account << ": " << Yuan(static_cast<int64_t>(replay.Balance(account).fen())) << "\n";
    return {};
  }
  auto print_loan = [&](const v1::LoanState& loan) {
    const Delinquency d = DelinquencyAsOf(loan.position(), loan.grace_days(), date);
    out << loan.loan_id() << "  " << loan.borrower_id() << "  " << loan.county() << "  "
        << v1::LoanStatus_Name(loan.position().status()).substr(12) << "  amount "
        << Yuan(loan.amount_fen()) << "  outstanding " << Yuan(d.outstanding_fen)
        << "  days past due " << d.days_past_due << " (" << d.bucket << ")\n";
  };
  if (!loan_id.empty()) {
    std::optional<v1::LoanState> loan = replay.Loan(loan_id);
    if (!loan.has_value()) return Trouble(kExitUsage, Cat("no loan ", loan_id, " then"));
    print_loan(*loan);
    const std::vector<int64_t> paid = PaidAsOf(loan->position(), date);
    for (int i = 0; i < loan->position().schedule_size(); ++i) {
      const v1::Installment& inst = loan->position().schedule(i);
      out << "  " << inst.number() << "  due " << inst.due_date() << "  "
          << Yuan(inst.principal_fen()) << "  paid " << Yuan(paid[static_cast<size_t>(i)]) << "\n";
    }
    return {};
  }
  if (!borrower_id.empty()) {
    std::optional<v1::BorrowerState> borrower = replay.Borrower(borrower_id);
    if (!borrower.has_value())
      return Trouble(kExitUsage, Cat("no borrower ", borrower_id, " then"));
    out << borrower->borrower_id() << "  " << borrower->details().name() << "  "
        << borrower->details().county() << "  "
        << v1::TalentPoolStatus_Name(borrower->status()).substr(19) << "\n";
    for (const v1::LoanState& loan : replay.Loans()) {
      if (loan.borrower_id() == borrower_id) print_loan(loan);
    }
    return {};
  }
  int64_t outstanding = 0, par30 = 0, par90 = 0, loans = 0;
  for (const v1::LoanState& loan : replay.Loans()) {
    const Delinquency d = DelinquencyAsOf(loan.position(), loan.grace_days(), date);
    if (d.outstanding_fen <= 0) continue;
    ++loans;
    outstanding += d.outstanding_fen;
    if (d.days_past_due > 30) par30 += d.outstanding_fen;
    if (d.days_past_due > 90) par90 += d.outstanding_fen;
  }
  out << "portfolio: " << loans << " loans outstanding, principal " << Yuan(outstanding)
      << ", PAR30 " << Yuan(par30) << ", PAR90 " << Yuan(par90) << "\n";
  out << "union fund cash " << Yuan(static_cast<int64_t>(replay.Balance("union:fund:cash").fen()))
      << "\n";
  return {};
}

Outcome Prove(const Options& o, uint64_t sequence, std::ostream& out) {
  absl::StatusOr<std::optional<Checkpoint>> checkpoint = LoadCheckpoint(o.checkpoint_file, o);
  if (!checkpoint.ok() || !checkpoint->has_value()) {
    if (checkpoint.ok())
      return Trouble(kExitUsage, "prove needs --checkpoint FILE and --public-key KEY");
    // A checkpoint that does not verify is a fault; one that cannot be read, or a bad key,
    // is the command's.
    return checkpoint.status().code() == absl::StatusCode::kDataLoss
               ? Fault(Message(checkpoint.status()))
               : Trouble(kExitUsage, Message(checkpoint.status()));
  }
  const Checkpoint& c = **checkpoint;
  if (sequence == 0 || sequence > c.size) {
    return Trouble(kExitUsage,
                   Cat("entry ", sequence, " is not within the checkpoint's ", c.size, " entries"));
  }
  v1::Entry entry;
  std::vector<std::string> proof;
  if (!o.server.empty()) {
    absl::StatusOr<Server> server = Server::Connect(o);
    if (!server.ok()) return Trouble(kExitUsage, Message(server.status()));
    v1::GetInclusionProofRequest request;
    request.set_sequence(sequence);
    request.set_tree_size(c.size);
    v1::InclusionProof response;
    auto context = server->Context();
    grpc::Status got = server->stub().GetInclusionProof(context.get(), request, &response);
    if (!got.ok()) return FromRpc(got, "fetching the inclusion proof");
    entry = response.entry();
    absl::Status stored = RefuseMasked(entry, o);
    if (!stored.ok()) return Trouble(kExitAuth, Message(stored));
    for (const std::string& hex : response.hashes()) {
      std::string bytes;
      for (size_t i = 0; i + 1 < hex.size(); i += 2)
        bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
      proof.push_back(bytes);
    }
  } else {
    // From an export or a database copy: the proof is computed here from the leaves.
    std::vector<std::string> leaves;
    Outcome read = ForEachEntry(o, [&](const Item& item) -> absl::Status {
      absl::StatusOr<v1::Entry> opened = EntryOf(item);
      if (!opened.ok()) return opened.status();
      const v1::Entry& e = *opened;
      if (e.sequence() == sequence) {
        if (item.parsed != nullptr) {
          absl::Status stored = RefuseMasked(e, o);
          if (!stored.ok()) return stored;
        }
        entry = e;
      }
      if (leaves.size() < c.size) leaves.push_back(e.hash());
      return absl::OkStatus();
    });
    if (read.code != kExitOk) return read;
    if (leaves.size() < c.size)
      return Fault(Cat("the source has ", leaves.size(), " entries; the checkpoint ", c.size));
    PerfectNodeSource nodes = [&leaves](int level, uint64_t index) -> absl::StatusOr<std::string> {
      std::vector<std::string> hashes(
          leaves.begin() + static_cast<ptrdiff_t>(index << level),
          leaves.begin() + static_cast<ptrdiff_t>((index + 1) << level));
      while (hashes.size() > 1) {
        std::vector<std::string> up;
        for (size_t i = 0; i < hashes.size(); i += 2)
          up.push_back(MerkleNodeHash(hashes[i], hashes[i + 1]));
        hashes.swap(up);
      }
      return hashes[0];
    };
    absl::StatusOr<std::vector<std::string>> built =
        MerkleInclusionProof(nodes, sequence - 1, c.size);
    if (!built.ok()) return Fault(Message(built.status()));
    proof = *built;
  }
  // The entry's hash is recomputed from its own bytes, never taken on trust.
  const std::string leaf = MerkleLeafHash(CanonicalBytes(entry));
  if (entry.sequence() != sequence || leaf != entry.hash()) {
    return Fault(Cat("entry ", sequence, ": its bytes do not hash to the hash it carries"));
  }
  absl::Status included = VerifyMerkleInclusion(leaf, sequence - 1, c.size, proof, c.root);
  if (!included.ok()) return Fault(Cat("entry ", sequence, ": ", Message(included)));
  out << "entry " << sequence << " (" << EventKindName(entry.event());
  const std::string loan = LoanIdOfEvent(entry.event());
  if (!loan.empty()) out << " " << loan;
  out << ", " << entry.business_date() << ", by " << entry.actor().principal_id()
      << ") is in the ledger signed at " << c.size << " entries (root "
      << ToHex(c.root).substr(0, 16) << "...)\n";
  return {};
}

Outcome SaveCheckpoint(const Options& o, const std::string& path, std::ostream& out) {
  if (o.server.empty()) return Trouble(kExitUsage, "checkpoint needs --server ADDRESS");
  absl::StatusOr<Server> server = Server::Connect(o);
  if (!server.ok()) return Trouble(kExitUsage, Message(server.status()));
  v1::SignedCheckpoint signed_checkpoint;
  auto context = server->Context();
  grpc::Status got =
      server->stub().GetCheckpoint(context.get(), v1::GetCheckpointRequest(), &signed_checkpoint);
  if (!got.ok()) return FromRpc(got, "fetching the checkpoint");
  if (!o.public_key.empty()) {
    absl::StatusOr<Checkpoint> verified = VerifyCheckpoint(signed_checkpoint.note(), o.public_key);
    if (!verified.ok()) return ServerCheckpointRefused(verified.status());
  }
  if (path.empty()) {
    out << signed_checkpoint.note();
  } else {
    ReplacingFile file(path);
    if (!file.Open()) return Trouble(kExitUsage, Cat("cannot write ", path));
    file.stream() << signed_checkpoint.note();
    if (!file.Commit()) return Trouble(kExitUsage, Cat("cannot write ", path));
    out << "checkpoint of " << signed_checkpoint.tree_size() << " entries saved to " << path
        << "\n";
  }
  return {};
}

void AddSourceOptions(CLI::App* command, Options& o) {
  command->add_option(
      "--db", o.db, "a read-only copy of a ledger database (or a stopped server's data directory)");
  command->add_option("--export", o.export_file,
                      "a JSON-lines export made by `gongdai-audit export`");
  command->add_option("--server", o.server, "a live server, host:port (with an auditor token)");
  command->add_option("--token-file", o.token_file,
                      "token file (the token alone, or a development tokens file); default "
                      "./gongdai-data/dev-tokens.toml");
  command->add_option("--as", o.as, "which token of a development tokens file (default: auditor)");
  command->add_option("--ca-file", o.ca_file, "CA certificate (PEM) for a TLS server");
  command->add_option("--tls-server-name", o.tls_server_name,
                      "the name in the server's certificate");
}

}  // namespace

int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{"gongdai-audit: verify a Gongdai ledger without trusting its server"};
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 verified, 1 a fault was found, 2 usage or unreadable source, 4 refused token, "
      "5 server unreachable.\n"
      "Example:\n  gongdai-audit verify --db /backup/gongdai-data --checkpoint cp.txt --public-key "
      "'gongdai.ledger+1a2b3c4d+AR...'");
  Options o;
  std::string jsonl, csv, as_of, loan, borrower, account, out_file;
  uint64_t sequence = 0;

  CLI::App* verify = app.add_subcommand(
      "verify", "check every entry, the chain, the tree, the checkpoint and the replay");
  AddSourceOptions(verify, o);
  verify->add_option("--public-key", o.public_key,
                     "the server's verifier key (gongdai-server --print-public-key)");
  verify->add_option("--checkpoint", o.checkpoint_file,
                     "a signed checkpoint the journal must match");
  verify->add_option("--previous-checkpoint", o.previous_checkpoint_file,
                     "an earlier checkpoint you kept: the journal must extend it");
  verify->add_flag("--journal-only", o.journal_only,
                   "with --db: check the journal and replay it, but do not compare the copy's "
                   "projections, indexes and request ids (less memory and time)");
  verify->footer(
      "Example:\n  gongdai-audit verify --export journal.jsonl --checkpoint cp.txt --public-key "
      "KEY");

  CLI::App* exporter =
      app.add_subcommand("export", "write the journal as JSON lines and its postings as CSV");
  AddSourceOptions(exporter, o);
  exporter->add_option("--jsonl", jsonl, "JSON lines: every field of every entry, hashes in hex");
  exporter->add_option("--csv", csv,
                       "one row per posting (UTF-8 with BOM, opens in a spreadsheet)");
  exporter->footer(
      "Example:\n  gongdai-audit export --server 127.0.0.1:50051 --jsonl journal.jsonl --csv "
      "postings.csv");

  CLI::App* replay = app.add_subcommand(
      "replay", "show a loan, a borrower, an account or the portfolio as it stood");
  AddSourceOptions(replay, o);
  replay->add_option("--as-of", as_of, "an entry's sequence number, or a business date YYYY-MM-DD");
  replay->add_option("--loan", loan, "a loan id, e.g. L000042");
  replay->add_option("--borrower", borrower, "a borrower id and their loans");
  replay->add_option("--account", account, "an account, e.g. union:fund:cash");
  replay->footer(
      "Example:\n  gongdai-audit replay --export journal.jsonl --as-of 2020-12-31 --loan L000042");

  CLI::App* prove =
      app.add_subcommand("prove", "check that one entry is in the ledger a checkpoint signs");
  AddSourceOptions(prove, o);
  prove->add_option("--sequence", sequence, "the entry's sequence number")->required();
  prove->add_option("--checkpoint", o.checkpoint_file, "the signed checkpoint")->required();
  prove->add_option("--public-key", o.public_key, "the server's verifier key")->required();
  prove->footer(
      "Example:\n  gongdai-audit prove --server 127.0.0.1:50051 --sequence 1234 --checkpoint "
      "cp.txt --public-key KEY");

  CLI::App* checkpoint =
      app.add_subcommand("checkpoint", "fetch the server's signed checkpoint, to keep");
  AddSourceOptions(checkpoint, o);
  checkpoint->add_option("--out", out_file, "where to save it (default: print it)");
  checkpoint->add_option("--public-key", o.public_key, "check its signature before saving");
  checkpoint->footer(
      "Example:\n  gongdai-audit checkpoint --server 127.0.0.1:50051 --out cp-2021-03-31.txt");

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp& e) {
    out << app.help();
    return kExitOk;
  } catch (const CLI::CallForAllHelp& e) {
    out << app.help();
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      out << (app.got_subcommand(verify) ? verify->help() : app.help());
      return kExitOk;
    }
    err << "gongdai-audit: " << e.what() << "\n";
    return kExitUsage;
  }
  Outcome outcome;
  if (verify->parsed()) outcome = Verify(o, out, err);
  if (exporter->parsed()) outcome = Export(o, jsonl, csv, out);
  if (replay->parsed()) outcome = Replay(o, as_of, loan, borrower, account, out);
  if (prove->parsed()) outcome = Prove(o, sequence, out);
  if (checkpoint->parsed()) outcome = SaveCheckpoint(o, out_file, out);
  if (outcome.code == kExitFailed) err << "FAILED: " << outcome.message << "\n";
  if (outcome.code != kExitOk && outcome.code != kExitFailed)
    err << "gongdai-audit: " << outcome.message << "\n";
  return outcome.code;
}

}  // namespace gongdai::audit
