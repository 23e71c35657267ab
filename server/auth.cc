#include "server/auth.h"

#include <openssl/rand.h>
#include <sys/stat.h>
#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "engine/sha256.h"
#include "engine/strings.h"

namespace gongdai::server {
namespace {

using enum Role;

// Who may call what. Reads of the ledger: every role but the portal, which sees only the
// programme figures and products. Writes: the people whose job it is.
const std::map<std::string, std::vector<Role>, std::less<>>& MethodTable() {
  static const auto* const kTable = new std::map<std::string, std::vector<Role>, std::less<>>{
      {"DefineProduct", {kSupervisor, kAdmin}},
      {"AmendProduct", {kSupervisor, kAdmin}},
      {"GetProduct", {kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kPortal, kAdmin}},
      {"ListProducts", {kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kPortal, kAdmin}},
      {"RegisterBorrower", {kOfficer, kSupervisor, kPortal}},
      {"UpdateBorrower", {kOfficer, kSupervisor}},
      {"ChangeTalentPoolStatus", {kOfficer, kSupervisor}},
      {"GetBorrower", {kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kAdmin}},
      {"ListBorrowers", {kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kAdmin}},
      {"SubmitApplication", {kOfficer, kSupervisor, kPortal}},
      {"ApproveApplication", {kApprover, kSupervisor}},
      {"RejectApplication", {kApprover, kSupervisor}},
      {"WithdrawApplication", {kOfficer, kSupervisor}},
      {"RevokeApproval", {kApprover, kSupervisor}},
      {"DisburseLoan", {kCashier, kSupervisor}},
      {"RecordRepayment", {kCashier, kSupervisor}},
      {"AccrueSubsidy", {kCashier, kSupervisor}},
      {"ReportJobs", {kOfficer, kSupervisor}},
      {"WriteOffLoan", {kSupervisor}},
      {"RecordRecovery", {kCashier, kSupervisor}},
      {"GetLoan", {kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kAdmin}},
      {"ListLoans", {kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kAdmin}},
      {"GetLoanStatement", {kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kAdmin}},
      {"RecordFundContribution", {kCashier, kSupervisor}},
      {"SettleSubsidy", {kCashier, kSupervisor}},
      {"ReverseEntry", {kSupervisor}},
      {"GetEntry", {kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kAdmin}},
      {"ListEntries", {kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kAdmin}},
      {"GetAccountBalance", {kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kAdmin}},
      {"GetPortfolio", {kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kPortal, kAdmin}},
      {"GetProgrammeReport",
       {kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kPortal, kAdmin}},
      {"ListOverdueLoans", {kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kAdmin}},
      {"GetCheckpoint", {kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kAdmin}},
      {"GetInclusionProof", {kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kAdmin}},
      {"GetConsistencyProof", {kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kAdmin}},
      {"StreamEntries", {kOfficer, kApprover, kCashier, kSupervisor, kAuditor, kAdmin}},
  };
  return *kTable;
}

std::string RandomToken(std::string_view role) {
  unsigned char bytes[24];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) std::abort();  // no entropy: nothing is safe
  return Cat("gd_", role, "_",
             ToHex(std::string_view(reinterpret_cast<char*>(bytes), sizeof(bytes))));
}

}  // namespace

std::string Sha256Hex(std::string_view text) { return ToHex(ThreadSha256().Digest({text})); }

std::string_view RoleName(Role role) {
  switch (role) {
    case kOfficer:
      return "officer";
    case kApprover:
      return "approver";
    case kCashier:
      return "cashier";
    case kSupervisor:
      return "supervisor";
    case kAuditor:
      return "auditor";
    case kPortal:
      return "portal";
    case kAdmin:
      return "admin";
  }
  return "unknown";
}

std::optional<Role> ParseRole(std::string_view name) {
  for (Role role : kAllRoles) {
    if (RoleName(role) == name) return role;
  }
  return std::nullopt;
}

std::string RoleNames(std::span<const Role> roles) {
  std::string names;
  for (Role role : roles) names += Cat(names.empty() ? "" : ", ", RoleName(role));
  return names;
}

std::string TokenHashKey(std::string_view sha256_hex) {
  std::string key(sha256_hex);
  for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return key;
}

absl::StatusOr<Authenticator> Authenticator::Create(const std::vector<TokenEntry>& tokens) {
  Authenticator authenticator;
  for (const TokenEntry& entry : tokens) {
    Principal principal{entry.principal_id, {}};
    for (const std::string& name : entry.roles) {
      std::optional<Role> role = ParseRole(name);
      if (!role.has_value()) {
        return absl::InvalidArgumentError(Cat("token of ", entry.principal_id, ": unknown role \"",
                                              name, "\" (", RoleNames(kAllRoles), ")"));
      }
      principal.roles.push_back(*role);
    }
    if (!authenticator.by_hash_.emplace(TokenHashKey(entry.sha256_hex), std::move(principal))
             .second) {
      return absl::InvalidArgumentError(
          Cat("two tokens have the same hash (", entry.principal_id, ")"));
    }
  }
  return authenticator;
}

absl::StatusOr<Principal> Authenticator::Authenticate(std::string_view authorization) const {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "missing authorization: send \"authorization: Bearer <token>\"");
  }
  if (!authorization.starts_with(kBearer) || authorization.size() == kBearer.size() ||
      authorization.size() > 512) {
    return absl::UnauthenticatedError("malformed authorization: expected \"Bearer <token>\"");
  }
  auto it = by_hash_.find(Sha256Hex(authorization.substr(kBearer.size())));
  if (it == by_hash_.end()) return absl::UnauthenticatedError("unknown token");
  return it->second;
}

