#include "client/settings.h"

#include <sys/stat.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

namespace gongdai::client {
namespace {

namespace fs = std::filesystem;

constexpr size_t kTokenFileBytesMax = 1 << 20;
constexpr size_t kTokenBytesMax = 500;

std::optional<std::string> NonEmpty(const GetEnv& env, const char* name) {
  std::optional<std::string> value = env(name);
  if (value.has_value() && value->empty()) return std::nullopt;
  return value;
}

// "~/x" with the home directory; a relative path against `base`.
std::string ProfilePath(const std::string& value, const fs::path& base, const GetEnv& env) {
  if (value.starts_with("~/")) {
    if (std::optional<std::string> home = NonEmpty(env, "HOME"))
      return (fs::path(*home) / value.substr(2)).string();
  }
  const fs::path path(value);
  return path.is_absolute() ? value : (base / path).lexically_normal().string();
}

struct Profile {
  std::map<std::string, std::string> values;
};

absl::StatusOr<Profile> ReadProfile(const std::string& path, const GetEnv& env) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError("profile " + path + ": " + std::string(e.description()) +
                                      " at line " + std::to_string(e.source().begin.line));
  }
  static const char* const kKeys[] = {"server", "ca_file", "token_file", "as", "tls_server_name"};
  Profile profile;
  const fs::path base = fs::absolute(fs::path(path)).parent_path();
  for (const auto& [key, node] : root) {
    const std::string name(key.str());
    if (std::find(std::begin(kKeys), std::end(kKeys), name) == std::end(kKeys)) {
      return absl::InvalidArgumentError(
          "profile " + path + ": unknown setting \"" + name +
          "\" (known: server, ca_file, token_file, as, tls_server_name)");
    }
    std::optional<std::string> value = node.value<std::string>();
    if (!value.has_value()) {
      return absl::InvalidArgumentError("profile " + path + ": " + name + " must be a string");
    }
    if ((name == "ca_file" || name == "token_file") && !value->empty())
      *value = ProfilePath(*value, base, env);
    profile.values[name] = *value;
  }
  return profile;
}

std::string Trim(std::string_view text) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  return std::string(text);
}

