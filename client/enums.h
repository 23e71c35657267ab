// The words the client uses for the API's enums, on the command line, in product files
// and in its tables: "ordinary-member", "monthly", "bank-transfer", "written-off".
#ifndef GONGDAI_CLIENT_ENUMS_H_
#define GONGDAI_CLIENT_ENUMS_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gongdai/v1/ledger_service.pb.h"

namespace gongdai::client {

// One enum's words. Parse also accepts the proto names ("BORROWER_CATEGORY_MODEL_WORKER",
// "MODEL_WORKER"), any case, '_' for '-', and a few aliases ("equal-principal-monthly").
class EnumWords {
 public:
  struct Word {
    int value;
    std::string_view word;
    bool alias = false;
  };
  EnumWords(std::string_view proto_prefix, std::vector<Word> words);

  // The word of `value`; "-" for 0 (unspecified), "unknown (N)" for a value it lacks.
  std::string Name(int value) const;
  std::optional<int> Parse(std::string_view text) const;
  // The words, without aliases, joined by "|" ("bank-transfer|cash|auto-debit").
  std::string Choices() const;
  std::vector<std::string> List() const;

 private:
  std::string prefix_;
  std::vector<Word> words_;
};

const EnumWords& CategoryWords();
const EnumWords& FundingWords();
const EnumWords& DayCountWords();
const EnumWords& MethodWords();
const EnumWords& ChannelWords();
const EnumWords& TalentPoolWords();
const EnumWords& LoanStatusWords();
const EnumWords& ReportDimensionWords();

}  // namespace gongdai::client

#endif  // GONGDAI_CLIENT_ENUMS_H_
