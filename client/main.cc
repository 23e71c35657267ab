// gongdai: the loan officers' command-line client (client/app.h).
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "client/app.h"

int main(int argc, char** argv) {
  gongdai::client::Io io{std::cout, std::cerr, std::cin, ::isatty(STDIN_FILENO) == 1,
                         [](const std::string& name) -> std::optional<std::string> {
                           const char* value = std::getenv(name.c_str());
                           if (value == nullptr) return std::nullopt;
                           return std::string(value);
                         }};
  const int code = gongdai::client::Run(argc, argv, io);
  std::cout.flush();
  return code;
}