bool UsableToken(std::string_view token) {
  return !token.empty() && token.size() <= kTokenBytesMax &&
         std::all_of(token.begin(), token.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

absl::Status Unusable(const std::string& path) {
  return absl::UnauthenticatedError(
      "token file " + path +
      " does not hold a usable token (printable ASCII without spaces, at "
      "most 500 characters)");
}

}  // namespace

absl::StatusOr<ConnectionSettings> ResolveSettings(const ConnectionFlags& flags,
                                                   const GetEnv& env) {
  ConnectionSettings settings;
  // The profile.
  std::string profile_path = flags.profile;
  if (profile_path.empty()) profile_path = NonEmpty(env, "GONGDAI_PROFILE").value_or("");
  if (!profile_path.empty()) {
    std::error_code error;
    if (!fs::is_regular_file(profile_path, error)) {
      return absl::InvalidArgumentError("profile " + profile_path +
                                        " does not exist or is not a file");
    }
  } else if (std::optional<std::string> home = NonEmpty(env, "HOME")) {
    const fs::path standard = fs::path(*home) / ".config" / "gongdai" / "profile.toml";
    std::error_code error;
    if (fs::is_regular_file(standard, error)) profile_path = standard.string();
  }
  Profile profile;
  if (!profile_path.empty()) {
    absl::StatusOr<Profile> read = ReadProfile(profile_path, env);
    if (!read.ok()) return read.status();
    profile = *std::move(read);
    settings.profile = profile_path;
  }

  // Flag > environment > profile > default. Returns where the value came from, for
  // messages; empty when it was not given.
  const auto pick = [&](const std::string& flag, const char* option, const char* variable,
                        const char* key, std::string& out) -> std::string {
    if (!flag.empty()) {
      out = flag;
      return option;
    }
    if (std::optional<std::string> value = NonEmpty(env, variable)) {
      out = *value;
      return variable;
    }
    auto it = profile.values.find(key);
    if (it != profile.values.end() && !it->second.empty()) {
      out = it->second;
      return std::string(key) + " in " + profile_path;
    }
    return "";
  };
  pick(flags.server, "--server", "GONGDAI_SERVER", "server", settings.server);
  pick(flags.ca_file, "--ca-file", "GONGDAI_CA_FILE", "ca_file", settings.ca_file);
  const std::string name_source =
      pick(flags.tls_server_name, "--tls-server-name", "GONGDAI_TLS_SERVER_NAME", "tls_server_name",
           settings.tls_server_name);
  pick(flags.token_file, "--token-file", "GONGDAI_TOKEN_FILE", "token_file", settings.token_file);
  settings.as_source = pick(flags.as, "--as", "GONGDAI_AS", "as", settings.as);
  if (!settings.tls_server_name.empty() && settings.ca_file.empty()) {
    return absl::InvalidArgumentError(
        "a TLS server name (" + name_source +
        ") needs TLS: give the server's CA certificate with --ca-file (or GONGDAI_CA_FILE, "
        "or ca_file in the profile)");
  }
  return settings;
}

absl::StatusOr<Credentials> LoadCredentials(const ConnectionSettings& settings) {
  std::string path = settings.token_file;
  if (path.empty()) {
    std::error_code error;
    if (!fs::exists(kDefaultTokensFile, error)) {
      return absl::UnauthenticatedError(
          std::string(
              "no token: give the token file with --token-file FILE (or GONGDAI_TOKEN_FILE, or "
              "token_file in the profile); a development server keeps one token per role in "
              "<data dir>/dev-tokens.toml, and ./") +
          kDefaultTokensFile + " is read when it exists");
    }
    path = kDefaultTokensFile;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::UnauthenticatedError("cannot read token file " + path + ": " +
                                      std::strerror(errno));
  }
  std::string content(kTokenFileBytesMax + 1, '\0');
  in.read(content.data(), static_cast<std::streamsize>(content.size()));
  content.resize(static_cast<size_t>(in.gcount()));
  if (content.size() > kTokenFileBytesMax) return Unusable(path);

  // A development tokens file: TOML with a [tokens] table of role = "token".
  toml::table root;
  bool is_toml = true;
  int64_t error_line = 0;
  try {
    root = toml::parse(content, path);
  } catch (const toml::parse_error& e) {
    // Never e.description(): it may quote the file, and the file holds tokens.
    is_toml = false;
    error_line = static_cast<int64_t>(e.source().begin.line);
  }
  if (is_toml) {
    const toml::table* tokens = root.get_as<toml::table>("tokens");
    if (tokens == nullptr) {
      return absl::UnauthenticatedError(
          "token file " + path + " is a TOML file without a [tokens] table (role = \"token\")");
    }
    const toml::node* entry = tokens->get(settings.as);
    if (entry == nullptr) {
      std::string roles;
      for (const auto& [key, value] : *tokens)
        roles += (roles.empty() ? "" : ", ") + std::string(key.str());
      return absl::UnauthenticatedError("token file " + path + " has no token for \"" +
                                        settings.as + "\" (--as); it has: " + roles);
    }
    std::optional<std::string> token = entry->value<std::string>();
    if (!token.has_value() || !UsableToken(*token)) return Unusable(path);
    return Credentials{*token, "the \"" + settings.as + "\" token of " + path};
  }
  // A file holding one token.
  std::string token = Trim(content);
  if (token.find_first_of("=[ \t\r\n") != std::string::npos) {
    return absl::UnauthenticatedError(
        "token file " + path +
        " is neither a token nor a development tokens file (TOML error at line " +
        std::to_string(error_line) + ")");
  }
  if (!UsableToken(token)) return Unusable(path);
  if (!settings.as_source.empty()) {
    return absl::UnauthenticatedError("a role (" + settings.as + ", from " + settings.as_source +
                                      ") picks a token from a development tokens file, but " +
                                      path + " holds a single token: leave the role out");
  }
  return Credentials{token, "the token in " + path};
}

std::optional<std::string> TokenFilePermissionWarning(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return std::nullopt;
  if ((info.st_mode & (S_IRWXG | S_IRWXO)) == 0) return std::nullopt;
  return "warning: token file " + path +
         " can be read by other users; make it private with: chmod 600 " + path;
}

}  // namespace gongdai::client
