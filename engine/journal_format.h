// The journal's on-disk format: keys, the stored value of an entry and its hash input.
// docs/journal-format.md is the specification; this file holds its constants and the
// encode/decode functions that implement it. Private to engine/.
#ifndef GONGDAI_ENGINE_JOURNAL_FORMAT_H_
#define GONGDAI_ENGINE_JOURNAL_FORMAT_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gongdai/v1/journal.pb.h"
#include "gongdai/v1/state.pb.h"

namespace gongdai {

// RFC 6962 leaf prefix: an entry's hash is SHA-256(0x00 || canonical entry bytes).
inline constexpr char kLeafPrefix = '\x00';
// The stored value is the canonical bytes followed by field 15 (hash), length-delimited:
// tag byte 0x7a (15 << 3 | 2), length byte 0x20 (32), then the 32 hash bytes.
inline constexpr char kHashFieldTag = '\x7a';
inline constexpr char kHashFieldLength = '\x20';
inline constexpr size_t kHashFieldBytes = 2 + 32;

// Keys of the meta space and two key prefixes (docs/journal-format.md, "Column
// families"; the other prefixes are in engine/rules.h and engine/programme.h).
inline constexpr std::string_view kMetaHeadKey = "head";
inline constexpr std::string_view kMetaFormatKey = "format";
inline constexpr std::string_view kFormatVersion = "gongdai-journal-1";
// The version of what apply derives (projections, indexes, request ids). Raised whenever
// apply's output for the same journal changes; a database whose derived state has another
// version (or none, before version 2) is rebuilt from its journal when the ledger opens.
inline constexpr std::string_view kMetaProjectionsKey = "projections";
inline constexpr std::string_view kProjectionsVersion = "gongdai-projections-11";
// Whether `version` names the derived state of an earlier engine: gongdai-projections-N
// with N from 2 to this engine's number less one. (Version 1 recorded none.)
bool IsEarlierProjectionsVersion(std::string_view version);
inline constexpr std::string_view kAccountPrefix = "a/";
inline constexpr std::string_view kDateIndexPrefix = "d/";

// 8-byte big-endian sequence number: journal keys sort in sequence order.
std::string SequenceKey(uint64_t sequence);
// nullopt-like 0 when `key` is not 8 bytes.
uint64_t DecodeSequenceKey(std::string_view key);

// Deterministic serialization of `entry` with its hash field cleared.
std::string CanonicalBytes(const v1::Entry& entry);

// Fills entry->hash and returns the value to store.
std::string SealEntry(v1::Entry* entry);
// The value stored for an entry: its canonical bytes followed by its hash field.
std::string StoredBytes(std::string canonical, std::string_view hash);

// Parses the value stored under journal key `key_sequence` and checks that it is exactly
// canonical bytes followed by the hash field, that the hash matches, and that the entry's
// sequence is its key's. DATA_LOSS naming the entry and the field otherwise.
[[nodiscard]] absl::StatusOr<v1::Entry> OpenEntry(std::string_view stored, uint64_t key_sequence);
// The same, into `entry` (which may be reused: it keeps its allocations).
[[nodiscard]] absl::Status OpenEntryInto(std::string_view stored, uint64_t key_sequence,
                                         v1::Entry& entry);
// OpenEntryInto in its two steps, for a reader that parses on one thread and checks on
// another: the parse, then the checks of the parsed entry against its stored bytes.
[[nodiscard]] absl::Status ParseStoredEntry(std::string_view stored, uint64_t key_sequence,
                                            v1::Entry& entry);
[[nodiscard]] absl::Status CheckStoredEntry(std::string_view stored, uint64_t key_sequence,
                                            const v1::Entry& entry);

// Sum of debits equals sum of credits, every amount positive, every side set.
[[nodiscard]] absl::Status CheckBalanced(const v1::Entry& entry);

// The all-zero hash that entry 1 links to.
const std::string& GenesisHash();

// The chain head stored under kMetaHeadKey (`stored`), written with every batch of
// entries; the genesis head (sequence 0, GenesisHash) when nothing is stored, before the
// first entry. DATA_LOSS when it does not parse, or names no entry or a hash that is not
// 32 bytes.
[[nodiscard]] absl::StatusOr<v1::JournalHead> ParseStoredHead(
    const std::optional<std::string>& stored);

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_JOURNAL_FORMAT_H_
