// Who is calling and what they may do: bearer tokens checked against SHA-256 hashes from
// the configuration, and one table of which roles may call which method.
#ifndef GONGDAI_SERVER_AUTH_H_
#define GONGDAI_SERVER_AUTH_H_

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/config.h"

namespace gongdai::server {

enum class Role { kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kPortal, kAdmin };
inline constexpr Role kAllRoles[] = {Role::kOfficer,    Role::kApprover, Role::kCashier,
                                     Role::kSupervisor, Role::kAuditor,  Role::kPortal,
                                     Role::kAdmin};

std::string_view RoleName(Role role);
std::optional<Role> ParseRole(std::string_view name);
// "officer, approver, ...": the roles' names, for messages.
std::string RoleNames(std::span<const Role> roles);
// A token hash as the authenticator keys it: lower-case hex.
std::string TokenHashKey(std::string_view sha256_hex);

struct Principal {
  std::string id;
  std::vector<Role> roles;
};

class Authenticator {
 public:
  // INVALID_ARGUMENT when a token names an unknown role or two tokens share a hash.
  [[nodiscard]] static absl::StatusOr<Authenticator> Create(const std::vector<TokenEntry>& tokens);

  // `authorization` is the request's "authorization" metadata value. UNAUTHENTICATED
  // when it is missing, malformed or unknown; the message never repeats the token.
  [[nodiscard]] absl::StatusOr<Principal> Authenticate(std::string_view authorization) const;

 private:
  std::map<std::string, Principal> by_hash_;  // hex SHA-256 of the token
};

// The roles that may call `method` (the RPC's name, "RecordRepayment"); empty for an
// unknown method.
const std::vector<Role>& RolesFor(std::string_view method);

// Every method of the table, for the tests that check it.
std::vector<std::string> MethodsInTable();

// The role in which `principal` calls `method`: the first of its roles the table allows.
// PERMISSION_DENIED naming the method and the roles that may call it otherwise.
[[nodiscard]] absl::StatusOr<Role> Authorize(const Principal& principal, std::string_view method);

// National ID and phone numbers are shown in full only to these roles.
bool MaySeePersonalData(Role role);

// Whether `principal` is shown personal data in full when it calls `method`: when any of
// its roles that the table allows for the method may see it, whichever role the call is
// made in. A supervisor who is also an auditor is not shown a masked phone by one call
// and then asked to write it back by the next (`gongdai borrower update` does).
bool MaySeePersonalData(const Principal& principal, std::string_view method);

// Whether `principal` is given journal entries as they are stored when it calls `method`
// (GetEntry, ListEntries, StreamEntries, GetInclusionProof): as MaySeePersonalData, and
// the auditor too, whose verification recomputes each entry's hash from its bytes. Any
// other role is given them with their personal data masked.
bool MaySeeEntriesAsStored(const Principal& principal, std::string_view method);

// The development tokens of a server started without [[tokens]]: created on first start
// (one per role, two approvers for four eyes), the tokens in an owner-only file
// `<data_dir>/dev-tokens.toml`, their hashes in `<data_dir>/dev-token-hashes.toml`.
struct DevelopmentTokens {
  std::vector<TokenEntry> entries;
  std::string tokens_path;
  bool created = false;
};
[[nodiscard]] absl::StatusOr<DevelopmentTokens> EnsureDevelopmentTokens(
    const std::string& data_dir);

std::string Sha256Hex(std::string_view text);

}  // namespace gongdai::server

#endif  // GONGDAI_SERVER_AUTH_H_