const std::vector<Role>& RolesFor(std::string_view method) {
  static const std::vector<Role> kNone;
  auto it = MethodTable().find(method);
  return it == MethodTable().end() ? kNone : it->second;
}

std::vector<std::string> MethodsInTable() {
  std::vector<std::string> methods;
  for (const auto& [method, roles] : MethodTable()) methods.push_back(method);
  return methods;
}

absl::StatusOr<Role> Authorize(const Principal& principal, std::string_view method) {
  const std::vector<Role>& allowed = RolesFor(method);
  for (Role role : principal.roles) {
    if (std::find(allowed.begin(), allowed.end(), role) != allowed.end()) return role;
  }
  const std::string names = RoleNames(allowed);
  return absl::PermissionDeniedError(Cat(principal.id, " may not call ", method,
                                         " (allowed roles: ", names.empty() ? "none" : names, ")"));
}

bool MaySeePersonalData(Role role) {
  return role == kOfficer || role == kApprover || role == kSupervisor || role == kAdmin;
}

namespace {

// Whether any of `principal`'s roles that the table allows for `method` passes `test`.
template <typename Test>
bool AnyRoleAllowed(const Principal& principal, std::string_view method, Test test) {
  const std::vector<Role>& allowed = RolesFor(method);
  return std::any_of(principal.roles.begin(), principal.roles.end(), [&](Role role) {
    return test(role) && std::find(allowed.begin(), allowed.end(), role) != allowed.end();
  });
}

}  // namespace

bool MaySeePersonalData(const Principal& principal, std::string_view method) {
  return AnyRoleAllowed(principal, method, [](Role role) { return MaySeePersonalData(role); });
}

bool MaySeeEntriesAsStored(const Principal& principal, std::string_view method) {
  return AnyRoleAllowed(principal, method,
                        [](Role role) { return MaySeePersonalData(role) || role == kAuditor; });
}

absl::StatusOr<DevelopmentTokens> EnsureDevelopmentTokens(const std::string& data_dir) {
  namespace fs = std::filesystem;
  DevelopmentTokens result;
  const fs::path dir = fs::absolute(data_dir);
  const fs::path hashes_path = dir / "dev-token-hashes.toml";
  result.tokens_path = (dir / "dev-tokens.toml").string();
  std::error_code error;
  fs::create_directories(dir, error);
  if (error)
    return absl::UnavailableError(Cat("cannot create ", dir.string(), ": ", error.message()));

  if (!fs::exists(hashes_path)) {
    struct Person {
      std::string principal;
      Role role;
    };
    const std::vector<Person> people = {
        {"dev-officer", kOfficer},       {"dev-approver", kApprover},
        {"dev-approver2", kApprover},    {"dev-cashier", kCashier},
        {"dev-supervisor", kSupervisor}, {"dev-auditor", kAuditor},
        {"dev-portal", kPortal},         {"dev-admin", kAdmin}};
    std::string tokens_text =
        "# Development tokens of this gongdai-server, one per role. Keep this file private;\n"
        "# the server keeps only their hashes (dev-token-hashes.toml). The gongdai client\n"
        "# reads it when run from this directory or given --token-file.\n\n[tokens]\n";
    std::string hashes_text = "# SHA-256 of the development tokens (see dev-tokens.toml).\n";
    for (const Person& person : people) {
      const std::string token = RandomToken(RoleName(person.role));
      tokens_text += Cat(person.principal.substr(4), " = \"", token, "\"\n");
      hashes_text += Cat("\n[[tokens]]\nsha256 = \"", Sha256Hex(token), "\"\nprincipal = \"",
                         person.principal, "\"\nroles = [\"", RoleName(person.role), "\"]\n");
    }
    // The tokens file is created owner-only before anything is written into it.
    const std::string tmp = result.tokens_path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      if (!out) return absl::UnavailableError(Cat("cannot write ", tmp));
    }
    fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace,
                    error);
    std::ofstream(tmp, std::ios::trunc) << tokens_text;
    fs::rename(tmp, result.tokens_path, error);
    if (error)
      return absl::UnavailableError(
          Cat("cannot write ", result.tokens_path, ": ", error.message()));
    std::ofstream(hashes_path, std::ios::trunc) << hashes_text;
    result.created = true;
  }
  toml::table hashes;
  try {
    hashes = toml::parse_file(hashes_path.string());
  } catch (const toml::parse_error& e) {
    return absl::DataLossError(Cat(hashes_path.string(), ": ", std::string(e.description())));
  }
  const toml::array* tokens = hashes.get_as<toml::array>("tokens");
  if (tokens == nullptr)
    return absl::DataLossError(Cat(hashes_path.string(), " has no [[tokens]]"));
  for (const toml::node& node : *tokens) {
    const toml::table* table = node.as_table();
    if (table == nullptr) return absl::DataLossError(Cat(hashes_path.string(), ": bad entry"));
    TokenEntry entry;
    entry.sha256_hex =
        table->get_as<std::string>("sha256") ? table->get_as<std::string>("sha256")->get() : "";
    entry.principal_id = table->get_as<std::string>("principal")
                             ? table->get_as<std::string>("principal")->get()
                             : "";
    if (const toml::array* roles = table->get_as<toml::array>("roles")) {
      for (const toml::node& role : *roles) entry.roles.push_back(role.value_or(std::string()));
    }
    result.entries.push_back(std::move(entry));
  }
  return result;
}

}  // namespace gongdai::server
