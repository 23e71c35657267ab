// gongdai: the loan officers' command-line client of the Gongdai ledger.
#ifndef GONGDAI_CLIENT_APP_H_
#define GONGDAI_CLIENT_APP_H_

#include <istream>
#include <ostream>

#include "client/settings.h"

namespace gongdai::client {

// Where the client reads and writes; main() passes the process's own.
struct Io {
  std::ostream& out;
  std::ostream& err;
  std::istream& in;
  // Dangerous commands ask for confirmation only on a terminal.
  bool stdin_is_terminal = false;
  GetEnv getenv;
};

// Runs `gongdai argv[1] ...` and returns the exit code (ExitCode in client/rpc.h).
int Run(int argc, const char* const* argv, Io& io);

}  // namespace gongdai::client

#endif  // GONGDAI_CLIENT_APP_H_
