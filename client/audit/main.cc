// gongdai-audit: the auditors' tool (client/audit/audit.h).
#include <iostream>
#include <string>
#include <vector>

#include "client/audit/audit.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return gongdai::audit::Run(args, std::cout, std::cerr);
}
