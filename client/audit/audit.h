// gongdai-audit: verifies a ledger without trusting the server. Sources: a JSON-lines
// export, a read-only copy of a database directory, or a live server (auditor token).
#ifndef GONGDAI_CLIENT_AUDIT_AUDIT_H_
#define GONGDAI_CLIENT_AUDIT_AUDIT_H_

#include <iosfwd>
#include <string>
#include <vector>

namespace gongdai::audit {

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;       // the verification found a fault
inline constexpr int kExitUsage = 2;        // bad flags or an unreadable source
inline constexpr int kExitAuth = 4;         // the server refused the token
inline constexpr int kExitUnreachable = 5;  // the server could not be reached

// Runs the tool with `args` (argv without the program name), writing to `out` and
// `err`; returns the exit code.
int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace gongdai::audit

#endif  // GONGDAI_CLIENT_AUDIT_AUDIT_H_
