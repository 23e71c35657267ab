// Where the client connects and with which token: flags, then environment variables,
// then a profile file, then defaults. The token itself is only ever read from a file.
#ifndef GONGDAI_CLIENT_SETTINGS_H_
#define GONGDAI_CLIENT_SETTINGS_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace gongdai::client {

inline constexpr char kDefaultServer[] = "127.0.0.1:50051";
inline constexpr char kDefaultRole[] = "officer";
// The server's default data directory holds its development tokens: running the client
// from the directory the server runs in needs no set-up.
inline constexpr char kDefaultTokensFile[] = "gongdai-data/dev-tokens.toml";

// The connection flags as given on the command line; empty when not given.
struct ConnectionFlags {
  std::string server;
  std::string ca_file;
  std::string tls_server_name;
  std::string token_file;
  std::string as;
  std::string profile;
};

// Reads an environment variable; nullopt when it is not set.
using GetEnv = std::function<std::optional<std::string>(const std::string& name)>;

struct ConnectionSettings {
  std::string server = kDefaultServer;
  // TLS is on when a CA file is given.
  std::string ca_file;
  std::string tls_server_name;
  // Empty when none is configured; then kDefaultTokensFile is tried.
  std::string token_file;
  // The role whose token is taken from a development tokens file.
  std::string as = kDefaultRole;
  // Where `as` was given ("--as", "GONGDAI_AS" or "as in <profile>"), empty when it was not.
  std::string as_source;
  // The profile file that was read, empty when none.
  std::string profile;
};

// Flag > environment (GONGDAI_SERVER, GONGDAI_CA_FILE, GONGDAI_TLS_SERVER_NAME,
// GONGDAI_TOKEN_FILE, GONGDAI_AS) > profile > default. The profile is --profile,
// GONGDAI_PROFILE, or ~/.config/gongdai/profile.toml when that exists; its keys are
// server, ca_file, token_file, as and tls_server_name, and relative paths in it are
// relative to the profile's directory. INVALID_ARGUMENT for a profile that is missing
// (when named), does not parse, or has an unknown key or a value of the wrong type.
[[nodiscard]] absl::StatusOr<ConnectionSettings> ResolveSettings(const ConnectionFlags& flags,
                                                                 const GetEnv& env);

struct Credentials {
  std::string token;
  // Where it came from, for messages: "the \"cashier\" token of /srv/dev-tokens.toml".
  // Never the token.
  std::string source;
};

// The bearer token: the whole (trimmed) content of the token file, or, when the file is a
// development tokens file (TOML with a [tokens] table), the entry of `settings.as`.
// UNAUTHENTICATED with a message that never contains the token when there is no usable
// token.
[[nodiscard]] absl::StatusOr<Credentials> LoadCredentials(const ConnectionSettings& settings);

// A warning when the token file can be read by other users, nullopt otherwise.
std::optional<std::string> TokenFilePermissionWarning(const std::string& path);

}  // namespace gongdai::client

#endif  // GONGDAI_CLIENT_SETTINGS_H_
