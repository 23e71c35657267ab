// Product terms from a TOML file, for `gongdai product define` and `amend`.
#ifndef GONGDAI_CLIENT_PRODUCT_FILE_H_
#define GONGDAI_CLIENT_PRODUCT_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "gongdai/v1/ledger_service.pb.h"

namespace gongdai::client {

struct ProductFile {
  // Empty when the file has no product_id.
  std::string product_id;
  v1::ProductTermsInput terms;
};

// Reads `path`. INVALID_ARGUMENT naming the file and the key for a file that does not
// parse, an unknown key, a value of the wrong type, an unknown word (funding, day_count,
// methods, category) or a malformed amount or rate. Whether the terms make a valid
// product (required fields, ranges) is the ledger's to say.
[[nodiscard]] absl::StatusOr<ProductFile> ReadProductFile(const std::string& path);

// The file's format, for `gongdai product define --help`.
extern const char kProductFileHelp[];

}  // namespace gongdai::client

#endif  // GONGDAI_CLIENT_PRODUCT_FILE_H_
